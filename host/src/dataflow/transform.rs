//! A stateless transform: the guest turns each batch into a batch. Records it rejects are
//! counted and, when a dead-letter sink is bound, described on a second stream.

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use super::{Batch, BatchStream, Counters, WorkerContext};
use crate::runtime::RecordError;

type Output = OutputBuilder<u64, CapacityContainerBuilder<Vec<Batch>>>;

/// Builds transform node `node`: its output and the stream of rejected records.
pub(super) fn build<'scope>(
    input: BatchStream<'scope>,
    context: &WorkerContext,
    node: u32,
) -> (BatchStream<'scope>, BatchStream<'scope>) {
    let name = context.module.node_name(node).to_owned();
    let mut builder = OperatorBuilder::new(format!("transform {name}"), input.scope());
    let mut input = builder.new_input(input, Exchange::new(|batch: &Batch| u64::from(batch.route)));
    let (output, stream) = builder.new_output::<Vec<Batch>>();
    let (rejects, rejected_stream) = builder.new_output::<Vec<Batch>>();
    let mut output = Output::from(output);
    let mut rejects = Output::from(rejects);
    let context = context.clone();
    let keep_rejects = context.config.dead_letter.is_some();
    builder.build(move |_capabilities| {
        move |_frontiers| {
            let mut output = output.activate();
            let mut rejects = rejects.activate();
            input.for_each(|cap, data| {
                for batch in data.drain(..) {
                    let result = context.guest.borrow_mut().transform(node, &batch.events);
                    let result = context.check(result);
                    if !result.errors.is_empty() {
                        let described = reject(&context, &name, &batch.events, &result.errors);
                        if keep_rejects {
                            let cap = cap.delayed(cap.least().unwrap(), 1);
                            rejects.session(&cap).give(described);
                        }
                    }
                    if !result.events.is_empty() {
                        let cap = cap.delayed(cap.least().unwrap(), 0);
                        let out = context.local_batch(result.events);
                        output.session(&cap).give(out);
                    }
                }
            });
        }
    });
    (stream, rejected_stream)
}

/// Counts rejected records and describes each as a JSON line for the dead-letter sink.
fn reject(context: &WorkerContext, node: &str, events: &[u8], errors: &[RecordError]) -> Batch {
    Counters::add(&context.counters.rejected, errors.len() as u64);
    let records: Vec<&[u8]> = spillway_frame::EventReader::new(events)
        .map(|event| event.map_or(&b""[..], |e| e.value))
        .collect();
    let mut described = Vec::new();
    for error in errors {
        let record = records
            .get(error.index as usize)
            .copied()
            .unwrap_or_default();
        let record = String::from_utf8_lossy(record);
        let line = serde_json::json!({ "node": node, "error": error.message, "record": record });
        spillway_frame::write_event(&mut described, None, 0, line.to_string().as_bytes());
    }
    let mut first = context.counters.first_rejection.lock().unwrap();
    if first.is_none() {
        let error = &errors[0];
        let record = records
            .get(error.index as usize)
            .copied()
            .unwrap_or_default();
        let shown: String = String::from_utf8_lossy(record).chars().take(120).collect();
        *first = Some(format!("`{node}` rejected \"{shown}\": {}", error.message));
    }
    context.local_batch(described)
}
