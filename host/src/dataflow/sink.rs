//! A named sink: every batch goes to worker 0, which writes each event's value as one line.

use anyhow::Result;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

use super::{Batch, BatchStream, Counters, WorkerContext};
use crate::config::SinkBinding;
use crate::connectors::LineSink;

/// Builds sink `name`. Its records count as job output when `is_output`.
pub(super) fn build(
    input: BatchStream<'_>,
    context: &WorkerContext,
    name: &str,
    binding: &SinkBinding,
    is_output: bool,
) -> Result<()> {
    let mut writer = if context.index == 0 {
        Some(LineSink::create(binding)?)
    } else {
        None
    };
    let context = context.clone();
    input.sink(
        Exchange::new(|_: &Batch| 0),
        &format!("sink {name}"),
        move |(input, frontier)| {
            let Some(sink) = writer.as_mut() else { return };
            let mut written = 0u64;
            input.for_each(|_cap, data| {
                for batch in data.drain(..) {
                    for event in spillway_frame::EventReader::new(&batch.events) {
                        let event = context.check(event.map_err(anyhow::Error::from));
                        context.check(sink.write_record(event.value));
                        written += 1;
                    }
                }
            });
            if is_output {
                Counters::add(&context.counters.events_out, written);
            }
            if written > 0 || frontier.is_empty() {
                context.check(sink.flush());
            }
        },
    );
    Ok(())
}
