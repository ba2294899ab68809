//! A keyed aggregate with event-time windows.
//!
//! Events are routed to the worker that owns their key group. The aggregate stashes each
//! epoch's batches and folds them only once the epoch is complete, in epoch order, so the
//! result never depends on how batches interleave. After each epoch the watermark (largest
//! event time seen by any worker, minus the allowed out-of-orderness) closes windows, and the
//! guest turns closed windows into output events. At the end of the input every window closes.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result, anyhow, bail};
use spillway_frame::{BytesReader, Closing, EventReader, GLOBAL_WINDOW};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;

use super::WorkerContext;
use super::{Batch, BatchOutput, BatchStream, Counters, PartOutput, PartStream, SnapshotPart};
use crate::runtime::{AggregateSpec, Window};
use crate::state::{WindowedState, snapshot};

/// Largest group or closing buffer handed to the guest in one call.
const MAX_CALL_BYTES: usize = 1 << 20;

/// Builds aggregate node `node` over `input`: its output events, and its snapshot shares.
pub(super) fn build<'scope>(
    input: BatchStream<'scope>,
    context: &WorkerContext,
    node: u32,
    spec: &AggregateSpec,
) -> Result<(BatchStream<'scope>, PartStream<'scope>)> {
    let name = context.module.node_name(node).to_owned();
    let windowed = !matches!(spec.window, Window::Global);
    let routed = route_by_key(input, context, &name, windowed);
    let mut aggregate = Aggregate {
        context: context.clone(),
        node,
        name: name.clone(),
        window_ms: match spec.window {
            Window::Global => None,
            Window::Tumbling(ms) => Some(i64::try_from(ms).unwrap_or(i64::MAX)),
        },
        out_of_orderness: i64::try_from(spec.max_out_of_orderness_ms).unwrap_or(i64::MAX),
        max_time: i64::MIN,
        state: WindowedState::default(),
        unsaved: true,
    };
    aggregate.restore()?;
    let context = context.clone();
    let mut builder = OperatorBuilder::new(format!("aggregate {name}"), routed.scope());
    let pact = Exchange::new(|batch: &Batch| u64::from(batch.route));
    let mut input = builder.new_input(routed, pact);
    let (events, event_stream) = builder.new_output::<Vec<Batch>>();
    let (parts, part_stream) = builder.new_output::<Vec<SnapshotPart>>();
    let mut events = BatchOutput::from(events);
    let mut parts = PartOutput::from(parts);
    builder.build(move |mut capabilities| {
        let mut pending: BTreeMap<u64, (Capability<u64>, Vec<Batch>)> = BTreeMap::new();
        // Kept at the input frontier, to emit at the end of the input and to report state.
        let mut held = Some((capabilities.remove(0), capabilities.remove(0)));
        move |frontiers| {
            let _busy = context.busy();
            let mut events = events.activate();
            let mut parts = parts.activate();
            input.for_each(|cap, data| {
                let Some(&time) = cap.least() else { return };
                let entry = pending
                    .entry(time)
                    .or_insert_with(|| (cap.delayed(&time, 0), Vec::new()));
                entry.1.append(data);
            });
            let Some((events_cap, parts_cap)) = held.as_mut() else {
                return;
            };
            let frontier = frontiers[0].frontier();
            while let Some(entry) = pending.first_entry() {
                if frontier.less_equal(entry.key()) {
                    break;
                }
                let (cap, batches) = entry.remove();
                let output = context.check(aggregate.complete_epoch(batches));
                if !output.is_empty() {
                    events.session(&cap).give(context.local_batch(output));
                }
            }
            let done = match frontier.iter().next() {
                Some(&next) if next > *parts_cap.time() => Some(next - 1),
                Some(_) => None,
                None => {
                    if context.config.input_is_bounded() && !context.pause_requested() {
                        let output = context.check(aggregate.close(i64::MAX));
                        if !output.is_empty() {
                            events
                                .session(&*events_cap)
                                .give(context.local_batch(output));
                        }
                    }
                    Some(*parts_cap.time())
                }
            };
            if let Some(epoch) = done.filter(|&e| e >= context.first_epoch())
                && let Some(part) = aggregate.save(epoch)
            {
                parts.session(&parts_cap.delayed(&epoch)).give(part);
            }
            match frontier.iter().next() {
                Some(&next) if next > *parts_cap.time() => {
                    events_cap.downgrade(&next);
                    parts_cap.downgrade(&next);
                }
                Some(_) => {}
                None => held = None,
            }
        }
    });
    Ok((event_stream, part_stream))
}

/// Sends each event to the worker owning its key's group. For windowed aggregates every
/// worker also hears of each batch's largest event time, which drives the watermark.
fn route_by_key<'scope>(
    input: BatchStream<'scope>,
    context: &WorkerContext,
    name: &str,
    windowed: bool,
) -> BatchStream<'scope> {
    let context = context.clone();
    let name = name.to_owned();
    let pact = Exchange::new(|batch: &Batch| u64::from(batch.route));
    input.unary(pact, &format!("route {name}"), move |_, _| {
        let peers = context.config.workers();
        let mut outgoing: Vec<Vec<u8>> = vec![Vec::new(); peers];
        move |input, output| {
            let _busy = context.busy();
            input.for_each(|cap, data| {
                let cap = cap.retain_least(0).expect("batches carry a time");
                let mut session = output.session(&cap);
                for batch in data.drain(..) {
                    let mut max_time = i64::MIN;
                    let mut reader = EventReader::new(&batch.events);
                    while let Some(event) = reader.next_raw() {
                        let (event, raw) = context.check(event.map_err(anyhow::Error::from));
                        let Some(key) = event.key else {
                            context.on_fatal.fail(anyhow!(
                                "aggregate `{name}` received an event without a key; \
                                 key events in the transform before it"
                            ));
                        };
                        outgoing[context.key_groups.owner_of_key(key)].extend_from_slice(raw);
                        max_time = max_time.max(event.time);
                    }
                    for (route, events) in outgoing.iter_mut().enumerate() {
                        if !events.is_empty() || (windowed && max_time > i64::MIN) {
                            let events = std::mem::take(events);
                            session.give(Batch {
                                route: route as u32,
                                max_time,
                                events,
                            });
                        }
                    }
                }
            });
        }
    })
}

/// The state and logic of one aggregate node on one worker.
struct Aggregate {
    context: WorkerContext,
    node: u32,
    name: String,
    /// Tumbling window size; `None` for the global window.
    window_ms: Option<i64>,
    out_of_orderness: i64,
    /// Largest event time seen by any worker in completed epochs.
    max_time: i64,
    state: WindowedState,
    /// Whether the state changed since it was last written to the snapshot store.
    unsaved: bool,
}

impl Aggregate {
    /// Loads this worker's key groups from the snapshot the run resumes from.
    fn restore(&mut self) -> Result<()> {
        let (Some(persistence), Some(manifest)) = (
            self.context.persistence.as_ref(),
            self.context.resumed_manifest(),
        ) else {
            return Ok(());
        };
        let objects = manifest
            .operators
            .get(&self.name)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let groups = self.context.key_groups.range(self.context.index);
        self.max_time =
            snapshot::restore_state(&persistence.store, objects, groups, &mut self.state)
                .with_context(|| format!("cannot restore aggregate `{}`", self.name))?;
        Ok(())
    }

    /// Writes the state, if it changed, as this worker's share of the snapshot of `epoch`.
    /// A failed write is logged and tried again at the next epoch; the job goes on.
    fn save(&mut self, epoch: u64) -> Option<SnapshotPart> {
        let persistence = self.context.persistence.as_ref()?;
        if !self.unsaved {
            return None;
        }
        let workers = self.context.config.workers();
        let worker = self.context.index;
        let path = format!(
            "state/g{}/n{}/w{worker}-of-{workers}/{epoch:020}.bin",
            persistence.generation, self.node
        );
        let groups = self.context.key_groups.range(worker);
        let key_groups = self.context.key_groups.groups();
        let (object, bytes) =
            snapshot::encode_state(&self.state, key_groups, groups, path, self.max_time);
        if let Err(error) = persistence.store.put(&object.path, bytes) {
            tracing::warn!(
                "snapshot of `{}` at epoch {epoch} not written, will retry: {error:#}",
                self.name
            );
            return None;
        }
        self.unsaved = false;
        Some(SnapshotPart::State {
            node: self.name.clone(),
            worker: worker as u32,
            object,
        })
    }

    fn watermark(&self) -> i64 {
        self.max_time.saturating_sub(self.out_of_orderness)
    }

    fn window_start(&self, time: i64) -> i64 {
        match self.window_ms {
            Some(size) => time - time.rem_euclid(size),
            None => GLOBAL_WINDOW.0,
        }
    }

    fn window_end(&self, start: i64) -> i64 {
        self.window_ms
            .map_or(GLOBAL_WINDOW.1, |size| start.saturating_add(size))
    }

    /// Folds one complete epoch into the state and returns the events of the windows that
    /// the new watermark closes.
    fn complete_epoch(&mut self, batches: Vec<Batch>) -> Result<Vec<u8>> {
        let closed_before = self.watermark();
        let max_time_before = self.max_time;
        let mut groups: HashMap<(i64, &[u8]), Vec<&[u8]>> = HashMap::new();
        let mut late = 0;
        for batch in &batches {
            self.max_time = self.max_time.max(batch.max_time);
            for event in EventReader::new(&batch.events) {
                let event = event?;
                let key = event.key.unwrap_or_default();
                let start = self.window_start(event.time);
                if self.window_ms.is_some() && self.window_end(start) <= closed_before {
                    late += 1;
                    continue;
                }
                groups.entry((start, key)).or_default().push(event.value);
            }
        }
        Counters::add(&self.context.counters.late, late);
        self.unsaved |= !groups.is_empty() || self.max_time != max_time_before;
        self.fold(groups)?;
        match self.window_ms {
            Some(size) => self.close(self.watermark().saturating_sub(size)),
            None => Ok(Vec::new()),
        }
    }

    /// Calls the guest's `aggregate` over the groups, a bounded buffer at a time.
    fn fold(&mut self, groups: HashMap<(i64, &[u8]), Vec<&[u8]>>) -> Result<()> {
        let mut buffer = Vec::new();
        let mut ids = Vec::new();
        let total = groups.len();
        for (index, ((start, key), values)) in groups.into_iter().enumerate() {
            let accumulator = self.state.get(start, key);
            spillway_frame::write_group_head(
                &mut buffer,
                key,
                start,
                accumulator,
                values.len() as u32,
            );
            for value in values {
                spillway_frame::write_bytes(&mut buffer, value);
            }
            ids.push((start, key));
            if buffer.len() >= MAX_CALL_BYTES || index + 1 == total {
                let accumulators = self
                    .context
                    .guest
                    .borrow_mut()
                    .aggregate(self.node, &buffer)?;
                let mut returned = 0;
                for (accumulator, (start, key)) in BytesReader::new(&accumulators).zip(&ids) {
                    self.state.put(*start, key, accumulator?.to_vec());
                    returned += 1;
                }
                if returned != ids.len() {
                    bail!(
                        "aggregate `{}` returned {returned} accumulators for {} groups",
                        self.context.module.node_name(self.node),
                        ids.len()
                    );
                }
                buffer.clear();
                ids.clear();
            }
        }
        Ok(())
    }

    /// Closes every window starting at or before `last_start` and returns the guest's events.
    fn close(&mut self, last_start: i64) -> Result<Vec<u8>> {
        let mut events = Vec::new();
        let mut buffer = Vec::new();
        let mut flush = |buffer: &mut Vec<u8>| -> Result<()> {
            let out = self.context.guest.borrow_mut().finish(self.node, buffer)?;
            events.extend_from_slice(&out);
            buffer.clear();
            Ok(())
        };
        let closed = self.state.close_through(last_start);
        self.unsaved |= !closed.is_empty();
        for window in closed {
            let end = self.window_end(window.start);
            for (key, accumulator) in &window.entries {
                let closing = Closing {
                    key,
                    window_start: window.start,
                    window_end: end,
                    accumulator,
                };
                spillway_frame::write_closing(&mut buffer, &closing);
                if buffer.len() >= MAX_CALL_BYTES {
                    flush(&mut buffer)?;
                }
            }
        }
        if !buffer.is_empty() {
            flush(&mut buffer)?;
        }
        Ok(events)
    }
}
