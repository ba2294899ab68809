//! The commit operator: on worker 0, assembles every operator's share of an epoch's
//! snapshot and, once all of them have passed the epoch, writes the manifest that makes the
//! snapshot exist. Then it deletes snapshots beyond the ones to keep.
//!
//! An operator reports only when its share changed; its latest report at or before an epoch
//! is its share of that epoch. An epoch is committed once every expected share is known.

use std::collections::{BTreeMap, BTreeSet};

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

use super::{PartStream, SnapshotPart, WorkerContext, WorkerPersistence};
use crate::runtime::Operator as Node;
use crate::state::snapshot::FORMAT;
use crate::state::{Manifest, SourcePosition, StateObject};

/// Builds the commit operator over all snapshot shares.
pub(super) fn build(parts: PartStream<'_>, context: &WorkerContext) {
    let context = context.clone();
    let mut latest = Latest::default();
    let expected = Expected::of(&context);
    let mut pending: BTreeMap<u64, Vec<SnapshotPart>> = BTreeMap::new();
    parts.sink(
        Exchange::new(|_: &SnapshotPart| 0),
        "commit",
        move |(input, frontier)| {
            let _busy = context.busy();
            input.for_each(|cap, data| {
                if let Some(&time) = cap.least() {
                    pending.entry(time).or_default().append(data);
                }
            });
            let Some(persistence) = context.persistence.as_ref().filter(|_| context.index == 0)
            else {
                return;
            };
            let frontier = frontier.frontier();
            let mut complete = None;
            while let Some(entry) = pending.first_entry() {
                if frontier.less_equal(entry.key()) {
                    break;
                }
                let (epoch, parts) = entry.remove_entry();
                parts.into_iter().for_each(|part| latest.record(part));
                if latest.covers(&expected) {
                    complete = Some(epoch);
                }
            }
            if let Some(epoch) = complete {
                let manifest = latest.manifest(epoch, &context, persistence);
                match persistence
                    .store
                    .put(&Manifest::path(epoch), manifest.encode())
                {
                    Ok(()) => {
                        tracing::debug!("committed snapshot {epoch}");
                        collect_garbage(persistence, &manifest);
                    }
                    Err(error) => {
                        tracing::warn!("snapshot {epoch} not committed, will retry: {error:#}");
                    }
                }
            }
        },
    );
}

/// The shares a snapshot needs.
struct Expected {
    aggregates: Vec<String>,
    workers: usize,
    sources: BTreeSet<String>,
    sinks: BTreeSet<String>,
}

impl Expected {
    fn of(context: &WorkerContext) -> Self {
        let graph = context.module.graph();
        let aggregates = graph
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Node::Aggregate(_)))
            .map(|n| n.name.clone())
            .collect();
        let config = &context.config;
        let mut sinks: BTreeSet<String> = config.sinks.keys().cloned().collect();
        if config.dead_letter.is_some() {
            sinks.insert(super::sink::DEAD_LETTER.to_owned());
        }
        Self {
            aggregates,
            workers: config.workers(),
            sources: config.sources.keys().cloned().collect(),
            sinks,
        }
    }
}

/// The latest share of every operator.
#[derive(Default)]
struct Latest {
    states: BTreeMap<String, BTreeMap<u32, StateObject>>,
    sources: BTreeMap<String, SourcePosition>,
    sinks: BTreeMap<String, u64>,
}

impl Latest {
    fn record(&mut self, part: SnapshotPart) {
        match part {
            SnapshotPart::State {
                node,
                worker,
                object,
            } => {
                self.states.entry(node).or_default().insert(worker, object);
            }
            SnapshotPart::Source { name, position } => {
                self.sources.insert(name, position);
            }
            SnapshotPart::Sink { name, length } => {
                self.sinks.insert(name, length);
            }
        }
    }

    fn covers(&self, expected: &Expected) -> bool {
        expected.aggregates.iter().all(|node| {
            self.states
                .get(node)
                .is_some_and(|workers| workers.len() == expected.workers)
        }) && expected
            .sources
            .iter()
            .all(|s| self.sources.contains_key(s))
            && expected.sinks.iter().all(|s| self.sinks.contains_key(s))
    }

    fn manifest(
        &self,
        epoch: u64,
        context: &WorkerContext,
        persistence: &WorkerPersistence,
    ) -> Manifest {
        let config = &context.config;
        Manifest {
            format: FORMAT,
            epoch,
            generation: persistence.generation,
            created_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            pipeline: persistence.identity.clone(),
            key_groups: config.key_groups,
            processes: config.processes,
            threads: config.threads,
            operators: self
                .states
                .iter()
                .map(|(node, workers)| (node.clone(), workers.values().cloned().collect()))
                .collect(),
            sources: self.sources.clone(),
            sinks: self.sinks.clone(),
        }
    }
}

/// Deletes manifests beyond the newest `keep`, then state objects that no kept manifest
/// names and that are no newer than the committed epoch (newer ones may belong to the next
/// snapshot). Failures are logged; the next commit tries again.
fn collect_garbage(persistence: &WorkerPersistence, committed: &Manifest) {
    let result = (|| -> anyhow::Result<()> {
        let store = &persistence.store;
        let epochs = Manifest::list(store)?;
        let (kept, old) = epochs.split_at(epochs.len().min(persistence.keep));
        for &epoch in old {
            store.delete(&Manifest::path(epoch))?;
        }
        let mut referenced: BTreeSet<String> = BTreeSet::new();
        for &epoch in kept {
            let manifest = if epoch == committed.epoch {
                committed.clone()
            } else {
                Manifest::read(store, epoch)?
            };
            referenced.extend(
                manifest
                    .operators
                    .values()
                    .flatten()
                    .map(|o| o.path.clone()),
            );
        }
        for (path, _) in store.list("state")? {
            let epoch = path
                .rsplit('/')
                .next()
                .and_then(|file| file.strip_suffix(".bin"))
                .and_then(|e| e.parse::<u64>().ok());
            if epoch.is_some_and(|e| e <= committed.epoch) && !referenced.contains(&path) {
                store.delete(&path)?;
            }
        }
        Ok(())
    })();
    if let Err(error) = result {
        tracing::warn!("cleaning up old snapshots failed, will retry: {error:#}");
    }
}
