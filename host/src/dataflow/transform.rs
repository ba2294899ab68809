//! A stateless transform: the guest turns each batch into a batch. A record it cannot handle,
//! because it rejects the record or faults on it, follows the job's error policy
//! ([`OnError`]): stop the job, skip the record, or describe it on a second stream for the
//! dead-letter sink.
//!
//! A fault (trap, deadline, memory, too many events) spoils the whole batch call, so the
//! batch is run again record by record on a fresh instance to find the records at fault;
//! the others go on as if nothing happened. A guest that faults on [`MAX_FAULTS_IN_A_ROW`]
//! records in a row is taken to be broken, not its input, and stops the job.

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use super::{Batch, BatchStream, Counters, WorkerContext};
use crate::config::OnError;
use crate::runtime::{CallError, GuestFault, GuestInstance, RecordError, truncate};

type Output = OutputBuilder<u64, CapacityContainerBuilder<Vec<Batch>>>;

/// Faults on consecutive records after which the job stops whatever the policy: each costs
/// a fresh instance and up to a whole CPU deadline.
pub const MAX_FAULTS_IN_A_ROW: usize = 5;

/// Characters of a record shown in messages.
const RECORD_SHOWN: usize = 200;

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
    builder.build(move |_capabilities| {
        move |_frontiers| {
            let _busy = context.busy();
            let mut output = output.activate();
            let mut rejects = rejects.activate();
            input.for_each(|cap, data| {
                for batch in data.drain(..) {
                    let (events, failures) = run_batch(&context, node, &batch.events);
                    if let Some(described) = apply_policy(&context, &name, &failures) {
                        let cap = cap.delayed(cap.least().unwrap(), 1);
                        rejects.session(&cap).give(described);
                    }
                    if !events.is_empty() {
                        let cap = cap.delayed(cap.least().unwrap(), 0);
                        let out = context.local_batch(events);
                        output.session(&cap).give(out);
                    }
                }
            });
        }
    });
    (stream, rejected_stream)
}

/// A record the transform could not handle.
struct Failure<'a> {
    record: &'a [u8],
    error: String,
    /// The guest faulted on it (rather than rejecting it).
    fault: bool,
}

/// Runs the guest over one batch: its output events, and the records it could not handle.
fn run_batch<'a>(
    context: &WorkerContext,
    node: u32,
    events: &'a [u8],
) -> (Vec<u8>, Vec<Failure<'a>>) {
    let mut guest = context.guest.borrow_mut();
    match guest.transform(node, events) {
        Ok(output) if output.errors.is_empty() => (output.events, Vec::new()),
        Ok(output) => {
            let records: Vec<&[u8]> = spillway_frame::EventReader::new(events)
                .map(|event| event.map_or(&b""[..], |e| e.value))
                .collect();
            (output.events, rejected(&records, output.errors))
        }
        Err(CallError::Failed(error)) => context.on_fatal.fail(error),
        Err(CallError::Fault(fault)) => isolate(context, &mut guest, node, events, fault),
    }
}

/// After a fault in a batch call, runs the batch again one record at a time, so that only
/// the records at fault fail.
fn isolate<'a>(
    context: &WorkerContext,
    guest: &mut GuestInstance,
    node: u32,
    events: &'a [u8],
    batch_fault: GuestFault,
) -> (Vec<u8>, Vec<Failure<'a>>) {
    let mut records = Vec::new();
    let mut reader = spillway_frame::EventReader::new(events);
    while let Some(event) = reader.next_raw() {
        let (event, framed) = context.check(event.map_err(anyhow::Error::from));
        records.push((event.value, framed));
    }
    if let [(value, _)] = records[..] {
        // A batch of one: the record is the one at fault.
        return (Vec::new(), vec![fault_failure(value, &batch_fault)]);
    }
    tracing::warn!(
        worker = context.index,
        "{batch_fault}; running its {} records again one by one to find the one at fault",
        records.len()
    );
    let (mut output, mut failures, mut in_a_row) = (Vec::new(), Vec::new(), 0);
    for (value, framed) in records {
        match guest.transform(node, framed) {
            Ok(result) => {
                in_a_row = 0;
                output.extend_from_slice(&result.events);
                failures.extend(rejected(&[value], result.errors));
            }
            Err(CallError::Failed(error)) => context.on_fatal.fail(error),
            Err(CallError::Fault(fault)) => {
                in_a_row += 1;
                failures.push(fault_failure(value, &fault));
                if context.config.on_error == OnError::Fail {
                    break;
                }
                if in_a_row >= MAX_FAULTS_IN_A_ROW {
                    context.on_fatal.fail(anyhow::anyhow!(
                        "{fault}, on {MAX_FAULTS_IN_A_ROW} records in a row (the last: \"{}\"); \
                         the guest looks broken rather than its input, so the job stops \
                         whatever --on-error says",
                        shown(value)
                    ));
                }
            }
        }
    }
    (output, failures)
}

fn fault_failure<'a>(record: &'a [u8], fault: &GuestFault) -> Failure<'a> {
    Failure {
        record,
        error: fault.to_string(),
        fault: true,
    }
}

/// The records the guest rejected, given the values of the call's input.
fn rejected<'a>(records: &[&'a [u8]], errors: Vec<RecordError>) -> Vec<Failure<'a>> {
    errors
        .into_iter()
        .map(|error| Failure {
            record: records
                .get(error.index as usize)
                .copied()
                .unwrap_or_default(),
            error: error.message,
            fault: false,
        })
        .collect()
}

/// Applies the error policy to `failures`: stops the job (`fail`), or counts and logs them,
/// and with `dead-letter` returns them described as JSON lines for the dead-letter sink.
fn apply_policy(context: &WorkerContext, node: &str, failures: &[Failure<'_>]) -> Option<Batch> {
    let first = failures.first()?;
    let policy = context.config.on_error;
    let line = |failure: &Failure<'_>| {
        if failure.fault {
            format!("{}, on record \"{}\"", failure.error, shown(failure.record))
        } else {
            format!(
                "operator `{node}` rejected record \"{}\": {}",
                shown(failure.record),
                failure.error
            )
        }
    };
    if policy == OnError::Fail {
        context
            .on_fatal
            .fail(anyhow::anyhow!("{} (--on-error fail)", line(first)));
    }
    Counters::add(&context.counters.rejected, failures.len() as u64);
    for failure in failures {
        if failure.fault {
            tracing::warn!(worker = context.index, "skipped: {}", line(failure));
        } else {
            tracing::info!(worker = context.index, "skipped: {}", line(failure));
        }
    }
    let mut first_rejection = context.counters.first_rejection.lock().unwrap();
    if first_rejection.is_none() {
        *first_rejection = Some(if first.fault {
            line(first)
        } else {
            format!(
                "`{node}` rejected \"{}\": {}",
                shown(first.record),
                first.error
            )
        });
    }
    drop(first_rejection);
    if policy != OnError::DeadLetter {
        return None;
    }
    let mut described = Vec::new();
    for failure in failures {
        let record = String::from_utf8_lossy(failure.record);
        let line = serde_json::json!({ "node": node, "error": failure.error, "record": record });
        spillway_frame::write_event(&mut described, None, 0, line.to_string().as_bytes());
    }
    Some(context.local_batch(described))
}

/// The start of a record, for messages.
fn shown(record: &[u8]) -> String {
    truncate(&String::from_utf8_lossy(record), RECORD_SHOWN)
}
