//! `spillway spawn`: P worker processes of T threads each.

use anyhow::Result;
use clap::Args;

use super::{JobArgs, print_summary};
use crate::orchestrator;

#[derive(Debug, Args)]
pub struct SpawnCommand {
    /// Number of worker processes (the start, with --scaling) [default: 1].
    #[arg(short = 'n', long)]
    processes: Option<usize>,
    /// Change the process count from the workload: ×2 when the sources fall behind for a
    /// whole window, ÷2 when every process computes at most 25% of the time.
    #[arg(long)]
    scaling: bool,
    /// The sliding window scaling decisions look at, in ms [default: 120000].
    #[arg(long, value_name = "MS")]
    window_ms: Option<u64>,
    /// Never scale past this many processes [default: the machine's cores].
    #[arg(long)]
    max_processes: Option<usize>,
    #[command(flatten)]
    job: JobArgs,
}

impl SpawnCommand {
    pub fn execute(self) -> Result<()> {
        let mut settings = self.job.settings(self.processes)?;
        settings.scaling |= self.scaling;
        settings.window_ms = self.window_ms.or(settings.window_ms);
        settings.max_processes = self.max_processes.or(settings.max_processes);
        let config = settings.validate()?;
        let sinks = super::sink_lines(&config);
        let report = orchestrator::spawn(config)?;
        print_summary(&report, &sinks);
        Ok(())
    }
}
