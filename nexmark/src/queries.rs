//! The per-record logic of the Nexmark queries, as Spillway runs them:
//!
//! - **q0**, pass-through: every record, unchanged.
//! - **q1**, currency conversion: each bid's price in euros, [`dollars_to_euros`];
//!   output `auction,bidder,price,date_time,extra`.
//! - **q2**, selection: bids on every 123rd auction, [`q2_selects`]; output `auction,price`.
//! - **q5**, hot items: per sliding window ([`Q5_WINDOW_MS`] every [`Q5_SLIDE_MS`]), the
//!   auctions with the most bids, [`Hottest`]; output [`write_q5`].
//! - **q7**, highest bid: per tumbling window of [`Q7_WINDOW_MS`], the bids with the highest
//!   price, [`Highest`]; output [`write_q7`].
//!
//! Ties keep every winner, so results do not depend on arrival order.

use serde::{Deserialize, Serialize};

use crate::record::Bid;

/// q5's window length.
pub const Q5_WINDOW_MS: u64 = 10_000;
/// q5's window slide.
pub const Q5_SLIDE_MS: u64 = 2_000;
/// q7's window length.
pub const Q7_WINDOW_MS: u64 = 10_000;

/// q1: the conversion rate of the Nexmark definition, 0.908, in integer arithmetic.
pub fn dollars_to_euros(price: u64) -> u64 {
    price * 908 / 1000
}

/// q2: whether a bid on `auction` is selected.
pub fn q2_selects(auction: u64) -> bool {
    auction.is_multiple_of(123)
}

/// Writes q1's output line for a bid: `auction,bidder,price_in_euros,date_time,extra`.
pub fn write_q1(bid: &Bid<'_>, extra: &[u8], out: &mut Vec<u8>) {
    let mut n = itoa::Buffer::new();
    for number in [bid.auction, bid.bidder, dollars_to_euros(bid.price)] {
        out.extend_from_slice(n.format(number).as_bytes());
        out.push(b',');
    }
    out.extend_from_slice(n.format(bid.date_time).as_bytes());
    out.push(b',');
    out.extend_from_slice(extra);
}

/// Writes q2's output line for a bid: `auction,price`.
pub fn write_q2(bid: &Bid<'_>, out: &mut Vec<u8>) {
    let mut n = itoa::Buffer::new();
    out.extend_from_slice(n.format(bid.auction).as_bytes());
    out.push(b',');
    out.extend_from_slice(n.format(bid.price).as_bytes());
}

/// The items with the highest score, every tie kept: q5's hottest auctions (score = bids) and
/// q7's highest bids (score = price).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Top<T> {
    pub score: u64,
    pub items: Vec<T>,
}

impl<T> Default for Top<T> {
    fn default() -> Self {
        Self {
            score: 0,
            items: Vec::new(),
        }
    }
}

impl<T: Ord> Top<T> {
    /// Takes `item` with `score` into account.
    pub fn offer(&mut self, score: u64, item: T) {
        if score > self.score || self.items.is_empty() {
            self.score = score;
            self.items.clear();
        }
        if score == self.score {
            self.items.push(item);
        }
    }

    /// The items in ascending order, each once.
    pub fn into_sorted(mut self) -> Vec<T> {
        self.items.sort_unstable();
        self.items.dedup();
        self.items
    }
}

/// q5: the auctions with the most bids in one window.
pub type Hottest = Top<u64>;

/// q5's output lines for one window: `window_start,auction,bids`.
pub fn write_q5(window_start: i64, hottest: Hottest, mut line: impl FnMut(&[u8])) {
    let bids = hottest.score;
    for auction in hottest.into_sorted() {
        line(format!("{window_start},{auction},{bids}").as_bytes());
    }
}

/// One bid of q7's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WinningBid {
    pub auction: u64,
    pub bidder: u64,
    pub date_time: i64,
}

/// q7: the bids with the highest price in one window.
pub type Highest = Top<WinningBid>;

/// q7's output lines for one window: `window_start,auction,bidder,price,date_time`.
pub fn write_q7(window_start: i64, highest: Highest, mut line: impl FnMut(&[u8])) {
    let price = highest.score;
    for b in highest.into_sorted() {
        let text = format!(
            "{window_start},{},{},{price},{}",
            b.auction, b.bidder, b.date_time
        );
        line(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn euros_round_down() {
        assert_eq!(dollars_to_euros(1000), 908);
        assert_eq!(dollars_to_euros(999), 907);
        assert_eq!(dollars_to_euros(1), 0);
    }

    #[test]
    fn q2_selects_multiples_of_123() {
        assert!(q2_selects(0) && q2_selects(246));
        assert!(!q2_selects(1000));
    }

    #[test]
    fn q1_and_q2_lines() {
        let bid = Bid {
            auction: 246,
            bidder: 7,
            price: 1000,
            date_time: 1_767_225_600_123,
            strings: b"c,u,pad",
        };
        let (mut q1, mut q2) = (Vec::new(), Vec::new());
        write_q1(&bid, bid.extra(), &mut q1);
        write_q2(&bid, &mut q2);
        assert_eq!(q1, b"246,7,908,1767225600123,pad");
        assert_eq!(q2, b"246,1000");
    }

    #[test]
    fn hottest_keeps_every_tie() {
        let mut hot = Hottest::default();
        for (auction, bids) in [(7, 2), (3, 5), (9, 5), (1, 4)] {
            hot.offer(bids, auction);
        }
        let mut lines = Vec::new();
        write_q5(2_000, hot, |l| {
            lines.push(String::from_utf8(l.to_vec()).unwrap())
        });
        assert_eq!(lines, ["2000,3,5", "2000,9,5"]);
    }

    #[test]
    fn highest_keeps_every_tie_even_at_price_zero() {
        let bid = |auction| WinningBid {
            auction,
            bidder: 1,
            date_time: 5,
        };
        let mut high = Highest::default();
        high.offer(0, bid(4));
        assert_eq!(high.items.len(), 1);
        high.offer(10, bid(2));
        high.offer(3, bid(1));
        high.offer(10, bid(1));
        let mut lines = Vec::new();
        write_q7(0, high, |l| {
            lines.push(String::from_utf8(l.to_vec()).unwrap())
        });
        assert_eq!(lines, ["0,1,1,10,5", "0,2,1,10,5"]);
    }
}
