//! The access-log job written in Python, JavaScript and C (`examples/access-log-{python,js,c}`)
//! must give the Rust guest's report, line for line, under `spawn -n 2`.
//!
//! Each test runs the example's `build.sh`, which installs its toolchain on first use. Where a
//! prerequisite cannot be had (no `python3`, no `npm`, no clang and no way to install it), the
//! test prints `SKIPPED: <why>` on stderr and returns; with `SPILLWAY_POLYGLOT=require` (set by
//! `scripts/test.sh`, so in CI) that is a failure instead.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::util::{access_log, guest, job, line_counts, repo, run_ok};

/// One polyglot example.
struct Example {
    language: &'static str,
    dir: &'static str,
    wasm: &'static str,
}

const PYTHON: Example = Example {
    language: "Python",
    dir: "examples/access-log-python",
    wasm: "examples/target/polyglot/access_log_python.wasm",
};
const JAVASCRIPT: Example = Example {
    language: "JavaScript",
    dir: "examples/access-log-js",
    wasm: "examples/target/polyglot/access_log_js.wasm",
};
const C: Example = Example {
    language: "C",
    dir: "examples/access-log-c",
    wasm: "examples/target/polyglot/access_log_c.wasm",
};

/// Whether `program` runs (`program args...` exits 0).
fn works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|output| output.status.success())
}

/// What the example needs that its build script cannot install, if anything is missing.
fn missing_prerequisite(example: &Example) -> Option<String> {
    let python = || works("python3", &["-c", "import venv, ensurepip"]);
    match example.language {
        "Python" if !python() => Some("python3 with the venv module is not installed".into()),
        "JavaScript" if !works("node", &["--version"]) || !works("npm", &["--version"]) => {
            Some("node and npm are not installed".into())
        }
        "C" => {
            let clang =
                works("clang", &["--version"]) && Path::new("/usr/lib/wasm32-wasi").is_dir();
            let can_install =
                works("apt-get", &["--version"]) && works("test", &["-w", "/usr/lib"]);
            if !clang && !can_install {
                Some("clang with wasi-libc is not installed and apt-get cannot install it".into())
            } else if !python() {
                Some("python3 with the venv module (for wasm-tools) is not installed".into())
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Runs the example's build script and returns the component it wrote, or `None` after
/// printing why the language is skipped.
fn build(example: &Example) -> Option<PathBuf> {
    if let Some(why) = missing_prerequisite(example) {
        let message = format!("SKIPPED: {} guest: {why}", example.language);
        assert!(
            std::env::var("SPILLWAY_POLYGLOT").as_deref() != Ok("require"),
            "{message} (SPILLWAY_POLYGLOT=require)"
        );
        // Straight to stderr: libtest captures the print macros of passing tests.
        let _ = writeln!(std::io::stderr(), "{message}");
        return None;
    }
    let script = repo().join(example.dir).join("build.sh");
    let output = Command::new("bash")
        .arg(&script)
        .current_dir(repo())
        .output()
        .expect("bash runs");
    assert!(
        output.status.success(),
        "{} failed with {}:\nstdout:\n{}\nstderr:\n{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let wasm = repo().join(example.wasm);
    assert!(
        wasm.is_file(),
        "{} did not write {}",
        script.display(),
        wasm.display()
    );
    Some(wasm)
}

/// The report of `guest` over the real access log, with `spawn -n 2`.
fn report(guest: &Path) -> BTreeMap<String, usize> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.jsonl");
    let output = run_ok(&mut job(
        ("spawn", 2, 1),
        guest,
        &[
            ("--source", format!("logs={}", access_log().display())),
            ("--sink", format!("report={}", path.display())),
        ],
    ));
    let summary = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        summary.contains(" 0 rejected"),
        "{}: {summary}",
        guest.display()
    );
    line_counts(&path)
}

fn rust_report() -> &'static BTreeMap<String, usize> {
    static REPORT: OnceLock<BTreeMap<String, usize>> = OnceLock::new();
    REPORT.get_or_init(|| report(&guest("access-log")))
}

fn same_report_as_rust(example: &Example) {
    let Some(wasm) = build(example) else {
        return;
    };
    let expected = rust_report();
    assert_eq!(expected.len(), 241, "the Rust guest's report changed");
    let actual = report(&wasm);
    let missing: Vec<_> = expected
        .keys()
        .filter(|l| !actual.contains_key(*l))
        .collect();
    let extra: Vec<_> = actual
        .keys()
        .filter(|l| !expected.contains_key(*l))
        .collect();
    assert!(
        &actual == expected,
        "{} report differs from the Rust guest's: {} lines missing, {} extra\nmissing: {:#?}\nextra: {:#?}",
        example.language,
        missing.len(),
        extra.len(),
        &missing[..missing.len().min(5)],
        &extra[..extra.len().min(5)],
    );
}

#[test]
fn python_guest_matches_the_rust_report() {
    same_report_as_rust(&PYTHON);
}

#[test]
fn javascript_guest_matches_the_rust_report() {
    same_report_as_rust(&JAVASCRIPT);
}

#[test]
fn c_guest_matches_the_rust_report() {
    same_report_as_rust(&C);
}
