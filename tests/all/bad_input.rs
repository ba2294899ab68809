//! Bad input gets one clear error line and exit code 1: never a panic or a hang.

use crate::util::{access_log, guest, run_fails, spillway};

fn run_with(pipeline: &std::path::Path, extra: &[&str]) -> String {
    let mut command = spillway();
    command.arg("run").arg(pipeline).args(extra);
    run_fails(&mut command)
}

#[test]
fn missing_pipeline_file() {
    let stderr = run_with("no/such/pipeline.wasm".as_ref(), &[]);
    assert!(
        stderr.contains("cannot read pipeline no/such/pipeline.wasm"),
        "{stderr}"
    );
}

#[test]
fn file_that_is_not_wasm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.wasm");
    std::fs::write(&path, "hello, I am text").unwrap();
    let stderr = run_with(&path, &[]);
    assert!(stderr.contains("is not a WebAssembly file"), "{stderr}");
}

#[test]
fn core_module_instead_of_a_component() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("core.wasm");
    std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
    let stderr = run_with(&path, &[]);
    assert!(
        stderr.contains("is a core WebAssembly module, not a component"),
        "{stderr}"
    );
    assert!(
        stderr.contains("wasm32-wasip2"),
        "suggests how to build one: {stderr}"
    );
}

#[test]
fn component_of_another_world() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.wasm");
    // The smallest valid component: it exports nothing.
    std::fs::write(&path, b"\0asm\x0d\0\x01\0").unwrap();
    let stderr = run_with(&path, &[]);
    assert!(
        stderr.contains("does not implement the `spillway:pipeline/pipeline@0.1.0` world"),
        "{stderr}"
    );
    assert!(
        stderr.contains("describe"),
        "names the missing export: {stderr}"
    );
}

#[test]
fn truncated_component() {
    let bytes = std::fs::read(guest("wordcount")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.wasm");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let stderr = run_with(&path, &[]);
    assert!(
        stderr.contains("is not a valid WebAssembly component"),
        "{stderr}"
    );
}

#[test]
fn sink_name_the_pipeline_does_not_have() {
    let log = format!("logs={}", access_log().display());
    let stderr = run_with(
        &guest("access-log"),
        &["--source", &log, "--sink", "report=-", "--sink", "nope=-"],
    );
    assert!(stderr.contains("has no sink named `nope`"), "{stderr}");
    assert!(
        stderr.contains("its sinks: report"),
        "lists the real ones: {stderr}"
    );
}

#[test]
fn source_the_pipeline_needs_but_was_not_bound() {
    let stderr = run_with(&guest("access-log"), &["--sink", "report=-"]);
    assert!(
        stderr.contains("reads source `logs`, but it is not bound"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--source logs=PATH"),
        "says how to fix it: {stderr}"
    );
}

#[test]
fn source_file_that_does_not_exist() {
    let stderr = run_with(
        &guest("access-log"),
        &["--source", "logs=/no/such.log", "--sink", "report=-"],
    );
    assert!(
        stderr.contains("source `logs`: no such file /no/such.log"),
        "{stderr}"
    );
}

#[test]
fn malformed_nexmark_source_and_null_sink() {
    let q2 = guest("nexmark-q2");
    for (source, sink, message) in [
        (
            "events=nexmark:?events=abc",
            "out=null:",
            "source `events`: expected nexmark:?events=COUNT",
        ),
        (
            "events=nexmark:foo",
            "out=null:",
            "source `events`: expected nexmark: or nexmark:?events=COUNT",
        ),
        (
            "events=nexmark:?events=10",
            "out=null:foo",
            "sink `out`: `null:foo`: a null sink takes nothing after `null:`",
        ),
    ] {
        let stderr = run_with(&q2, &["--source", source, "--sink", sink]);
        assert!(stderr.contains(message), "{source} {sink}: {stderr}");
    }
}

#[test]
fn spawn_refuses_bad_input_before_starting_workers() {
    let mut command = spillway();
    command
        .args(["spawn", "-n", "2", "--sink", "report=-"])
        .arg(guest("access-log"));
    let stderr = run_fails(&mut command);
    assert!(
        stderr.contains("reads source `logs`, but it is not bound"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("[worker"),
        "no worker was started: {stderr}"
    );
}

#[test]
fn malformed_binding_flag() {
    let output = spillway()
        .args(["run", "--source", "logs"])
        .arg(guest("access-log"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("expected NAME=PATH"), "{stderr}");
}
