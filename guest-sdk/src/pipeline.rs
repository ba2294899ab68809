//! [`Pipeline`], the graph a guest declares, and [`Stream`], the builder that declares it.

use std::cell::RefCell;
use std::fmt;

use spillway_frame::{Event, EventReader, FrameError};

use crate::aggregate::ErasedAggregator;
use crate::wit::{self, Graph, GuestError, RecordError, TransformOutput};
use crate::{Aggregator, Emitter, Window};

/// The pipeline graph of a guest, and the code of its nodes.
///
/// A guest declares it once per instance in the function given to
/// [`export_pipeline!`](crate::export_pipeline): start at [`Pipeline::source`] and chain
/// [`Stream`] methods. The `run_*` methods are what the exported functions call; they are
/// public so that a pipeline can be tested natively with hand-framed batches.
pub struct Pipeline {
    nodes: RefCell<Vec<Node>>,
}

struct Node {
    name: String,
    input: Option<u32>,
    op: Op,
}

/// A transform over a whole batch: the per-event closure is monomorphised into the loop.
type BatchTransform = dyn Fn(&[u8]) -> Result<TransformOutput, FrameError>;

enum Op {
    Source(String),
    Transform(Box<BatchTransform>),
    Aggregate {
        window: Window,
        max_out_of_orderness_ms: u64,
        aggregator: Box<dyn ErasedAggregator>,
    },
    Sink(String),
}

impl Op {
    fn kind(&self) -> &'static str {
        match self {
            Op::Source(_) => "a source",
            Op::Transform(_) => "a transform",
            Op::Aggregate { .. } => "an aggregate",
            Op::Sink(_) => "a sink",
        }
    }
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes = self.nodes.borrow();
        let mut list = f.debug_list();
        for node in nodes.iter() {
            list.entry(&format_args!(
                "{} ({}) <- {:?}",
                node.name,
                node.op.kind(),
                node.input
            ));
        }
        list.finish()
    }
}

impl Default for Pipeline {
    fn default() -> Self {
        Self::new()
    }
}

impl Pipeline {
    /// An empty pipeline.
    pub fn new() -> Self {
        Self {
            nodes: RefCell::new(Vec::new()),
        }
    }

    /// The pipeline that `build` declares.
    pub fn build(build: impl FnOnce(&mut Pipeline)) -> Self {
        let mut pipeline = Self::new();
        build(&mut pipeline);
        pipeline
    }

    /// Declares a source: a named input, bound by the host with `--source NAME=...`. Each of
    /// its events has no key, time 0, and one record of the connector as value.
    ///
    /// # Panics
    ///
    /// If another node already has this name.
    pub fn source(&self, name: &str) -> Stream<'_> {
        let node = self.push(name, None, Op::Source(name.to_string()));
        Stream {
            pipeline: self,
            node,
        }
    }

    /// The number of nodes declared so far.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// Whether no node has been declared.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&self, name: &str, input: Option<u32>, op: Op) -> u32 {
        let mut nodes = self.nodes.borrow_mut();
        assert!(
            nodes.iter().all(|node| node.name != name),
            "spillway: two nodes are named {name:?}; give each source, transform, aggregate and \
             sink a name of its own"
        );
        let index = u32::try_from(nodes.len()).expect("too many nodes");
        nodes.push(Node {
            name: name.to_string(),
            input,
            op,
        });
        index
    }

    /// The graph, as `describe` returns it: nodes in order of declaration.
    pub fn graph(&self) -> Graph {
        let nodes = self.nodes.borrow();
        let nodes = nodes
            .iter()
            .map(|node| wit::Node {
                name: node.name.clone(),
                op: match &node.op {
                    Op::Source(name) => wit::Operator::Source(name.clone()),
                    Op::Transform(_) => wit::Operator::Transform,
                    Op::Aggregate {
                        window,
                        max_out_of_orderness_ms,
                        ..
                    } => wit::Operator::Aggregate(wit::AggregateSpec {
                        window: window.0,
                        max_out_of_orderness_ms: *max_out_of_orderness_ms,
                    }),
                    Op::Sink(name) => wit::Operator::Sink(name.clone()),
                },
                inputs: node.input.into_iter().collect(),
            })
            .collect();
        Graph { nodes }
    }

    /// Runs transform node `node` over an event batch (the `transform` export).
    ///
    /// # Errors
    ///
    /// If `node` is not a transform, or the batch is malformed. A record that the transform
    /// rejects is not an error of the call: it is listed in `errors` of the output.
    pub fn run_transform(&self, node: u32, events: &[u8]) -> Result<TransformOutput, GuestError> {
        self.with_node(node, |node| match &node.op {
            Op::Transform(run) => run(events).map_err(|e| e.to_string()),
            other => Err(format!("is {}, not a transform", other.kind())),
        })
    }

    /// Folds groups into accumulators for aggregate node `node` (the `aggregate` export):
    /// one accumulator per group, in input order.
    ///
    /// # Errors
    ///
    /// If `node` is not an aggregate, the batch is malformed, or an accumulator cannot be
    /// decoded or encoded.
    pub fn run_aggregate(&self, node: u32, groups: &[u8]) -> Result<Vec<u8>, GuestError> {
        self.with_node(node, |node| match &node.op {
            Op::Aggregate { aggregator, .. } => aggregator.aggregate(groups),
            other => Err(format!("is {}, not an aggregate", other.kind())),
        })
    }

    /// Turns closed windows of aggregate node `node` into an event batch (the `finish`
    /// export).
    ///
    /// # Errors
    ///
    /// As [`Pipeline::run_aggregate`].
    pub fn run_finish(&self, node: u32, closings: &[u8]) -> Result<Vec<u8>, GuestError> {
        self.with_node(node, |node| match &node.op {
            Op::Aggregate { aggregator, .. } => aggregator.finish(closings),
            other => Err(format!("is {}, not an aggregate", other.kind())),
        })
    }

    fn with_node<T>(
        &self,
        index: u32,
        run: impl FnOnce(&Node) -> Result<T, String>,
    ) -> Result<T, GuestError> {
        let nodes = self.nodes.borrow();
        let Some(node) = nodes.get(index as usize) else {
            let message = format!("node {index} does not exist; the graph has {}", nodes.len());
            return Err(GuestError { message });
        };
        run(node).map_err(|message| GuestError {
            message: format!("node {index} ({:?}) {message}", node.name),
        })
    }
}

/// The output of one node, to be fed into the next: a cheap handle that can be copied to
/// feed several nodes (fan-out).
///
/// # Examples
///
/// ```
/// use spillway_guest::Pipeline;
///
/// let p = Pipeline::new();
/// let lines = p.source("lines");
/// let upper = lines.transform("upper", |event, out| {
///     out.emit(None, event.time, &event.value.to_ascii_uppercase());
/// });
/// upper.sink("shouting");
/// lines.sink("copy");
/// assert_eq!(p.graph().nodes.len(), 4);
/// ```
#[derive(Clone, Copy)]
pub struct Stream<'p> {
    pipeline: &'p Pipeline,
    node: u32,
}

impl fmt::Debug for Stream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream").field("node", &self.node).finish()
    }
}

impl<'p> Stream<'p> {
    /// The index of the node that produces this stream.
    pub fn node(&self) -> u32 {
        self.node
    }

    /// Declares a stateless transform: `f` is called once per input event and writes zero
    /// or more output events to the [`Emitter`]. Map, filter, flat-map, key-by and
    /// event-time assignment are all transforms.
    ///
    /// `f` returns `()` or a `Result<(), E>` with `E: Display`. An `Err` rejects that one
    /// record: whatever `f` emitted for it is dropped, the host is told the record's index
    /// and the error's message, and the batch goes on.
    ///
    /// # Panics
    ///
    /// If another node already has this name.
    pub fn transform<F, R>(self, name: &str, f: F) -> Stream<'p>
    where
        F: Fn(Event<'_>, &mut Emitter) -> R + 'static,
        R: RecordOutcome,
    {
        let run = move |batch: &[u8]| transform_batch(&f, batch);
        self.then(name, Op::Transform(Box::new(run)))
    }

    /// Declares a keyed aggregate over the key of each input event (an event without a
    /// key is an error), grouped into `window`s of event time. The watermark trails the
    /// largest event time seen by `max_out_of_orderness_ms`; events behind it are dropped
    /// as late. See [`Aggregator`].
    ///
    /// # Panics
    ///
    /// If another node already has this name.
    pub fn aggregate<A: Aggregator>(
        self,
        name: &str,
        window: Window,
        max_out_of_orderness_ms: u64,
        aggregator: A,
    ) -> Stream<'p> {
        let aggregator = Box::new(aggregator);
        self.then(
            name,
            Op::Aggregate {
                window,
                max_out_of_orderness_ms,
                aggregator,
            },
        )
    }

    /// Declares a sink: a named output, bound by the host with `--sink NAME=...`, which
    /// writes the value of each event as one record.
    ///
    /// # Panics
    ///
    /// If another node already has this name.
    pub fn sink(self, name: &str) {
        self.then(name, Op::Sink(name.to_string()));
    }

    fn then(self, name: &str, op: Op) -> Stream<'p> {
        let node = self.pipeline.push(name, Some(self.node), op);
        Stream {
            pipeline: self.pipeline,
            node,
        }
    }
}

/// What a transform closure returns for one record: `()` (always accepted) or
/// `Result<(), E>` where `E: Display` (an `Err` rejects the record with that message).
pub trait RecordOutcome {
    /// The message for a rejected record, `None` when it was accepted.
    fn rejection(self) -> Option<String>;
}

impl RecordOutcome for () {
    #[inline]
    fn rejection(self) -> Option<String> {
        None
    }
}

impl<E: fmt::Display> RecordOutcome for Result<(), E> {
    #[inline]
    fn rejection(self) -> Option<String> {
        self.err().map(|e| e.to_string())
    }
}

fn transform_batch<F, R>(f: &F, batch: &[u8]) -> Result<TransformOutput, FrameError>
where
    F: Fn(Event<'_>, &mut Emitter) -> R,
    R: RecordOutcome,
{
    let mut out = Emitter::with_capacity(batch.len());
    let mut errors = Vec::new();
    for (index, event) in EventReader::new(batch).enumerate() {
        let event = event?;
        let mark = out.mark();
        if let Some(message) = f(event, &mut out).rejection() {
            out.rewind(mark);
            errors.push(RecordError {
                index: index as u32,
                message,
            });
        }
    }
    Ok(TransformOutput {
        events: out.into_batch(),
        errors,
    })
}
