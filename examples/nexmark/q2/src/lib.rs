//! Nexmark q2, selection: `events` → `out`, `auction,price` of the bids on every 123rd
//! auction.

use spillway_guest::Pipeline;
use spillway_nexmark::{queries, record};

/// Declares the pipeline.
pub fn build(p: &mut Pipeline) {
    p.source("events")
        .transform("select", |event, out| {
            if let Some(bid) = record::parse_bid(event.value)?
                && queries::q2_selects(bid.auction)
            {
                out.emit_with(None, bid.date_time, |line| queries::write_q2(&bid, line));
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
    fn keeps_bids_on_every_123rd_auction() {
        let records: &[&[u8]] = &[
            b"B,246,3,1000,7,ch,url,pad",
            b"B,247,3,1000,7,ch,url,pad",
            b"A,246,3,4,1,2,5,6,i,d,x",
        ];
        let run = local::run(&Pipeline::build(build), &[("events", records)]).unwrap();
        assert_eq!(run.sinks["out"], [b"246,1000"]);
    }
}
