//! Keyed operator state: which key group a key belongs to, which worker owns which groups,
//! and the per-window accumulators of a keyed aggregate.

mod key_groups;
mod windowed;

pub use key_groups::{KeyGroupAssignment, key_group};
pub use windowed::{ClosedWindow, WindowedState};
