//! Acting on the scaling advice: reading the workers' telemetry into the sliding window,
//! taking the one decision for the job, asking the workers to pause, and keeping a
//! machine-readable history of rescales.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{pause_file, telemetry_file};
use crate::config::Scaling;
use crate::telemetry::next_process_count;
use crate::telemetry::{Advice, Direction, EXIT_SCALE_DOWN, EXIT_SCALE_UP, Sample, Window};

/// Where the rescale history lives at the persistence location (JSON lines).
pub const HISTORY: &str = "scaling-history.jsonl";

/// One rescale, as kept in `scaling-history.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rescale {
    pub at: String,
    pub from: usize,
    pub to: usize,
    pub window_ms: u64,
    #[serde(flatten)]
    pub advice: Advice,
}

/// Watches one group of worker processes for a rescale decision.
pub struct Scaler {
    scaling: Scaling,
    processes: usize,
    window: Window,
    last_sample: Instant,
    decided: Option<Rescale>,
    decided_at: Option<Instant>,
    status_line: bool,
    /// When the previous group decided to rescale, until this group processes its first
    /// records: the rescale pause.
    paused_since: Option<Instant>,
}

impl Scaler {
    pub fn new(scaling: &Scaling, processes: usize, paused_since: Option<Instant>) -> Self {
        Self {
            scaling: scaling.clone(),
            processes,
            window: Window::new(processes, scaling.window),
            last_sample: Instant::now(),
            decided: None,
            decided_at: None,
            status_line: std::io::stderr().is_terminal(),
            paused_since,
        }
    }

    /// Reads new telemetry; once a full window advises a step that changes the process
    /// count, decides, logs it and asks the workers to pause. Returns the decision once.
    pub fn poll(&mut self, run_dir: &Path) -> Option<&Rescale> {
        if self.decided.is_some() || self.last_sample.elapsed() < super::TELEMETRY_EVERY {
            return None;
        }
        self.last_sample = Instant::now();
        for process in 0..self.processes {
            let sample = std::fs::read(telemetry_file(run_dir, process)).ok();
            if let Some(sample) = sample.and_then(|s| serde_json::from_slice::<Sample>(&s).ok()) {
                self.window.record(process, sample);
            }
        }
        if let Some(since) = self.paused_since {
            let running =
                (0..self.processes).any(|p| self.window.latest(p).is_some_and(|s| s.events_in > 0));
            if running {
                eprintln!(
                    "spillway: rescale pause {} ms (decision → first records processed by {} processes)",
                    since.elapsed().as_millis(),
                    self.processes
                );
                self.paused_since = None;
            }
        }
        let advice = self.window.advise()?;
        self.show_status(&advice);
        let to = next_process_count(self.processes, advice.direction, self.scaling.max_processes);
        if to == self.processes {
            return None;
        }
        let code = if advice.direction == Direction::Up {
            EXIT_SCALE_UP
        } else {
            EXIT_SCALE_DOWN
        };
        if self.status_line {
            eprintln!();
        }
        let rescale = Rescale {
            at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            from: self.processes,
            to,
            window_ms: self.scaling.window.as_millis() as u64,
            advice,
        };
        eprintln!("spillway: {}", describe(&rescale));
        if let Err(error) = std::fs::write(pause_file(run_dir), code.to_string()) {
            eprintln!("spillway: warning: cannot ask the workers to pause: {error}");
            return None;
        }
        self.decided = Some(rescale);
        self.decided_at = Some(Instant::now());
        self.decided.as_ref()
    }

    /// The decision taken, if any, and when.
    pub fn decision(&self) -> Option<(Rescale, Instant)> {
        Some((self.decided.clone()?, self.decided_at?))
    }

    fn show_status(&self, advice: &Advice) {
        if !self.status_line {
            return;
        }
        let busy: Vec<String> = advice
            .busy_share
            .iter()
            .map(|b| format!("{:.0}%", b * 100.0))
            .collect();
        eprint!(
            "\r\x1b[Kprocesses {} | {:.0} events/s | busy {} | backlog {}",
            self.processes,
            advice.events_per_sec,
            busy.join(" "),
            advice.backlog_end
        );
        let _ = std::io::stderr().flush();
    }
}

/// The one-line log of a rescale: direction, counts, reason and figures.
pub fn describe(rescale: &Rescale) -> String {
    let advice = &rescale.advice;
    let busy: Vec<String> = advice
        .busy_share
        .iter()
        .map(|b| format!("{:.0}%", b * 100.0))
        .collect();
    format!(
        "scaling {} {} → {} processes: {} (window {} s, busy {}, backlog {} → {}, {:.0} events/s)",
        if rescale.to > rescale.from {
            "up"
        } else {
            "down"
        },
        rescale.from,
        rescale.to,
        advice.reason,
        rescale.window_ms / 1000,
        busy.join(" "),
        advice.backlog_start,
        advice.backlog_end,
        advice.events_per_sec
    )
}
