//! A load generator: replay a file's lines at a rate that follows a step schedule, such as
//! `rate=200@0s,20000@30s,200@90s` (200 lines/s from the start, 20000/s from 30 s, 200/s
//! from 90 s). The source paces itself with [`Schedule::due`]; after a restart it continues
//! the schedule where the lines already emitted put it ([`Schedule::time_of`]).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// Rates in lines per second, each from a time offset on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// (from, lines per second), sorted by `from`, the first from zero.
    steps: Vec<(Duration, f64)>,
}

impl Schedule {
    /// Parses `RATE[@TIME],...` where TIME is like `30s`, `1500ms` or `2m`.
    pub fn parse(text: &str) -> Result<Self> {
        let mut steps = Vec::new();
        for step in text.split(',') {
            let (rate, from) = step.split_once('@').unwrap_or((step, "0s"));
            let rate: f64 = rate
                .trim()
                .parse()
                .with_context(|| format!("bad rate `{rate}` in `{text}`"))?;
            if !(rate.is_finite() && rate >= 0.0) {
                bail!(
                    "rate `{rate}` in `{text}` must be a non-negative number of lines per second"
                );
            }
            let from = humantime::parse_duration(from.trim())
                .with_context(|| format!("bad time `{from}` in `{text}` (e.g. 30s, 1500ms, 2m)"))?;
            steps.push((from, rate));
        }
        steps.sort_by_key(|&(from, _)| from);
        if steps.first().is_none_or(|&(from, _)| !from.is_zero()) {
            bail!("the schedule `{text}` must start at 0s");
        }
        Ok(Self { steps })
    }

    /// Lines due by `elapsed` since the schedule began.
    pub fn due(&self, elapsed: Duration) -> u64 {
        let mut total = 0.0;
        for (index, &(from, rate)) in self.steps.iter().enumerate() {
            if elapsed <= from {
                break;
            }
            let until = self
                .steps
                .get(index + 1)
                .map_or(elapsed, |&(next, _)| next.min(elapsed));
            total += rate * (until - from).as_secs_f64();
        }
        total as u64
    }

    /// When the `lines`-th line is due: the inverse of [`Schedule::due`].
    pub fn time_of(&self, lines: u64) -> Duration {
        let mut before = 0.0;
        for (index, &(from, rate)) in self.steps.iter().enumerate() {
            let next = self.steps.get(index + 1).map(|&(next, _)| next);
            let in_step = next.map_or(f64::INFINITY, |next| rate * (next - from).as_secs_f64());
            if (lines as f64) <= before + in_step {
                if rate == 0.0 {
                    return from;
                }
                return from + Duration::from_secs_f64((lines as f64 - before) / rate);
            }
            before += in_step;
        }
        Duration::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_accumulate_and_invert() {
        let schedule = Schedule::parse("200@0s,20000@30s,200@90s").unwrap();
        assert_eq!(schedule.due(Duration::from_secs(10)), 2_000);
        assert_eq!(schedule.due(Duration::from_secs(31)), 6_000 + 20_000);
        assert_eq!(
            schedule.due(Duration::from_secs(100)),
            6_000 + 1_200_000 + 2_000
        );
        for lines in [0, 1_000, 6_000, 26_000, 1_206_001] {
            let back = schedule.due(schedule.time_of(lines) + Duration::from_millis(1));
            assert!(back >= lines && back <= lines + 20, "{lines} -> {back}");
        }
    }

    #[test]
    fn a_single_rate_needs_no_time_and_bad_text_is_refused() {
        assert_eq!(
            Schedule::parse("50").unwrap().due(Duration::from_secs(2)),
            100
        );
        assert!(Schedule::parse("fast").is_err());
        assert!(Schedule::parse("10@5s").is_err());
        assert!(Schedule::parse("10@soon").is_err());
    }
}
