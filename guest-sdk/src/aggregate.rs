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
/// let last_hour_every_minute = Window::sliding_ms(3_600_000, 60_000);
/// let everything = Window::global();
/// assert_ne!(hourly, everything);
/// assert_ne!(hourly, last_hour_every_minute);
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

    /// Windows of `size_ms` milliseconds that start every `slide_ms` milliseconds, aligned to
    /// the Unix epoch (also called hopping windows). They overlap: an event belongs to every
    /// window that holds its time, `size_ms / slide_ms` of them when `slide_ms` divides
    /// `size_ms`, and its value is folded into each. `sliding_ms(n, n)` groups events like
    /// `tumbling_ms(n)`.
    ///
    /// # Panics
    ///
    /// If `size_ms` or `slide_ms` is 0, or `slide_ms` is larger than `size_ms`.
    ///
    /// # Examples
    ///
    /// ```
    /// use spillway_guest::{Window, WindowBounds};
    ///
    /// // Windows of 10 s, one starting every 2 s: time 12.345 s is in five of them.
    /// let window = Window::sliding_ms(10_000, 2_000);
    /// let starts: Vec<i64> = window.windows_of(12_345).map(|w| w.start).collect();
    /// assert_eq!(starts, [4_000, 6_000, 8_000, 10_000, 12_000]);
    /// let latest = WindowBounds { start: 12_000, end: 22_000 };
    /// assert_eq!(window.windows_of(12_345).last(), Some(latest));
    /// ```
    pub const fn sliding_ms(size_ms: u64, slide_ms: u64) -> Self {
        assert!(size_ms > 0, "a sliding window must be at least 1 ms long");
        assert!(slide_ms > 0, "a sliding window must slide by at least 1 ms");
        assert!(
            slide_ms <= size_ms,
            "a sliding window must slide by at most its size"
        );
        Self(wit::Window::Sliding(wit::SlidingWindow {
            size_ms,
            slide_ms,
        }))
    }

    /// The bounds of every window that holds event time `time`, oldest first: one for a
    /// global or tumbling window, several for sliding windows. Windows that would start before
    /// `i64::MIN` are cut to start at it (the latest) or left out (the others), as the host does.
    pub fn windows_of(&self, time: i64) -> impl Iterator<Item = WindowBounds> + use<> {
        let ms = |ms: u64| i64::try_from(ms).unwrap_or(i64::MAX);
        let size_and_slide = match self.0 {
            wit::Window::Global => None,
            wit::Window::Tumbling(size) => Some((ms(size), ms(size))),
            wit::Window::Sliding(w) => Some((ms(w.size_ms), ms(w.slide_ms))),
        };
        let global = size_and_slide.is_none().then_some(WindowBounds {
            start: spillway_frame::GLOBAL_WINDOW.0,
            end: spillway_frame::GLOBAL_WINDOW.1,
        });
        let timed = size_and_slide.into_iter().flat_map(move |(size, slide)| {
            let offset = time.rem_euclid(slide);
            let latest = time.saturating_sub(offset);
            // Window `latest - k * slide` holds `time` while `k * slide < size - offset`.
            let count = (size - offset - 1) / slide + 1;
            (0..count).rev().filter_map(move |k| {
                let start = latest.checked_sub(k * slide)?;
                Some(WindowBounds {
                    start,
                    end: start.saturating_add(size),
                })
            })
        });
        global.into_iter().chain(timed)
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

    fn starts(window: Window, time: i64) -> Vec<i64> {
        window.windows_of(time).map(|w| w.start).collect()
    }

    #[test]
    fn tumbling_windows_align_to_the_epoch() {
        let hour = Window::tumbling_ms(3_600_000);
        assert_eq!(starts(hour, 0), [0]);
        assert_eq!(starts(hour, 3_599_999), [0]);
        assert_eq!(starts(hour, 3_600_000), [3_600_000]);
        assert_eq!(starts(hour, -1), [-3_600_000]);
        assert_eq!(
            hour.windows_of(3_600_000).collect::<Vec<_>>(),
            [WindowBounds {
                start: 3_600_000,
                end: 7_200_000
            }]
        );
        let global: Vec<_> = Window::global().windows_of(42).collect();
        assert_eq!(global.len(), 1);
        assert!(global[0].is_global());
    }

    #[test]
    fn sliding_windows_hold_each_time_size_over_slide_times() {
        let w = Window::sliding_ms(10_000, 2_000);
        assert_eq!(starts(w, 12_345), [4_000, 6_000, 8_000, 10_000, 12_000]);
        // A window's end is exclusive: [-8_000, 2_000) does not hold 2_000.
        assert_eq!(starts(w, 2_000), [-6_000, -4_000, -2_000, 0, 2_000]);
        assert_eq!(starts(w, -1), [-10_000, -8_000, -6_000, -4_000, -2_000]);
        for bounds in w.windows_of(-12_345) {
            assert!(
                bounds.start <= -12_345 && -12_345 < bounds.end,
                "{bounds:?}"
            );
            assert_eq!(bounds.end - bounds.start, 10_000);
        }
        // The slide need not divide the size: [0, 10), [4, 14) and [8, 18) hold 9.
        assert_eq!(starts(Window::sliding_ms(10, 4), 9), [0, 4, 8]);
        assert_eq!(starts(Window::sliding_ms(10, 4), 10), [4, 8]);
        assert_eq!(
            starts(Window::sliding_ms(5, 5), 7),
            starts(Window::tumbling_ms(5), 7)
        );
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let w = Window::sliding_ms(10_000, 2_000);
        assert_eq!(w.windows_of(i64::MAX).count(), 5);
        assert_eq!(w.windows_of(i64::MAX).last().unwrap().end, i64::MAX);
        assert_eq!(starts(w, i64::MIN), [i64::MIN]);
        assert_eq!(starts(Window::tumbling_ms(3), i64::MIN), [i64::MIN]);
        assert_eq!(
            Window::sliding_ms(u64::MAX, u64::MAX).windows_of(0).count(),
            1
        );
    }

    #[test]
    #[should_panic(expected = "at least 1 ms")]
    fn empty_tumbling_window_panics() {
        let _ = Window::tumbling_ms(0);
    }

    #[test]
    #[should_panic(expected = "slide by at least 1 ms")]
    fn sliding_window_that_does_not_slide_panics() {
        let _ = Window::sliding_ms(1_000, 0);
    }

    #[test]
    #[should_panic(expected = "slide by at most its size")]
    fn sliding_window_with_gaps_panics() {
        let _ = Window::sliding_ms(1_000, 1_001);
    }
}
