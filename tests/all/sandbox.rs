//! The sandbox: hostile guests (built from `tests/guests/`) are stopped within their limits
//! with a clear error under every error policy, while a well-behaved job running at the same
//! time finishes correctly; guests have no files, network or environment; what they print
//! goes to the log, bounded.

mod malformed;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use crate::util::{
    access_log, build_guests, guest, line_counts, repo, run_fails, run_ok, spillway,
};

/// Like [`run_fails`], for jobs whose guest panics: the guest's own panic message is in the
/// log (that is the point), so only the host's lines must be free of panics.
fn fails_with_guest_output(command: &mut Command) -> String {
    let output = command.output().expect("spillway runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{command:?}: {stderr}");
    let errors = stderr.lines().filter(|l| l.starts_with("error: ")).count();
    assert_eq!(errors, 1, "expected one error line:\n{stderr}");
    let host_panics = stderr
        .lines()
        .filter(|l| l.contains("panicked"))
        .filter(|l| !l.contains("spillway::guest") && !l.contains("the guest printed"));
    assert_eq!(host_panics.count(), 0, "the host panicked:\n{stderr}");
    stderr
}

/// Builds the hostile guests once per test run and returns the path of `hostile-<name>`.
pub fn hostile(name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    build_guests(&BUILT, "tests/guests");
    repo().join(format!(
        "tests/guests/target/wasm32-wasip2/release/hostile_{name}.wasm"
    ))
}

/// The input of a hostile job: ordinary lines around one line that sets the guest off.
fn input(dir: &Path, trigger: &str) -> (PathBuf, Vec<String>) {
    let ordinary: Vec<String> = (0..40).map(|i| format!("ordinary line {i}")).collect();
    let mut lines = ordinary.clone();
    lines.insert(17, trigger.to_owned());
    let path = dir.join("in.txt");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    (path, ordinary)
}

/// Starts word count over the real access log, as a second job beside the hostile one.
fn start_wordcount(dir: &Path) -> (Child, PathBuf) {
    let counts = dir.join("counts.jsonl");
    let child = spillway()
        .args(["spawn", "-n", "2"])
        .arg("--source")
        .arg(format!("lines={}", access_log().display()))
        .arg("--sink")
        .arg(format!("counts={}", counts.display()))
        .arg(guest("wordcount"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spillway starts");
    (child, counts)
}

/// Waits for the word count and checks it against an independent count.
fn check_wordcount(child: Child, counts: &Path) {
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the second job failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let bytes = std::fs::read(access_log()).unwrap();
    for line in bytes.split(|&b| b == b'\n') {
        for word in String::from_utf8_lossy(line).split_whitespace() {
            *expected.entry(word.to_lowercase()).or_default() += 1;
        }
    }
    let got: BTreeMap<String, u64> = line_counts(counts)
        .into_keys()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(&line).unwrap();
            let word = value["word"].as_str().unwrap().to_owned();
            (word, value["count"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(got, expected, "the second job's word counts");
}

/// A hostile job: `guest` over `input` with `--on-error policy` and `extra` flags.
fn hostile_job(guest: &Path, input: &Path, out: &Path, policy: &str, extra: &[&str]) -> Command {
    let mut command = spillway();
    command
        .args(["spawn", "-n", "2", "--on-error", policy])
        .arg("--source")
        .arg(format!("lines={}", input.display()))
        .arg("--sink")
        .arg(format!("out={}", out.display()))
        .args(extra)
        .arg(guest);
    command
}

/// Runs `name` under each policy, with a word count running beside it, and checks that the
/// record at fault, and only it, is stopped with an error containing each of `expected`.
fn stopped_under_every_policy(name: &str, operator: &str, extra: &[&str], expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let (second, counts) = start_wordcount(dir.path());
    let guest = hostile(name);
    let trigger = "TRIGGER 127.0.0.1:9";
    let (input, ordinary) = input(dir.path(), trigger);
    let out = dir.path().join("out.txt");
    let operator = format!("operator `{operator}`");

    // fail: the job stops, naming the operator, the error and the record.
    let stderr = fails_with_guest_output(&mut hostile_job(&guest, &input, &out, "fail", extra));
    let error = stderr.lines().find(|l| l.starts_with("error: ")).unwrap();
    for wanted in expected
        .iter()
        .chain([&operator.as_str(), &"(--on-error fail)"])
    {
        assert!(error.contains(wanted), "`{wanted}` missing from: {error}");
    }
    assert!(error.contains(trigger), "names the record: {error}");

    // skip: the record is counted and logged; every other record goes through.
    let output = run_ok(&mut hostile_job(&guest, &input, &out, "skip", extra));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("41 events in"), "{stderr}");
    assert!(stderr.contains("1 rejected"), "{stderr}");
    for wanted in expected {
        assert!(stderr.contains(wanted), "`{wanted}` missing from: {stderr}");
    }
    let expected_out: BTreeMap<String, usize> = ordinary.iter().map(|l| (l.clone(), 1)).collect();
    assert_eq!(line_counts(&out), expected_out);

    // dead-letter: the record and the error go to the dead-letter file.
    let dead = dir.path().join("dead.jsonl");
    let dead_flag = format!("--dead-letter={}", dead.display());
    let extra_dead: Vec<&str> = extra.iter().copied().chain([dead_flag.as_str()]).collect();
    run_ok(&mut hostile_job(
        &guest,
        &input,
        &out,
        "dead-letter",
        &extra_dead,
    ));
    assert_eq!(line_counts(&out), expected_out);
    let text = std::fs::read_to_string(&dead).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["record"], trigger);
    let error = lines[0]["error"].as_str().unwrap();
    for wanted in expected {
        assert!(error.contains(wanted), "`{wanted}` missing from: {error}");
    }

    check_wordcount(second, &counts);
}

#[test]
fn infinite_loop_is_stopped_by_the_cpu_deadline() {
    stopped_under_every_policy(
        "loop",
        "spin",
        &["--call-deadline-ms", "300"],
        &["exceeded its CPU deadline of 300 ms per call (--call-deadline-ms)"],
    );
}

#[test]
fn infinite_loop_is_stopped_by_fuel() {
    stopped_under_every_policy(
        "loop",
        "spin",
        &["--fuel", "50000000"],
        &["ran out of fuel: 50000000 units per call (--fuel)"],
    );
}

#[test]
fn deep_recursion_is_stopped() {
    // A Rust guest's stack lives in its linear memory: running off its end is an
    // out-of-bounds access, which the message explains.
    stopped_under_every_policy(
        "recursion",
        "recurse",
        &[],
        &["trapped: out of bounds memory access", "runaway recursion?"],
    );
}

#[test]
fn unbounded_allocation_is_stopped_by_the_memory_limit() {
    stopped_under_every_policy(
        "alloc",
        "hoard",
        &["--memory-mib", "64"],
        &["ran out of memory: its linear memory would grow past the limit of 64 MiB"],
    );
}

#[test]
fn a_panic_reports_the_guests_message() {
    stopped_under_every_policy(
        "panic",
        "explode",
        &[],
        &[
            "trapped: wasm `unreachable` instruction executed",
            "the guest printed: \"thread '<unnamed>'",
            "hostile guest gave up on \"TRIGGER 127.0.0.1:9\"",
        ],
    );
}

#[test]
fn a_trap_is_stopped() {
    stopped_under_every_policy(
        "trap",
        "crash",
        &[],
        &["trapped: wasm `unreachable` instruction executed"],
    );
}

#[test]
fn a_gigantic_batch_is_refused() {
    stopped_under_every_policy(
        "flood",
        "flood",
        &[],
        &["returned more than 1000000 events from one call (--max-output-events)"],
    );
}

/// The guest's attempts fail inside the guest, which sees errors and rejects the record with
/// them; nothing is read, listed or created, and the environment is empty.
#[test]
fn a_guest_cannot_touch_files_or_the_environment() {
    stopped_under_every_policy(
        "fs",
        "snoop",
        &[],
        &[
            "read /etc/passwd: error: No such file or directory",
            "list .: error: No such file or directory",
            "create a file: error: No such file or directory",
            "environment variables: 0; arguments: 0",
        ],
    );
    assert!(!repo().join("spillway-escape.txt").exists());
    assert!(!repo().join("host/spillway-escape.txt").exists());
}

/// The guest sees errors for every socket operation and rejects the record with them; the
/// listener it was pointed at is never connected to.
#[test]
fn a_guest_cannot_open_sockets() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let trigger = format!("TRIGGER {address}");
    let (input, ordinary) = input(dir.path(), &trigger);
    let out = dir.path().join("out.txt");
    let dead = dir.path().join("dead.jsonl");
    let dead_flag = format!("--dead-letter={}", dead.display());
    run_ok(&mut hostile_job(
        &hostile("net"),
        &input,
        &out,
        "dead-letter",
        &[&dead_flag],
    ));
    assert_eq!(line_counts(&out).len(), ordinary.len());
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&dead).unwrap().trim()).unwrap();
    let error = line["error"].as_str().unwrap();
    for wanted in [
        format!("connect to {address}: error: Permission denied"),
        "listen: error: Permission denied".to_owned(),
        "udp: error: Permission denied".to_owned(),
        "look up localhost: error:".to_owned(),
    ] {
        assert!(error.contains(&wanted), "`{wanted}` missing from: {error}");
    }
    assert!(!error.contains("LEAK"), "{error}");
    listener.set_nonblocking(true).unwrap();
    assert_eq!(
        listener.accept().unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "nobody connected"
    );
}

#[test]
fn a_guest_that_faults_on_every_record_stops_the_job_even_when_skipping() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let lines: Vec<String> = (0..20).map(|i| format!("TRIGGER {i}")).collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out = dir.path().join("out.txt");
    let stderr = run_fails(&mut hostile_job(
        &hostile("trap"),
        &input,
        &out,
        "skip",
        &[],
    ));
    assert!(stderr.contains("on 5 records in a row"), "{stderr}");
    assert!(stderr.contains("the guest looks broken"), "{stderr}");
}

#[test]
fn guest_output_goes_to_the_log_tagged_and_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (input, ordinary) = input(dir.path(), "TRIGGER");
    let out = dir.path().join("out.txt");
    let output = run_ok(
        spillway()
            .args(["run", "--log", "info", "--call-deadline-ms", "60000"])
            .arg("--source")
            .arg(format!("lines={}", input.display()))
            .arg("--sink")
            .arg(format!("out={}", out.display()))
            .arg(hostile("chatty")),
    );
    assert!(output.stdout.is_empty(), "nothing reaches standard output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("operator `chatter` stdout: stdout line 0 of a chatty guest"),
        "{stderr}"
    );
    assert!(
        stderr.contains("operator `chatter` stderr: stderr line 0 of a chatty guest"),
        "{stderr}"
    );
    assert!(
        stderr.contains("worker"),
        "tagged with the worker: {stderr}"
    );
    assert!(stderr.contains("… truncated"), "{stderr}");
    assert!(
        !stderr.contains("line 99999 of a chatty guest"),
        "output past the limit is dropped"
    );
    assert!(stderr.len() < 200_000, "bounded: {} bytes", stderr.len());
    assert_eq!(line_counts(&out).len(), ordinary.len() + 1);
}

#[test]
fn dead_letter_policy_needs_a_dead_letter_file() {
    let mut command = spillway();
    command
        .args(["run", "--on-error", "dead-letter", "--source"])
        .arg(format!("lines={}", access_log().display()))
        .args(["--sink", "counts=-"])
        .arg(guest("wordcount"));
    let stderr = run_fails(&mut command);
    assert!(
        stderr.contains("--on-error dead-letter needs --dead-letter PATH"),
        "{stderr}"
    );
}
