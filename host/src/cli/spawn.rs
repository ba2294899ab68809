//! `spillway spawn`: P worker processes of T threads each.

use anyhow::Result;
use clap::Args;

use super::{JobArgs, print_summary};
use crate::orchestrator;

#[derive(Debug, Args)]
pub struct SpawnCommand {
    /// Number of worker processes [default: 1].
    #[arg(short = 'n', long)]
    processes: Option<usize>,
    #[command(flatten)]
    job: JobArgs,
}

impl SpawnCommand {
    pub fn execute(self) -> Result<()> {
        let config = self.job.settings(self.processes)?.validate()?;
        let sinks = super::sink_lines(&config);
        let report = orchestrator::spawn(config)?;
        print_summary(&report, &sinks);
        Ok(())
    }
}
