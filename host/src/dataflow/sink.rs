//! A named sink: every batch goes to worker 0, which writes each event's value as one line.
//! A `null:` sink is the exception: each worker counts and drops its own batches.
//!
//! Records are written an epoch at a time, in epoch order, once the epoch is complete, so the
//! file's length at the end of an epoch is exact; that length is the sink's share of the
//! epoch's snapshot. A restart truncates the file to the length of the snapshot it resumes
//! from, so output after it is written again exactly once.

use std::collections::BTreeMap;

use anyhow::Result;
use spillway_frame::EventReader;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

use super::{Batch, BatchStream, Counters, PartStream, SnapshotPart, WorkerContext};
use crate::config::SinkBinding;
use crate::connectors::LineSink;

/// The name under which the dead-letter sink is snapshotted.
pub(super) const DEAD_LETTER: &str = "dead-letter";

/// Builds sink `name`. Its records count as job output when `is_output`.
pub(super) fn build<'scope>(
    input: BatchStream<'scope>,
    context: &WorkerContext,
    name: &str,
    binding: &SinkBinding,
    is_output: bool,
) -> Result<PartStream<'scope>> {
    let committed = context
        .resumed_manifest()
        .and_then(|m| m.sinks.get(name))
        .copied();
    let everywhere = *binding == SinkBinding::Discard;
    let mut writer = match context.index {
        0 => Some(LineSink::open(binding, committed.unwrap_or(0))?),
        _ if everywhere => Some(LineSink::open(binding, 0)?),
        _ => None,
    };
    let context = context.clone();
    let name = name.to_owned();
    let pact = Exchange::new(move |batch: &Batch| match everywhere {
        true => u64::from(batch.route),
        false => 0,
    });
    let stream = input.unary_frontier(pact, &format!("sink {name}"), move |capability, _| {
        // Kept to report the file's length at epochs that brought no records.
        let mut held = writer.is_some().then_some(capability);
        let mut pending: BTreeMap<u64, Vec<Batch>> = BTreeMap::new();
        let mut unreported = true;
        let mut last_written = 0;
        move |(input, frontier), output| {
            let _busy = context.busy();
            input.for_each(|cap, data| {
                if everywhere {
                    // Nothing to order or commit: count now rather than hold the epoch.
                    let count = data.drain(..).map(|b| EventReader::new(&b.events).count());
                    if is_output {
                        Counters::add(&context.counters.events_out, count.sum::<usize>() as u64);
                    }
                } else if let Some(&time) = cap.least() {
                    pending.entry(time).or_default().append(data);
                }
            });
            let (Some(sink), Some(cap)) = (writer.as_mut(), held.as_mut()) else {
                return;
            };
            let frontier = frontier.frontier();
            let mut written = 0u64;
            while let Some(entry) = pending.first_entry() {
                if frontier.less_equal(entry.key()) {
                    break;
                }
                let (epoch, batches) = entry.remove_entry();
                for batch in batches {
                    for event in EventReader::new(&batch.events) {
                        let event = context.check(event.map_err(anyhow::Error::from));
                        context.check(sink.write_record(event.value));
                        written += 1;
                    }
                }
                last_written = epoch;
            }
            if is_output {
                Counters::add(&context.counters.events_out, written);
            }
            if written > 0 || frontier.is_empty() {
                context.check(sink.flush());
            }
            unreported |= written > 0;
            let done = match frontier.iter().next() {
                Some(&next) if next > *cap.time() => Some(next - 1),
                Some(_) => None,
                None => Some(last_written.max(*cap.time())),
            };
            if let Some(epoch) = done.filter(|_| unreported && context.persistence.is_some()) {
                let part = SnapshotPart::Sink {
                    name: name.clone(),
                    length: sink.length(),
                };
                output.session(&cap.delayed(&epoch)).give(part);
                unreported = false;
            }
            match frontier.iter().next() {
                Some(&next) if next > *cap.time() => cap.downgrade(&next),
                Some(_) => {}
                None => held = None,
            }
        }
    });
    Ok(stream)
}
