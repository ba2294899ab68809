//! Keyed aggregates: [`Aggregator`], [`Window`] and [`WindowBounds`].

use serde::Serialize;
use serde::de::DeserializeOwned;
use spillway_frame::{ClosingReader, GroupReader};

use crate::Emitter;
use crate::wit;

/// How a keyed aggregate groups events in event time.
///
/// # Examples
///
/// ```
/// use spillway_guest::Window;
///
/// let hourly = Window::tumbling_ms(3_600_000);
/// let everything = Window::global();
/// assert_ne!(hourly, everything);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window(pub(crate) wit::Window);

impl Window {
    /// One window holding the whole input; it closes when a bounded input ends. Its bounds
    /// are `i64::MIN..i64::MAX`.
    pub const fn global() -> Self {
        Self(wit::Window::Global)
    }

    /// Fixed, non-overlapping windows of `size_ms` milliseconds, aligned to the Unix epoch.
    ///
    /// # Panics
    ///
    /// If `size_ms` is 0.
    pub const fn tumbling_ms(size_ms: u64) -> Self {
        assert!(size_ms > 0, "a tumbling window must be at least 1 ms long");
        Self(wit::Window::Tumbling(size_ms))
    }

    /// The start of the window that holds event time `time`.
    pub fn start_of(&self, time: i64) -> i64 {
        match self.0 {
            wit::Window::Global => i64::MIN,
            wit::Window::Tumbling(size) => match i64::try_from(size) {
                Ok(size) => time.div_euclid(size) * size,
                Err(_) => i64::MIN,
            },
        }
    }
}

/// The event-time bounds of a window that closed: `start` inclusive, `end` exclusive, in ms
/// since the Unix epoch. A [`Window::global`] window has `i64::MIN..i64::MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WindowBounds {
    pub start: i64,
    pub end: i64,
}

impl WindowBounds {
    /// Whether these are the bounds of the global window.
    pub fn is_global(&self) -> bool {
        (self.start, self.end) == spillway_frame::GLOBAL_WINDOW
    }
}

/// A keyed aggregate with a typed accumulator.
///
/// The host keeps one accumulator per (key, window) between calls; the guest keeps nothing.
/// For each call the SDK decodes the accumulator (or starts from `Acc::default()`), calls
/// [`fold`](Aggregator::fold) once per new value, and encodes it again with `postcard`. When
/// the window closes, [`finish`](Aggregator::finish) turns the final accumulator into events.
///
/// `fold` sees the values of one key in arrival order, and a key's values may be split over
/// any number of calls. For results that do not depend on the number of workers or on batch
/// sizes, make folding commutative and associative: counts, sums, minima, maxima, sets.
///
/// # Examples
///
/// ```
/// use spillway_guest::{Aggregator, Emitter, WindowBounds};
///
/// /// Counts events per key.
/// struct Count;
///
/// impl Aggregator for Count {
///     type Acc = u64;
///
///     fn fold(&self, count: &mut u64, _value: &[u8]) {
///         *count += 1;
///     }
///
///     fn finish(&self, key: &[u8], window: WindowBounds, count: u64, out: &mut Emitter) {
///         out.emit(Some(key), window.start, &count.to_le_bytes());
///     }
/// }
/// ```
pub trait Aggregator: 'static {
    /// The accumulator kept by the host between calls, encoded with `postcard`.
    type Acc: Default + Serialize + DeserializeOwned;

    /// Folds one value into the accumulator.
    fn fold(&self, acc: &mut Self::Acc, value: &[u8]);

    /// Writes the result of a closed window of `key` to `out`.
    fn finish(&self, key: &[u8], window: WindowBounds, acc: Self::Acc, out: &mut Emitter);
}

/// An [`Aggregator`] with its accumulator type erased, as the pipeline stores it.
pub(crate) trait ErasedAggregator {
    fn aggregate(&self, groups: &[u8]) -> Result<Vec<u8>, String>;
    fn finish(&self, closings: &[u8]) -> Result<Vec<u8>, String>;
}

impl<A: Aggregator> ErasedAggregator for A {
    fn aggregate(&self, groups: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(groups.len() / 4 + 16);
        for group in GroupReader::new(groups) {
            let group = group.map_err(|e| e.to_string())?;
            let mut acc = decode::<A::Acc>(group.accumulator, group.key)?;
            for value in group.values {
                self.fold(&mut acc, value);
            }
            let len_at = out.len();
            out.extend_from_slice(&[0; 4]);
            out = postcard::to_extend(&acc, out).map_err(|e| {
                format!(
                    "cannot encode the accumulator of key {}: {e}",
                    Lossy(group.key)
                )
            })?;
            let len = u32::try_from(out.len() - len_at - 4)
                .map_err(|_| "an accumulator must be shorter than 4 GiB".to_string())?;
            out[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
        }
        Ok(out)
    }

    fn finish(&self, closings: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Emitter::new();
        for closing in ClosingReader::new(closings) {
            let closing = closing.map_err(|e| e.to_string())?;
            let acc = decode::<A::Acc>(Some(closing.accumulator), closing.key)?;
            let window = WindowBounds {
                start: closing.window_start,
                end: closing.window_end,
            };
            Aggregator::finish(self, closing.key, window, acc, &mut out);
        }
        Ok(out.into_batch())
    }
}

fn decode<T: Default + DeserializeOwned>(bytes: Option<&[u8]>, key: &[u8]) -> Result<T, String> {
    match bytes {
        None => Ok(T::default()),
        Some(bytes) => postcard::from_bytes(bytes)
            .map_err(|e| format!("cannot decode the accumulator of key {}: {e}", Lossy(key))),
    }
}

/// Shows a key in a message, lossily as UTF-8.
struct Lossy<'a>(&'a [u8]);

impl std::fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbling_windows_align_to_the_epoch() {
        let hour = Window::tumbling_ms(3_600_000);
        assert_eq!(hour.start_of(0), 0);
        assert_eq!(hour.start_of(3_599_999), 0);
        assert_eq!(hour.start_of(3_600_000), 3_600_000);
        assert_eq!(hour.start_of(-1), -3_600_000);
        assert_eq!(Window::global().start_of(42), i64::MIN);
    }

    #[test]
    #[should_panic(expected = "at least 1 ms")]
    fn empty_tumbling_window_panics() {
        let _ = Window::tumbling_ms(0);
    }
}
