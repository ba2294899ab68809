//! The WebAssembly side of the host: one wasmtime [`Engine`] per process, loading and
//! validating a pipeline component ([`GuestModule`], compiled once and cached on disk), and
//! one sandboxed instance per worker thread ([`GuestInstance`]).
//!
//! A guest gets no ambient capabilities: no preopened directories, no network addresses, no
//! environment variables or arguments, and a closed stdin. What it prints goes to the host
//! log (see [`output`]). Each instance has a linear-memory cap, a CPU deadline per call
//! (epoch interruption) and optionally fuel per call; a call that breaks a limit, traps or
//! returns too many events is a [`GuestFault`], after which the instance is replaced.

mod cache;
mod fault;
mod module;
pub mod output;

pub use cache::CacheOutcome;
pub use fault::{CallError, FaultKind, GuestFault, truncate};
pub use module::{GuestModule, ModuleError, validate_graph};

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::config::Limits;
use output::{GuestOutput, GuestStdio, Stream};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "pipeline",
});

pub use self::spillway::pipeline::types::{
    AggregateSpec, Node, Operator, RecordError, SlidingWindow, Window,
};

/// How often the engine's epoch advances; the unit of the per-call CPU deadline.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Builds the process-wide engine and starts the thread that advances its epoch. Fuel
/// metering is compiled in only when `limits.fuel` is set, since it slows every guest.
pub fn engine(limits: &Limits) -> Result<Engine> {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.consume_fuel(limits.fuel.is_some());
    // For `perf report` on guest code: names compiled functions in /tmp/perf-PID.map.
    if std::env::var_os("SPILLWAY_PERF_MAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    let engine = Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("cannot start the WebAssembly engine")?;
    let ticker = engine.weak();
    std::thread::Builder::new()
        .name("spillway-epoch".into())
        .spawn(move || {
            while let Some(engine) = ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .context("cannot start the epoch thread")?;
    Ok(engine)
}

/// What a guest's store holds: a WASI context without capabilities, and the limits.
pub struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: GuestLimiter,
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// [`StoreLimits`], remembering whether the memory limit was hit so that the trap it causes
/// can be told apart from others.
struct GuestLimiter {
    limits: StoreLimits,
    memory_bytes: usize,
    memory_exhausted: bool,
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_exhausted = true;
        }
        self.limits.memory_growing(current, desired, maximum)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }
}

/// Elements per table: far more than a compiled Rust guest needs, far less than the host has.
const TABLE_ELEMENTS: usize = 1 << 20;

/// One instance of the pipeline component, owned by one worker thread.
pub struct GuestInstance {
    module: Arc<GuestModule>,
    limits: Limits,
    /// The worker this instance belongs to, for log lines (`None` while describing).
    worker: Option<usize>,
    store: Store<GuestState>,
    bindings: Pipeline,
    output: GuestOutput,
    /// Set after a fault: a trapped instance refuses further calls, so the next call
    /// starts from a fresh one.
    faulted: bool,
}

impl GuestInstance {
    /// Instantiates the module in a fresh sandbox.
    pub fn new(module: Arc<GuestModule>, limits: &Limits) -> Result<Self> {
        let output = GuestOutput::default();
        let (store, bindings) = instantiate(&module, limits, &output)?;
        Ok(Self {
            module,
            limits: limits.clone(),
            worker: None,
            store,
            bindings,
            output,
            faulted: false,
        })
    }

    /// Instantiates the module for worker `worker`; its output is logged with that index.
    pub fn for_worker(module: Arc<GuestModule>, limits: &Limits, worker: usize) -> Result<Self> {
        let mut instance = Self::new(module, limits)?;
        instance.worker = Some(worker);
        Ok(instance)
    }

    pub fn module(&self) -> &GuestModule {
        &self.module
    }

    /// Calls `describe`.
    pub fn describe(&mut self) -> Result<Graph, CallError> {
        self.call("describe", |bindings, store| bindings.call_describe(store))
    }

    /// Runs transform node `node` over an event batch.
    ///
    /// # Errors
    /// [`CallError::Fault`] when the guest faults or returns more than
    /// `limits.max_output_events` events; [`CallError::Failed`] when it reports a
    /// `guest-error`.
    pub fn transform(&mut self, node: u32, events: &[u8]) -> Result<TransformOutput, CallError> {
        let what = self.operator(node);
        let output = self.call(&what, |bindings, store| {
            bindings.call_transform(store, node, events)
        })?;
        let output = output.map_err(|e| CallError::Failed(self.guest_error(&what, &e.message)))?;
        self.check_events(&what, &output.events)?;
        Ok(output)
    }

    /// Folds groups into accumulators for aggregate node `node`. Any failure is fatal.
    pub fn aggregate(&mut self, node: u32, groups: &[u8]) -> Result<Vec<u8>> {
        let what = self.operator(node);
        let result = self.call(&what, |bindings, store| {
            bindings.call_aggregate(store, node, groups)
        });
        self.stateful_result(&what, result)
    }

    /// Turns closed windows of aggregate node `node` into events. Any failure is fatal.
    pub fn finish(&mut self, node: u32, closings: &[u8]) -> Result<Vec<u8>> {
        let what = self.operator(node);
        let result = self.call(&what, |bindings, store| {
            bindings.call_finish(store, node, closings)
        });
        let events = self.stateful_result(&what, result)?;
        self.check_events(&what, &events)
            .map_err(|e| stateful_fault(&what, e))?;
        Ok(events)
    }

    fn operator(&self, node: u32) -> String {
        format!("operator `{}`", self.module.node_name(node))
    }

    /// Makes one call under the per-call limits, logs what the guest printed, and turns a
    /// trap into a [`GuestFault`].
    fn call<T>(
        &mut self,
        what: &str,
        call: impl FnOnce(&Pipeline, &mut Store<GuestState>) -> wasmtime::Result<T>,
    ) -> Result<T, CallError> {
        if self.faulted {
            let (store, bindings) =
                instantiate(&self.module, &self.limits, &self.output).map_err(CallError::Failed)?;
            self.store = store;
            self.bindings = bindings;
            self.faulted = false;
        }
        let ticks = self
            .limits
            .call_deadline_ms
            .div_ceil(EPOCH_TICK.as_millis() as u64);
        self.store.set_epoch_deadline(ticks.max(1));
        if let Some(fuel) = self.limits.fuel {
            self.store
                .set_fuel(fuel)
                .map_err(|e| CallError::Failed(e.into()))?;
        }
        let result = call(&self.bindings, &mut self.store);
        let printed = self.log_output(what);
        result.map_err(|error| {
            self.faulted = true;
            let (kind, trap) = match error.downcast_ref::<wasmtime::Trap>() {
                Some(wasmtime::Trap::Interrupt) => (FaultKind::Deadline, String::new()),
                Some(wasmtime::Trap::OutOfFuel) => (FaultKind::Fuel, String::new()),
                Some(wasmtime::Trap::StackOverflow) => (FaultKind::Stack, String::new()),
                _ if std::mem::take(&mut self.store.data_mut().limiter.memory_exhausted) => {
                    (FaultKind::Memory, String::new())
                }
                Some(trap) => (FaultKind::Trap, trap.to_string()),
                None => (FaultKind::Trap, format!("{error:#}")),
            };
            CallError::Fault(GuestFault {
                what: what.to_owned(),
                module: self.module.name().to_owned(),
                kind,
                reason: kind.describe(&self.limits, &trap),
                printed: fault::printed(&printed),
            })
        })
    }

    /// Logs what the last call printed; returns its last stderr lines.
    fn log_output(&self, what: &str) -> Vec<String> {
        let call = self.output.take_call();
        let worker = self
            .worker
            .map_or_else(|| "-".to_owned(), |w| w.to_string());
        for line in &call.lines {
            match line.stream {
                Stream::Stderr => tracing::warn!(
                    target: "spillway::guest",
                    worker = %worker,
                    module = %self.module.name(),
                    "{what} stderr: {}",
                    line.text
                ),
                Stream::Stdout => tracing::info!(
                    target: "spillway::guest",
                    worker = %worker,
                    module = %self.module.name(),
                    "{what} stdout: {}",
                    line.text
                ),
            }
        }
        if call.dropped > 0 {
            tracing::warn!(
                target: "spillway::guest",
                worker = %worker,
                module = %self.module.name(),
                "{what} output … truncated: {} bytes dropped (guest output is limited to {} KiB \
                 per call and {} KiB per instance)",
                call.dropped,
                output::CALL_OUTPUT_LIMIT >> 10,
                output::INSTANCE_OUTPUT_LIMIT >> 10,
            );
        }
        call.stderr_tail
    }

    fn guest_error(&self, what: &str, message: &str) -> anyhow::Error {
        anyhow::anyhow!("{what} in {} failed: {message}", self.module.name())
    }

    /// Counts the events of a batch the guest returned, against the limit.
    fn check_events(&mut self, what: &str, events: &[u8]) -> Result<(), GuestFault> {
        let mut count = 0u64;
        for event in spillway_frame::EventReader::new(events) {
            let fault = match event {
                Ok(_) if count < self.limits.max_output_events => {
                    count += 1;
                    continue;
                }
                Ok(_) => (FaultKind::TooManyEvents, String::new()),
                Err(error) => (FaultKind::BadOutput, error.to_string()),
            };
            return Err(GuestFault {
                what: what.to_owned(),
                module: self.module.name().to_owned(),
                kind: fault.0,
                reason: fault.0.describe(&self.limits, &fault.1),
                printed: String::new(),
            });
        }
        Ok(())
    }

    fn stateful_result<T>(
        &self,
        what: &str,
        result: Result<Result<T, self::spillway::pipeline::types::GuestError>, CallError>,
    ) -> Result<T> {
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.guest_error(what, &error.message)),
            Err(CallError::Fault(fault)) => Err(stateful_fault(what, fault)),
            Err(CallError::Failed(error)) => Err(error),
        }
    }
}

/// A fault in an aggregate or finish call: fatal whatever the error policy, with the reason.
fn stateful_fault(what: &str, fault: GuestFault) -> anyhow::Error {
    anyhow::anyhow!(
        "{fault} ({what} is a keyed aggregate: a fault there stops the job whatever \
         --on-error says, because its window state would no longer be consistent)"
    )
}

/// A fresh store and instance of `module`.
fn instantiate(
    module: &GuestModule,
    limits: &Limits,
    output: &GuestOutput,
) -> Result<(Store<GuestState>, Pipeline)> {
    let wasi = WasiCtx::builder()
        .stdout(GuestStdio::new(output, Stream::Stdout))
        .stderr(GuestStdio::new(output, Stream::Stderr))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build();
    let memory_bytes = usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX);
    let limiter = GuestLimiter {
        limits: StoreLimitsBuilder::new()
            .memory_size(memory_bytes)
            .table_elements(TABLE_ELEMENTS)
            .trap_on_grow_failure(true)
            .build(),
        memory_bytes,
        memory_exhausted: false,
    };
    let state = GuestState {
        wasi,
        table: ResourceTable::new(),
        limiter,
    };
    let mut store = Store::new(module.engine(), state);
    store.limiter(|state| &mut state.limiter);
    store.epoch_deadline_trap();
    let ticks = limits
        .call_deadline_ms
        .div_ceil(EPOCH_TICK.as_millis() as u64);
    store.set_epoch_deadline(ticks.max(1));
    if let Some(fuel) = limits.fuel {
        store.set_fuel(fuel)?;
    }
    let bindings = module
        .pre()
        .instantiate(&mut store)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot instantiate {}", module.name()))?;
    Ok((store, bindings))
}
