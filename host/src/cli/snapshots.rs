//! `spillway snapshots`: what is stored at a persistence location, and whether it is intact.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use crate::state::{Manifest, SnapshotStore, SourcePosition};

#[derive(Debug, Args)]
pub struct SnapshotsCommand {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// List the committed snapshots, newest first.
    Ls {
        /// The persistence location (folder, file:///PATH or s3://BUCKET/PREFIX).
        url: String,
    },
    /// Show one snapshot (default: the newest): pipeline, layout, state objects with their
    /// key groups, source positions and sink lengths.
    Show {
        url: String,
        /// The snapshot's epoch.
        epoch: Option<u64>,
    },
    /// Check every checksum of every snapshot (or one), naming each bad object.
    Verify { url: String, epoch: Option<u64> },
}

impl SnapshotsCommand {
    pub fn execute(self) -> Result<()> {
        match self.action {
            Action::Ls { url } => {
                let store = SnapshotStore::open(&url)?;
                let epochs = Manifest::list(&store)?;
                if epochs.is_empty() {
                    println!("no snapshots at {url}");
                }
                for epoch in epochs {
                    match Manifest::read(&store, epoch) {
                        Ok(m) => println!(
                            "{epoch:>8}  {}  {} state objects, {} bytes  {} × {}  {}",
                            created(m.created_unix_ms),
                            m.operators.values().map(Vec::len).sum::<usize>(),
                            m.state_bytes(),
                            m.processes,
                            m.threads,
                            m.pipeline.module
                        ),
                        Err(error) => println!("{epoch:>8}  UNREADABLE: {error:#}"),
                    }
                }
                Ok(())
            }
            Action::Show { url, epoch } => {
                let store = SnapshotStore::open(&url)?;
                let manifest = Manifest::read(&store, pick(&store, epoch)?)?;
                print_manifest(&manifest);
                Ok(())
            }
            Action::Verify { url, epoch } => {
                let store = SnapshotStore::open(&url)?;
                let epochs = match epoch {
                    Some(epoch) => vec![epoch],
                    None => Manifest::list(&store)?,
                };
                let mut bad = 0;
                for epoch in &epochs {
                    let problems = match Manifest::read(&store, *epoch) {
                        Ok(manifest) => manifest.verify(&store),
                        Err(error) => vec![format!("{}: {error:#}", Manifest::path(*epoch))],
                    };
                    if problems.is_empty() {
                        println!("snapshot {epoch}: ok");
                    } else {
                        bad += 1;
                        for problem in problems {
                            println!("snapshot {epoch}: BAD {problem}");
                        }
                    }
                }
                if bad > 0 {
                    bail!("{bad} of {} snapshots at {url} are damaged", epochs.len());
                }
                Ok(())
            }
        }
    }
}

fn pick(store: &SnapshotStore, epoch: Option<u64>) -> Result<u64> {
    match epoch {
        Some(epoch) => Ok(epoch),
        None => match Manifest::list(store)?.first() {
            Some(&epoch) => Ok(epoch),
            None => bail!("no snapshots at {}", store.url()),
        },
    }
}

fn created(unix_ms: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms);
    humantime::format_rfc3339_seconds(time).to_string()
}

fn print_manifest(m: &Manifest) {
    println!(
        "snapshot {} (generation {}), {}",
        m.epoch,
        m.generation,
        created(m.created_unix_ms)
    );
    println!(
        "pipeline: {} (module {}, graph {})",
        m.pipeline.module, m.pipeline.module_fingerprint, m.pipeline.graph_fingerprint
    );
    println!(
        "layout: {} processes × {} threads, {} key groups",
        m.processes, m.threads, m.key_groups
    );
    for (node, objects) in &m.operators {
        println!("aggregate `{node}`:");
        for object in objects {
            let groups = object.groups.iter().map(|g| g.group);
            let (first, last) = (groups.clone().min(), groups.max());
            let range = match (first, last) {
                (Some(first), Some(last)) => format!("key groups {first}..={last}"),
                _ => "no keys".to_owned(),
            };
            println!(
                "  {}  {} bytes, {} groups with keys ({range}), checksum {}",
                object.path,
                object.size,
                object.groups.len(),
                object.checksum
            );
        }
    }
    for (name, position) in &m.sources {
        let at = match position {
            SourcePosition::File { offset, lines } => format!("byte {offset} (line {lines})"),
            SourcePosition::Directory { file, offset } => format!("file {file}, byte {offset}"),
            SourcePosition::Stdin { records } => format!("{records} lines of standard input"),
            SourcePosition::Generated { events } => format!("{events} generated events"),
        };
        println!("source `{name}`: at {at}");
    }
    for (name, length) in &m.sinks {
        println!("sink `{name}`: {length} bytes committed");
    }
}
