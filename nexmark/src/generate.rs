//! Reproducible Nexmark events: the `nexmark` crate's generator with a fixed base time.

use nexmark::EventGenerator;
use nexmark::config::NexmarkConfig;

/// Event time of the first event: 2026-01-01T00:00:00Z, in ms since the Unix epoch. Fixed so
/// that every run produces the same events and windows.
pub const BASE_TIME_MS: u64 = 1_767_225_600_000;

/// The events numbered `first + worker`, `first + worker + peers`, ... of the one global
/// sequence: `peers` workers each generate their share without talking to each other.
///
/// # Panics
///
/// If `peers` is 0 or `worker >= peers`.
pub fn events(first: u64, worker: u64, peers: u64) -> EventGenerator {
    assert!(worker < peers, "worker {worker} of {peers}");
    // `EventGenerator::default()` repeats one event forever; a config gives the real stream.
    let config = NexmarkConfig {
        base_time: BASE_TIME_MS,
        ..NexmarkConfig::default()
    };
    EventGenerator::new(config)
        .with_offset(first + worker)
        .with_step(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_split_the_one_sequence() {
        let whole: Vec<_> = events(7, 0, 1).take(12).collect();
        let even: Vec<_> = events(7, 0, 2).take(6).collect();
        let odd: Vec<_> = events(7, 1, 2).take(6).collect();
        for i in 0..6 {
            assert_eq!(whole[2 * i], even[i]);
            assert_eq!(whole[2 * i + 1], odd[i]);
        }
        assert_eq!(events(0, 0, 1).next().unwrap().timestamp(), BASE_TIME_MS);
    }
}
