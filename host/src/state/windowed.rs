//! The accumulators of one keyed aggregate on one worker, per window and key.

use std::collections::{BTreeMap, HashMap};

/// A window whose accumulators are final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedWindow {
    pub start: i64,
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Accumulators by window start, then key. The global window is stored under `i64::MIN`.
#[derive(Debug, Default)]
pub struct WindowedState {
    windows: BTreeMap<i64, Accumulators>,
}

/// One window's accumulators by key, hashed with foldhash (fast, randomly seeded).
type Accumulators = HashMap<Vec<u8>, Vec<u8>, foldhash::fast::RandomState>;

impl WindowedState {
    pub fn get(&self, window_start: i64, key: &[u8]) -> Option<&[u8]> {
        self.windows.get(&window_start)?.get(key).map(Vec::as_slice)
    }

    /// Stores a copy of `accumulator`, reusing the old one's allocation where it fits.
    pub fn put(&mut self, window_start: i64, key: &[u8], accumulator: &[u8]) {
        let window = self.windows.entry(window_start).or_default();
        match window.get_mut(key) {
            Some(slot) => {
                slot.clear();
                slot.extend_from_slice(accumulator);
            }
            None => {
                window.insert(key.to_vec(), accumulator.to_vec());
            }
        }
    }

    /// Removes and returns, oldest first, every window whose start is at most `last_start`.
    pub fn close_through(&mut self, last_start: i64) -> Vec<ClosedWindow> {
        let mut closed = Vec::new();
        while let Some(entry) = self.windows.first_entry() {
            if *entry.key() > last_start {
                break;
            }
            let (start, keys) = entry.remove_entry();
            let mut entries: Vec<_> = keys.into_iter().collect();
            // Sorted so a window's output does not depend on hash order.
            entries.sort_unstable();
            closed.push(ClosedWindow { start, entries });
        }
        closed
    }

    /// Removes and returns every window.
    pub fn close_all(&mut self) -> Vec<ClosedWindow> {
        self.close_through(i64::MAX)
    }

    /// Every (window start, key, accumulator).
    pub fn iter(&self) -> impl Iterator<Item = (i64, &[u8], &[u8])> {
        self.windows.iter().flat_map(|(&start, keys)| {
            keys.iter()
                .map(move |(key, acc)| (start, key.as_slice(), acc.as_slice()))
        })
    }

    /// Number of (window, key) accumulators held.
    pub fn len(&self) -> usize {
        self.windows.values().map(Accumulators::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_windows_in_order_up_to_the_bound() {
        let mut state = WindowedState::default();
        state.put(3_600_000, b"b", &[2]);
        state.put(0, b"a", &[1]);
        state.put(0, b"a", &[3]);
        state.put(7_200_000, b"c", &[4]);
        assert_eq!(state.len(), 3);
        let closed = state.close_through(3_600_000);
        assert_eq!(
            closed,
            vec![
                ClosedWindow {
                    start: 0,
                    entries: vec![(b"a".to_vec(), vec![3])]
                },
                ClosedWindow {
                    start: 3_600_000,
                    entries: vec![(b"b".to_vec(), vec![2])]
                },
            ]
        );
        assert_eq!(state.get(7_200_000, b"c"), Some(&[4][..]));
        assert_eq!(state.close_all().len(), 1);
        assert!(state.is_empty());
    }
}
