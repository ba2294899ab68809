//! Helpers: the binary under test, building the example guests, and output comparison.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A `spillway` command.
pub fn spillway() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_spillway"));
    command.current_dir(repo());
    // Compiled guests are cached here rather than in the user's cache directory.
    command.env(
        "SPILLWAY_COMPILE_CACHE",
        repo().join("target/test-compile-cache"),
    );
    command
}

/// Builds the example guests once per test run and returns the path of `name`'s component.
pub fn guest(crate_name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    build_guests(&BUILT, "examples");
    let file = crate_name.replace('-', "_");
    repo().join(format!("examples/target/wasm32-wasip2/release/{file}.wasm"))
}

/// Builds the guest workspace in `dir` (for wasm32-wasip2, release) once per test run, or
/// panics with cargo's errors.
pub fn build_guests(built: &'static OnceLock<Result<(), String>>, dir: &str) {
    let built = built.get_or_init(|| {
        let output = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(repo().join(dir).join("Cargo.toml"))
            // Explicit, so a CARGO_TARGET_DIR in the environment does not move the guests.
            .arg("--target-dir")
            .arg(repo().join(dir).join("target"))
            .output()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    });
    if let Err(error) = built {
        panic!("building the guests in {dir} failed:\n{error}");
    }
}

/// The real access log shipped with the access-log example.
pub fn access_log() -> PathBuf {
    repo().join("examples/access-log/data/apache_access.log")
}

/// Runs `command`, asserting success, and returns its output.
pub fn run_ok(command: &mut Command) -> Output {
    let output = command.output().expect("spillway runs");
    assert!(
        output.status.success(),
        "{command:?} failed with {}:\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `command`, asserting a clean failure: non-zero exit, no panic, and a one-line error
/// on stderr. Returns stderr.
pub fn run_fails(command: &mut Command) -> String {
    let output = command.output().expect("spillway runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "{command:?} should fail; stderr:\n{stderr}"
    );
    assert_eq!(output.status.code(), Some(1), "{command:?}: {stderr}");
    assert!(
        !stderr.contains("panicked"),
        "{command:?} panicked:\n{stderr}"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "expected one error line:\n{stderr}");
    stderr
}

/// The lines of a file as a sorted multiset.
pub fn line_counts(path: &Path) -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        *counts.entry(line.to_owned()).or_default() += 1;
    }
    counts
}

/// The ways of running a job that must all give the same output: `run` with 1 and 2 threads,
/// and `spawn` with 1–2 processes of 1–2 threads.
pub const LAYOUTS: &[(&str, usize, usize)] = &[
    ("run", 1, 1),
    ("run", 1, 2),
    ("spawn", 1, 1),
    ("spawn", 2, 1),
    ("spawn", 1, 2),
    ("spawn", 2, 2),
];

/// A command running `guest` in `layout` with the given bindings.
pub fn job(layout: (&str, usize, usize), guest: &Path, bindings: &[(&str, String)]) -> Command {
    let (verb, processes, threads) = layout;
    let mut command = spillway();
    command.arg(verb).arg("-t").arg(threads.to_string());
    if verb == "spawn" {
        command.arg("-n").arg(processes.to_string());
    }
    for (flag, value) in bindings {
        command.arg(flag).arg(value);
    }
    command.arg(guest);
    command
}
