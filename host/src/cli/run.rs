//! `spillway run`: one process, T worker threads.

use anyhow::Result;
use clap::Args;

use super::{JobArgs, print_summary};
use crate::orchestrator;

#[derive(Debug, Args)]
pub struct RunCommand {
    #[command(flatten)]
    job: JobArgs,
}

impl RunCommand {
    pub fn execute(self) -> Result<()> {
        let config = self.job.settings(Some(1))?.validate()?;
        let sinks = super::sink_lines(&config);
        let report = orchestrator::run_in_process(config)?;
        print_summary(&report, &sinks);
        Ok(())
    }
}
