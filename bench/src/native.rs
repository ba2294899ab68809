//! The native baselines: each query's logic as a plain single-threaded loop over the
//! generated events (or the input file), with no framework, no Wasm and no serialisation of
//! the input. Output lines are written into a reused buffer and counted.

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, Result};
use nexmark::event::{Bid, Event};
use spillway_nexmark::queries::{self, Highest, Hottest, WinningBid};
use spillway_nexmark::{generate, record};

use crate::Query;

/// Runs `query` over `events` generated events (or the file `words`) and returns the number of
/// output records and the number of input records.
pub fn run(query: Query, events: u64, words: &Path) -> Result<(u64, u64)> {
    let events_of = || generate::events(0, 0, 1).take(events as usize);
    let mut line = Vec::with_capacity(512);
    let mut out = 0u64;
    let mut emit = |line: &[u8]| {
        std::hint::black_box(line);
        out += 1;
    };
    match query {
        Query::Q0 => {
            for event in events_of() {
                line.clear();
                record::write(&event, &mut line);
                emit(&line);
            }
        }
        Query::Q1 => {
            for bid in events_of().filter_map(bid) {
                line.clear();
                queries::write_q1(&view(&bid), bid.extra.as_bytes(), &mut line);
                emit(&line);
            }
        }
        Query::Q2 => {
            for bid in events_of().filter_map(bid) {
                if queries::q2_selects(bid.auction as u64) {
                    line.clear();
                    queries::write_q2(&view(&bid), &mut line);
                    emit(&line);
                }
            }
        }
        Query::Q5 => hot_items(events_of().filter_map(bid), &mut emit),
        Query::Q7 => highest_bids(events_of().filter_map(bid), &mut emit),
        Query::Wordcount => return wordcount(words, &mut emit).map(|words| (out, words)),
    }
    Ok((out, events))
}

fn bid(event: Event) -> Option<Bid> {
    match event {
        Event::Bid(bid) => Some(bid),
        _ => None,
    }
}

/// The numbers of a generated bid, as the record parser would have read them.
fn view(bid: &Bid) -> record::Bid<'static> {
    record::Bid {
        auction: bid.auction as u64,
        bidder: bid.bidder as u64,
        price: bid.price as u64,
        date_time: bid.date_time as i64,
        strings: b"",
    }
}

/// q5 over bids in time order: bid counts per (window start, auction); a window is reported
/// once a bid at or past its end arrives.
fn hot_items(bids: impl Iterator<Item = Bid>, emit: &mut impl FnMut(&[u8])) {
    let (size, slide) = (queries::Q5_WINDOW_MS as i64, queries::Q5_SLIDE_MS as i64);
    let mut windows: BTreeMap<i64, HashMap<u64, u64>> = BTreeMap::new();
    let close = |windows: &mut BTreeMap<i64, HashMap<u64, u64>>,
                 until: i64,
                 emit: &mut dyn FnMut(&[u8])| {
        while let Some(entry) = windows.first_entry() {
            if *entry.key() + size > until {
                break;
            }
            let (start, counts) = entry.remove_entry();
            let mut hottest = Hottest::default();
            for (auction, bids) in counts {
                hottest.offer(bids, auction);
            }
            queries::write_q5(start, hottest, &mut *emit);
        }
    };
    for bid in bids {
        let time = bid.date_time as i64;
        close(&mut windows, time, emit);
        let latest = time - time.rem_euclid(slide);
        let mut start = latest;
        while start + size > time {
            *windows
                .entry(start)
                .or_default()
                .entry(bid.auction as u64)
                .or_default() += 1;
            start -= slide;
        }
    }
    close(&mut windows, i64::MAX, emit);
}

/// q7 over bids in time order: the best bids per tumbling window.
fn highest_bids(bids: impl Iterator<Item = Bid>, emit: &mut impl FnMut(&[u8])) {
    let size = queries::Q7_WINDOW_MS as i64;
    let mut windows: BTreeMap<i64, Highest> = BTreeMap::new();
    let close = |windows: &mut BTreeMap<i64, Highest>, until: i64, emit: &mut dyn FnMut(&[u8])| {
        while let Some(entry) = windows.first_entry() {
            if *entry.key() + size > until {
                break;
            }
            let (start, highest) = entry.remove_entry();
            queries::write_q7(start, highest, &mut *emit);
        }
    };
    for bid in bids {
        let time = bid.date_time as i64;
        close(&mut windows, time, emit);
        let winning = WinningBid {
            auction: bid.auction as u64,
            bidder: bid.bidder as u64,
            date_time: time,
        };
        let start = time - time.rem_euclid(size);
        windows
            .entry(start)
            .or_default()
            .offer(bid.price as u64, winning);
    }
    close(&mut windows, i64::MAX, emit);
}

/// Counts lower-cased, whitespace-separated words, then writes one JSON line per word.
/// Returns the number of words.
fn wordcount(path: &Path, emit: &mut impl FnMut(&[u8])) -> Result<u64> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut words = 0;
    for line in std::io::BufReader::with_capacity(1 << 16, file).split(b'\n') {
        let line = line?;
        for word in String::from_utf8_lossy(&line).split_whitespace() {
            words += 1;
            if word
                .bytes()
                .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
            {
                *counts.entry(word.to_lowercase()).or_default() += 1;
            } else if let Some(count) = counts.get_mut(word) {
                *count += 1;
            } else {
                counts.insert(word.to_owned(), 1);
            }
        }
    }
    for (word, count) in counts {
        emit(format!("{{\"word\":{word:?},\"count\":{count}}}").as_bytes());
    }
    Ok(words)
}
