//! A named source: one worker reads the bound connector, cuts it into batches and epochs, and
//! deals the batches round-robin to all workers. At the end of each epoch it reports its
//! read position for the snapshot of that epoch.

use std::time::{Duration, Instant};

use anyhow::Result;
use timely::dataflow::Scope;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use super::{Batch, BatchStream, Counters, PartOutput, PartStream, SnapshotPart, WorkerContext};
use super::{BatchOutput, bump};
use crate::config::SourceBinding;
use crate::connectors::{LineSource, Read};

/// Batches read per activation before yielding to the other operators.
const BATCHES_PER_ACTIVATION: usize = 16;
/// How often a followed source looks for new data.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Builds source `name`, read by worker `reader`; every other worker's instance is empty.
pub(super) fn build<'scope>(
    scope: Scope<'scope, u64>,
    context: &WorkerContext,
    name: &str,
    binding: &SourceBinding,
    reader: usize,
) -> Result<(BatchStream<'scope>, PartStream<'scope>)> {
    let resume_at = context.resumed_manifest().and_then(|m| m.sources.get(name));
    let mut lines = if scope.index() == reader {
        Some(LineSource::open(binding, resume_at)?)
    } else {
        None
    };
    let context = context.clone();
    let name = name.to_owned();
    let epochs = context.config.epochs.clone();
    let epoch_length = Duration::from_millis(epochs.max_ms);
    let idle_limit = context.config.stop_when_idle_ms.map(Duration::from_millis);
    let peers = scope.peers() as u64;
    let first_epoch = context.first_epoch();

    let mut builder = OperatorBuilder::new(format!("source {name}"), scope);
    let info = builder.operator_info();
    let (events, event_stream) = builder.new_output::<Vec<Batch>>();
    let (parts, part_stream) = builder.new_output::<Vec<SnapshotPart>>();
    let mut events = BatchOutput::from(events);
    let mut parts = PartOutput::from(parts);
    let activator = scope.activator_for(info.address);
    builder.build(move |mut capabilities| {
        let mut capability = lines.is_some().then(|| {
            let mut caps = (capabilities.remove(0), capabilities.remove(0));
            caps.0.downgrade(&first_epoch);
            caps.1.downgrade(&first_epoch);
            caps
        });
        let mut sequence = 0u64;
        let mut epoch_records = 0u64;
        let mut epoch_start = Instant::now();
        let mut idle_since: Option<Instant> = None;
        move |_frontiers| {
            let (Some((events_cap, parts_cap)), Some(reader)) =
                (capability.as_mut(), lines.as_mut())
            else {
                return;
            };
            let mut events = events.activate();
            let mut parts = parts.activate();
            let mut ended = false;
            for _ in 0..BATCHES_PER_ACTIVATION {
                let mut batch = Vec::new();
                match context.check(reader.read_batch(epochs.batch_size, &mut batch)) {
                    Read::Records(count) => {
                        idle_since = None;
                        Counters::add(&context.counters.events_in, count as u64);
                        let route = (sequence % peers) as u32;
                        sequence += 1;
                        events.session(&*events_cap).give(Batch {
                            route,
                            max_time: i64::MIN,
                            events: batch,
                        });
                        epoch_records += count as u64;
                    }
                    Read::Idle => {
                        let since = *idle_since.get_or_insert_with(Instant::now);
                        ended = idle_limit.is_some_and(|limit| since.elapsed() >= limit);
                        break;
                    }
                    Read::Ended => {
                        ended = true;
                        break;
                    }
                }
                if epoch_records >= epochs.max_records {
                    break;
                }
            }
            let epoch_due = epoch_records >= epochs.max_records
                || (epoch_records > 0 && epoch_start.elapsed() >= epoch_length);
            if epoch_due || ended {
                let position = SnapshotPart::Source {
                    name: name.clone(),
                    position: reader.position(),
                };
                parts.session(&*parts_cap).give(position);
            }
            if ended {
                capability = None;
                lines = None;
                return;
            }
            if epoch_due {
                bump(events_cap);
                bump(parts_cap);
                epoch_records = 0;
                epoch_start = Instant::now();
            }
            if idle_since.is_some() {
                activator.activate_after(POLL_EVERY);
            } else {
                activator.activate();
            }
        }
    });
    Ok((event_stream, part_stream))
}
