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
        windows: Windows::of(spec.window),
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
    /// `None` for the global window.
    windows: Option<Windows>,
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

    fn window_end(&self, start: i64) -> i64 {
        self.windows.map_or(GLOBAL_WINDOW.1, |w| w.end(start))
    }

    /// Folds one complete epoch into the state and returns the events of the windows that
    /// the new watermark closes.
    fn complete_epoch(&mut self, batches: Vec<Batch>) -> Result<Vec<u8>> {
        let closed_through = self
            .windows
            .and_then(|w| w.closed_through(self.watermark()));
        let max_time_before = self.max_time;
        let (groups, late) = group_by_window(&batches, self.windows, closed_through)?;
        self.max_time = batches
            .iter()
            .map(|batch| batch.max_time)
            .fold(self.max_time, i64::max);
        Counters::add(&self.context.counters.late, late);
        self.unsaved |= !groups.is_empty() || self.max_time != max_time_before;
        self.fold(groups)?;
        match self
            .windows
            .and_then(|w| w.closed_through(self.watermark()))
        {
            Some(last) => self.close(last),
            None => Ok(Vec::new()),
        }
    }

    /// Calls the guest's `aggregate` over the groups, a bounded buffer at a time.
    fn fold(&mut self, groups: Groups<'_>) -> Result<()> {
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
                    self.state.put(*start, key, accumulator?);
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

/// Groups the values of the events in `batches` by (window start, key), leaving out windows
/// that started at or before `closed_through` (already closed). Also returns how many events
/// missed a window that way: an event counts once, however many sliding windows it missed.
fn group_by_window(
    batches: &[Batch],
    windows: Option<Windows>,
    closed_through: Option<i64>,
) -> Result<(Groups<'_>, u64)> {
    let mut groups = Groups::default();
    let mut late = 0;
    for batch in batches {
        for event in EventReader::new(&batch.events) {
            let event = event?;
            let key = event.key.unwrap_or_default();
            let Some(windows) = windows else {
                groups
                    .entry((GLOBAL_WINDOW.0, key))
                    .or_default()
                    .push(event.value);
                continue;
            };
            let mut missed = false;
            for start in windows.starts(event.time) {
                if closed_through.is_some_and(|last| start <= last) {
                    missed = true;
                } else {
                    groups.entry((start, key)).or_default().push(event.value);
                }
            }
            late += u64::from(missed);
        }
    }
    Ok((groups, late))
}

/// Values to fold, by (window start, key). Hashed with foldhash: SipHash was a tenth of the
/// time of a windowed aggregate, and the seed is still random per process.
type Groups<'a> = HashMap<(i64, &'a [u8]), Vec<&'a [u8]>, foldhash::fast::RandomState>;

/// Event-time windows of `size` ms that start every `slide` ms, aligned to the Unix epoch:
/// tumbling when the two are equal. Invariant (checked by graph validation): 0 < slide <= size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Windows {
    size: i64,
    slide: i64,
}

impl Windows {
    /// `None` for the global window.
    fn of(window: Window) -> Option<Self> {
        let ms = |ms: u64| i64::try_from(ms).unwrap_or(i64::MAX);
        match window {
            Window::Global => None,
            Window::Tumbling(size) => Some(Self {
                size: ms(size),
                slide: ms(size),
            }),
            Window::Sliding(w) => Some(Self {
                size: ms(w.size_ms),
                slide: ms(w.slide_ms),
            }),
        }
    }

    /// The starts of the windows that hold `time`, latest first. Windows that would start
    /// before `i64::MIN` are cut to start at it (the latest) or left out (the others).
    fn starts(self, time: i64) -> impl Iterator<Item = i64> {
        let offset = time.rem_euclid(self.slide);
        let latest = time.saturating_sub(offset);
        // Window `latest - k * slide` holds `time` while `k * slide < size - offset`.
        let count = if self.size == self.slide {
            1
        } else {
            (self.size - offset - 1) / self.slide + 1
        };
        (0..count).map_while(move |k| latest.checked_sub(k * self.slide))
    }

    fn end(self, start: i64) -> i64 {
        start.saturating_add(self.size)
    }

    /// The start of the latest window that `watermark` closes (whose end it has reached);
    /// `None` while it closes none.
    fn closed_through(self, watermark: i64) -> Option<i64> {
        watermark.checked_sub(self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::SlidingWindow;

    fn sliding(size_ms: u64, slide_ms: u64) -> Windows {
        Windows::of(Window::Sliding(SlidingWindow { size_ms, slide_ms })).unwrap()
    }

    fn starts(windows: Windows, time: i64) -> Vec<i64> {
        windows.starts(time).collect()
    }

    #[test]
    fn tumbling_windows_hold_each_time_once() {
        let hour = Windows::of(Window::Tumbling(3_600_000)).unwrap();
        assert_eq!(starts(hour, 0), [0]);
        assert_eq!(starts(hour, 3_599_999), [0]);
        assert_eq!(starts(hour, 3_600_000), [3_600_000]);
        assert_eq!(starts(hour, -1), [-3_600_000]);
        assert_eq!(hour.end(3_600_000), 7_200_000);
        assert_eq!(Windows::of(Window::Global), None);
    }

    #[test]
    fn sliding_windows_hold_each_time_size_over_slide_times() {
        let w = sliding(10_000, 2_000);
        assert_eq!(starts(w, 12_345), [12_000, 10_000, 8_000, 6_000, 4_000]);
        assert_eq!(starts(w, 12_000), [12_000, 10_000, 8_000, 6_000, 4_000]);
        // 2_000 is the end of window -8_000, so that window does not hold it.
        assert_eq!(starts(w, 2_000), [2_000, 0, -2_000, -4_000, -6_000]);
        assert_eq!(starts(w, -1), [-2_000, -4_000, -6_000, -8_000, -10_000]);
        assert_eq!(
            starts(w, -12_345),
            [-14_000, -16_000, -18_000, -20_000, -22_000]
        );
        for start in starts(w, 12_345) {
            assert!(start <= 12_345 && 12_345 < w.end(start), "window {start}");
        }
    }

    #[test]
    fn sliding_windows_whose_slide_does_not_divide_the_size() {
        let w = sliding(10, 4);
        // Windows [8, 18), [4, 14) and [0, 10) hold 9; [-4, 6) does not.
        assert_eq!(starts(w, 9), [8, 4, 0]);
        // Only [8, 18) and [4, 14) hold 10.
        assert_eq!(starts(w, 10), [8, 4]);
        assert_eq!(starts(w, -1), [-4, -8]);
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let w = sliding(10_000, 2_000);
        assert_eq!(starts(w, i64::MAX).len(), 5);
        assert_eq!(w.end(i64::MAX - 1), i64::MAX);
        // Window starts below i64::MIN are cut: the latest to i64::MIN, the rest left out.
        assert_eq!(starts(w, i64::MIN), [i64::MIN]);
        let huge = sliding(u64::MAX, 1);
        assert_eq!(huge.starts(0).next(), Some(0));
        assert_eq!(huge.starts(0).nth(3), Some(-3));
    }

    fn batch(events: &[(&[u8], i64, &[u8])]) -> Batch {
        let mut bytes = Vec::new();
        for &(key, time, value) in events {
            spillway_frame::write_event(&mut bytes, Some(key), time, value);
        }
        Batch {
            route: 0,
            max_time: events.iter().map(|e| e.1).max().unwrap_or(i64::MIN),
            events: bytes,
        }
    }

    /// The groups as `START KEY VALUES`, in order of window start, then key.
    fn sorted(groups: Groups<'_>) -> Vec<String> {
        let groups: BTreeMap<_, _> = groups.into_iter().collect();
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        groups
            .into_iter()
            .map(|((start, key), values)| {
                let values: Vec<String> = values.into_iter().map(text).collect();
                format!("{start} {} {}", text(key), values.join(","))
            })
            .collect()
    }

    #[test]
    fn events_are_grouped_into_every_open_sliding_window() {
        let batches = [
            batch(&[(b"a", 12_345, b"1"), (b"b", 5_000, b"2")]),
            batch(&[(b"a", 13_000, b"3")]),
        ];
        // Windows starting at or before 5_000 closed: 12_345 and 13_000 miss window 4_000 and
        // count as late; 5_000 misses all its windows (-4_000 to 4_000).
        let (groups, late) =
            group_by_window(&batches, Some(sliding(10_000, 2_000)), Some(5_000)).unwrap();
        assert_eq!(late, 3);
        assert_eq!(
            sorted(groups),
            ["6000 a 1,3", "8000 a 1,3", "10000 a 1,3", "12000 a 1,3"]
        );

        let (groups, late) = group_by_window(&batches, Some(sliding(10_000, 2_000)), None).unwrap();
        assert_eq!(late, 0);
        assert_eq!(
            sorted(groups),
            [
                "-4000 b 2",
                "-2000 b 2",
                "0 b 2",
                "2000 b 2",
                "4000 a 1,3",
                "4000 b 2",
                "6000 a 1,3",
                "8000 a 1,3",
                "10000 a 1,3",
                "12000 a 1,3",
            ]
        );
    }

    #[test]
    fn global_and_tumbling_windows_group_each_event_once() {
        let batches = [batch(&[
            (b"a", 999, b"1"),
            (b"a", 1_000, b"2"),
            (b"a", 7, b"3"),
        ])];
        let (groups, late) = group_by_window(&batches, None, None).unwrap();
        assert_eq!(late, 0);
        assert_eq!(sorted(groups), [format!("{} a 1,2,3", i64::MIN)]);
        let second = Windows::of(Window::Tumbling(1_000));
        let (groups, late) = group_by_window(&batches, second, Some(0)).unwrap();
        assert_eq!(late, 2);
        assert_eq!(sorted(groups), ["1000 a 2"]);
    }

    #[test]
    fn a_window_closes_when_the_watermark_reaches_its_end() {
        let w = sliding(10_000, 2_000);
        // Window [4_000, 14_000) closes at watermark 14_000, not before.
        assert_eq!(w.closed_through(13_999), Some(3_999));
        assert_eq!(w.closed_through(14_000), Some(4_000));
        assert_eq!(w.closed_through(i64::MIN), None);
        assert_eq!(w.closed_through(i64::MIN + 9_999), None);
        assert_eq!(w.closed_through(i64::MIN + 10_000), Some(i64::MIN));
    }
}
