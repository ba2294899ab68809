//! A corpus of malformed and mismatched modules, generated here: each is rejected with one
//! clear line and exit code 1, never a panic.

use std::path::{Path, PathBuf};

use crate::util::{guest, run_fails, spillway};

/// What the one error line must say for each kind of bad input.
const NOT_WASM: &str = "is not a WebAssembly file";
const CORE: &str = "is a core WebAssembly module, not a component";
const INVALID: &str = "is not a valid WebAssembly component";
const WORLD: &str = "does not implement the `spillway:pipeline/pipeline@0.1.0` world";
const TOO_LARGE: &str = "over the module size limit of 1048576 bytes";
const UNREADABLE: &str = "cannot read pipeline";

/// A component exporting the four functions with the wrong types, plus `extra` items.
fn wrong_types(extra: &str) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(component
            {extra}
            (core module $m (func (export "f")))
            (core instance $i (instantiate $m))
            (func $f (canon lift (core func $i "f")))
            (export "describe" (func $f))
            (export "transform" (func $f))
            (export "aggregate" (func $f))
            (export "finish" (func $f)))"#
    ))
    .unwrap()
}

/// Pseudo-random bytes (xorshift), the same on every run.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Every case: a name, the file's bytes, and what its error must say.
fn corpus() -> Vec<(String, Vec<u8>, &'static str)> {
    let real = std::fs::read(guest("wordcount")).unwrap();
    let len = real.len();
    let mut cases = Vec::new();
    for cut in [0, 1, 4, 7] {
        cases.push((format!("cut-{cut}"), real[..cut].to_vec(), NOT_WASM));
    }
    // Eight bytes are a valid, empty component: it implements nothing.
    cases.push(("cut-8".into(), real[..8].to_vec(), WORLD));
    for cut in [
        9,
        12,
        20,
        50,
        100,
        1000,
        len / 8,
        len / 4,
        len / 2,
        len * 3 / 4,
        len - 100,
        len - 1,
    ] {
        cases.push((format!("cut-{cut}"), real[..cut].to_vec(), INVALID));
    }
    cases.push(("noise".into(), noise(1, 4096), NOT_WASM));
    for seed in [2, 3] {
        let mut bytes = real[..8].to_vec();
        bytes.extend(noise(seed, 4096));
        cases.push((
            format!("component-header-then-noise-{seed}"),
            bytes,
            INVALID,
        ));
    }
    let mut flipped = real.clone();
    for i in (len / 3..len / 3 + 64).step_by(7) {
        flipped[i] ^= 0x5a;
    }
    cases.push(("bytes-flipped-inside".into(), flipped, INVALID));
    let mut magic = real.clone();
    magic[3] = b'n';
    cases.push(("wrong-magic".into(), magic, NOT_WASM));
    let mut elf = b"\x7fELF\x02\x01\x01\0".to_vec();
    elf.extend(noise(4, 256));
    cases.push(("elf".into(), elf, NOT_WASM));
    let mut version = real.clone();
    version[4] = 0x0c;
    cases.push(("component-version-12".into(), version, INVALID));
    cases.push((
        "core-version-2".into(),
        b"\0asm\x02\0\0\0".to_vec(),
        INVALID,
    ));
    for (name, text) in [
        ("core-empty", "(module)"),
        (
            "core-exports-describe",
            r#"(module (func (export "describe")))"#,
        ),
        (
            "core-with-memory",
            r#"(module (memory (export "memory") 1) (func (export "_start")))"#,
        ),
    ] {
        cases.push((name.into(), wat::parse_str(text).unwrap(), CORE));
    }
    cases.push((
        "component-exporting-only-describe".into(),
        wat::parse_str(
            r#"(component
                (core module $m (func (export "f")))
                (core instance $i (instantiate $m))
                (func $f (canon lift (core func $i "f")))
                (export "describe" (func $f)))"#,
        )
        .unwrap(),
        WORLD,
    ));
    cases.push(("component-wrong-types".into(), wrong_types(""), WORLD));
    cases.push((
        "component-unknown-import".into(),
        wrong_types(r#"(import "acme:secrets/vault@1.0.0" (instance (export "open" (func))))"#),
        WORLD,
    ));
    cases
}

fn reject(path: &Path, extra: &[&str]) -> String {
    let mut command = spillway();
    command.arg("run").args(extra).arg(path);
    let stderr = run_fails(&mut command);
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line, nothing else: {stderr}"
    );
    stderr
}

#[test]
fn every_malformed_module_is_rejected_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = corpus();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    for (name, bytes, expected) in cases {
        let path = dir.path().join(format!("{name}.wasm"));
        std::fs::write(&path, &bytes).unwrap();
        let stderr = reject(&path, &[]);
        assert!(
            stderr.contains(expected),
            "{name}: expected `{expected}` in: {stderr}"
        );
        assert!(
            stderr.contains(&path.display().to_string()),
            "{name} names the file: {stderr}"
        );
    }
}

#[test]
fn a_core_module_gets_advice_and_a_wrong_world_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, wat::parse_str("(module)").unwrap()).unwrap();
    assert!(reject(&core, &[]).contains("--target wasm32-wasip2"));
    let partial = dir.path().join("partial.wasm");
    let bytes = corpus()
        .into_iter()
        .find(|(name, ..)| name == "component-exporting-only-describe")
        .unwrap()
        .1;
    std::fs::write(&partial, bytes).unwrap();
    assert!(reject(&partial, &[]).contains("it does not export transform, aggregate, finish"));
    let import = dir.path().join("import.wasm");
    std::fs::write(
        &import,
        wrong_types(r#"(import "acme:secrets/vault@1.0.0" (instance (export "open" (func))))"#),
    )
    .unwrap();
    let stderr = reject(&import, &[]);
    assert!(stderr.contains("acme:secrets/vault@1.0.0"), "{stderr}");
    let version = dir.path().join("version.wasm");
    std::fs::write(&version, b"\0asm\x0c\0\x01\0").unwrap();
    assert!(reject(&version, &[]).contains("its component encoding version is 12"));
}

#[test]
fn an_oversized_module_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.wasm");
    let mut bytes = std::fs::read(guest("wordcount")).unwrap();
    bytes.resize(2 << 20, 0);
    std::fs::write(&path, bytes).unwrap();
    let stderr = reject(&path, &["--max-module-mib", "1"]);
    assert!(stderr.contains(TOO_LARGE), "{stderr}");
    let stderr = run_fails(
        spillway()
            .args(["inspect", "--max-module-mib", "1"])
            .arg(&path),
    );
    assert!(stderr.contains(TOO_LARGE), "{stderr}");
}

#[test]
fn a_directory_is_not_a_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("pipeline.wasm");
    std::fs::create_dir(&path).unwrap();
    assert!(reject(&path, &[]).contains(UNREADABLE));
}
