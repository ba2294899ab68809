//! Running a job: in this process ([`run_in_process`]) or as a group of worker processes
//! ([`spawn`]) that find each other over loopback TCP. The orchestrator starts the workers,
//! forwards their logs, and when one fails stops the others and reports the failing worker's
//! own error rather than its peers' lost connections.

mod mesh;
mod recovery;
mod scaling;
mod worker;

pub use mesh::Communication;
pub use scaling::Rescale;
pub use worker::{WorkerArgs, run_worker};

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::config::JobConfig;
use crate::dataflow::{self, JobStats, OnFatal};
use crate::runtime::{self, GuestModule};

/// Exit code of a worker that hit a fatal error (and wrote it to its error file).
pub const EXIT_FAILED: i32 = 1;
/// Exit code of a worker that lost its connection to another worker.
pub const EXIT_PEER_LOST: i32 = 3;

/// What a finished job reports.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub stats: JobStats,
    pub elapsed: Duration,
    pub processes: usize,
    pub threads: usize,
    /// Times crashed workers were restarted from a snapshot.
    pub restarts: u32,
    /// Times the job changed its process count.
    pub rescales: u32,
}

/// Loads and checks the pipeline, and checks the job's bindings against its graph.
pub fn load_pipeline(config: &JobConfig) -> Result<Arc<GuestModule>> {
    let engine = runtime::engine(&config.limits)?;
    let module = GuestModule::load(&engine, &config.module, &config.limits)?;
    dataflow::check_bindings(&module, config)?;
    Ok(module)
}

/// Runs the job in this process with `config.threads` worker threads.
pub fn run_in_process(mut config: JobConfig) -> Result<RunReport> {
    let started = Instant::now();
    let module = load_pipeline(&config)?;
    recovery::prepare(&mut config, &module)?;
    let on_fatal = OnFatal::new(|error| eprintln!("error: {error:#}"));
    let threads = config.threads;
    let communication = Communication::process(threads)?;
    let counters = Arc::new(dataflow::Counters::default());
    let stats = dataflow::run_job(config, module, communication, counters, None, on_fatal)?;
    Ok(RunReport {
        stats,
        elapsed: started.elapsed(),
        processes: 1,
        threads,
        restarts: 0,
        rescales: 0,
    })
}

/// Appends a rescale to `scaling-history.jsonl` at the persistence location.
fn record_rescale(config: &JobConfig, rescale: &Rescale) {
    let Some(persistence) = &config.persistence else {
        return;
    };
    let result = (|| -> Result<()> {
        let store = crate::state::SnapshotStore::open(&persistence.url)?;
        let mut history = store
            .get(scaling::HISTORY)
            .map(|b| b.to_vec())
            .unwrap_or_default();
        history.extend_from_slice(&serde_json::to_vec(rescale)?);
        history.push(b'\n');
        store.put(scaling::HISTORY, history.into())
    })();
    if let Err(error) = result {
        eprintln!("spillway: warning: cannot record the rescale in the history: {error:#}");
    }
}

/// Why a group of worker processes stopped early.
enum GroupFailure {
    /// A worker reported an error: running again would fail again.
    Failed(anyhow::Error),
    /// A worker died (killed, or lost a peer): a restart from the last snapshot may succeed.
    Crashed(anyhow::Error),
    /// Ctrl-C.
    Interrupted(anyhow::Error),
}

/// Runs the job as `config.processes` worker processes of `config.threads` threads each.
/// With persistence, workers that crash are restarted from the last snapshot, up to
/// `config.max_restarts` times.
pub fn spawn(mut config: JobConfig) -> Result<RunReport> {
    let started = Instant::now();
    let module = load_pipeline(&config)?;
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&interrupted);
    // A second handler cannot be installed in the same process (tests call spawn twice).
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst));
    let mut restarts = 0;
    let mut rescales = 0;
    let mut paused_since = None;
    if let Some(scaling) = &config.scaling {
        if scaling.window < Duration::from_secs(20) {
            eprintln!(
                "spillway: warning: a scaling window under 20 s judges the load on little evidence"
            );
        }
        if config.persistence.is_none() {
            eprintln!(
                "spillway: warning: scaling without --persistence restarts the job from the \
                 beginning at every rescale"
            );
        }
    }
    loop {
        recovery::prepare(&mut config, &module)?;
        match run_group(
            &config,
            &interrupted,
            config.scaling.as_ref(),
            paused_since.take(),
        ) {
            Ok(GroupOutcome::Rescaled(rescale, decided_at)) => {
                paused_since = Some(decided_at);
                config.processes = rescale.to;
                rescales += 1;
                record_rescale(&config, &rescale);
            }
            Ok(GroupOutcome::Finished(stats)) => {
                let (processes, threads) = (config.processes, config.threads);
                let elapsed = started.elapsed();
                return Ok(RunReport {
                    stats,
                    elapsed,
                    processes,
                    threads,
                    restarts,
                    rescales,
                });
            }
            Err(GroupFailure::Crashed(cause))
                if config.persistence.is_some() && restarts < config.max_restarts =>
            {
                restarts += 1;
                eprintln!(
                    "spillway: {cause:#}; restarting all workers from the last snapshot \
                     (restart {restarts} of at most {})",
                    config.max_restarts
                );
            }
            Err(GroupFailure::Crashed(cause)) if config.persistence.is_some() => {
                return Err(cause.context(format!("gave up after {restarts} restarts")));
            }
            Err(GroupFailure::Failed(cause))
            | Err(GroupFailure::Crashed(cause))
            | Err(GroupFailure::Interrupted(cause)) => return Err(cause),
        }
    }
}

/// Starts the worker processes once and waits for them.
fn run_group(
    config: &JobConfig,
    interrupted: &AtomicBool,
    scaling: Option<&crate::config::Scaling>,
    paused_since: Option<Instant>,
) -> Result<GroupOutcome, GroupFailure> {
    let failed = GroupFailure::Failed;
    let run_dir = RunDir::create().map_err(failed)?;
    let spec = run_dir.path.join("job.json");
    let written = serde_json::to_vec_pretty(&config)
        .map_err(anyhow::Error::from)
        .and_then(|json| Ok(std::fs::write(&spec, json)?))
        .with_context(|| format!("cannot write {}", spec.display()));
    written.map_err(failed)?;
    let addresses = free_loopback_addresses(config.processes).map_err(failed)?;
    let exe = std::env::current_exe()
        .context("cannot find own binary")
        .map_err(failed)?;

    let quiet = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::with_capacity(config.processes);
    for process in 0..config.processes {
        let child = Command::new(&exe)
            .arg("worker")
            .arg("--spec")
            .arg(&spec)
            .arg("--process")
            .arg(process.to_string())
            .arg("--addresses")
            .arg(addresses.join(","))
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start a worker process")
            .map_err(failed)?;
        workers.push(WorkerProcess::new(process, child, Arc::clone(&quiet)));
    }

    let mut scaler = scaling.map(|s| scaling::Scaler::new(s, config.processes, paused_since));
    let outcome = supervise(&mut workers, interrupted, &run_dir, scaler.as_mut());
    quiet.store(true, Ordering::SeqCst);
    for worker in &mut workers {
        worker.stop();
    }
    outcome?;
    let mut stats = JobStats::default();
    for process in 0..config.processes {
        let path = run_dir.stats_file(process);
        let read = std::fs::read(&path)
            .with_context(|| format!("worker {process} left no statistics at {}", path.display()))
            .and_then(|text| Ok(serde_json::from_slice(&text)?));
        stats.merge(read.map_err(failed)?);
    }
    Ok(match scaler.and_then(|s| s.decision()) {
        Some((rescale, decided_at)) => GroupOutcome::Rescaled(rescale, decided_at),
        None => GroupOutcome::Finished(stats),
    })
}

/// How a group of worker processes ended well.
enum GroupOutcome {
    Finished(JobStats),
    /// Paused with a final snapshot, to restart with another process count; when decided.
    Rescaled(Rescale, Instant),
}

/// Waits for every worker to succeed, or for the first failure or an interrupt.
fn supervise(
    workers: &mut [WorkerProcess],
    interrupted: &AtomicBool,
    run_dir: &RunDir,
    mut scaler: Option<&mut scaling::Scaler>,
) -> Result<(), GroupFailure> {
    let stopped = |count: usize| {
        let message = format!("interrupted; stopped all {count} worker processes");
        GroupFailure::Interrupted(anyhow::anyhow!(message))
    };
    let mut running = workers.len();
    while running > 0 {
        if interrupted.load(Ordering::SeqCst) {
            return Err(stopped(workers.len()));
        }
        if let Some(scaler) = scaler.as_deref_mut() {
            scaler.poll(&run_dir.path);
        }
        let pausing = requested_exit_code(&run_dir.path);
        running = 0;
        let mut failed = None;
        for worker in workers.iter_mut() {
            match worker.poll().map_err(GroupFailure::Failed)? {
                None => running += 1,
                Some(status) if status.success() => {}
                Some(status) if pausing.is_some() && status.code() == pausing => {}
                Some(status) => failed = failed.or(Some((worker.process, status))),
            }
        }
        if let Some((process, status)) = failed {
            // Silence the peers before they notice, then find the root cause.
            workers
                .iter()
                .for_each(|w| w.quiet.store(true, Ordering::SeqCst));
            let cause = root_cause(run_dir, process, status);
            // Ctrl-C reaches the workers too; then their deaths are not the story.
            if interrupted.load(Ordering::SeqCst) {
                return Err(stopped(workers.len()));
            }
            return Err(cause);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// The error a worker reported, preferring one that wrote its error file over one that only
/// lost a peer or was killed.
fn root_cause(run_dir: &RunDir, first_failed: usize, status: ExitStatus) -> GroupFailure {
    // A failing worker writes its error file before it exits, so its peers' reactions
    // cannot be mistaken for the cause; give the file a moment in case of a race on exit.
    std::thread::sleep(Duration::from_millis(50));
    if let Some((process, message)) = run_dir.first_error() {
        return GroupFailure::Failed(anyhow::anyhow!(
            "worker process {process} failed: {message}"
        ));
    }
    use std::os::unix::process::ExitStatusExt;
    GroupFailure::Crashed(match (status.code(), status.signal()) {
        (_, Some(signal)) => anyhow::anyhow!(
            "worker process {first_failed} was killed by signal {signal}{}",
            if signal == libc::SIGKILL {
                " (SIGKILL: out of memory, or killed by hand?)"
            } else {
                ""
            }
        ),
        (Some(EXIT_PEER_LOST), _) => anyhow::anyhow!(
            "worker process {first_failed} lost its connection to another worker process"
        ),
        (code, _) => anyhow::anyhow!(
            "worker process {first_failed} exited with code {}",
            code.map_or("?".to_owned(), |c| c.to_string())
        ),
    })
}

/// One child worker process and the thread forwarding its stderr.
struct WorkerProcess {
    process: usize,
    child: Child,
    status: Option<ExitStatus>,
    quiet: Arc<AtomicBool>,
    forwarder: Option<std::thread::JoinHandle<()>>,
}

impl WorkerProcess {
    fn new(process: usize, mut child: Child, quiet: Arc<AtomicBool>) -> Self {
        let stderr = child.stderr.take().expect("stderr is piped");
        let silence = Arc::clone(&quiet);
        let forwarder = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if !silence.load(Ordering::SeqCst) {
                    eprintln!("[worker {process}] {line}");
                }
            }
        });
        Self {
            process,
            child,
            status: None,
            quiet,
            forwarder: Some(forwarder),
        }
    }

    fn poll(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .context("cannot wait for a worker process")?;
        }
        Ok(self.status)
    }

    /// Kills the process if it still runs, and waits for it and its log.
    fn stop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
        if let Some(forwarder) = self.forwarder.take() {
            let _ = forwarder.join();
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A private directory for one `spawn`: the job spec, and each worker's error and statistics.
struct RunDir {
    path: PathBuf,
}

impl RunDir {
    fn create() -> Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos();
        let path = std::env::temp_dir().join(format!("spillway-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create run directory {}", path.display()))?;
        Ok(Self { path })
    }

    fn stats_file(&self, process: usize) -> PathBuf {
        stats_file(&self.path, process)
    }

    /// The earliest error file written, with its process number.
    fn first_error(&self) -> Option<(usize, String)> {
        let mut errors: Vec<(std::time::SystemTime, usize, String)> = std::fs::read_dir(&self.path)
            .ok()?
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let name = entry.file_name().into_string().ok()?;
                let process = name.strip_prefix("error-")?.parse().ok()?;
                let written = entry.metadata().ok()?.modified().ok()?;
                Some((
                    written,
                    process,
                    std::fs::read_to_string(entry.path()).ok()?,
                ))
            })
            .collect();
        errors.sort();
        errors
            .into_iter()
            .next()
            .map(|(_, process, message)| (process, message))
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn stats_file(run_dir: &Path, process: usize) -> PathBuf {
    run_dir.join(format!("stats-{process}.json"))
}

fn error_file(run_dir: &Path, process: usize) -> PathBuf {
    run_dir.join(format!("error-{process}"))
}

fn telemetry_file(run_dir: &Path, process: usize) -> PathBuf {
    run_dir.join(format!("telemetry-{process}.json"))
}

/// How often workers write their telemetry sample.
const TELEMETRY_EVERY: Duration = Duration::from_millis(250);

/// The file whose existence asks the workers to pause; it holds the exit code to use.
fn pause_file(run_dir: &Path) -> PathBuf {
    run_dir.join("pause")
}

fn requested_exit_code(run_dir: &Path) -> Option<i32> {
    std::fs::read_to_string(pause_file(run_dir))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Picks `count` free ports on 127.0.0.1 for the workers to listen on.
fn free_loopback_addresses(count: usize) -> Result<Vec<String>> {
    // Hold every listener until all ports are chosen so that no port repeats.
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("cannot reserve loopback ports for the workers")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.to_string()))
        .collect()
}
