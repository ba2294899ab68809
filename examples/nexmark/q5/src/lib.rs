//! Nexmark q5, hot items: for every sliding window of 10 s starting every 2 s, the auctions
//! with the most bids.
//!
//! `events` → `bids` (key = auction, time = the bid's time) → `bids_per_auction` (sliding
//! windows, a count per auction) → `hottest` (one key; 2 s tumbling windows, each holding the
//! counts of the one sliding window that starts there) → `hot_items`, one line per hottest
//! auction of each window: `window_start,auction,bids`.

use spillway_guest::{Aggregator, Emitter, Pipeline, Window, WindowBounds};
use spillway_nexmark::queries::{self, Hottest, Q5_SLIDE_MS, Q5_WINDOW_MS};
use spillway_nexmark::record;

/// Declares the pipeline.
pub fn build(p: &mut Pipeline) {
    p.source("events")
        .transform("bids", |event, out| {
            if let Some(bid) = record::parse_bid(event.value)? {
                out.emit(Some(&bid.auction.to_le_bytes()), bid.date_time, b"");
            }
            Ok::<_, record::ParseError>(())
        })
        .aggregate(
            "bids_per_auction",
            Window::sliding_ms(Q5_WINDOW_MS, Q5_SLIDE_MS),
            0,
            CountBids,
        )
        .aggregate("hottest", Window::tumbling_ms(Q5_SLIDE_MS), 0, HottestAuctions)
        .sink("hot_items");
}

spillway_guest::export_pipeline!(build);

/// The one key of the second stage: every window's counts meet on one worker.
const ALL: &[u8] = b"all";

/// Counts the bids of each auction; emits `(auction, bids)` at the window's start.
struct CountBids;

impl Aggregator for CountBids {
    type Acc = u64;

    fn fold(&self, bids: &mut u64, _value: &[u8]) {
        *bids += 1;
    }

    fn finish(&self, auction: &[u8], window: WindowBounds, bids: u64, out: &mut Emitter) {
        let mut value = [0; 16];
        value[..8].copy_from_slice(auction);
        value[8..].copy_from_slice(&bids.to_le_bytes());
        out.emit(Some(ALL), window.start, &value);
    }
}

/// Keeps the auctions with the most bids.
struct HottestAuctions;

impl Aggregator for HottestAuctions {
    type Acc = Hottest;

    fn fold(&self, hottest: &mut Hottest, value: &[u8]) {
        let field = |at: usize| u64::from_le_bytes(value[at..at + 8].try_into().unwrap());
        hottest.offer(field(8), field(0));
    }

    fn finish(&self, _key: &[u8], window: WindowBounds, hottest: Hottest, out: &mut Emitter) {
        queries::write_q5(window.start, hottest, |line| out.emit(None, window.start, line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spillway_guest::local;

    #[test]
    fn hottest_auctions_per_sliding_window() {
        let bid = |auction: u64, time: i64| format!("B,{auction},1,5,{time},c,u,x").into_bytes();
        let records = [bid(1, 0), bid(1, 1_000), bid(2, 2_500), bid(2, 3_000), bid(2, 11_000)];
        let records: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let run = local::run(&Pipeline::build(build), &[("events", &records)]).unwrap();
        let lines: Vec<_> = run.sinks["hot_items"]
            .iter()
            .map(|l| String::from_utf8(l.clone()).unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                // [-8 s, 2 s) holds auction 1's two bids only; the next four windows hold
                // two bids on each auction, a tie.
                "-8000,1,2",
                "-6000,1,2",
                "-6000,2,2",
                "-4000,1,2",
                "-4000,2,2",
                "-2000,1,2",
                "-2000,2,2",
                "0,1,2",
                "0,2,2",
                "2000,2,3",
                "4000,2,1",
                "6000,2,1",
                "8000,2,1",
                "10000,2,1",
            ]
        );
    }
}
