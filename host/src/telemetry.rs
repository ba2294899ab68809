//! Workload telemetry and the scaling advice: what each worker process measures about
//! itself, the sliding window over those measurements, and the one decision for the job.
//!
//! The policy is a pure function of the window ([`advise`]), so it is tested without
//! processes; the orchestrator owns acting on it.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Exit code of every worker when the job scales down (Pathway's convention).
pub const EXIT_SCALE_DOWN: i32 = 10;
/// Exit code of every worker when the job scales up.
pub const EXIT_SCALE_UP: i32 = 12;

/// Compute share at or below which a process counts as lightly loaded (Pathway uses 0.25).
pub const SCALE_DOWN_BUSY_SHARE: f64 = 0.25;

/// One process's cumulative counters at one moment; the orchestrator takes differences.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Milliseconds since the process started.
    pub at_ms: u64,
    /// Worker threads in the process.
    pub threads: usize,
    /// Nanoseconds the process's worker threads spent computing, summed over threads.
    pub busy_ns: u64,
    pub events_in: u64,
    /// How far behind its sources are, in lines: the estimated unread lines of a file, or
    /// lines a replay schedule has due but not yet emitted. Only a reading process reports it.
    pub backlog: u64,
}

/// What the window says the job should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    Up,
    Down,
    Stay,
}

/// The advice for the job with the figures behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advice {
    pub direction: Direction,
    pub reason: String,
    /// Compute share of each process over the window (0..=1).
    pub busy_share: Vec<f64>,
    pub backlog_start: u64,
    pub backlog_end: u64,
    pub events_per_sec: f64,
}

/// The samples of every process over the last window.
#[derive(Debug)]
pub struct Window {
    length: Duration,
    /// Per process: samples oldest first, spanning at least `length` once full.
    samples: Vec<VecDeque<Sample>>,
}

impl Window {
    pub fn new(processes: usize, length: Duration) -> Self {
        Self {
            length,
            samples: vec![VecDeque::new(); processes],
        }
    }

    /// Adds a sample of `process`, dropping those older than the window needs.
    pub fn record(&mut self, process: usize, sample: Sample) {
        let samples = &mut self.samples[process];
        if samples
            .back()
            .is_some_and(|last| last.at_ms >= sample.at_ms)
        {
            return;
        }
        samples.push_back(sample);
        let length = self.length.as_millis() as u64;
        while samples.len() > 2 && sample.at_ms.saturating_sub(samples[1].at_ms) >= length {
            samples.pop_front();
        }
    }

    /// The newest sample of `process`.
    pub fn latest(&self, process: usize) -> Option<&Sample> {
        self.samples.get(process)?.back()
    }

    /// Whether every process has been observed for a whole window.
    pub fn is_full(&self) -> bool {
        let length = self.length.as_millis() as u64;
        self.samples.iter().all(|s| match (s.front(), s.back()) {
            (Some(first), Some(last)) => last.at_ms - first.at_ms >= length,
            _ => false,
        })
    }

    /// The advice over the window, or `None` until it is full.
    pub fn advise(&self) -> Option<Advice> {
        self.is_full().then(|| advise(&self.samples, self.length))
    }
}

/// The scaling policy. Up when the sources were behind at every sample of the window, did
/// not catch up, and the backlog at the end is more than a tenth of the window (at least a
/// second) of work at the window's rate; down when every process computed at most
/// [`SCALE_DOWN_BUSY_SHARE`] of the time and no more than that is waiting; otherwise stay.
pub fn advise(samples: &[VecDeque<Sample>], window: Duration) -> Advice {
    let mut busy_share = Vec::new();
    let mut events = 0u64;
    let mut span_ms = 0u64;
    let mut backlog_start = 0;
    let mut backlog_end = 0;
    let mut always_behind = true;
    for process in samples {
        let (first, last) = (
            process.front().copied().unwrap_or_default(),
            process.back().copied().unwrap_or_default(),
        );
        let elapsed_ns = (last.at_ms - first.at_ms) as f64 * 1e6 * last.threads.max(1) as f64;
        let busy = last.busy_ns.saturating_sub(first.busy_ns) as f64;
        busy_share.push(if elapsed_ns > 0.0 {
            (busy / elapsed_ns).min(1.0)
        } else {
            0.0
        });
        events += last.events_in.saturating_sub(first.events_in);
        span_ms = span_ms.max(last.at_ms - first.at_ms);
        backlog_start += first.backlog;
        backlog_end += last.backlog;
    }
    // Behind means: at every moment some source had unread input.
    let moments = samples.iter().map(VecDeque::len).max().unwrap_or(0);
    for index in 0..moments {
        let behind: u64 = samples
            .iter()
            .filter_map(|s| s.get(index))
            .map(|s| s.backlog)
            .sum();
        always_behind &= behind > 0;
    }
    let events_per_sec = if span_ms > 0 {
        events as f64 * 1000.0 / span_ms as f64
    } else {
        0.0
    };
    let max_busy = busy_share.iter().copied().fold(0.0, f64::max);
    let lag = Duration::from_secs_f64(backlog_end as f64 / events_per_sec.max(1.0));
    let tolerated = (window / 10).max(Duration::from_secs(1));
    let (direction, reason) = if always_behind && backlog_end >= backlog_start && lag > tolerated {
        let reason = format!(
            "the sources fell behind for the whole window ({:.1} s of input waiting)",
            lag.as_secs_f64()
        );
        (Direction::Up, reason)
    } else if max_busy <= SCALE_DOWN_BUSY_SHARE && lag <= tolerated {
        (
            Direction::Down,
            format!(
                "every process computed at most {:.0}% of the time",
                SCALE_DOWN_BUSY_SHARE * 100.0
            ),
        )
    } else {
        (Direction::Stay, "keeping up, and busy enough".to_owned())
    };
    Advice {
        direction,
        reason,
        busy_share,
        backlog_start,
        backlog_end,
        events_per_sec,
    }
}

/// The process count after a step in `direction`: ×2 up, ÷2 down, clamped to `[1, max]`.
pub fn next_process_count(current: usize, direction: Direction, max: usize) -> usize {
    match direction {
        Direction::Up => (current * 2).min(max).max(current),
        Direction::Down => (current / 2).max(1),
        Direction::Stay => current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_s: u64, busy_s: f64, backlog: u64) -> Sample {
        Sample {
            at_ms: at_s * 1000,
            threads: 1,
            busy_ns: (busy_s * 1e9) as u64,
            events_in: at_s * 100,
            backlog,
        }
    }

    fn window(process_samples: Vec<Vec<Sample>>) -> Window {
        let mut window = Window::new(process_samples.len(), Duration::from_secs(10));
        for (process, samples) in process_samples.into_iter().enumerate() {
            for s in samples {
                window.record(process, s);
            }
        }
        window
    }

    #[test]
    fn no_advice_before_a_full_window() {
        let w = window(vec![vec![sample(0, 0.0, 0), sample(5, 0.1, 0)]]);
        assert_eq!(w.advise(), None);
    }

    #[test]
    fn growing_backlog_for_the_whole_window_scales_up() {
        let w = window(vec![
            (0..=10)
                .map(|t| sample(t, t as f64 * 0.95, 100 + t * 50))
                .collect(),
        ]);
        let advice = w.advise().unwrap();
        assert_eq!(advice.direction, Direction::Up, "{advice:?}");
        assert!((advice.busy_share[0] - 0.95).abs() < 0.01);
        assert_eq!((advice.backlog_start, advice.backlog_end), (100, 600));
    }

    #[test]
    fn catching_up_or_one_moment_without_backlog_is_not_falling_behind() {
        let shrinking = window(vec![
            (0..=10)
                .map(|t| sample(t, t as f64 * 0.9, 1000 - t * 50))
                .collect(),
        ]);
        assert_eq!(shrinking.advise().unwrap().direction, Direction::Stay);
        let caught_up = window(vec![
            (0..=10)
                .map(|t| sample(t, t as f64 * 0.9, if t == 5 { 0 } else { 10 }))
                .collect(),
        ]);
        assert_eq!(caught_up.advise().unwrap().direction, Direction::Stay);
    }

    #[test]
    fn low_load_everywhere_scales_down_but_one_busy_process_keeps_it() {
        let idle = |busy: f64| {
            (0..=10)
                .map(|t| sample(t, t as f64 * busy, 0))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            window(vec![idle(0.1), idle(0.2)])
                .advise()
                .unwrap()
                .direction,
            Direction::Down
        );
        assert_eq!(
            window(vec![idle(0.1), idle(0.5)])
                .advise()
                .unwrap()
                .direction,
            Direction::Stay
        );
    }

    #[test]
    fn old_samples_leave_the_window() {
        let mut w = Window::new(1, Duration::from_secs(10));
        for t in 0..=30 {
            w.record(0, sample(t, t as f64 * 0.1, 0));
        }
        let advice = w.advise().unwrap();
        assert!((advice.events_per_sec - 100.0).abs() < 1.0, "{advice:?}");
    }

    #[test]
    fn steps_double_halve_and_clamp() {
        assert_eq!(next_process_count(1, Direction::Up, 4), 2);
        assert_eq!(next_process_count(2, Direction::Up, 3), 3);
        assert_eq!(next_process_count(3, Direction::Up, 3), 3);
        assert_eq!(next_process_count(4, Direction::Down, 8), 2);
        assert_eq!(next_process_count(1, Direction::Down, 8), 1);
        assert_eq!(next_process_count(3, Direction::Down, 8), 1);
    }
}
