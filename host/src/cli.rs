//! Command-line types (clap) and one `execute` per subcommand. No logic beyond turning flags
//! into [`crate::config`] settings and printing results.

mod inspect;
mod run;
mod snapshots;
mod spawn;
mod worker;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::config::{JobSettings, parse_binding};
use crate::orchestrator::RunReport;

/// Run sandboxed WebAssembly stream pipelines across worker processes.
#[derive(Debug, Parser)]
#[command(name = "spillway", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log verbosity: error, warn, info, debug or trace (or a RUST_LOG-style filter).
    #[arg(long, global = true, default_value = "warn", env = "SPILLWAY_LOG")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline in this process with one or more worker threads.
    Run(run::RunCommand),
    /// Run a pipeline as a group of worker processes that exchange records by key.
    Spawn(spawn::SpawnCommand),
    /// Validate a pipeline component and print its graph: sources, operators and sinks.
    Inspect(inspect::InspectCommand),
    /// Inspect and verify the snapshots at a persistence location.
    Snapshots(snapshots::SnapshotsCommand),
    /// Internal: one worker process of `spawn`.
    #[command(hide = true)]
    Worker(worker::WorkerCommand),
}

impl Cli {
    pub fn execute(self) -> Result<()> {
        match self.command {
            Command::Run(command) => command.execute(),
            Command::Spawn(command) => command.execute(),
            Command::Inspect(command) => command.execute(),
            Command::Snapshots(command) => command.execute(),
            Command::Worker(command) => command.execute(),
        }
    }
}

/// Sets up logging to stderr from `--log`.
pub fn init_logging(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// The job flags shared by `run` and `spawn`.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The pipeline component (.wasm). Optional when the job file names it.
    pub pipeline: Option<PathBuf>,
    /// A TOML job file with the same settings as these flags; flags override it.
    #[arg(long, value_name = "FILE")]
    pub job: Option<PathBuf>,
    /// Bind source NAME to a text file read line by line: PATH (read to its end),
    /// `tail:PATH` (follow as it grows), `dir:PATH` (files in name order, then new ones),
    /// or `-` (standard input). Repeatable.
    #[arg(long = "source", value_name = "NAME=PATH", value_parser = parse_binding)]
    pub sources: Vec<(String, String)>,
    /// Bind sink NAME to a file written one record per line (`-` = standard output). Repeatable.
    #[arg(long = "sink", value_name = "NAME=PATH", value_parser = parse_binding)]
    pub sinks: Vec<(String, String)>,
    /// Write records that a transform rejects, with the error, as JSON lines to PATH.
    #[arg(long, value_name = "PATH")]
    pub dead_letter: Option<String>,
    /// Worker threads per process [default: 1].
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Number of key groups, the job's maximum parallelism [default: 256].
    #[arg(long)]
    pub key_groups: Option<u32>,
    /// Events per batch handed to the guest [default: 1024].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Close an epoch after this many source events [default: 100000].
    #[arg(long)]
    pub epoch_records: Option<u64>,
    /// Close an epoch after this many milliseconds [default: 1000].
    #[arg(long)]
    pub epoch_ms: Option<u64>,
    /// Linear memory limit per guest instance, in MiB [default: 256].
    #[arg(long)]
    pub memory_mib: Option<u64>,
    /// CPU time limit for one guest call, in milliseconds [default: 5000].
    #[arg(long)]
    pub call_deadline_ms: Option<u64>,
    /// Fuel per guest call, about one unit per WebAssembly instruction [default: off].
    #[arg(long, value_name = "N")]
    pub fuel: Option<u64>,
    /// Largest accepted pipeline file, in MiB [default: 64].
    #[arg(long, value_name = "MIB")]
    pub max_module_mib: Option<u64>,
    /// Most events one guest call may return [default: 1000000].
    #[arg(long, value_name = "N")]
    pub max_output_events: Option<u64>,
    /// What a transform does with a record it rejects or faults on: stop the job, skip it,
    /// or write it to the --dead-letter file [default: dead-letter with --dead-letter, else skip].
    #[arg(long, value_enum, value_name = "POLICY")]
    pub on_error: Option<crate::config::OnError>,
    /// Compiled-module cache directory, or `off` [default: $XDG_CACHE_HOME/spillway or
    /// ~/.cache/spillway].
    #[arg(long, value_name = "DIR", env = "SPILLWAY_COMPILE_CACHE")]
    pub compile_cache: Option<String>,
    /// Snapshot state to this location and resume from it: a folder (`file:///PATH` or a
    /// path) or `s3://BUCKET/PREFIX` (S3 settings from the AWS_* environment variables).
    #[arg(long, value_name = "URL")]
    pub persistence: Option<String>,
    /// Snapshot every this many milliseconds (each epoch is one snapshot) [default: 1000].
    #[arg(long)]
    pub snapshot_interval_ms: Option<u64>,
    /// Complete snapshots to keep; older ones are deleted [default: 3].
    #[arg(long)]
    pub keep_snapshots: Option<usize>,
    /// Delete the snapshots at --persistence and start from the beginning.
    #[arg(long)]
    pub fresh_start: bool,
    /// End `tail:` and `dir:` sources after this many milliseconds without new data.
    #[arg(long, value_name = "MS")]
    pub stop_when_idle_ms: Option<u64>,
    /// With --persistence, restart crashed workers from the last snapshot up to this many
    /// times (spawn only) [default: 5].
    #[arg(long)]
    pub max_restarts: Option<u32>,
}

impl JobArgs {
    /// The job file's settings overridden by these flags.
    fn settings(self, processes: Option<usize>) -> Result<JobSettings> {
        let file = match &self.job {
            Some(path) => JobSettings::from_file(path)?,
            None => JobSettings::default(),
        };
        let flags = JobSettings {
            module: self.pipeline,
            threads: self.threads,
            processes,
            key_groups: self.key_groups,
            sources: self.sources.into_iter().collect(),
            sinks: self.sinks.into_iter().collect(),
            dead_letter: self.dead_letter,
            batch_size: self.batch_size,
            epoch_records: self.epoch_records,
            epoch_ms: self.epoch_ms,
            memory_mib: self.memory_mib,
            call_deadline_ms: self.call_deadline_ms,
            fuel: self.fuel,
            max_module_mib: self.max_module_mib,
            max_output_events: self.max_output_events,
            compile_cache: self.compile_cache,
            on_error: self.on_error,
            persistence: self.persistence,
            snapshot_interval_ms: self.snapshot_interval_ms,
            keep_snapshots: self.keep_snapshots,
            fresh_start: self.fresh_start,
            stop_when_idle_ms: self.stop_when_idle_ms,
            max_restarts: self.max_restarts,
            scaling: false,
            window_ms: None,
            max_processes: None,
            base_dir: PathBuf::new(),
        };
        Ok(file.merge(flags))
    }
}

/// Prints where output went and a one-line summary to stderr.
fn print_summary(report: &RunReport, sinks: &[String]) {
    for sink in sinks {
        eprintln!("output: {sink}");
    }
    let stats = &report.stats;
    let secs = report.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        stats.events_in as f64 / secs
    } else {
        0.0
    };
    eprintln!(
        "done in {secs:.2}s: {} events in ({rate:.0}/s), {} out, {} rejected, {} late; \
         {} process{} × {} thread{}",
        stats.events_in,
        stats.events_out,
        stats.rejected,
        stats.late,
        report.processes,
        if report.processes == 1 { "" } else { "es" },
        report.threads,
        if report.threads == 1 { "" } else { "s" },
    );
    if let Some(first) = &stats.first_rejection {
        eprintln!("first rejected record: {first}");
    }
}

/// One line per bound sink: its name and where it writes.
fn sink_lines(config: &crate::config::JobConfig) -> Vec<String> {
    let mut lines: Vec<String> = config
        .sinks
        .iter()
        .map(|(name, binding)| format!("sink `{name}` -> {binding}"))
        .collect();
    if let Some(binding) = &config.dead_letter {
        lines.push(format!("dead letters -> {binding}"));
    }
    lines
}
