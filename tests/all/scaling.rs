//! Autoscaling with short windows: heavy load scales up to the maximum and no further, light
//! load scales down to one process, steady load leaves the count alone, and output across
//! every rescale equals a fault-free run's.

use std::collections::BTreeMap;
use std::path::Path;

use crate::util::{access_log, guest, line_counts, run_ok, spillway};

/// The access log repeated `times` times (for load; wordcount has no windows to be late for).
fn repeated_log(dir: &Path, times: usize) -> std::path::PathBuf {
    let log = std::fs::read(access_log()).unwrap();
    let path = dir.join(format!("log-x{times}.txt"));
    std::fs::write(&path, log.repeat(times)).unwrap();
    path
}

/// The wordcount of `input` from a plain single-process run.
fn fault_free(input: &Path, dir: &Path) -> BTreeMap<String, usize> {
    let out = dir.join("fault-free.jsonl");
    run_ok(
        spillway()
            .args(["run", "--source", &format!("lines={}", input.display())])
            .args(["--sink", &format!("counts={}", out.display())])
            .arg(guest("wordcount")),
    );
    line_counts(&out)
}

/// Runs wordcount with scaling over `input` replayed at `rate`, and returns the
/// (from, to) of every rescale and the run's stderr.
fn scaled_run(
    dir: &Path,
    input: &Path,
    rate: &str,
    start: usize,
    max: usize,
    window_ms: u64,
) -> (Vec<(u64, u64)>, String) {
    let snapshots = dir.join(format!("snapshots-{start}-{max}"));
    let out = dir.join(format!("counts-{start}-{max}.jsonl"));
    let output = run_ok(
        spillway()
            .args(["spawn", "-n", &start.to_string(), "--scaling"])
            .args([
                "--window-ms",
                &window_ms.to_string(),
                "--max-processes",
                &max.to_string(),
            ])
            .args([
                "--persistence",
                &snapshots.display().to_string(),
                "--snapshot-interval-ms",
                "200",
            ])
            .args(["--epoch-records", "5000"])
            .args([
                "--source",
                &format!("lines=replay:{}?rate={rate}", input.display()),
            ])
            .args(["--sink", &format!("counts={}", out.display())])
            .arg(guest("wordcount")),
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let history =
        std::fs::read_to_string(snapshots.join("scaling-history.jsonl")).unwrap_or_default();
    let steps = history
        .lines()
        .map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                entry["from"].as_u64().unwrap(),
                entry["to"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        line_counts(&out),
        fault_free(input, dir),
        "output across rescales:\n{stderr}"
    );
    (steps, stderr)
}

#[test]
fn heavy_load_scales_up_to_the_maximum_and_no_further() {
    let dir = tempfile::tempdir().unwrap();
    let input = repeated_log(dir.path(), 20);
    let (steps, stderr) = scaled_run(dir.path(), &input, "1000000", 1, 4, 3000);
    assert!(steps.len() >= 2, "expected 1 → 2 → 4:\n{stderr}");
    assert_eq!(steps[..2], [(1, 2), (2, 4)], "{stderr}");
    assert!(
        steps
            .iter()
            .all(|&(from, to)| to <= 4 && (from, to) != (4, 8)),
        "{stderr}"
    );
    assert!(
        stderr.contains("scaling up 1 → 2 processes: the sources fell behind"),
        "{stderr}"
    );
}

#[test]
fn a_step_up_stops_at_the_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let input = repeated_log(dir.path(), 12);
    let (steps, stderr) = scaled_run(dir.path(), &input, "1000000", 2, 3, 3000);
    assert_eq!(steps.first(), Some(&(2, 3)), "{stderr}");
    assert!(steps.iter().all(|&(_, to)| to <= 3), "{stderr}");
}

#[test]
fn light_load_scales_down_to_one_process_and_no_further() {
    let dir = tempfile::tempdir().unwrap();
    // 5,000 lines at 250 lines/s: twenty seconds of light load.
    let log = std::fs::read_to_string(access_log()).unwrap();
    let lines: Vec<&str> = log.lines().take(5000).collect();
    let input = dir.path().join("light.txt");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let (steps, stderr) = scaled_run(dir.path(), &input, "250", 4, 4, 2000);
    assert!(steps.len() >= 2, "expected 4 → 2 → 1:\n{stderr}");
    assert_eq!(steps[..2], [(4, 2), (2, 1)], "{stderr}");
    assert!(steps.iter().all(|&(_, to)| to >= 1), "{stderr}");
    assert_eq!(
        steps.len(),
        2,
        "nothing below 1 and no bounce back up:\n{stderr}"
    );
}

#[test]
fn steady_load_between_the_thresholds_does_not_rescale() {
    let dir = tempfile::tempdir().unwrap();
    let input = repeated_log(dir.path(), 6);
    // Measure what one process sustains here (start-up included, so an underestimate),
    // then offer it 30% of that for several windows: it keeps up even if this noisy
    // machine slows it threefold, so it must not scale up (and at 1 it cannot go down;
    // the unit tests of `telemetry::advise` pin the band between the thresholds).
    let calibration = run_ok(
        spillway()
            .args([
                "spawn",
                "-n",
                "1",
                "--source",
                &format!("lines={}", input.display()),
            ])
            .args([
                "--sink",
                &format!("counts={}", dir.path().join("calibrate.jsonl").display()),
            ])
            .arg(guest("wordcount")),
    );
    let stderr = String::from_utf8_lossy(&calibration.stderr);
    let rate: f64 = stderr
        .split(" events in (")
        .nth(1)
        .and_then(|rest| rest.split("/s)").next())
        .and_then(|r| r.parse().ok())
        .expect("the summary gives events/s");
    let offered = (rate * 0.3).max(100.0) as u64;
    let (steps, stderr) = scaled_run(dir.path(), &input, &offered.to_string(), 1, 4, 3000);
    assert_eq!(
        steps,
        [],
        "offered {offered}/s of a measured {rate:.0}/s:\n{stderr}"
    );
}
