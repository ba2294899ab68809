//! Keyed operator state: which key group a key belongs to, which worker owns which groups,
//! the per-window accumulators of a keyed aggregate, and their snapshots in object storage.

mod key_groups;
pub mod snapshot;
mod store;
mod windowed;

pub use key_groups::{KeyGroupAssignment, key_group};
pub use snapshot::{Manifest, SourcePosition, StateObject};
pub use store::SnapshotStore;
pub use windowed::{ClosedWindow, WindowedState};
