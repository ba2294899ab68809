//! `spillway worker` (hidden): one process of a `spawn` group.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::orchestrator::{WorkerArgs, run_worker};

#[derive(Debug, Args)]
pub struct WorkerCommand {
    /// The job spec written by the orchestrator.
    #[arg(long)]
    spec: PathBuf,
    /// This process's index in the group.
    #[arg(long)]
    process: usize,
    /// Comma-separated addresses of all worker processes, in process order.
    #[arg(long, value_delimiter = ',')]
    addresses: Vec<String>,
}

impl WorkerCommand {
    pub fn execute(self) -> Result<()> {
        run_worker(WorkerArgs {
            spec: self.spec,
            process: self.process,
            addresses: self.addresses,
        })
    }
}
