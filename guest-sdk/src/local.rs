//! [`run`]: runs a pipeline in-process over bounded inputs, to test it natively.
//!
//! This is a small stand-in for the host, not the host: it goes through the same
//! `run_*` calls and framing, in batches, but it has one worker, keeps accumulators in
//! memory, never drops an event as late, folds each event into every window that holds its
//! time (several for sliding windows), and closes every window when the input ends, in order
//! of window start, then key.

use std::collections::BTreeMap;

use spillway_frame::{
    BytesReader, Closing, EventReader, write_bytes, write_closing, write_event, write_group_head,
};

use crate::wit::{GuestError, Operator};
use crate::{Pipeline, Window};

/// Events per batch handed to one call.
const BATCH: usize = 256;

/// What a local run produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LocalRun {
    /// The records written to each sink, by sink name.
    pub sinks: BTreeMap<String, Vec<Vec<u8>>>,
    /// The records that transforms rejected.
    pub rejected: Vec<Rejected>,
}

/// A record that a transform rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The name of the transform.
    pub node: String,
    /// The index of the record among all the records that reached this node.
    pub index: u64,
    pub message: String,
}

/// Runs `pipeline` over bounded `sources`, given as (source name, records).
///
/// # Errors
///
/// What a host would stop the job for: a call that fails, a source without records given,
/// an event without a key at an aggregate, or an output that breaks the contract.
///
/// # Examples
///
/// ```
/// use spillway_guest::{Pipeline, local};
///
/// let p = Pipeline::new();
/// p.source("in").transform("len", |e, out| out.emit(None, 0, &[e.value.len() as u8])).sink("out");
/// let run = local::run(&p, &[("in", &[b"abc".as_slice(), b"de"])]).unwrap();
/// assert_eq!(run.sinks["out"], vec![vec![3], vec![2]]);
/// ```
pub fn run(pipeline: &Pipeline, sources: &[(&str, &[&[u8]])]) -> Result<LocalRun, GuestError> {
    let fail = |message: String| GuestError { message };
    let graph = pipeline.graph();
    let mut outputs: Vec<Vec<u8>> = Vec::with_capacity(graph.nodes.len());
    let mut result = LocalRun::default();
    for (index, node) in graph.nodes.iter().enumerate() {
        let index = index as u32;
        let input = match node.inputs.first() {
            Some(&i) => outputs
                .get(i as usize)
                .map(Vec::as_slice)
                .ok_or_else(|| fail(format!("node {index} reads node {i}, which comes later")))?,
            None => &[],
        };
        let output = match &node.op {
            Operator::Source(name) => {
                let (_, records) = sources
                    .iter()
                    .find(|(source, _)| source == name)
                    .ok_or_else(|| fail(format!("no records given for source {name:?}")))?;
                let mut batch = Vec::new();
                for record in records.iter() {
                    write_event(&mut batch, None, 0, record);
                }
                batch
            }
            Operator::Transform => {
                let mut output = Vec::new();
                let mut first = 0u64;
                for chunk in chunks(input)? {
                    let out = pipeline.run_transform(index, &chunk.bytes)?;
                    check_events(&out.events)?;
                    output.extend_from_slice(&out.events);
                    for error in out.errors {
                        result.rejected.push(Rejected {
                            node: node.name.clone(),
                            index: first + u64::from(error.index),
                            message: error.message,
                        });
                    }
                    first += chunk.count as u64;
                }
                output
            }
            Operator::Aggregate(spec) => aggregate(pipeline, index, Window(spec.window), input)?,
            Operator::Sink(name) => {
                let records = result.sinks.entry(name.clone()).or_default();
                for event in EventReader::new(input) {
                    records.push(event.map_err(|e| fail(e.to_string()))?.value.to_vec());
                }
                Vec::new()
            }
        };
        outputs.push(output);
    }
    Ok(result)
}

struct Chunk {
    bytes: Vec<u8>,
    count: usize,
}

/// Splits an event batch into batches of at most [`BATCH`] events.
fn chunks(batch: &[u8]) -> Result<Vec<Chunk>, GuestError> {
    let mut chunks = Vec::new();
    let mut current = Chunk {
        bytes: Vec::new(),
        count: 0,
    };
    let mut reader = EventReader::new(batch);
    while let Some(event) = reader.next_raw() {
        let (_, raw) = event.map_err(|e| GuestError {
            message: e.to_string(),
        })?;
        current.bytes.extend_from_slice(raw);
        current.count += 1;
        if current.count == BATCH {
            chunks.push(std::mem::replace(
                &mut current,
                Chunk {
                    bytes: Vec::new(),
                    count: 0,
                },
            ));
        }
    }
    if current.count > 0 {
        chunks.push(current);
    }
    Ok(chunks)
}

fn check_events(batch: &[u8]) -> Result<(), GuestError> {
    for event in EventReader::new(batch) {
        event.map_err(|e| GuestError {
            message: format!("output of a transform: {e}"),
        })?;
    }
    Ok(())
}

/// A window of one key that is still open, by (window start, key).
struct Open {
    end: i64,
    accumulator: Option<Vec<u8>>,
}

fn aggregate(
    pipeline: &Pipeline,
    index: u32,
    window: Window,
    input: &[u8],
) -> Result<Vec<u8>, GuestError> {
    let fail = |message: String| GuestError { message };
    let mut state: BTreeMap<(i64, Vec<u8>), Open> = BTreeMap::new();
    for chunk in chunks(input)? {
        let mut groups: BTreeMap<(i64, &[u8]), Vec<&[u8]>> = BTreeMap::new();
        for event in EventReader::new(&chunk.bytes) {
            let event = event.map_err(|e| fail(e.to_string()))?;
            let key = event.key.ok_or_else(|| {
                fail(format!(
                    "node {index}: an event without a key reached an aggregate"
                ))
            })?;
            for bounds in window.windows_of(event.time) {
                state.entry((bounds.start, key.to_vec())).or_insert(Open {
                    end: bounds.end,
                    accumulator: None,
                });
                groups
                    .entry((bounds.start, key))
                    .or_default()
                    .push(event.value);
            }
        }
        let mut batch = Vec::new();
        for ((start, key), values) in &groups {
            let acc = state[&(*start, key.to_vec())].accumulator.as_deref();
            write_group_head(&mut batch, key, *start, acc, values.len() as u32);
            for value in values {
                write_bytes(&mut batch, value);
            }
        }
        let accs = pipeline.run_aggregate(index, &batch)?;
        let mut accs = BytesReader::new(&accs);
        for (start, key) in groups.keys() {
            let acc = accs
                .next()
                .ok_or_else(|| fail(format!("node {index}: fewer accumulators than groups")))?
                .map_err(|e| fail(e.to_string()))?;
            state
                .get_mut(&(*start, key.to_vec()))
                .expect("group in state")
                .accumulator = Some(acc.to_vec());
        }
        if accs.next().is_some() {
            return Err(fail(format!("node {index}: more accumulators than groups")));
        }
    }
    let mut closings = Vec::new();
    for ((start, key), open) in &state {
        let accumulator = open.accumulator.as_deref().expect("every group was folded");
        let closing = Closing {
            key,
            window_start: *start,
            window_end: open.end,
            accumulator,
        };
        write_closing(&mut closings, &closing);
    }
    let output = pipeline.run_finish(index, &closings)?;
    check_events(&output)?;
    Ok(output)
}
