//! A named source: cuts its connector's records into batches and epochs, and at the end of
//! each epoch reports its read position for the snapshot of that epoch.
//!
//! A line source is read by one worker, which deals the batches round-robin to all workers.
//! A generated (`nexmark:`) source runs on every worker, each keeping its own share; its
//! epochs end at fixed global event counts so that all workers cut at the same events.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use timely::dataflow::Scope;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use super::{Batch, BatchStream, Counters, PartOutput, PartStream, SnapshotPart, WorkerContext};
use super::{BatchOutput, bump};
use crate::config::SourceBinding;
use crate::connectors::{LineSource, NexmarkSource, Read};
use crate::state::SourcePosition;

/// Batches read per activation before yielding to the other operators.
const BATCHES_PER_ACTIVATION: usize = 16;
/// How often a followed or paced source looks for new data.
const POLL_EVERY: Duration = Duration::from_millis(5);
/// How often a file source measures how much of its file is unread.
const BACKLOG_EVERY: Duration = Duration::from_millis(100);

/// What a source operator reads.
enum Reader {
    Lines(LineSource),
    Generated {
        source: Box<NexmarkSource>,
        /// Global event count at which the current epoch ends.
        epoch_end: u64,
    },
}

impl Reader {
    /// Opens `binding` on this worker, or `None` where another worker reads it: line sources
    /// are read by worker `line_reader` alone.
    fn open(
        binding: &SourceBinding,
        context: &WorkerContext,
        resume_at: Option<&SourcePosition>,
        line_reader: usize,
    ) -> Result<Option<Self>> {
        let epoch_records = context.config.epochs.max_records;
        Ok(match binding {
            SourceBinding::Nexmark { events } => {
                let peers = context.config.workers();
                let source = NexmarkSource::open(*events, context.index, peers, resume_at)?;
                let source = Box::new(source);
                let epoch_end = source.done().saturating_add(epoch_records);
                Some(Self::Generated { source, epoch_end })
            }
            _ if context.index == line_reader => {
                Some(Self::Lines(LineSource::open(binding, resume_at)?))
            }
            _ => None,
        })
    }

    /// Appends up to `want` records to `batch` (per worker, for a generated source).
    fn read_batch(&mut self, want: usize, peers: u64, batch: &mut Vec<u8>) -> Result<Read> {
        match self {
            Self::Lines(lines) => lines.read_batch(want, batch),
            Self::Generated { source, epoch_end } => {
                Ok(source.read_batch(want as u64 * peers, *epoch_end, batch))
            }
        }
    }

    /// Whether the current epoch is full, given the records read in it.
    fn epoch_full(&self, records: u64, max_records: u64) -> bool {
        match self {
            Self::Lines(_) => records >= max_records,
            Self::Generated { source, epoch_end } => source.done() >= *epoch_end,
        }
    }

    fn start_epoch(&mut self, max_records: u64) {
        if let Self::Generated { epoch_end, .. } = self {
            *epoch_end = epoch_end.saturating_add(max_records);
        }
    }

    /// The worker a batch goes to: line batches are dealt round-robin, generated ones stay.
    fn route(&self, sequence: u64, index: usize, peers: u64) -> u32 {
        match self {
            Self::Lines(_) => (sequence % peers) as u32,
            Self::Generated { .. } => index as u32,
        }
    }

    fn position(&self) -> SourcePosition {
        match self {
            Self::Lines(lines) => lines.position(),
            Self::Generated { source, .. } => source.position(),
        }
    }

    /// Records not read yet, as far as the reader can tell.
    fn unread(&self) -> u64 {
        match self {
            Self::Lines(lines) => lines.unread_lines(),
            Self::Generated { source, .. } => source.unread(),
        }
    }

    /// Lines read so far (0 for a generated source).
    fn lines(&self) -> u64 {
        match self {
            Self::Lines(lines) => lines.lines(),
            Self::Generated { .. } => 0,
        }
    }
}

/// Builds source `name`. A line source is read by worker `line_reader`; every other worker's
/// instance is empty.
pub(super) fn build<'scope>(
    scope: Scope<'scope, u64>,
    context: &WorkerContext,
    name: &str,
    binding: &SourceBinding,
    line_reader: usize,
) -> Result<(BatchStream<'scope>, PartStream<'scope>)> {
    let resume_at = context.resumed_manifest().and_then(|m| m.sources.get(name));
    let mut source = Reader::open(binding, context, resume_at, line_reader)?;
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
        let mut capability = source.is_some().then(|| {
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
        let schedule_origin = source.as_ref().map(|reader| {
            Instant::now()
                - schedule
                    .as_ref()
                    .map_or(Duration::ZERO, |s| s.time_of(reader.lines()))
        });
        move |_frontiers| {
            let _busy = context.busy();
            let (Some((events_cap, parts_cap)), Some(reader)) =
                (capability.as_mut(), source.as_mut())
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
                    .store(reader.unread(), Ordering::Relaxed);
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
                match context.check(reader.read_batch(want, peers, &mut batch)) {
                    Read::Records(0) => break,
                    Read::Records(count) => {
                        idle_since = None;
                        budget -= count as u64;
                        Counters::add(&context.counters.events_in, count as u64);
                        let route = reader.route(sequence, context.index, peers);
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
                if reader.epoch_full(epoch_records, epochs.max_records) {
                    break;
                }
            }
            let epoch_due = reader.epoch_full(epoch_records, epochs.max_records)
                || (matches!(reader, Reader::Lines(_))
                    && epoch_records > 0
                    && epoch_start.elapsed() >= epoch_length);
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
                source = None;
                return;
            }
            if epoch_due {
                bump(events_cap);
                bump(parts_cap);
                reader.start_epoch(epochs.max_records);
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
