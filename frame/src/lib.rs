//! The flat batch framing shared by the Spillway host and its guest SDKs.
//!
//! Host and guest exchange one `list<u8>` per batch; this crate writes and reads the
//! records inside it. The layout is specified in `wit/pipeline.wit`:
//!
//! - [`Event`]: key (optional bytes), event time (i64 ms), value (bytes);
//! - [`Group`]: the input of a keyed aggregate call, a key and window with its
//!   accumulator (if any) and the new values;
//! - [`Closing`]: a window that closed, with its final accumulator.
//!
//! It has no dependencies so that every guest can afford it.
//!
//! ```
//! use spillway_frame::{Event, EventReader, write_event};
//!
//! let mut batch = Vec::new();
//! write_event(&mut batch, Some(b"key"), 42, b"value");
//! write_event(&mut batch, None, 7, b"other");
//! let events: Vec<Event> = EventReader::new(&batch).collect::<Result<_, _>>().unwrap();
//! assert_eq!(events[0], Event { key: Some(b"key"), time: 42, value: b"value" });
//! assert_eq!(events[1].key, None);
//! ```

use std::fmt;

const NONE: u32 = u32::MAX;

/// Window start and end of the `global` window.
pub const GLOBAL_WINDOW: (i64, i64) = (i64::MIN, i64::MAX);

/// A batch ended in the middle of a record, or a length does not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// What was being read when the batch ran out.
    pub field: &'static str,
    /// Byte offset in the batch.
    pub offset: usize,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed batch: {} cut short at byte {}",
            self.field, self.offset
        )
    }
}

impl std::error::Error for FrameError {}

/// One event: an optional key, an event time in ms and an opaque value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event<'a> {
    pub key: Option<&'a [u8]>,
    pub time: i64,
    pub value: &'a [u8],
}

/// One (key, window) of a keyed aggregate call with the values to fold in.
#[derive(Debug, Clone, Copy)]
pub struct Group<'a> {
    pub key: &'a [u8],
    pub window_start: i64,
    /// `None` the first time this key and window is seen.
    pub accumulator: Option<&'a [u8]>,
    pub values: Values<'a>,
}

/// A window that closed, with its final accumulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closing<'a> {
    pub key: &'a [u8],
    pub window_start: i64,
    pub window_end: i64,
    pub accumulator: &'a [u8],
}

/// Appends `bytes` as a length-prefixed field.
#[inline]
pub fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Appends an optional length-prefixed field.
#[inline]
pub fn write_opt_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => write_bytes(out, bytes),
        None => out.extend_from_slice(&NONE.to_le_bytes()),
    }
}

/// Appends one event.
#[inline]
pub fn write_event(out: &mut Vec<u8>, key: Option<&[u8]>, time: i64, value: &[u8]) {
    write_opt_bytes(out, key);
    out.extend_from_slice(&time.to_le_bytes());
    write_bytes(out, value);
}

/// Appends one event whose value `write_value` writes straight into `out`, so that no
/// temporary buffer is needed. Whatever it appends is the value; its result is passed through.
///
/// # Panics
///
/// If the value is 4 GiB or larger, which the framing cannot express.
#[inline]
pub fn write_event_with<R>(
    out: &mut Vec<u8>,
    key: Option<&[u8]>,
    time: i64,
    write_value: impl FnOnce(&mut Vec<u8>) -> R,
) -> R {
    write_opt_bytes(out, key);
    out.extend_from_slice(&time.to_le_bytes());
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let result = write_value(out);
    let len = out.len() - len_at - 4;
    let len = u32::try_from(len).expect("an event value must be shorter than 4 GiB");
    out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
    result
}

/// Appends the head of a group; follow it with exactly `value_count` calls to [`write_bytes`].
#[inline]
pub fn write_group_head(
    out: &mut Vec<u8>,
    key: &[u8],
    window_start: i64,
    accumulator: Option<&[u8]>,
    value_count: u32,
) {
    write_bytes(out, key);
    out.extend_from_slice(&window_start.to_le_bytes());
    write_opt_bytes(out, accumulator);
    out.extend_from_slice(&value_count.to_le_bytes());
}

/// Appends one closing window.
#[inline]
pub fn write_closing(out: &mut Vec<u8>, closing: &Closing<'_>) {
    write_bytes(out, closing.key);
    out.extend_from_slice(&closing.window_start.to_le_bytes());
    out.extend_from_slice(&closing.window_end.to_le_bytes());
    write_bytes(out, closing.accumulator);
}

/// A cursor over a batch.
#[derive(Debug, Clone, Copy)]
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], FrameError> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len());
        let end = end.ok_or(FrameError {
            field,
            offset: self.pos,
        })?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, FrameError> {
        Ok(u32::from_le_bytes(self.take(4, field)?.try_into().unwrap()))
    }

    fn i64(&mut self, field: &'static str) -> Result<i64, FrameError> {
        Ok(i64::from_le_bytes(self.take(8, field)?.try_into().unwrap()))
    }

    fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], FrameError> {
        let len = self.u32(field)?;
        self.take(len as usize, field)
    }

    fn opt_bytes(&mut self, field: &'static str) -> Result<Option<&'a [u8]>, FrameError> {
        match self.u32(field)? {
            NONE => Ok(None),
            len => self.take(len as usize, field).map(Some),
        }
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

/// Reads the events of a batch, in order. Stops after the first error.
#[derive(Debug, Clone)]
pub struct EventReader<'a> {
    cursor: Cursor<'a>,
    failed: bool,
}

impl<'a> EventReader<'a> {
    pub fn new(batch: &'a [u8]) -> Self {
        Self {
            cursor: Cursor { buf: batch, pos: 0 },
            failed: false,
        }
    }

    /// The next event together with its raw bytes in the batch, which can be copied into
    /// another batch as they are.
    pub fn next_raw(&mut self) -> Option<Result<(Event<'a>, &'a [u8]), FrameError>> {
        if self.failed || self.cursor.is_empty() {
            return None;
        }
        let start = self.cursor.pos;
        let event = (|| {
            let key = self.cursor.opt_bytes("event key")?;
            let time = self.cursor.i64("event time")?;
            let value = self.cursor.bytes("event value")?;
            Ok(Event { key, time, value })
        })();
        self.failed = event.is_err();
        Some(event.map(|event| (event, &self.cursor.buf[start..self.cursor.pos])))
    }
}

impl<'a> Iterator for EventReader<'a> {
    type Item = Result<Event<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_raw().map(|r| r.map(|(event, _)| event))
    }
}

/// The values of one [`Group`].
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    cursor: Cursor<'a>,
    remaining: u32,
}

impl<'a> Values<'a> {
    pub fn len(&self) -> usize {
        self.remaining as usize
    }

    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }
}

impl<'a> Iterator for Values<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        // The group reader checked every value when it framed this group.
        Some(
            self.cursor
                .bytes("value")
                .expect("values validated by GroupReader"),
        )
    }
}

/// Reads the groups of an `aggregate` call.
#[derive(Debug, Clone)]
pub struct GroupReader<'a> {
    cursor: Cursor<'a>,
    failed: bool,
}

impl<'a> GroupReader<'a> {
    pub fn new(batch: &'a [u8]) -> Self {
        Self {
            cursor: Cursor { buf: batch, pos: 0 },
            failed: false,
        }
    }

    fn read(&mut self) -> Result<Group<'a>, FrameError> {
        let key = self.cursor.bytes("group key")?;
        let window_start = self.cursor.i64("group window start")?;
        let accumulator = self.cursor.opt_bytes("group accumulator")?;
        let count = self.cursor.u32("group value count")?;
        let values_start = self.cursor;
        for _ in 0..count {
            self.cursor.bytes("group value")?;
        }
        Ok(Group {
            key,
            window_start,
            accumulator,
            values: Values {
                cursor: values_start,
                remaining: count,
            },
        })
    }
}

impl<'a> Iterator for GroupReader<'a> {
    type Item = Result<Group<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.cursor.is_empty() {
            return None;
        }
        let group = self.read();
        self.failed = group.is_err();
        Some(group)
    }
}

/// Reads the closing windows of a `finish` call.
#[derive(Debug, Clone)]
pub struct ClosingReader<'a> {
    cursor: Cursor<'a>,
    failed: bool,
}

impl<'a> ClosingReader<'a> {
    pub fn new(batch: &'a [u8]) -> Self {
        Self {
            cursor: Cursor { buf: batch, pos: 0 },
            failed: false,
        }
    }

    fn read(&mut self) -> Result<Closing<'a>, FrameError> {
        Ok(Closing {
            key: self.cursor.bytes("closing key")?,
            window_start: self.cursor.i64("closing window start")?,
            window_end: self.cursor.i64("closing window end")?,
            accumulator: self.cursor.bytes("closing accumulator")?,
        })
    }
}

impl<'a> Iterator for ClosingReader<'a> {
    type Item = Result<Closing<'a>, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.cursor.is_empty() {
            return None;
        }
        let closing = self.read();
        self.failed = closing.is_err();
        Some(closing)
    }
}

/// Reads a list of length-prefixed byte strings (the output of `aggregate`).
#[derive(Debug, Clone)]
pub struct BytesReader<'a> {
    cursor: Cursor<'a>,
    failed: bool,
}

impl<'a> BytesReader<'a> {
    pub fn new(batch: &'a [u8]) -> Self {
        Self {
            cursor: Cursor { buf: batch, pos: 0 },
            failed: false,
        }
    }
}

impl<'a> Iterator for BytesReader<'a> {
    type Item = Result<&'a [u8], FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.cursor.is_empty() {
            return None;
        }
        let bytes = self.cursor.bytes("accumulator");
        self.failed = bytes.is_err();
        Some(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_with_raw_bytes() {
        let mut batch = Vec::new();
        write_event(&mut batch, Some(b"k"), -5, b"v1");
        let first_len = batch.len();
        write_event(&mut batch, None, i64::MAX, b"");
        let mut reader = EventReader::new(&batch);
        let (event, raw) = reader.next_raw().unwrap().unwrap();
        assert_eq!(
            event,
            Event {
                key: Some(b"k"),
                time: -5,
                value: b"v1"
            }
        );
        assert_eq!(raw, &batch[..first_len]);
        let (event, _) = reader.next_raw().unwrap().unwrap();
        assert_eq!(
            event,
            Event {
                key: None,
                time: i64::MAX,
                value: b""
            }
        );
        assert!(reader.next_raw().is_none());
    }

    #[test]
    fn truncated_event_is_an_error_not_a_panic() {
        let mut batch = Vec::new();
        write_event(&mut batch, Some(b"key"), 1, b"value");
        for cut in 1..batch.len() {
            let results: Vec<_> = EventReader::new(&batch[..cut]).collect();
            assert_eq!(results.len(), 1, "cut at {cut}");
            assert!(results[0].is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn huge_length_is_an_error() {
        let batch = [0xFE, 0xFF, 0xFF, 0xFF, 1, 2];
        let err = EventReader::new(&batch).next().unwrap().unwrap_err();
        assert_eq!(
            err,
            FrameError {
                field: "event key",
                offset: 4
            }
        );
    }

    #[test]
    fn groups_round_trip() {
        let mut batch = Vec::new();
        write_group_head(&mut batch, b"a", 0, None, 2);
        write_bytes(&mut batch, b"x");
        write_bytes(&mut batch, b"yy");
        write_group_head(&mut batch, b"b", 3_600_000, Some(b"acc"), 0);
        let groups: Vec<Group> = GroupReader::new(&batch).collect::<Result<_, _>>().unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].key, b"a");
        assert_eq!(groups[0].accumulator, None);
        assert_eq!(
            groups[0].values.collect::<Vec<_>>(),
            vec![&b"x"[..], &b"yy"[..]]
        );
        assert_eq!(groups[1].window_start, 3_600_000);
        assert_eq!(groups[1].accumulator, Some(&b"acc"[..]));
        assert!(groups[1].values.is_empty());
    }

    #[test]
    fn group_with_missing_values_is_an_error() {
        let mut batch = Vec::new();
        write_group_head(&mut batch, b"a", 0, None, 3);
        write_bytes(&mut batch, b"x");
        assert!(GroupReader::new(&batch).next().unwrap().is_err());
    }

    #[test]
    fn closings_and_bytes_round_trip() {
        let closing = Closing {
            key: b"k",
            window_start: 1,
            window_end: 2,
            accumulator: b"acc",
        };
        let mut batch = Vec::new();
        write_closing(&mut batch, &closing);
        assert_eq!(ClosingReader::new(&batch).next().unwrap().unwrap(), closing);

        let mut list = Vec::new();
        write_bytes(&mut list, b"one");
        write_bytes(&mut list, b"");
        let items: Vec<&[u8]> = BytesReader::new(&list).collect::<Result<_, _>>().unwrap();
        assert_eq!(items, vec![&b"one"[..], &b""[..]]);
    }
}
