//! The worker process: one member of a `spawn` group, started by the orchestrator with the
//! hidden `worker` subcommand.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{Communication, EXIT_FAILED, EXIT_PEER_LOST, error_file, stats_file};
use super::{TELEMETRY_EVERY, pause_file, requested_exit_code, telemetry_file};
use crate::config::JobConfig;
use crate::dataflow::Counters;
use crate::dataflow::{self, OnFatal};
use crate::telemetry::Sample;

/// Where a worker finds its job and its peers.
#[derive(Debug, Clone)]
pub struct WorkerArgs {
    /// The job spec the orchestrator wrote, in its run directory.
    pub spec: PathBuf,
    /// This process's index.
    pub process: usize,
    /// Every worker process's address, in process order.
    pub addresses: Vec<String>,
}

/// Runs this process's share of the job and leaves its statistics (or its error) in the run
/// directory for the orchestrator.
pub fn run_worker(args: WorkerArgs) -> Result<()> {
    let run_dir = args
        .spec
        .parent()
        .context("job spec has no directory")?
        .to_owned();
    let process = args.process;
    install_panic_hook(run_dir.clone(), process);
    let error_path = error_file(&run_dir, process);
    let on_fatal = OnFatal::new(move |error| {
        let _ = std::fs::write(&error_path, format!("{error:#}"));
    });
    let result = (|| {
        let text = std::fs::read(&args.spec)
            .with_context(|| format!("cannot read job spec {}", args.spec.display()))?;
        let config: JobConfig = serde_json::from_slice(&text).context("invalid job spec")?;
        let module = super::load_pipeline(&config)?;
        let communication = Communication::cluster(&args.addresses, process, config.threads)?;
        let counters = Arc::new(Counters::default());
        report_telemetry(&run_dir, process, config.threads, Arc::clone(&counters));
        let pause = Some(pause_file(&run_dir));
        dataflow::run_job(
            config,
            module,
            communication,
            counters,
            pause,
            on_fatal.clone(),
        )
    })();
    match result {
        Ok(stats) => {
            let path = stats_file(&run_dir, process);
            std::fs::write(&path, serde_json::to_vec(&stats)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
            // Paused to rescale: exit with the code the orchestrator asked for.
            if let Some(code) = requested_exit_code(&run_dir) {
                std::process::exit(code);
            }
            Ok(())
        }
        Err(error) => on_fatal.fail(error),
    }
}

/// Writes this process's telemetry sample to the run directory a few times a second.
fn report_telemetry(run_dir: &Path, process: usize, threads: usize, counters: Arc<Counters>) {
    let path = telemetry_file(run_dir, process);
    let started = Instant::now();
    std::thread::spawn(move || {
        let staging = path.with_extension("tmp");
        loop {
            let sample = Sample {
                at_ms: started.elapsed().as_millis() as u64,
                threads,
                busy_ns: counters.busy_ns.load(Ordering::Relaxed),
                events_in: counters.events_in.load(Ordering::Relaxed),
                backlog: counters.backlog.load(Ordering::Relaxed),
            };
            let json = serde_json::to_vec(&sample).expect("samples serialise");
            // Written aside and renamed, so the orchestrator never reads half a sample.
            if std::fs::write(&staging, json)
                .and_then(|()| std::fs::rename(&staging, &path))
                .is_err()
            {
                return;
            }
            std::thread::sleep(TELEMETRY_EVERY);
        }
    });
}

/// Turns the panics of timely's network threads, which follow a peer's death, into one
/// line and a distinct exit code; stays silent when another worker has already failed.
fn install_panic_hook(run_dir: PathBuf, process: usize) {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if another_worker_failed(&run_dir, process) {
            std::process::exit(EXIT_PEER_LOST);
        }
        let thread = std::thread::current();
        if thread
            .name()
            .is_some_and(|name| name.starts_with("timely:"))
        {
            eprintln!("lost the connection to another worker process");
            std::process::exit(EXIT_PEER_LOST);
        }
        default_hook(info);
        let _ = std::fs::write(error_file(&run_dir, process), format!("panic: {info}"));
        std::process::exit(EXIT_FAILED);
    }));
}

fn another_worker_failed(run_dir: &Path, process: usize) -> bool {
    std::fs::read_dir(run_dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.starts_with("error-") && name != format!("error-{process}")
        })
}
