//! Spillway runs sandboxed WebAssembly stream pipelines as a group of worker processes.
//!
//! A pipeline is a WebAssembly component implementing the `spillway:pipeline` world
//! (`wit/pipeline.wit`): it describes a graph of sources, transforms, keyed aggregates and
//! sinks, and the host calls it with batches. The host owns the keyed state, exchanges events
//! between workers with timely-dataflow, and binds source and sink names to connectors.
//!
//! Layers, from the bottom: [`config`] (validated settings), [`runtime`] (wasmtime sandbox),
//! [`state`] (key groups, window state), [`connectors`] (files, stdin/stdout), [`dataflow`]
//! (the timely operators), [`orchestrator`] (worker processes), [`cli`] (the commands).
//!
//! ```no_run
//! use spillway::config::JobSettings;
//!
//! let config = JobSettings {
//!     module: Some("access_log.wasm".into()),
//!     sources: [("logs".to_owned(), "access.log".to_owned())].into(),
//!     sinks: [("report".to_owned(), "-".to_owned())].into(),
//!     ..Default::default()
//! }
//! .validate()?;
//! let report = spillway::orchestrator::run_in_process(config)?;
//! eprintln!("{} events in", report.stats.events_in);
//! # anyhow::Ok(())
//! ```

pub mod cli;
pub mod config;
pub mod connectors;
pub mod dataflow;
pub mod orchestrator;
pub mod runtime;
pub mod state;
pub mod telemetry;
