//! Nexmark q7, highest bid: for every tumbling window of 10 s, the bids with the highest
//! price.
//!
//! `events` → `bids` (key = auction) → `highest_per_auction` (the best bids of each
//! auction, spread over the workers) → `highest` (one key: the best of those) →
//! `highest_bids`, one line per winning bid: `window_start,auction,bidder,price,date_time`.

use spillway_guest::{Aggregator, Emitter, Pipeline, Window, WindowBounds};
use spillway_nexmark::queries::{self, Highest, Q7_WINDOW_MS, WinningBid};
use spillway_nexmark::record;

/// Declares the pipeline.
pub fn build(p: &mut Pipeline) {
    let window = Window::tumbling_ms(Q7_WINDOW_MS);
    p.source("events")
        .transform("bids", |event, out| {
            if let Some(bid) = record::parse_bid(event.value)? {
                let winning = WinningBid {
                    auction: bid.auction,
                    bidder: bid.bidder,
                    date_time: bid.date_time,
                };
                let value = encode(bid.price, &winning);
                out.emit(Some(&bid.auction.to_le_bytes()), bid.date_time, &value);
            }
            Ok::<_, record::ParseError>(())
        })
        .aggregate("highest_per_auction", window, 0, HighestBid { last: false })
        .aggregate("highest", window, 0, HighestBid { last: true })
        .sink("highest_bids");
}

spillway_guest::export_pipeline!(build);

/// The one key of the second stage.
const ALL: &[u8] = b"all";

/// Keeps the bids with the highest price. The first stage passes its winners on to the
/// second, which writes the result.
struct HighestBid {
    last: bool,
}

impl Aggregator for HighestBid {
    type Acc = Highest;

    fn fold(&self, highest: &mut Highest, value: &[u8]) {
        let (price, bid) = decode(value);
        highest.offer(price, bid);
    }

    fn finish(&self, _key: &[u8], window: WindowBounds, highest: Highest, out: &mut Emitter) {
        if self.last {
            queries::write_q7(window.start, highest, |line| out.emit(None, window.start, line));
        } else {
            for bid in &highest.items {
                out.emit(Some(ALL), window.start, &encode(highest.score, bid));
            }
        }
    }
}

/// A bid between stages: price, auction, bidder, date_time, little-endian.
fn encode(price: u64, bid: &WinningBid) -> [u8; 32] {
    let mut value = [0; 32];
    value[..8].copy_from_slice(&price.to_le_bytes());
    value[8..16].copy_from_slice(&bid.auction.to_le_bytes());
    value[16..24].copy_from_slice(&bid.bidder.to_le_bytes());
    value[24..].copy_from_slice(&bid.date_time.to_le_bytes());
    value
}

fn decode(value: &[u8]) -> (u64, WinningBid) {
    let field = |at: usize| u64::from_le_bytes(value[at..at + 8].try_into().unwrap());
    let bid = WinningBid {
        auction: field(8),
        bidder: field(16),
        date_time: field(24) as i64,
    };
    (field(0), bid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spillway_guest::local;

    #[test]
    fn highest_bids_per_window_keep_ties() {
        let bid = |auction: u64, bidder: u64, price: u64, time: i64| {
            format!("B,{auction},{bidder},{price},{time},c,u,x").into_bytes()
        };
        let records = [
            bid(1, 10, 5, 1_000),
            bid(2, 11, 9, 2_000),
            bid(3, 12, 9, 9_999),
            bid(1, 13, 4, 10_000),
        ];
        let records: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let run = local::run(&Pipeline::build(build), &[("events", &records)]).unwrap();
        let lines: Vec<_> = run.sinks["highest_bids"]
            .iter()
            .map(|l| String::from_utf8(l.clone()).unwrap())
            .collect();
        assert_eq!(lines, ["0,2,11,9,2000", "0,3,12,9,9999", "10000,1,13,4,10000"]);
    }
}
