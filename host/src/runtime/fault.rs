//! What can go wrong in a guest call, in words a person can act on.

use crate::config::Limits;

/// Why a guest call did not return a usable result.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The guest misbehaved: it trapped, ran past a limit, or returned output the host
    /// refuses. The instance is replaced before the next call. In a transform, the job's
    /// error policy decides what happens next.
    #[error(transparent)]
    Fault(#[from] GuestFault),
    /// The guest reported that the whole call failed (a `guest-error`), or the host could not
    /// make the call. Always fatal.
    #[error(transparent)]
    Failed(anyhow::Error),
}

/// A guest fault, with the operator, the module and the reason.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what} in {module} {reason}{printed}")]
pub struct GuestFault {
    /// "operator `parse`", or "describe".
    pub what: String,
    pub module: String,
    pub kind: FaultKind,
    /// What happened, e.g. "exceeded its CPU deadline of 5000 ms per call (--call-deadline-ms)".
    pub reason: String,
    /// The guest's last stderr lines (such as a panic message), formatted for the message.
    pub printed: String,
}

/// The kinds of guest fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The CPU deadline per call (epoch interruption).
    Deadline,
    /// The fuel per call.
    Fuel,
    /// The linear memory limit.
    Memory,
    /// The guest's call stack overflowed (deep recursion).
    Stack,
    /// Any other trap: `unreachable` (a Rust panic), out-of-bounds access, division by zero…
    Trap,
    /// More events from one call than `--max-output-events`.
    TooManyEvents,
    /// An event batch the host cannot read.
    BadOutput,
}

impl FaultKind {
    /// How to describe a fault of this kind, given the limits and the trap.
    pub(super) fn describe(self, limits: &Limits, trap: &str) -> String {
        match self {
            Self::Deadline => format!(
                "exceeded its CPU deadline of {} ms per call (--call-deadline-ms)",
                limits.call_deadline_ms
            ),
            Self::Fuel => format!(
                "ran out of fuel: {} units per call (--fuel)",
                limits.fuel.unwrap_or_default()
            ),
            Self::Memory => format!(
                "ran out of memory: its linear memory would grow past the limit of {} MiB \
                 (--memory-mib)",
                limits.memory_bytes >> 20
            ),
            Self::Stack => "exhausted its call stack (runaway recursion?)".to_owned(),
            Self::Trap => {
                let trap = trap.strip_prefix("wasm trap: ").unwrap_or(trap);
                let hint = if trap.starts_with("out of bounds memory access") {
                    " (a bad pointer, or, in a Rust guest, its stack overflowing: runaway \
                     recursion?)"
                } else {
                    ""
                };
                format!("trapped: {trap}{hint}")
            }
            Self::TooManyEvents => format!(
                "returned more than {} events from one call (--max-output-events)",
                limits.max_output_events
            ),
            Self::BadOutput => format!("returned a malformed event batch: {trap}"),
        }
    }
}

/// The guest's last stderr lines as the end of a message: ` (the guest printed: "…")`.
pub(super) fn printed(tail: &[String]) -> String {
    if tail.is_empty() {
        return String::new();
    }
    let text = tail.join(" / ");
    format!("; the guest printed: \"{}\"", truncate(&text, 400))
}

/// At most `max` characters of `text`, with "…" when cut.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_character_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("héllo", 5), "héllo");
    }

    #[test]
    fn a_fault_names_the_operator_the_module_and_the_limit() {
        let limits = Limits::default();
        let fault = GuestFault {
            what: "operator `parse`".into(),
            module: "p.wasm".into(),
            kind: FaultKind::Deadline,
            reason: FaultKind::Deadline.describe(&limits, "interrupt"),
            printed: printed(&["boom".to_owned()]),
        };
        assert_eq!(
            fault.to_string(),
            "operator `parse` in p.wasm exceeded its CPU deadline of 5000 ms per call \
             (--call-deadline-ms); the guest printed: \"boom\""
        );
    }
}
