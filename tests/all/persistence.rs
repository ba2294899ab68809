//! Snapshots and exactly-once output: SIGKILLed workers, rescaling, corrupt snapshots, a
//! different pipeline, and S3 going away. Each runs against a local folder and, where a test
//! S3 server is available (`scripts/test.sh` starts one), against S3.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{access_log, guest, line_counts, run_fails, run_ok, spillway};

/// A persistence location for one test: a folder, or a fresh prefix in the test bucket.
#[derive(Clone)]
pub enum Backend {
    Folder(PathBuf),
    S3 { url: String, endpoint: String },
}

impl Backend {
    fn url(&self) -> String {
        match self {
            Backend::Folder(path) => path.display().to_string(),
            Backend::S3 { url, .. } => url.clone(),
        }
    }

    fn apply(&self, command: &mut Command) {
        if let Backend::S3 { endpoint, .. } = self {
            command
                .env("AWS_ENDPOINT_URL", endpoint)
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .env("AWS_REGION", "us-east-1");
        }
    }
}

/// Both backends; S3 only when `SPILLWAY_TEST_S3_ENDPOINT` names a running server.
fn backends(dir: &Path, name: &str) -> Vec<Backend> {
    let mut backends = vec![Backend::Folder(dir.join("snapshots"))];
    match std::env::var("SPILLWAY_TEST_S3_ENDPOINT") {
        Ok(endpoint) => {
            let unique = dir.file_name().unwrap().to_string_lossy().to_lowercase();
            let url = format!("s3://spillway-test/{name}-{unique}");
            backends.push(Backend::S3 { url, endpoint });
        }
        Err(_) => eprintln!(
            "SKIPPED the S3 half of {name}: SPILLWAY_TEST_S3_ENDPOINT is not set \
             (scripts/test.sh starts a local S3 server and sets it)"
        ),
    }
    backends
}

/// A tiny deterministic random generator (xorshift), seeded and printed per test.
struct Random(u64);

impl Random {
    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        eprintln!("random seed {seed}");
        Self(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Appends `lines` to `path` in chunks, pausing between them, on a thread.
fn grow(
    path: PathBuf,
    lines: Vec<String>,
    chunk: usize,
    pause: Duration,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for part in lines.chunks(chunk) {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .unwrap();
            for line in part {
                writeln!(file, "{line}").unwrap();
            }
            drop(file);
            std::thread::sleep(pause);
        }
    })
}

/// The process ids of a process's children.
fn children(pid: u32) -> Vec<u32> {
    let tasks = format!("/proc/{pid}/task");
    let mut pids = Vec::new();
    for task in std::fs::read_dir(tasks).into_iter().flatten().flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            pids.extend(
                list.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    pids
}

/// Waits for `child` up to `limit`; kills it and panics on a hang.
fn wait_with_limit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("spillway did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log_lines() -> Vec<String> {
    std::fs::read_to_string(access_log())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The output of a fault-free run over the whole log.
fn fault_free(guest_name: &str, source: &str, sink: &str) -> BTreeMap<String, usize> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    run_ok(
        spillway()
            .args([
                "run",
                "--source",
                &format!("{source}={}", access_log().display()),
            ])
            .args(["--sink", &format!("{sink}={}", out.display())])
            .arg(guest(guest_name)),
    );
    line_counts(&out)
}

/// Runs `guest` over a growing copy of the log while SIGKILLing random workers `kills`
/// times, and checks the output equals a fault-free run's.
fn kill_test(
    guest_name: &str,
    source: &str,
    sink: &str,
    processes: usize,
    threads: usize,
    kills: usize,
) {
    let expected = fault_free(guest_name, source, sink);
    let dir = tempfile::tempdir().unwrap();
    for backend in backends(
        dir.path(),
        &format!("kill-{guest_name}-{processes}x{threads}"),
    ) {
        let case = dir.path().join(format!("case-{}", backend.url().len()));
        std::fs::create_dir_all(&case).unwrap();
        let input = case.join("input.log");
        let out = case.join("out.jsonl");
        std::fs::write(&input, "").unwrap();
        let mut command = persistent_job(
            &backend,
            processes,
            guest_name,
            format!("{source}=tail:{}", input.display()),
            format!("{sink}={}", out.display()),
        );
        command
            .args(["-t", &threads.to_string(), "--snapshot-interval-ms", "100"])
            .args([
                "--stop-when-idle-ms",
                "2500",
                "--max-restarts",
                &(kills + 5).to_string(),
            ])
            .args(["--batch-size", "64"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut job = command.spawn().unwrap();
        let writer = grow(input.clone(), log_lines(), 200, Duration::from_millis(60));
        let mut random = Random::new();
        let mut killed = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while killed < kills && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(250 + random.below(400)));
            let workers = children(job.id());
            if workers.is_empty() {
                continue;
            }
            let victim = workers[random.below(workers.len() as u64) as usize];
            if unsafe_kill(victim) {
                killed += 1;
            }
        }
        writer.join().unwrap();
        let status = wait_with_limit(&mut job, Duration::from_secs(120));
        let mut stderr = String::new();
        std::io::Read::read_to_string(job.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert!(status.success(), "{}: job failed:\n{stderr}", backend.url());
        assert_eq!(killed, kills, "killed only {killed} workers:\n{stderr}");
        assert!(
            stderr.contains("restarting all workers from the last snapshot"),
            "{stderr}"
        );
        // The followed file paused the job with windows open; reading it as a bounded file
        // from the last snapshot ends the input and closes them.
        finish(&backend, processes, guest_name, source, sink, &input, &out);
        assert_eq!(
            line_counts(&out),
            expected,
            "{}: output differs; log:\n{stderr}",
            backend.url()
        );
    }
}

/// `spawn -n PROCESSES` of `guest_name` with one source and one sink bound, keeping its
/// snapshots at `backend`; callers add their flags.
fn persistent_job(
    backend: &Backend,
    processes: usize,
    guest_name: &str,
    source: String,
    sink: String,
) -> Command {
    let mut command = spillway();
    command
        .args([
            "spawn",
            "-n",
            &processes.to_string(),
            "--persistence",
            &backend.url(),
        ])
        .args(["--source", &source, "--sink", &sink])
        .arg(guest(guest_name));
    backend.apply(&mut command);
    command
}

/// Resumes from the last snapshot with `input` as a bounded file, which ends the input.
fn finish(
    backend: &Backend,
    processes: usize,
    guest_name: &str,
    source: &str,
    sink: &str,
    input: &Path,
    out: &Path,
) {
    let mut command = persistent_job(
        backend,
        processes,
        guest_name,
        format!("{source}={}", input.display()),
        format!("{sink}={}", out.display()),
    );
    let stderr = String::from_utf8_lossy(&run_ok(&mut command).stderr).into_owned();
    assert!(stderr.contains("resuming from snapshot"), "{stderr}");
}

/// SIGKILLs `pid`; false if it was already gone.
fn unsafe_kill(pid: u32) -> bool {
    Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

fn kill_count() -> usize {
    std::env::var("SPILLWAY_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .unwrap_or(5)
}

#[test]
fn access_log_survives_sigkill_of_workers_1x1_and_2x1() {
    kill_test("access-log", "logs", "report", 1, 1, kill_count());
    kill_test("access-log", "logs", "report", 2, 1, kill_count());
}

#[test]
fn access_log_survives_sigkill_of_workers_1x2_and_2x2() {
    kill_test("access-log", "logs", "report", 1, 2, kill_count());
    kill_test("access-log", "logs", "report", 2, 2, kill_count());
}

#[test]
fn wordcount_survives_sigkill_of_workers() {
    for (processes, threads) in [(1, 1), (2, 1), (1, 2), (2, 2)] {
        kill_test(
            "wordcount",
            "lines",
            "counts",
            processes,
            threads,
            kill_count(),
        );
    }
}

/// Runs to the end of what `input` holds now (the source stops when idle) and returns stderr.
fn run_until_idle(backend: &Backend, processes: usize, input: &Path, out: &Path) -> String {
    let mut command = persistent_job(
        backend,
        processes,
        "access-log",
        format!("logs=tail:{}", input.display()),
        format!("report={}", out.display()),
    );
    command.args([
        "--snapshot-interval-ms",
        "100",
        "--stop-when-idle-ms",
        "300",
        "--batch-size",
        "100",
    ]);
    String::from_utf8_lossy(&run_ok(&mut command).stderr).into_owned()
}

#[test]
fn rescaling_2_to_1_to_4_processes_gives_the_same_report() {
    let expected = fault_free("access-log", "logs", "report");
    let lines = log_lines();
    let dir = tempfile::tempdir().unwrap();
    for backend in backends(dir.path(), "rescale") {
        let case = dir.path().join(format!("case-{}", backend.url().len()));
        std::fs::create_dir_all(&case).unwrap();
        let (input, out) = (case.join("input.log"), case.join("report.jsonl"));
        let half = lines.len() / 2;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&input)
            .unwrap();
        for line in &lines[..half] {
            writeln!(file, "{line}").unwrap();
        }
        drop(file);
        run_until_idle(&backend, 2, &input, &out);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&input)
            .unwrap();
        for line in &lines[half..] {
            writeln!(file, "{line}").unwrap();
        }
        drop(file);
        // One process follows the file for a while, then four finish it.
        let mut command = persistent_job(
            &backend,
            1,
            "access-log",
            format!("logs=tail:{}", input.display()),
            format!("report={}", out.display()),
        );
        command
            .args([
                "--snapshot-interval-ms",
                "100",
                "--stop-when-idle-ms",
                "300",
            ])
            .args(["--epoch-records", "2000", "--batch-size", "100"]);
        let stderr = String::from_utf8_lossy(&run_ok(&mut command).stderr).into_owned();
        assert!(stderr.contains("resuming from snapshot"), "{stderr}");
        finish(&backend, 4, "access-log", "logs", "report", &input, &out);
        assert_eq!(line_counts(&out), expected, "{}", backend.url());
    }
}

/// The state objects of the newest snapshot, from `snapshots show`.
fn newest_state_objects(backend: &Backend) -> Vec<String> {
    let mut command = spillway();
    command.args(["snapshots", "show", &backend.url()]);
    backend.apply(&mut command);
    let shown = String::from_utf8(run_ok(&mut command).stdout).unwrap();
    shown
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|word| word.starts_with("state/"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn corrupt_or_truncated_snapshot_falls_back_to_the_previous_one() {
    let expected = fault_free("access-log", "logs", "report");
    let lines = log_lines();
    for damage in ["flip", "truncate"] {
        let dir = tempfile::tempdir().unwrap();
        let backend = Backend::Folder(dir.path().join("snapshots"));
        let (input, out) = (
            dir.path().join("input.log"),
            dir.path().join("report.jsonl"),
        );
        // Two runs so that there are two snapshots with state in them.
        for part in [&lines[..3000], &lines[3000..6000]] {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&input)
                .unwrap();
            for line in part {
                writeln!(file, "{line}").unwrap();
            }
            drop(file);
            run_until_idle(&backend, 2, &input, &out);
        }
        let objects = newest_state_objects(&backend);
        let victim = objects.iter().find(|o| {
            std::fs::metadata(dir.path().join("snapshots").join(o)).is_ok_and(|m| m.len() > 0)
        });
        let victim = victim.expect("a non-empty state object");
        let path = dir.path().join("snapshots").join(victim);
        let mut bytes = std::fs::read(&path).unwrap();
        match damage {
            "flip" => bytes[0] ^= 0x40,
            _ => bytes.truncate(bytes.len() / 2),
        }
        std::fs::write(&path, bytes).unwrap();

        let verify = run_fails(spillway().args(["snapshots", "verify", &backend.url()]));
        let stdout_and_err = verify;
        assert!(stdout_and_err.contains("damaged"), "{stdout_and_err}");
        let listing = spillway()
            .args(["snapshots", "verify", &backend.url()])
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&listing.stdout);
        assert!(
            listing.contains(victim.as_str()),
            "verify names the bad object: {listing}"
        );

        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&input)
            .unwrap();
        for line in &lines[6000..] {
            writeln!(file, "{line}").unwrap();
        }
        drop(file);
        let mut command = persistent_job(
            &backend,
            2,
            "access-log",
            format!("logs={}", input.display()),
            format!("report={}", out.display()),
        );
        let stderr = String::from_utf8_lossy(&run_ok(&mut command).stderr).into_owned();
        assert!(
            stderr.contains("is corrupt") && stderr.contains("falling back"),
            "{stderr}"
        );
        assert_eq!(line_counts(&out), expected, "after {damage}");
    }
}

#[test]
fn snapshots_of_another_pipeline_are_refused_unless_starting_fresh() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("snapshots").display().to_string();
    let out = dir.path().join("out.jsonl");
    let log = format!("logs={}", access_log().display());
    run_ok(
        spillway()
            .args(["run", "--persistence", &url, "--source", &log])
            .args(["--sink", &format!("report={}", out.display())])
            .arg(guest("access-log")),
    );
    let lines = format!("lines={}", access_log().display());
    let counts = format!("counts={}", out.display());
    let mut wordcount = spillway();
    wordcount
        .args([
            "run",
            "--persistence",
            &url,
            "--source",
            &lines,
            "--sink",
            &counts,
        ])
        .arg(guest("wordcount"));
    let stderr = run_fails(&mut wordcount);
    assert!(
        stderr.contains("different pipeline graph") && stderr.contains("--fresh-start"),
        "{stderr}"
    );
    let stderr =
        String::from_utf8_lossy(&run_ok(wordcount.arg("--fresh-start")).stderr).into_owned();
    assert!(stderr.contains("deleted the snapshots"), "{stderr}");
    assert!(line_counts(&out).len() > 1000, "wordcount ran");
}

#[test]
fn unreachable_s3_at_start_is_a_clear_error() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let backend = Backend::S3 {
        url: "s3://nowhere/job".into(),
        endpoint: format!("http://{closed}"),
    };
    let mut command = spillway();
    command
        .args(["run", "--persistence", &backend.url()])
        .args([
            "--source",
            &format!("logs={}", access_log().display()),
            "--sink",
            "report=-",
        ])
        .arg(guest("access-log"));
    backend.apply(&mut command);
    let stderr = run_fails(&mut command);
    assert!(
        stderr.contains("cannot reach the persistence location s3://nowhere/job"),
        "{stderr}"
    );
}

/// A TCP forwarder to the test S3 server that can drop every connection for a while.
struct FlakyProxy {
    address: String,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FlakyProxy {
    fn start(target: &str) -> Self {
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::Ordering;
        let target = target.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = down.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if flag.load(Ordering::SeqCst) {
                    continue; // dropped: the connection closes at once
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let flag = flag.clone();
                    std::thread::spawn(move || {
                        let mut buffer = [0u8; 16384];
                        loop {
                            let n = std::io::Read::read(&mut from, &mut buffer).unwrap_or(0);
                            if n == 0
                                || flag.load(Ordering::SeqCst)
                                || to.write_all(&buffer[..n]).is_err()
                            {
                                let _ = from.shutdown(std::net::Shutdown::Both);
                                let _ = to.shutdown(std::net::Shutdown::Both);
                                return;
                            }
                        }
                    });
                }
            }
        });
        Self { address, down }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn s3_outage_while_running_loses_nothing() {
    let Ok(endpoint) = std::env::var("SPILLWAY_TEST_S3_ENDPOINT") else {
        eprintln!(
            "SKIPPED: SPILLWAY_TEST_S3_ENDPOINT is not set (scripts/test.sh starts a local S3 server)"
        );
        return;
    };
    let expected = fault_free("access-log", "logs", "report");
    let proxy = FlakyProxy::start(&endpoint);
    let dir = tempfile::tempdir().unwrap();
    let unique = dir
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_lowercase();
    let backend = Backend::S3 {
        url: format!("s3://spillway-test/outage-{unique}"),
        endpoint: proxy.address.clone(),
    };
    let (input, out) = (
        dir.path().join("input.log"),
        dir.path().join("report.jsonl"),
    );
    std::fs::write(&input, "").unwrap();
    let mut command = persistent_job(
        &backend,
        2,
        "access-log",
        format!("logs=tail:{}", input.display()),
        format!("report={}", out.display()),
    );
    command
        .args([
            "--snapshot-interval-ms",
            "100",
            "--stop-when-idle-ms",
            "2500",
            "--batch-size",
            "64",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut job = command.spawn().unwrap();
    let writer = grow(input.clone(), log_lines(), 200, Duration::from_millis(80));
    std::thread::sleep(Duration::from_millis(1000));
    proxy.set_down(true);
    std::thread::sleep(Duration::from_secs(3));
    proxy.set_down(false);
    writer.join().unwrap();
    let status = wait_with_limit(&mut job, Duration::from_secs(120));
    let mut stderr = String::new();
    std::io::Read::read_to_string(job.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("will retry"),
        "the outage was noticed and survived:\n{stderr}"
    );
    finish(&backend, 2, "access-log", "logs", "report", &input, &out);
    assert_eq!(line_counts(&out), expected);
}

#[test]
fn nexmark_source_resumes_where_the_snapshot_left_off_after_sigkill() {
    const EVENTS: usize = 400_000;
    let expected = crate::nexmark::q7(&crate::nexmark::events(EVENTS));
    let dir = tempfile::tempdir().unwrap();
    let snapshots = dir.path().join("snapshots");
    let backend = Backend::Folder(snapshots.clone());
    let out = dir.path().join("highest.txt");
    let mut command = persistent_job(
        &backend,
        2,
        "nexmark-q7",
        format!("events=nexmark:?events={EVENTS}"),
        format!("highest_bids={}", out.display()),
    );
    command
        .args(["--epoch-records", "5000", "--max-restarts", "3"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut job = command.spawn().unwrap();
    // Kill a worker once a few snapshots are committed, so the restart resumes mid-sequence.
    let deadline = Instant::now() + Duration::from_secs(60);
    let manifests = || std::fs::read_dir(snapshots.join("manifests")).map_or(0, |d| d.count());
    while manifests() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let victim = *children(job.id()).last().expect("spawn has workers");
    assert!(unsafe_kill(victim), "worker {victim} was already gone");
    let status = wait_with_limit(&mut job, Duration::from_secs(120));
    let mut stderr = String::new();
    std::io::Read::read_to_string(job.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "job failed:\n{stderr}");
    assert!(
        stderr.contains("restarting all workers from the last snapshot"),
        "{stderr}"
    );
    assert_eq!(line_counts(&out), expected, "log:\n{stderr}");
}
