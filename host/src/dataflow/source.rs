//! A named source: one worker reads the bound connector, cuts it into batches and epochs, and
//! deals the batches round-robin to all workers.

use std::time::{Duration, Instant};

use anyhow::Result;
use timely::dataflow::Scope;
use timely::dataflow::operators::generic::operator::source;

use super::{Batch, BatchStream, Counters, WorkerContext};
use crate::config::SourceBinding;
use crate::connectors::LineSource;

/// Batches read per activation before yielding to the other operators.
const BATCHES_PER_ACTIVATION: usize = 16;

/// Builds source `name`, read by worker `reader`; every other worker's instance is empty.
pub(super) fn build<'scope>(
    scope: Scope<'scope, u64>,
    context: &WorkerContext,
    name: &str,
    binding: &SourceBinding,
    reader: usize,
) -> Result<BatchStream<'scope>> {
    let mut lines = if scope.index() == reader {
        Some(LineSource::open(binding)?)
    } else {
        None
    };
    let context = context.clone();
    let epochs = context.config.epochs.clone();
    let epoch_length = Duration::from_millis(epochs.max_ms);
    let peers = scope.peers() as u64;
    let stream = source(scope, &format!("source {name}"), move |capability, info| {
        let activator = scope.activator_for(info.address);
        let mut capability = lines.is_some().then_some(capability);
        let mut sequence = 0u64;
        let mut epoch_records = 0u64;
        let mut epoch_start = Instant::now();
        move |output| {
            let (Some(cap), Some(reader)) = (capability.as_mut(), lines.as_mut()) else {
                return;
            };
            for _ in 0..BATCHES_PER_ACTIVATION {
                let mut events = Vec::new();
                let count = context.check(reader.read_batch(epochs.batch_size, &mut events));
                if count == 0 {
                    capability = None;
                    lines = None;
                    return;
                }
                Counters::add(&context.counters.events_in, count as u64);
                let route = (sequence % peers) as u32;
                sequence += 1;
                output.session(&*cap).give(Batch {
                    route,
                    max_time: i64::MIN,
                    events,
                });
                epoch_records += count as u64;
                if epoch_records >= epochs.max_records || epoch_start.elapsed() >= epoch_length {
                    let next = *cap.time() + 1;
                    cap.downgrade(&next);
                    epoch_records = 0;
                    epoch_start = Instant::now();
                }
            }
            activator.activate();
        }
    });
    Ok(stream)
}
