//! The main job: hourly requests and bytes per status class over the real access log.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Timelike};

use crate::util::{LAYOUTS, access_log, guest, job, line_counts, run_ok};

/// Hourly report computed independently of Spillway: a plain fold over the file.
/// Returns the expected report lines and the number of lines that do not parse.
fn expected_report(log: &Path) -> (BTreeMap<String, usize>, usize) {
    let pattern =
        regex::Regex::new(r#"^\S+ \S+ \S+ \[([^\]]+)\] "(?:[^"\\]|\\.)*" (\d)\d\d (\d+|-)(?: |$)"#)
            .unwrap();
    let mut rows: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    let mut unparsable = 0;
    for line in std::fs::read_to_string(log).unwrap().lines() {
        let Some(captures) = pattern.captures(line) else {
            unparsable += 1;
            continue;
        };
        let time = DateTime::parse_from_str(&captures[1], "%d/%b/%Y:%H:%M:%S %z").unwrap();
        let hour = time
            .to_utc()
            .with_minute(0)
            .unwrap()
            .with_second(0)
            .unwrap();
        let hour = hour.format("%Y-%m-%dT%H:00:00Z").to_string();
        let status = format!("{}xx", &captures[2]);
        let bytes: u64 = captures[3].parse().unwrap_or(0);
        let row = rows.entry((hour, status)).or_default();
        row.0 += 1;
        row.1 += bytes;
    }
    let lines = rows
        .into_iter()
        .map(|((hour, status), (requests, bytes))| {
            let line = format!(
                r#"{{"hour":"{hour}","status":"{status}","requests":{requests},"bytes":{bytes}}}"#
            );
            (line, 1)
        })
        .collect();
    (lines, unparsable)
}

#[test]
fn hourly_report_matches_an_independent_fold_in_every_layout() {
    let guest = guest("access-log");
    let (expected, unparsable) = expected_report(&access_log());
    assert!(
        expected.len() > 50,
        "the log spans days: {} rows",
        expected.len()
    );
    for &layout in LAYOUTS {
        let dir = tempfile::tempdir().unwrap();
        let report = dir.path().join("report.jsonl");
        let output = run_ok(&mut job(
            layout,
            &guest,
            &[
                ("--source", format!("logs={}", access_log().display())),
                ("--sink", format!("report={}", report.display())),
            ],
        ));
        assert_eq!(line_counts(&report), expected, "layout {layout:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("10000 events in"), "{layout:?}: {stderr}");
        assert!(
            stderr.contains(&format!("{unparsable} rejected")),
            "{layout:?}: {stderr}"
        );
        assert!(
            stderr.contains(&report.display().to_string()),
            "names the output: {stderr}"
        );
    }
}

#[test]
fn report_agrees_with_the_published_facts() {
    let facts = crate::util::repo().join("../shared/data/apache_access.facts");
    let Ok(facts) = std::fs::read_to_string(&facts) else {
        eprintln!(
            "SKIPPED: {} not present (CI lays shared/ beside the checkout)",
            facts.display()
        );
        return;
    };
    let fact = |name: &str| -> u64 {
        let line = facts.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().last().unwrap().parse().unwrap()
    };
    let guest = guest("access-log");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.jsonl");
    let dead = dir.path().join("dead.jsonl");
    run_ok(&mut job(
        ("spawn", 2, 1),
        &guest,
        &[
            ("--source", format!("logs={}", access_log().display())),
            ("--sink", format!("report={}", report.display())),
            ("--dead-letter", dead.display().to_string()),
        ],
    ));
    let mut requests = 0;
    let mut ok_class = 0;
    for line in std::fs::read_to_string(&report).unwrap().lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        requests += row["requests"].as_u64().unwrap();
        if row["status"] == "2xx" {
            ok_class += row["requests"].as_u64().unwrap();
        }
    }
    let rejected = std::fs::read_to_string(&dead).unwrap().lines().count() as u64;
    assert_eq!(requests + rejected, fact("lines"));
    assert!(
        ok_class >= fact("status_200"),
        "2xx includes every 200: {ok_class}"
    );
}
