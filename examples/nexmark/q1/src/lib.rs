//! Nexmark q1, currency conversion: `events` → `out`, each bid with its price in euros,
//! `auction,bidder,price,date_time,extra`. Persons and auctions are dropped.

use spillway_guest::Pipeline;
use spillway_nexmark::{queries, record};

/// Declares the pipeline.
pub fn build(p: &mut Pipeline) {
    p.source("events")
        .transform("euros", |event, out| {
            if let Some(bid) = record::parse_bid(event.value)? {
                out.emit_with(None, bid.date_time, |line| {
                    queries::write_q1(&bid, bid.extra(), line)
                });
            }
            Ok::<_, record::ParseError>(())
        })
        .sink("out");
}

spillway_guest::export_pipeline!(build);

#[cfg(test)]
mod tests {
    use super::*;
    use spillway_guest::local;

    #[test]
    fn converts_bids_and_rejects_garbage() {
        let records: &[&[u8]] = &[b"P,1,5,a,b,c,d,e,x", b"B,2,3,1000,7,ch,url,pad", b"B,x"];
        let run = local::run(&Pipeline::build(build), &[("events", records)]).unwrap();
        assert_eq!(run.sinks["out"], [b"2,3,908,7,pad"]);
        assert_eq!(run.rejected.len(), 1);
        assert!(run.rejected[0].message.contains("expected an auction"));
    }
}
