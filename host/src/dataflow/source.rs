//! A named source: one worker reads the bound connector, cuts it into batches and epochs, and
//! deals the batches round-robin to all workers. At the end of each epoch it reports its
//! read position for the snapshot of that epoch.

use std::sync::atomic::Ordering;
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
/// How often a followed or paced source looks for new data.
const POLL_EVERY: Duration = Duration::from_millis(5);
/// How often a file source measures how much of its file is unread.
const BACKLOG_EVERY: Duration = Duration::from_millis(100);

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
    let schedule = match binding {
        SourceBinding::Replay { schedule, .. } => Some(schedule.clone()),
        _ => None,
    };

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
        let mut backlog_checked = Instant::now() - BACKLOG_EVERY;
        // A replay's schedule continues from the lines already emitted before a restart.
        let schedule_origin = lines.as_ref().map(|reader| {
            Instant::now()
                - schedule
                    .as_ref()
                    .map_or(Duration::ZERO, |s| s.time_of(reader.lines()))
        });
        move |_frontiers| {
            let _busy = context.busy();
            let (Some((events_cap, parts_cap)), Some(reader)) =
                (capability.as_mut(), lines.as_mut())
            else {
                return;
            };
            let mut events = events.activate();
            let mut parts = parts.activate();
            let epoch = *events_cap.time();
            // Backpressure: wait while the last operators are more than an epoch behind.
            if epoch > first_epoch + 1 && context.probe.less_than(&(epoch - 1)) {
                activator.activate_after(Duration::from_millis(1));
                return;
            }
            // How many lines a replay schedule allows now, and how far behind it is.
            let allowed = match (&schedule, schedule_origin) {
                (Some(schedule), Some(origin)) => {
                    let due = schedule.due(origin.elapsed());
                    let behind = due.saturating_sub(reader.lines());
                    context.counters.backlog.store(behind, Ordering::Relaxed);
                    behind
                }
                _ => u64::MAX,
            };
            if schedule.is_none() && backlog_checked.elapsed() >= BACKLOG_EVERY {
                context
                    .counters
                    .backlog
                    .store(reader.unread_lines(), Ordering::Relaxed);
                backlog_checked = Instant::now();
            }
            let pause = context.pause_requested();
            let mut ended = pause;
            let mut budget = allowed;
            for _ in 0..BATCHES_PER_ACTIVATION {
                if pause || budget == 0 {
                    break;
                }
                let mut batch = Vec::new();
                let want = epochs
                    .batch_size
                    .min(budget.min(usize::MAX as u64) as usize);
                match context.check(reader.read_batch(want, &mut batch)) {
                    Read::Records(count) => {
                        idle_since = None;
                        budget -= count as u64;
                        Counters::add(&context.counters.events_in, count as u64);
                        let route = (sequence % peers) as u32;
                        sequence += 1;
                        let batch = Batch {
                            route,
                            max_time: i64::MIN,
                            events: batch,
                        };
                        events.session(&*events_cap).give(batch);
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
                context.counters.backlog.store(0, Ordering::Relaxed);
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
            if idle_since.is_some() || budget == 0 {
                activator.activate_after(POLL_EVERY);
            } else {
                activator.activate();
            }
        }
    });
    Ok((event_stream, part_stream))
}
