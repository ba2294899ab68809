//! Sources and sinks: where events come from and where results go. Connectors know nothing
//! of dataflow; the `dataflow` operators drive them.

mod lines;
mod nexmark;
mod replay;

pub use lines::{LineSink, LineSource, Read};
pub use nexmark::NexmarkSource;
pub use replay::Schedule;
