//! Nexmark events as one line of comma-separated text each, tagged by kind, numbers first:
//!
//! ```text
//! P,id,date_time,name,email_address,credit_card,city,state,extra
//! A,id,date_time,expires,initial_bid,reserve,seller,category,item_name,description,extra
//! B,auction,bidder,price,date_time,channel,url,extra
//! ```
//!
//! Times are milliseconds since the Unix epoch. The generator's strings hold no commas or
//! newlines, so no quoting is needed; a bid's `extra` is everything after its seventh comma.
//! Text keeps records readable in any guest language and lets the pass-through query (q0)
//! write its input unchanged. Numbers come first so that a query reads what it needs
//! without scanning the strings.

use std::fmt;

/// A bid, borrowed from its record. Its strings are found on demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bid<'a> {
    pub auction: u64,
    pub bidder: u64,
    pub price: u64,
    pub date_time: i64,
    /// `channel,url,extra`.
    pub strings: &'a [u8],
}

impl<'a> Bid<'a> {
    pub fn channel(&self) -> &'a [u8] {
        self.string(0)
    }

    pub fn url(&self) -> &'a [u8] {
        self.string(1)
    }

    pub fn extra(&self) -> &'a [u8] {
        self.string(2)
    }

    /// String `index` of `channel,url,extra`; empty if the record has fewer.
    fn string(&self, index: usize) -> &'a [u8] {
        self.strings
            .splitn(3, |&b| b == b',')
            .nth(index)
            .unwrap_or_default()
    }
}

/// A record that is not a well-formed Nexmark record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

/// Parses `record` as a bid: `Ok(None)` for a person or an auction.
///
/// # Examples
///
/// ```
/// use spillway_nexmark::record::parse_bid;
///
/// let bid = parse_bid(b"B,1000,1001,250,1767225600001,Apple,https://x.test/item,pad")
///     .unwrap()
///     .unwrap();
/// assert_eq!((bid.auction, bid.price, bid.date_time), (1000, 250, 1767225600001));
/// assert_eq!(bid.url(), b"https://x.test/item");
/// assert_eq!(parse_bid(b"P,1000,1767225600000,ann,a@b.test,1 2,ny,ny,x"), Ok(None));
/// ```
pub fn parse_bid(record: &[u8]) -> Result<Option<Bid<'_>>, ParseError> {
    let mut rest = match record {
        [b'B', b',', rest @ ..] => rest,
        [b'P' | b'A', b',', ..] => return Ok(None),
        _ => return Err(error("an event kind (P, A or B)", record)),
    };
    let mut next = |what: &str| {
        let (n, after) = number(rest).ok_or_else(|| error(what, record))?;
        rest = after;
        Ok(n)
    };
    let auction = next("an auction")?;
    let bidder = next("a bidder")?;
    let price = next("a price")?;
    let date_time = next("a date_time")?;
    let date_time = i64::try_from(date_time).map_err(|_| error("a date_time", record))?;
    Ok(Some(Bid {
        auction,
        bidder,
        price,
        date_time,
        strings: rest,
    }))
}

/// Parses the ASCII decimal number at the start of `text` up to a comma, without going
/// through `str`: the number, and the text after the comma. At most 19 digits, which always
/// fit a u64, so no overflow checks: in Wasm a checked u64 multiply is a call to a 128-bit
/// multiply, and it was a tenth of the q2 pipeline's time.
fn number(text: &[u8]) -> Option<(u64, &[u8])> {
    let digits = text
        .iter()
        .take(20)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || digits > 19 || text.get(digits) != Some(&b',') {
        return None;
    }
    let n = text[..digits]
        .iter()
        .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    Some((n, &text[digits + 1..]))
}

fn error(what: &str, record: &[u8]) -> ParseError {
    let shown = String::from_utf8_lossy(&record[..record.len().min(80)]);
    ParseError(format!("expected {what} in Nexmark record `{shown}`"))
}

/// Writes `event` as a record (no line terminator).
#[cfg(feature = "generate")]
pub fn write(event: &nexmark::event::Event, out: &mut Vec<u8>) {
    use nexmark::event::Event;
    let mut fields = Fields(out);
    match event {
        Event::Person(p) => {
            fields.text(b"P");
            fields.number(p.id as u64);
            fields.number(p.date_time);
            fields.text(p.name.as_bytes());
            fields.text(p.email_address.as_bytes());
            fields.text(p.credit_card.as_bytes());
            fields.text(p.city.as_bytes());
            fields.text(p.state.as_bytes());
            fields.last(p.extra.as_bytes());
        }
        Event::Auction(a) => {
            fields.text(b"A");
            fields.number(a.id as u64);
            fields.number(a.date_time);
            fields.number(a.expires);
            fields.number(a.initial_bid as u64);
            fields.number(a.reserve as u64);
            fields.number(a.seller as u64);
            fields.number(a.category as u64);
            fields.text(a.item_name.as_bytes());
            fields.text(a.description.as_bytes());
            fields.last(a.extra.as_bytes());
        }
        Event::Bid(b) => {
            fields.text(b"B");
            fields.number(b.auction as u64);
            fields.number(b.bidder as u64);
            fields.number(b.price as u64);
            fields.number(b.date_time);
            fields.text(b.channel.as_bytes());
            fields.text(b.url.as_bytes());
            fields.last(b.extra.as_bytes());
        }
    }
}

/// Appends comma-terminated fields.
#[cfg(feature = "generate")]
struct Fields<'a>(&'a mut Vec<u8>);

#[cfg(feature = "generate")]
impl Fields<'_> {
    fn text(&mut self, text: &[u8]) {
        debug_assert!(!text.contains(&b','), "generated text holds no commas");
        self.0.extend_from_slice(text);
        self.0.push(b',');
    }

    fn number(&mut self, n: u64) {
        self.0
            .extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        self.0.push(b',');
    }

    fn last(&mut self, text: &[u8]) {
        self.0.extend_from_slice(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_malformed_bids_naming_the_field() {
        let error = parse_bid(b"B,12,x,3,5,c,u,e").unwrap_err();
        assert!(error.0.starts_with("expected a bidder"), "{error}");
        assert!(parse_bid(b"B,12,13,").unwrap_err().0.contains("a price"));
        assert!(
            parse_bid(b"B,12,13,14,15")
                .unwrap_err()
                .0
                .contains("a date_time")
        );
        assert!(
            parse_bid(b"B,,1,1,1,c,u,e")
                .unwrap_err()
                .0
                .contains("an auction")
        );
        assert!(parse_bid(b"").is_err());
        assert!(parse_bid(b"Q,1").is_err());
        assert!(parse_bid(b"B,99999999999999999999,1,1,1,c,u,e").is_err());
    }

    #[test]
    fn strings_are_split_on_demand_and_extra_keeps_its_commas() {
        let bid = parse_bid(b"B,1,2,3,4,ch,u,a,b").unwrap().unwrap();
        assert_eq!(
            (bid.channel(), bid.url(), bid.extra()),
            (&b"ch"[..], &b"u"[..], &b"a,b"[..])
        );
        let short = parse_bid(b"B,1,2,3,4,").unwrap().unwrap();
        assert_eq!((short.channel(), short.extra()), (&b""[..], &b""[..]));
    }

    #[cfg(feature = "generate")]
    #[test]
    fn generated_bids_round_trip() {
        let mut seen = 0;
        for event in crate::generate::events(0, 0, 1).take(500) {
            let mut line = Vec::new();
            write(&event, &mut line);
            if let nexmark::event::Event::Bid(b) = &event {
                let parsed = parse_bid(&line).unwrap().unwrap();
                assert_eq!(parsed.auction, b.auction as u64);
                assert_eq!(parsed.bidder, b.bidder as u64);
                assert_eq!(parsed.price, b.price as u64);
                assert_eq!(parsed.channel(), b.channel.as_bytes());
                assert_eq!(parsed.url(), b.url.as_bytes());
                assert_eq!(parsed.date_time as u64, b.date_time);
                assert_eq!(parsed.extra(), b.extra.as_bytes());
                seen += 1;
            } else {
                assert_eq!(parse_bid(&line), Ok(None));
            }
            assert!(!line.contains(&b'\n'));
        }
        assert!(seen > 400, "most Nexmark events are bids; saw {seen}");
    }
}
