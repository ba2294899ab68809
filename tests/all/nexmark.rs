//! The Nexmark source and query guests, checked against the `nexmark` crate's events and
//! an independent computation of each query written here from its definition.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use nexmark::EventGenerator;
use nexmark::config::NexmarkConfig;
use nexmark::event::{Bid, Event};

use crate::util::{guest, job, line_counts, run_ok};

/// Enough events for several q7 windows (the generator's events are ~0.1 ms apart in event
/// time) while keeping the debug-build runs short.
pub const EVENTS: usize = 120_000;

/// The events the `nexmark:` source promises: the generator with its base time fixed at
/// 2026-01-01T00:00:00Z.
pub fn events(count: usize) -> Vec<Event> {
    let config = NexmarkConfig {
        base_time: 1_767_225_600_000,
        ..NexmarkConfig::default()
    };
    EventGenerator::new(config).take(count).collect()
}

fn bids(events: &[Event]) -> impl Iterator<Item = &Bid> {
    events.iter().filter_map(|e| match e {
        Event::Bid(bid) => Some(bid),
        _ => None,
    })
}

fn multiset(lines: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        *counts.entry(line).or_default() += 1;
    }
    counts
}

/// A query's expected output lines, computed from the events.
type Expected = fn(&[Event]) -> BTreeMap<String, usize>;

/// q1: bids with the price times 0.908, rounded down.
fn q1(events: &[Event]) -> BTreeMap<String, usize> {
    multiset(bids(events).map(|b| {
        let euros = (b.price as u128 * 908 / 1000) as u64;
        format!(
            "{},{},{euros},{},{}",
            b.auction, b.bidder, b.date_time, b.extra
        )
    }))
}

/// q2: auction and price of bids on auctions divisible by 123.
fn q2(events: &[Event]) -> BTreeMap<String, usize> {
    multiset(
        bids(events)
            .filter(|b| b.auction % 123 == 0)
            .map(|b| format!("{},{}", b.auction, b.price)),
    )
}

/// q5: for every 10 s window starting at a multiple of 2 s that holds a bid, the auctions
/// with the most bids in it.
fn q5(events: &[Event]) -> BTreeMap<String, usize> {
    let mut per_window: BTreeMap<i64, HashMap<usize, u64>> = BTreeMap::new();
    for bid in bids(events) {
        let time = bid.date_time as i64;
        let mut start = time.div_euclid(2_000) * 2_000;
        while start > time - 10_000 {
            *per_window
                .entry(start)
                .or_default()
                .entry(bid.auction)
                .or_default() += 1;
            start -= 2_000;
        }
    }
    let mut lines = Vec::new();
    for (start, counts) in per_window {
        let most = counts.values().copied().max().unwrap();
        for (auction, count) in counts {
            if count == most {
                lines.push(format!("{start},{auction},{count}"));
            }
        }
    }
    multiset(lines)
}

/// q7: for every 10 s tumbling window, the bids with the highest price.
pub fn q7(events: &[Event]) -> BTreeMap<String, usize> {
    let mut per_window: BTreeMap<i64, Vec<&Bid>> = BTreeMap::new();
    for bid in bids(events) {
        let start = (bid.date_time as i64).div_euclid(10_000) * 10_000;
        per_window.entry(start).or_default().push(bid);
    }
    let mut lines = Vec::new();
    for (start, bids) in per_window {
        let top = bids.iter().map(|b| b.price).max().unwrap();
        for b in bids.iter().filter(|b| b.price == top) {
            lines.push(format!(
                "{start},{},{},{top},{}",
                b.auction, b.bidder, b.date_time
            ));
        }
    }
    multiset(lines)
}

/// Runs query guest `name` over `EVENTS` generated events in `layout`; the sink's lines.
fn run_query(
    layout: (&str, usize, usize),
    name: &str,
    sink: &str,
    dir: &Path,
) -> BTreeMap<String, usize> {
    let out = dir.join(format!("{name}-{}x{}.txt", layout.1, layout.2));
    run_ok(&mut job(
        layout,
        &guest(name),
        &[
            ("--source", format!("events=nexmark:?events={EVENTS}")),
            ("--sink", format!("{sink}={}", out.display())),
        ],
    ));
    line_counts(&out)
}

#[test]
fn q0_passes_every_generated_event_through_in_every_layout() {
    let events = events(EVENTS);
    let dir = tempfile::tempdir().unwrap();
    for layout in [("run", 1, 1), ("spawn", 2, 1), ("spawn", 2, 2)] {
        let lines = run_query(layout, "nexmark-q0", "out", dir.path());
        assert_eq!(lines.values().sum::<usize>(), EVENTS, "{layout:?}");
        // Each record's fields are the generator's, whichever worker generated it.
        let mut expected: Vec<String> = events
            .iter()
            .map(|event| match event {
                Event::Person(p) => format!("P,{},{},{}", p.id, p.name, p.date_time),
                Event::Auction(a) => format!("A,{},{},{}", a.id, a.seller, a.expires),
                Event::Bid(b) => format!("B,{},{},{}", b.auction, b.price, b.date_time),
            })
            .collect();
        let mut got: Vec<String> = lines
            .keys()
            .map(|line| {
                let f: Vec<&str> = line.split(',').collect();
                match f[0] {
                    "P" => format!("P,{},{},{}", f[1], f[3], f[2]),
                    "A" => format!("A,{},{},{}", f[1], f[6], f[3]),
                    "B" => format!("B,{},{},{}", f[1], f[3], f[4]),
                    other => panic!("record of unknown kind {other}: {line}"),
                }
            })
            .collect();
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "{layout:?}");
    }
}

#[test]
fn q1_q2_q5_q7_match_an_independent_computation() {
    let events = events(EVENTS);
    let dir = tempfile::tempdir().unwrap();
    let queries: [(&str, &str, Expected); 4] = [
        ("nexmark-q1", "out", q1),
        ("nexmark-q2", "out", q2),
        ("nexmark-q5", "hot_items", q5),
        ("nexmark-q7", "highest_bids", q7),
    ];
    for (name, sink, query) in queries {
        let expected = query(&events);
        // q7 has one line per 10 s window, and EVENTS span 12 s of event time.
        assert!(
            expected.len() >= 2,
            "{name}: too few results to tell: {expected:?}"
        );
        for layout in [("run", 1, 1), ("spawn", 2, 1)] {
            let got = run_query(layout, name, sink, dir.path());
            assert_eq!(got, expected, "{name} in {layout:?}");
        }
    }
}

#[test]
fn a_null_sink_counts_what_it_drops() {
    let output = run_ok(&mut job(
        ("spawn", 2, 1),
        &guest("nexmark-q2"),
        &[
            ("--source", "events=nexmark:?events=20000".to_owned()),
            ("--sink", "out=null:".to_owned()),
        ],
    ));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = q2(&events(20_000)).values().sum::<usize>();
    assert!(
        stderr.contains("20000 events in") && stderr.contains(&format!(", {expected} out,")),
        "expected 20000 in and {expected} out:\n{stderr}"
    );
}
