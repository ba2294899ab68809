//! Dispatch tests: the calls the generated exports make, with hand-framed batches.

use serde::{Deserialize, Serialize};
use spillway_frame::{
    BytesReader, Closing, Event, EventReader, write_bytes, write_closing, write_event,
    write_group_head,
};

use crate::wit::{AggregateSpec, Node, Operator, RecordError, SlidingWindow, Window as WitWindow};
use crate::{Aggregator, Emitter, Pipeline, Window, WindowBounds, local};

/// Requests and bytes per key: the accumulator of the access-log example.
#[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
struct Traffic {
    requests: u64,
    bytes: u64,
}

struct SumTraffic;

impl Aggregator for SumTraffic {
    type Acc = Traffic;

    fn fold(&self, acc: &mut Traffic, value: &[u8]) {
        acc.requests += 1;
        acc.bytes += u64::from_le_bytes(value.try_into().unwrap());
    }

    fn finish(&self, key: &[u8], window: WindowBounds, acc: Traffic, out: &mut Emitter) {
        out.emit_with(None, window.start, |buf| {
            buf.extend_from_slice(key);
            buf.extend_from_slice(
                format!(" {} {} {}", window.start, acc.requests, acc.bytes).as_bytes(),
            );
        });
    }
}

/// `"<status> <bytes>"` lines, keyed by status, timed by their index in the batch.
fn build(p: &mut Pipeline) {
    let parsed = p
        .source("in")
        .transform("parse", |event: Event, out: &mut Emitter| {
            let line = std::str::from_utf8(event.value).map_err(|_| "not UTF-8".to_string())?;
            let (status, bytes) = line
                .split_once(' ')
                .ok_or(format!("no space in {line:?}"))?;
            let bytes: u64 = bytes.parse().map_err(|e| format!("bytes {bytes:?}: {e}"))?;
            out.emit(Some(status.as_bytes()), bytes as i64, &bytes.to_le_bytes());
            Ok::<_, String>(())
        });
    parsed
        .aggregate("traffic", Window::tumbling_ms(1000), 50, SumTraffic)
        .sink("report");
    parsed.sink("parsed");
}

fn events(batch: &[u8]) -> Vec<Event<'_>> {
    EventReader::new(batch).collect::<Result<_, _>>().unwrap()
}

fn source_batch(records: &[&[u8]]) -> Vec<u8> {
    let mut batch = Vec::new();
    for record in records {
        write_event(&mut batch, None, 0, record);
    }
    batch
}

#[test]
fn graph_lists_nodes_in_declaration_order() {
    let graph = Pipeline::build(build).graph();
    let node = |name: &str, op, inputs: &[u32]| Node {
        name: name.to_string(),
        op,
        inputs: inputs.to_vec(),
    };
    let spec = AggregateSpec {
        window: WitWindow::Tumbling(1000),
        max_out_of_orderness_ms: 50,
    };
    assert_eq!(
        graph.nodes,
        vec![
            node("in", Operator::Source("in".to_string()), &[]),
            node("parse", Operator::Transform, &[0]),
            node("traffic", Operator::Aggregate(spec), &[1]),
            node("report", Operator::Sink("report".to_string()), &[2]),
            node("parsed", Operator::Sink("parsed".to_string()), &[1]),
        ]
    );
}

#[test]
fn transform_emits_events_and_reports_bad_records() {
    let p = Pipeline::build(build);
    let batch = source_batch(&[b"200 10", b"oops", b"404 x", b"500 7"]);
    let out = p.run_transform(1, &batch).unwrap();
    assert_eq!(
        events(&out.events),
        vec![
            Event {
                key: Some(b"200"),
                time: 10,
                value: &10u64.to_le_bytes()
            },
            Event {
                key: Some(b"500"),
                time: 7,
                value: &7u64.to_le_bytes()
            },
        ]
    );
    assert_eq!(
        out.errors,
        vec![
            RecordError {
                index: 1,
                message: "no space in \"oops\"".to_string()
            },
            RecordError {
                index: 2,
                message: "bytes \"x\": invalid digit found in string".to_string()
            },
        ]
    );
}

#[test]
fn closures_returning_unit_are_transforms() {
    let p = Pipeline::new();
    p.source("in")
        .transform("double", |e, out| {
            out.emit(e.key, e.time, e.value);
            out.emit(e.key, e.time + 1, e.value);
        })
        .sink("out");
    let out = p.run_transform(1, &source_batch(&[b"a"])).unwrap();
    assert_eq!(events(&out.events).len(), 2);
    assert!(out.errors.is_empty());
}

#[test]
fn events_of_a_rejected_record_are_dropped() {
    let p = Pipeline::new();
    p.source("in")
        .transform("half", |e, out| {
            out.emit(None, e.time, e.value);
            if e.value == b"bad" {
                Err("bad record")
            } else {
                Ok(())
            }
        })
        .sink("out");
    let out = p
        .run_transform(1, &source_batch(&[b"a", b"bad", b"c"]))
        .unwrap();
    let values: Vec<&[u8]> = events(&out.events).iter().map(|e| e.value).collect();
    assert_eq!(values, [b"a", b"c"]);
    assert_eq!(
        out.errors,
        [RecordError {
            index: 1,
            message: "bad record".to_string()
        }]
    );
}

#[test]
fn malformed_batch_is_a_guest_error_naming_the_node() {
    let p = Pipeline::build(build);
    let mut batch = source_batch(&[b"200 10"]);
    batch.truncate(batch.len() - 1);
    let err = p.run_transform(1, &batch).unwrap_err();
    assert!(
        err.message
            .starts_with("node 1 (\"parse\") malformed batch"),
        "{}",
        err.message
    );
}

#[test]
fn calls_to_the_wrong_node_are_guest_errors() {
    let p = Pipeline::build(build);
    let err = p.run_transform(2, &[]).unwrap_err();
    assert_eq!(
        err.message,
        "node 2 (\"traffic\") is an aggregate, not a transform"
    );
    let err = p.run_aggregate(1, &[]).unwrap_err();
    assert_eq!(
        err.message,
        "node 1 (\"parse\") is a transform, not an aggregate"
    );
    let err = p.run_finish(9, &[]).unwrap_err();
    assert_eq!(err.message, "node 9 does not exist; the graph has 5");
}

#[test]
fn aggregate_returns_one_accumulator_per_group_in_order() {
    let p = Pipeline::build(build);
    let old = postcard::to_allocvec(&Traffic {
        requests: 2,
        bytes: 100,
    })
    .unwrap();
    let mut groups = Vec::new();
    write_group_head(&mut groups, b"200", 0, None, 2);
    write_bytes(&mut groups, &5u64.to_le_bytes());
    write_bytes(&mut groups, &6u64.to_le_bytes());
    write_group_head(&mut groups, b"404", 1000, Some(&old), 1);
    write_bytes(&mut groups, &1u64.to_le_bytes());
    write_group_head(&mut groups, b"500", 0, Some(&old), 0);

    let out = p.run_aggregate(2, &groups).unwrap();
    let accs: Vec<Traffic> = BytesReader::new(&out)
        .map(|acc| postcard::from_bytes(acc.unwrap()).unwrap())
        .collect();
    assert_eq!(
        accs,
        vec![
            Traffic {
                requests: 2,
                bytes: 11
            },
            Traffic {
                requests: 3,
                bytes: 101
            },
            Traffic {
                requests: 2,
                bytes: 100
            },
        ]
    );
}

#[test]
fn undecodable_accumulator_is_a_guest_error() {
    let p = Pipeline::build(build);
    let mut groups = Vec::new();
    write_group_head(&mut groups, b"200", 0, Some(&[0xFF]), 0);
    let err = p.run_aggregate(2, &groups).unwrap_err();
    assert!(
        err.message
            .starts_with("node 2 (\"traffic\") cannot decode the accumulator of key \"200\""),
        "{}",
        err.message
    );
}

#[test]
fn finish_turns_closed_windows_into_events() {
    let p = Pipeline::build(build);
    let acc = postcard::to_allocvec(&Traffic {
        requests: 3,
        bytes: 42,
    })
    .unwrap();
    let mut closings = Vec::new();
    let closing = Closing {
        key: b"200",
        window_start: 1000,
        window_end: 2000,
        accumulator: &acc,
    };
    write_closing(&mut closings, &closing);
    let out = p.run_finish(2, &closings).unwrap();
    assert_eq!(
        events(&out),
        vec![Event {
            key: None,
            time: 1000,
            value: b"200 1000 3 42"
        }]
    );
}

#[test]
#[should_panic(expected = "two nodes are named \"in\"")]
fn duplicate_names_panic() {
    let p = Pipeline::new();
    p.source("in").sink("in");
}

#[test]
fn local_run_goes_through_every_node() {
    let p = Pipeline::build(build);
    let mut records: Vec<Vec<u8>> = Vec::new();
    for i in 0..1000u64 {
        records.push(format!("{} {}", 200 + (i % 2) * 200, i * 3).into_bytes());
    }
    records.push(b"broken".to_vec());
    let records: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    let run = local::run(&p, &[("in", &records)]).unwrap();

    assert_eq!(run.sinks["parsed"].len(), 1000);
    assert_eq!(run.rejected.len(), 1);
    assert_eq!(run.rejected[0].index, 1000);
    assert_eq!(run.rejected[0].node, "parse");
    // Times 0..2997 in 1000 ms windows: 3 windows per status, 2 statuses.
    let report: Vec<String> = run.sinks["report"]
        .iter()
        .map(|r| String::from_utf8(r.clone()).unwrap())
        .collect();
    assert_eq!(report.len(), 6);
    assert_eq!(report[0], "200 0 167 83166");
    let total: u64 = report
        .iter()
        .map(|r| r.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, (0..1000u64).map(|i| i * 3).sum::<u64>());
}

/// Counts events per key and window: `"<key> <start> <end> <count>"`.
struct CountPerWindow;

impl Aggregator for CountPerWindow {
    type Acc = u64;

    fn fold(&self, count: &mut u64, _value: &[u8]) {
        *count += 1;
    }

    fn finish(&self, key: &[u8], window: WindowBounds, count: u64, out: &mut Emitter) {
        let key = String::from_utf8_lossy(key);
        let line = format!("{key} {} {} {count}", window.start, window.end);
        out.emit(None, window.start, line.as_bytes());
    }
}

/// `"<key> <time>"` lines counted in `window`.
fn count_per_window(window: Window, records: &[&[u8]]) -> Vec<String> {
    let p = Pipeline::new();
    p.source("in")
        .transform("parse", |event, out| {
            let line = std::str::from_utf8(event.value).unwrap();
            let (key, time) = line.split_once(' ').unwrap();
            out.emit(Some(key.as_bytes()), time.parse().unwrap(), b"");
        })
        .aggregate("count", window, 0, CountPerWindow)
        .sink("out");
    let run = local::run(&p, &[("in", records)]).unwrap();
    run.sinks["out"]
        .iter()
        .map(|r| String::from_utf8(r.clone()).unwrap())
        .collect()
}

#[test]
fn local_run_folds_events_into_every_sliding_window() {
    let records: &[&[u8]] = &[b"a 0", b"a 1000", b"a 2500", b"a 7000", b"b 5999", b"b -1"];
    // 6 s windows every 2 s: each event is in three, closed in order of start, then key.
    let report = count_per_window(Window::sliding_ms(6_000, 2_000), records);
    assert_eq!(
        report,
        [
            "b -6000 0 1",
            "a -4000 2000 2",
            "b -4000 2000 1",
            "a -2000 4000 3",
            "b -2000 4000 1",
            "a 0 6000 3",
            "b 0 6000 1",
            "a 2000 8000 2",
            "b 2000 8000 1",
            "a 4000 10000 1",
            "b 4000 10000 1",
            "a 6000 12000 1",
        ]
    );
}

#[test]
fn local_run_keeps_sliding_windows_across_batches() {
    let records: Vec<Vec<u8>> = (0..1000).map(|t| format!("k {t}").into_bytes()).collect();
    let records: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    // Times 0..999 in 100 ms windows every 10 ms: windows start at -90, -80, ..., 990.
    let report = count_per_window(Window::sliding_ms(100, 10), &records);
    assert_eq!(report.len(), 109);
    assert_eq!(report[0], "k -90 10 10");
    assert_eq!(report[9], "k 0 100 100");
    assert_eq!(report[104], "k 950 1050 50");
    assert_eq!(report[108], "k 990 1090 10");
    let total: u64 = report
        .iter()
        .map(|r| r.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 1000 * 10);
}

#[test]
fn sliding_windows_are_described_with_their_size_and_slide() {
    let p = Pipeline::new();
    p.source("in")
        .aggregate(
            "count",
            Window::sliding_ms(10_000, 2_000),
            5,
            CountPerWindow,
        )
        .sink("out");
    let spec = AggregateSpec {
        window: WitWindow::Sliding(SlidingWindow {
            size_ms: 10_000,
            slide_ms: 2_000,
        }),
        max_out_of_orderness_ms: 5,
    };
    assert_eq!(p.graph().nodes[1].op, Operator::Aggregate(spec));
}
