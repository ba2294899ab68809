//! Sources and sinks: where events come from and where results go. Connectors know nothing
//! of dataflow; the `dataflow` operators drive them.

mod lines;

pub use lines::{LineSink, LineSource, Read};
