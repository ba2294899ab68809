//! The WebAssembly side of the host: one wasmtime [`Engine`] per process, loading and
//! validating a pipeline component ([`GuestModule`]), and one sandboxed instance per worker
//! thread ([`GuestInstance`]) with a memory cap and a CPU deadline per call.

mod module;

pub use module::{GuestModule, ModuleError};

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::config::Limits;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "pipeline",
});

pub use spillway::pipeline::types::{AggregateSpec, Node, Operator, RecordError, Window};

/// How often the engine's epoch advances; the unit of the per-call CPU deadline.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Builds the process-wide engine and starts the thread that advances its epoch.
pub fn engine() -> Result<Engine> {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
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

/// What a guest's store holds: an empty WASI context (no files, network, environment or
/// arguments) and the resource limits.
pub struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// One instance of the pipeline component, owned by one worker thread.
pub struct GuestInstance {
    module: Arc<GuestModule>,
    store: Store<GuestState>,
    bindings: Pipeline,
    deadline_ticks: u64,
}

impl GuestInstance {
    /// Instantiates the module in a fresh sandbox.
    pub fn new(module: Arc<GuestModule>, limits: &Limits) -> Result<Self> {
        let wasi = WasiCtx::builder().inherit_stderr().build();
        let store_limits = StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes as usize)
            .trap_on_grow_failure(true)
            .build();
        let state = GuestState {
            wasi,
            table: ResourceTable::new(),
            limits: store_limits,
        };
        let mut store = Store::new(module.engine(), state);
        store.limiter(|state| &mut state.limits);
        let deadline_ticks = (limits.call_deadline_ms / EPOCH_TICK.as_millis() as u64).max(1);
        store.set_epoch_deadline(deadline_ticks);
        store.epoch_deadline_trap();
        let bindings = module
            .pre()
            .instantiate(&mut store)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("cannot instantiate {}", module.name()))?;
        Ok(Self {
            module,
            store,
            bindings,
            deadline_ticks,
        })
    }

    pub fn module(&self) -> &GuestModule {
        &self.module
    }

    /// Calls `describe`.
    pub fn describe(&mut self) -> Result<Graph> {
        self.store.set_epoch_deadline(self.deadline_ticks);
        self.bindings
            .call_describe(&mut self.store)
            .map_err(|e| self.call_failed("describe", e))
    }

    /// Runs transform node `node` over an event batch.
    pub fn transform(&mut self, node: u32, events: &[u8]) -> Result<TransformOutput> {
        self.store.set_epoch_deadline(self.deadline_ticks);
        let result = self.bindings.call_transform(&mut self.store, node, events);
        self.guest_result(node, result)
    }

    /// Folds groups into accumulators for aggregate node `node`.
    pub fn aggregate(&mut self, node: u32, groups: &[u8]) -> Result<Vec<u8>> {
        self.store.set_epoch_deadline(self.deadline_ticks);
        let result = self.bindings.call_aggregate(&mut self.store, node, groups);
        self.guest_result(node, result)
    }

    /// Turns closed windows of aggregate node `node` into events.
    pub fn finish(&mut self, node: u32, closings: &[u8]) -> Result<Vec<u8>> {
        self.store.set_epoch_deadline(self.deadline_ticks);
        let result = self.bindings.call_finish(&mut self.store, node, closings);
        self.guest_result(node, result)
    }

    fn guest_result<T>(
        &self,
        node: u32,
        result: wasmtime::Result<Result<T, spillway::pipeline::types::GuestError>>,
    ) -> Result<T> {
        let name = self.module.node_name(node);
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(anyhow::anyhow!(
                "operator `{name}` failed: {}",
                error.message
            )),
            Err(trap) => Err(self.call_failed(&format!("operator `{name}`"), trap)),
        }
    }

    fn call_failed(&self, what: &str, error: wasmtime::Error) -> anyhow::Error {
        let reason = match error.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => format!(
                "exceeded its CPU deadline of {} ms per call",
                self.deadline_ticks * EPOCH_TICK.as_millis() as u64
            ),
            Some(trap) => format!("trapped: {trap}"),
            None => format!("{error:#}"),
        };
        anyhow::anyhow!("{what} in {}: {reason}", self.module.name())
    }
}
