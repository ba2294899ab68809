//! Spillway example: requests and response bytes per hour and status class of an Apache
//! access log.
//!
//! `logs` → `parse` (time = request time in UTC, key = status class such as `2xx`,
//! value = response bytes) → `per_hour` (tumbling 1 h windows, 60 s out-of-orderness) →
//! `report`, one JSON line per hour and status class:
//!
//! ```text
//! {"hour":"2015-05-17T10:00:00Z","status":"2xx","requests":73,"bytes":5185028}
//! ```
//!
//! A line that does not parse is rejected on its own, with a message that says what was
//! wrong; the rest of the input goes on.

mod parse;
mod time;

use serde::{Deserialize, Serialize};
use spillway_guest::{Aggregator, Emitter, Pipeline, Window, WindowBounds};

pub use parse::{ParseError, Request, parse_line};
pub use time::Rfc3339;

/// Width of the report's windows.
pub const HOUR_MS: u64 = 3_600_000;
/// How far behind the latest request a request may arrive and still be counted.
pub const MAX_OUT_OF_ORDERNESS_MS: u64 = 60_000;

/// Declares the pipeline.
pub fn build(p: &mut Pipeline) {
    p.source("logs")
        .transform("parse", |line, out| {
            let request = parse_line(line.value)?;
            out.emit(
                Some(&request.status_class()),
                request.time_ms,
                &request.bytes.to_le_bytes(),
            );
            Ok::<_, ParseError>(())
        })
        .aggregate(
            "per_hour",
            Window::tumbling_ms(HOUR_MS),
            MAX_OUT_OF_ORDERNESS_MS,
            Traffic,
        )
        .sink("report");
}

spillway_guest::export_pipeline!(build);

/// Counts requests and sums their response bytes.
pub struct Traffic;

/// The accumulator of [`Traffic`]: what the host keeps per (status class, hour).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub requests: u64,
    pub bytes: u64,
}

/// One line of the report; the fields are written in this order.
#[derive(Serialize)]
struct HourReport<'a> {
    hour: Rfc3339,
    status: &'a str,
    requests: u64,
    bytes: u64,
}

impl Aggregator for Traffic {
    type Acc = Totals;

    fn fold(&self, totals: &mut Totals, value: &[u8]) {
        totals.requests += 1;
        // The values are the 8 bytes that `parse` wrote.
        if let Ok(bytes) = value.try_into() {
            totals.bytes += u64::from_le_bytes(bytes);
        }
    }

    fn finish(&self, status: &[u8], window: WindowBounds, totals: Totals, out: &mut Emitter) {
        let report = HourReport {
            hour: Rfc3339(window.start),
            status: &String::from_utf8_lossy(status),
            requests: totals.requests,
            bytes: totals.bytes,
        };
        out.emit_with(None, window.start, |buf| {
            serde_json::to_writer(buf, &report)
        })
        .expect("a report line always serialises");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spillway_guest::local;

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Row {
        hour: String,
        status: String,
        requests: u64,
        bytes: u64,
    }

    fn run(lines: &[&[u8]]) -> local::LocalRun {
        local::run(&Pipeline::build(build), &[("logs", lines)]).unwrap()
    }

    fn report(run: &local::LocalRun) -> Vec<String> {
        run.sinks["report"]
            .iter()
            .map(|line| String::from_utf8(line.clone()).unwrap())
            .collect()
    }

    #[test]
    fn reports_one_json_line_per_hour_and_status() {
        let run = run(&[
            br#"a - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 100 "-" "-""#,
            br#"b - - [17/May/2015:12:59:59 +0200] "GET / HTTP/1.1" 204 - "-" "-""#,
            br#"c - - [17/May/2015:10:59:59 +0000] "GET /x HTTP/1.1" 404 7 "-" "-""#,
            b"not a log line",
            br#"d - - [17/May/2015:11:00:00 +0000] "GET / HTTP/1.1" 503 1 "-" "-""#,
        ]);
        assert_eq!(
            report(&run),
            [
                r#"{"hour":"2015-05-17T10:00:00Z","status":"2xx","requests":2,"bytes":100}"#,
                r#"{"hour":"2015-05-17T10:00:00Z","status":"4xx","requests":1,"bytes":7}"#,
                r#"{"hour":"2015-05-17T11:00:00Z","status":"5xx","requests":1,"bytes":1}"#,
            ]
        );
        assert_eq!(run.rejected.len(), 1);
        assert_eq!(run.rejected[0].index, 3);
        assert_eq!(run.rejected[0].message, "no [timestamp] in the line");
    }

    /// The whole sample log: every line parses, and the totals match those counted with
    /// other tools (see data/README.md).
    #[test]
    fn sample_log_parses_completely() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/apache_access.log");
        let log = std::fs::read(path).unwrap();
        let lines: Vec<&[u8]> = log
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), 10_000);
        let run = run(&lines);
        assert_eq!(run.rejected, []);

        let mut per_status = std::collections::BTreeMap::<String, (u64, u64)>::new();
        let report = report(&run);
        for line in &report {
            // Exactly these fields, in this order: writing the row back gives the same line.
            let row: Row = serde_json::from_str(line).unwrap();
            assert_eq!(&serde_json::to_string(&row).unwrap(), line);
            assert!(row.hour.ends_with(":00:00Z"), "{line}");
            let totals = per_status.entry(row.status).or_default();
            totals.0 += row.requests;
            totals.1 += row.bytes;
        }
        assert_eq!(
            report[0],
            r#"{"hour":"2015-05-17T10:00:00Z","status":"2xx","requests":73,"bytes":5185028}"#
        );
        assert_eq!(report.len(), 241);
        let requests: Vec<(&str, u64)> = per_status
            .iter()
            .map(|(status, totals)| (status.as_str(), totals.0))
            .collect();
        assert_eq!(
            requests,
            [("2xx", 9171), ("3xx", 609), ("4xx", 217), ("5xx", 3)]
        );
        assert_eq!(per_status.values().map(|t| t.1).sum::<u64>(), 2_747_282_740);
    }
}
