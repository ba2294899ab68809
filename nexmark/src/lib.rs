//! The [Nexmark] benchmark for Spillway: its events as text records, and the per-record
//! logic of the queries.
//!
//! One crate serves three users, so that each query's logic exists once:
//! - the host's `nexmark:` source generates events and writes them as [`record`]s
//!   (feature `generate`);
//! - the query guests (`examples/nexmark/q*`) parse records and apply [`queries`];
//! - the native baselines (`spillway-bench`) apply [`queries`] to generated events in a
//!   plain loop.
//!
//! [Nexmark]: https://datalab.cs.pdx.edu/niagara/NEXMark/

#[cfg(feature = "generate")]
pub mod generate;
pub mod queries;
pub mod record;
