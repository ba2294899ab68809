//! Builds and runs the timely dataflow for a pipeline graph, one operator per file.
//!
//! Every stream carries [`Batch`]es: flat, framed event buffers, so that a guest call, an
//! exchange between workers and a sink write each handle many events at once. Timestamps are
//! epochs (`u64`) cut by the sources; an epoch is the unit of progress.

mod aggregate;
mod commit;
mod sink;
mod source;
mod transform;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::core::{Concatenate, Probe};
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::{Scope, Stream};

use crate::config::JobConfig;
use crate::orchestrator::Communication;
use crate::runtime::{GuestInstance, GuestModule, Operator};
use crate::state::snapshot::PipelineIdentity;
use crate::state::{KeyGroupAssignment, Manifest, SnapshotStore, SourcePosition, StateObject};

/// Framed events travelling between operators.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Batch {
    /// The worker this batch is for: every channel exchanges batches by their route.
    pub route: u32,
    /// Largest event time among the sender's events for this epoch, for watermarks
    /// (`i64::MIN` when unknown or empty).
    pub max_time: i64,
    /// Events in the `spillway-frame` framing. Serialised as one byte string: serde's default
    /// for `Vec<u8>` goes byte by byte, which made exchanges between processes CPU-bound.
    #[serde(with = "serde_bytes")]
    pub events: Vec<u8>,
}

type BatchStream<'scope> = Stream<'scope, u64, Vec<Batch>>;
type BatchOutput = OutputBuilder<u64, CapacityContainerBuilder<Vec<Batch>>>;

/// One operator's share of the snapshot of the epoch it is sent at. The commit operator
/// assembles the shares into a manifest once every operator has passed the epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum SnapshotPart {
    /// An aggregate's state on one worker, written to a state object.
    State {
        node: String,
        worker: u32,
        object: StateObject,
    },
    /// Where a source had read to.
    Source {
        name: String,
        position: SourcePosition,
    },
    /// How long a sink's file was.
    Sink { name: String, length: u64 },
}

type PartStream<'scope> = Stream<'scope, u64, Vec<SnapshotPart>>;
type PartOutput = OutputBuilder<u64, CapacityContainerBuilder<Vec<SnapshotPart>>>;

/// Moves a capability on to the next epoch.
fn bump(capability: &mut Capability<u64>) {
    let next = *capability.time() + 1;
    capability.downgrade(&next);
}

/// A worker's connection to the snapshot store, and the snapshot it resumed from.
pub(crate) struct WorkerPersistence {
    pub store: SnapshotStore,
    pub resumed: Option<Manifest>,
    pub generation: u64,
    pub keep: usize,
    pub identity: PipelineIdentity,
}

/// What a worker does with an error it cannot recover from: report it (print it, or leave
/// it for the orchestrator), then exit the process; the orchestrator stops the other workers.
#[derive(Clone)]
pub struct OnFatal {
    report: Arc<dyn Fn(&anyhow::Error) + Send + Sync>,
}

impl OnFatal {
    pub fn new(report: impl Fn(&anyhow::Error) + Send + Sync + 'static) -> Self {
        Self {
            report: Arc::new(report),
        }
    }

    /// Reports `error` and exits with [`crate::orchestrator::EXIT_FAILED`].
    pub fn fail(&self, error: anyhow::Error) -> ! {
        (self.report)(&error);
        std::process::exit(crate::orchestrator::EXIT_FAILED)
    }
}

/// Counters shared by the worker threads of one process.
#[derive(Debug, Default)]
pub struct Counters {
    pub events_in: AtomicU64,
    pub events_out: AtomicU64,
    pub rejected: AtomicU64,
    pub late: AtomicU64,
    pub first_rejection: Mutex<Option<String>>,
    /// Nanoseconds the worker threads spent in operators, summed over threads.
    pub busy_ns: AtomicU64,
    /// How far behind the sources read by this process are (see `telemetry::Sample`).
    pub backlog: AtomicU64,
}

/// Adds the time until it is dropped to the process's busy time.
pub(crate) struct BusyTimer<'a> {
    started: std::time::Instant,
    counters: &'a Counters,
}

impl Drop for BusyTimer<'_> {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed().as_nanos() as u64;
        self.counters.busy_ns.fetch_add(elapsed, Ordering::Relaxed);
    }
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> JobStats {
        JobStats {
            events_in: self.events_in.load(Ordering::Relaxed),
            events_out: self.events_out.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            late: self.late.load(Ordering::Relaxed),
            first_rejection: self.first_rejection.lock().unwrap().clone(),
        }
    }
}

/// What a finished job did, summed over workers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStats {
    pub events_in: u64,
    pub events_out: u64,
    /// Records a transform rejected (bad input), counted and skipped.
    pub rejected: u64,
    /// Events that arrived after their window (for sliding windows, any of their windows)
    /// had closed, counted and left out of the closed windows.
    pub late: u64,
    pub first_rejection: Option<String>,
}

impl JobStats {
    pub fn merge(&mut self, other: JobStats) {
        self.events_in += other.events_in;
        self.events_out += other.events_out;
        self.rejected += other.rejected;
        self.late += other.late;
        self.first_rejection = self.first_rejection.take().or(other.first_rejection);
    }
}

/// What every operator of one worker shares.
#[derive(Clone)]
pub(crate) struct WorkerContext {
    /// This worker's index among all workers of the job.
    pub index: usize,
    pub config: Arc<JobConfig>,
    pub module: Arc<GuestModule>,
    pub guest: Rc<RefCell<GuestInstance>>,
    pub counters: Arc<Counters>,
    pub on_fatal: OnFatal,
    pub key_groups: Rc<KeyGroupAssignment>,
    pub persistence: Option<Rc<WorkerPersistence>>,
    /// The file whose existence asks the job to pause (spawn with scaling only).
    pub pause_file: Option<std::path::PathBuf>,
    /// The progress of the last operators, for the sources' backpressure.
    pub probe: timely::dataflow::ProbeHandle<u64>,
}

impl WorkerContext {
    /// The snapshot this run resumed from, if any.
    pub fn resumed_manifest(&self) -> Option<&Manifest> {
        self.persistence.as_ref()?.resumed.as_ref()
    }

    /// The first epoch of this run: the one after the resumed snapshot's.
    pub fn first_epoch(&self) -> u64 {
        self.resumed_manifest().map_or(0, |m| m.epoch + 1)
    }

    /// Counts the time until the returned guard drops as busy (for the scaling telemetry).
    pub fn busy(&self) -> BusyTimer<'_> {
        BusyTimer {
            started: std::time::Instant::now(),
            counters: &self.counters,
        }
    }

    /// Whether the orchestrator asked the job to pause (to rescale): then the end of the
    /// sources is not the end of the input.
    pub fn pause_requested(&self) -> bool {
        self.pause_file.as_ref().is_some_and(|path| path.exists())
    }

    /// A batch that stays on this worker.
    pub fn local_batch(&self, events: Vec<u8>) -> Batch {
        Batch {
            route: self.index as u32,
            max_time: i64::MIN,
            events,
        }
    }

    /// Unwraps `result`, or stops the process with the error.
    pub fn check<T>(&self, result: Result<T>) -> T {
        result.unwrap_or_else(|error| self.on_fatal.fail(error))
    }
}

/// Runs `config`'s job on this process's workers, and returns this process's counters once
/// every dataflow is complete.
pub fn run_job(
    config: JobConfig,
    module: Arc<GuestModule>,
    communication: Communication,
    counters: Arc<Counters>,
    pause_file: Option<std::path::PathBuf>,
    on_fatal: OnFatal,
) -> Result<JobStats> {
    let config = Arc::new(config);
    let shared = (
        Arc::clone(&config),
        Arc::clone(&module),
        Arc::clone(&counters),
        on_fatal,
        pause_file,
    );
    let Communication { builders, guard } = communication;
    let worker_config = timely::WorkerConfig::default();
    let guards = timely::execute::execute_from(builders, guard, worker_config, move |worker| {
        let (config, module, counters, on_fatal, pause_file) = shared.clone();
        let guest = GuestInstance::for_worker(Arc::clone(&module), &config.limits, worker.index());
        let guest = guest.unwrap_or_else(|error| on_fatal.fail(error));
        let key_groups = KeyGroupAssignment::new(config.key_groups, config.workers());
        let persistence = open_persistence(&config, &module);
        let persistence = persistence.unwrap_or_else(|error| on_fatal.fail(error));
        let context = WorkerContext {
            persistence,
            index: worker.index(),
            config,
            module,
            guest: Rc::new(RefCell::new(guest)),
            counters,
            on_fatal,
            key_groups: Rc::new(key_groups),
            pause_file,
            probe: timely::dataflow::ProbeHandle::new(),
        };
        worker.dataflow::<u64, _, _>(|scope| {
            let built = build(scope, &context);
            context.check(built);
        });
    })
    .map_err(|e| anyhow::anyhow!("cannot start the workers: {e}"))?;
    for (index, result) in guards.join().into_iter().enumerate() {
        result.map_err(|e| anyhow::anyhow!("worker thread {index} failed: {e}"))?;
    }
    Ok(counters.snapshot())
}

/// Opens this worker's connection to the snapshot store and reads the resumed manifest.
fn open_persistence(
    config: &JobConfig,
    module: &GuestModule,
) -> Result<Option<Rc<WorkerPersistence>>> {
    let Some(persistence) = &config.persistence else {
        return Ok(None);
    };
    let store = SnapshotStore::open(&persistence.url)?;
    let resumed = match config.resume {
        Some(epoch) => Some(Manifest::read(&store, epoch)?),
        None => None,
    };
    Ok(Some(Rc::new(WorkerPersistence {
        store,
        resumed,
        generation: config.generation,
        keep: persistence.keep,
        identity: module.identity(),
    })))
}

/// Checks that every source and sink of the graph is bound, and every binding is used.
pub fn check_bindings(module: &GuestModule, config: &JobConfig) -> Result<()> {
    let graph = module.graph();
    let names = |want_source: bool| -> Vec<&str> {
        graph
            .nodes
            .iter()
            .filter_map(|node| match (&node.op, want_source) {
                (Operator::Source(name), true) | (Operator::Sink(name), false) => {
                    Some(name.as_str())
                }
                _ => None,
            })
            .collect()
    };
    let (sources, sinks) = (names(true), names(false));
    let list = |names: &[&str]| {
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    for name in config.sources.keys() {
        if !sources.contains(&name.as_str()) {
            bail!(
                "--source {name}=...: {} has no source named `{name}` (its sources: {})",
                module.name(),
                list(&sources)
            );
        }
    }
    for name in config.sinks.keys() {
        if !sinks.contains(&name.as_str()) {
            bail!(
                "--sink {name}=...: {} has no sink named `{name}` (its sinks: {})",
                module.name(),
                list(&sinks)
            );
        }
    }
    for name in &sources {
        if !config.sources.contains_key(*name) {
            bail!(
                "{} reads source `{name}`, but it is not bound: add --source {name}=PATH",
                module.name()
            );
        }
    }
    for name in &sinks {
        if !config.sinks.contains_key(*name) {
            bail!(
                "{} writes sink `{name}`, but it is not bound: add --sink {name}=PATH (or {name}=- for standard output)",
                module.name()
            );
        }
    }
    Ok(())
}

/// Builds the operators of the graph in order.
fn build<'scope>(scope: Scope<'scope, u64>, context: &WorkerContext) -> Result<()> {
    let graph = context.module.graph().clone();
    let mut streams: Vec<Option<BatchStream<'scope>>> = Vec::with_capacity(graph.nodes.len());
    let mut rejected = Vec::new();
    let mut parts = Vec::new();
    let mut sinks = HashMap::new();
    let mut source_count = 0;
    for (index, node) in graph.nodes.iter().enumerate() {
        let index = index as u32;
        let input = || {
            streams[node.inputs[0] as usize]
                .clone()
                .context("input is a sink")
        };
        let stream = match &node.op {
            Operator::Source(name) => {
                let binding = &context.config.sources[name];
                let reader = source_count % scope.peers();
                source_count += 1;
                let (events, positions) = source::build(scope, context, name, binding, reader)?;
                parts.push(positions);
                Some(events)
            }
            Operator::Transform => {
                let (output, errors) = transform::build(input()?, context, index);
                rejected.push(errors);
                Some(output)
            }
            Operator::Aggregate(spec) => {
                let (output, state) = aggregate::build(input()?, context, index, spec)?;
                parts.push(state);
                Some(output)
            }
            Operator::Sink(name) => {
                sinks
                    .entry(name.clone())
                    .or_insert_with(Vec::new)
                    .push(input()?);
                None
            }
        };
        streams.push(stream);
    }
    for (name, inputs) in sinks {
        let binding = context.config.sinks[&name].clone();
        parts.push(sink::build(
            scope.concatenate(inputs),
            context,
            &name,
            &binding,
            true,
        )?);
    }
    if let Some(binding) = context.config.dead_letter.clone() {
        let stream = scope.concatenate(rejected);
        parts.push(sink::build(
            stream,
            context,
            sink::DEAD_LETTER,
            &binding,
            false,
        )?);
    }
    let parts = scope.concatenate(parts).probe_with(&context.probe);
    if context.persistence.is_some() {
        commit::build(parts, context);
    }
    Ok(())
}
