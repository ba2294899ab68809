//! [`Emitter`]: appends events to an output batch.

use spillway_frame::{EventReader, write_event, write_event_with};

/// Appends output events straight into the batch a call returns to the host.
///
/// Transforms get one per call and write zero or more events per input event; an aggregate's
/// [`finish`](crate::Aggregator::finish) writes the results of a closed window into one.
/// Nothing is allocated per event: the bytes go into one growing buffer.
///
/// # Examples
///
/// ```
/// use spillway_guest::Emitter;
/// use std::io::Write;
///
/// let mut out = Emitter::new();
/// out.emit(Some(b"key"), 42, b"value");
/// out.emit_with(None, 7, |buf| write!(buf, "{}-{}", 1, 2)).unwrap();
/// let events: Vec<_> = out.events().collect::<Result<_, _>>().unwrap();
/// assert_eq!(events[0].value, b"value");
/// assert_eq!(events[1].value, b"1-2");
/// ```
#[derive(Debug, Default, Clone)]
pub struct Emitter {
    batch: Vec<u8>,
}

impl Emitter {
    /// An emitter with an empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An emitter whose batch has room for `bytes` bytes before it grows.
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            batch: Vec::with_capacity(bytes),
        }
    }

    /// Appends one event.
    #[inline]
    pub fn emit(&mut self, key: Option<&[u8]>, time: i64, value: &[u8]) {
        write_event(&mut self.batch, key, time, value);
    }

    /// Appends one event whose value `write_value` writes straight into the batch, e.g. with
    /// `write!` or `serde_json::to_writer`, so that no temporary buffer is needed. Whatever it
    /// appends is the value, even when it returns an error; its result is passed through.
    ///
    /// # Panics
    ///
    /// If the value is 4 GiB or larger, which the framing cannot express.
    #[inline]
    pub fn emit_with<R>(
        &mut self,
        key: Option<&[u8]>,
        time: i64,
        write_value: impl FnOnce(&mut Vec<u8>) -> R,
    ) -> R {
        write_event_with(&mut self.batch, key, time, write_value)
    }

    /// The events written so far.
    pub fn events(&self) -> EventReader<'_> {
        EventReader::new(&self.batch)
    }

    /// The batch written so far.
    pub fn batch(&self) -> &[u8] {
        &self.batch
    }

    /// The batch, to hand back to the host.
    pub fn into_batch(self) -> Vec<u8> {
        self.batch
    }

    /// Where the batch ends now; [`Emitter::rewind`] goes back here.
    pub(crate) fn mark(&self) -> usize {
        self.batch.len()
    }

    /// Drops everything written since `mark`.
    pub(crate) fn rewind(&mut self, mark: usize) {
        self.batch.truncate(mark);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spillway_frame::Event;

    #[test]
    fn emit_with_patches_the_value_length() {
        let mut out = Emitter::new();
        out.emit_with(Some(b"k"), -1, |buf| buf.extend_from_slice(b"abc"));
        out.emit_with(None, 2, |_| ());
        let events: Vec<Event> = out.events().collect::<Result<_, _>>().unwrap();
        assert_eq!(
            events[0],
            Event {
                key: Some(b"k"),
                time: -1,
                value: b"abc"
            }
        );
        assert_eq!(
            events[1],
            Event {
                key: None,
                time: 2,
                value: b""
            }
        );
    }

    #[test]
    fn rewind_drops_events_after_the_mark() {
        let mut out = Emitter::new();
        out.emit(None, 1, b"kept");
        let mark = out.mark();
        out.emit(None, 2, b"dropped");
        out.rewind(mark);
        assert_eq!(out.events().count(), 1);
    }
}
