//! Parsing one line of an Apache access log (common or combined format).

use std::fmt;

use crate::time::days_from_civil;

/// What the report needs from one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// When the request was received, in ms since the Unix epoch (UTC).
    pub time_ms: i64,
    /// The HTTP status, three ASCII digits.
    pub status: [u8; 3],
    /// Size of the response body (`-` is 0).
    pub bytes: u64,
}

impl Request {
    /// The status class: its first digit followed by `xx`, e.g. `4xx`.
    pub fn status_class(&self) -> [u8; 3] {
        [self.status[0], b'x', b'x']
    }
}

/// Why a line is not a request. The messages quote the offending part of the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    NoTimestamp,
    BadTimestamp(String),
    NoRequest,
    NoStatus,
    BadStatus(String),
    BadSize(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::NoTimestamp => f.write_str("no [timestamp] in the line"),
            ParseError::BadTimestamp(s) => {
                write!(f, "timestamp {s:?} is not like 17/May/2015:10:05:03 +0000")
            }
            ParseError::NoRequest => f.write_str("no quoted request after the timestamp"),
            ParseError::NoStatus => f.write_str("no status and size after the request"),
            ParseError::BadStatus(s) => write!(f, "status {s:?} is not three digits"),
            ParseError::BadSize(s) => write!(f, "response size {s:?} is neither a number nor -"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses `HOST IDENT USER [TIME] "REQUEST" STATUS SIZE ...`; whatever follows the size
/// (referrer, user agent) is not needed and not checked.
///
/// # Errors
///
/// If a field is missing or malformed.
pub fn parse_line(line: &[u8]) -> Result<Request, ParseError> {
    let open = line
        .iter()
        .position(|&b| b == b'[')
        .ok_or(ParseError::NoTimestamp)?;
    let close = open
        + line[open..]
            .iter()
            .position(|&b| b == b']')
            .ok_or(ParseError::NoTimestamp)?;
    let time_ms = parse_timestamp(&line[open + 1..close])
        .ok_or_else(|| ParseError::BadTimestamp(excerpt(&line[open + 1..close])))?;

    let rest = line[close + 1..]
        .strip_prefix(b" \"")
        .ok_or(ParseError::NoRequest)?;
    let end = closing_quote(rest).ok_or(ParseError::NoRequest)?;
    let rest = rest[end + 1..]
        .strip_prefix(b" ")
        .ok_or(ParseError::NoStatus)?;

    let mut fields = rest.split(|&b| b == b' ');
    let status = fields
        .next()
        .filter(|s| !s.is_empty())
        .ok_or(ParseError::NoStatus)?;
    let status: [u8; 3] = status
        .try_into()
        .ok()
        .filter(|s: &[u8; 3]| s.iter().all(u8::is_ascii_digit))
        .ok_or_else(|| ParseError::BadStatus(excerpt(status)))?;
    let size = fields.next().unwrap_or_default();
    let bytes = match size {
        b"-" => 0,
        digits => parse_u64(digits).ok_or_else(|| ParseError::BadSize(excerpt(digits)))?,
    };
    Ok(Request {
        time_ms,
        status,
        bytes,
    })
}

/// Index of the quote that ends a quoted field; Apache escapes quotes inside as `\"`.
fn closing_quote(field: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < field.len() {
        match field[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// `17/May/2015:10:05:03 +0000` as ms since the Unix epoch, UTC.
fn parse_timestamp(s: &[u8]) -> Option<i64> {
    let s: &[u8; 26] = s.try_into().ok()?;
    let separators = [
        (2, b'/'),
        (6, b'/'),
        (11, b':'),
        (14, b':'),
        (17, b':'),
        (20, b' '),
    ];
    if separators.iter().any(|&(i, c)| s[i] != c) {
        return None;
    }
    let day = digits(&s[0..2])?;
    let month = month(&s[3..6])?;
    let year = digits(&s[7..11])?;
    let (hour, minute, second) = (
        digits(&s[12..14])?,
        digits(&s[15..17])?,
        digits(&s[18..20])?,
    );
    let sign = match s[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (offset_hours, offset_minutes) = (digits(&s[22..24])?, digits(&s[24..26])?);
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 || offset_minutes > 59 {
        return None;
    }
    let local = days_from_civil(i64::from(year), month, day) * 86_400
        + i64::from(hour * 3600 + minute * 60 + second);
    let offset = sign * i64::from(offset_hours * 3600 + offset_minutes * 60);
    Some((local - offset) * 1000)
}

fn month(name: &[u8]) -> Option<u32> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    MONTHS
        .iter()
        .position(|m| m.as_slice() == name)
        .map(|i| i as u32 + 1)
}

/// A run of ASCII digits as a number; `None` if empty or not all digits.
fn digits(s: &[u8]) -> Option<u32> {
    let n = parse_u64(s)?;
    u32::try_from(n).ok()
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.iter().try_fold(0u64, |n, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Part of a line to quote in a message, lossily decoded and cut to 40 characters.
fn excerpt(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).chars().take(40).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &[u8] = br#"198.18.0.0 - - [17/May/2015:10:05:03 +0000] "GET /presentations/logstash-monitorama-2013/images/kibana-search.png HTTP/1.1" 200 203023 "http://semicomplete.com/presentations/logstash-monitorama-2013/" "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36""#;

    #[test]
    fn parses_a_combined_log_line() {
        let request = parse_line(LINE).unwrap();
        // 2015-05-17T10:05:03Z
        assert_eq!(
            request,
            Request {
                time_ms: 1_431_857_103_000,
                status: *b"200",
                bytes: 203_023
            }
        );
        assert_eq!(&request.status_class(), b"2xx");
    }

    #[test]
    fn honours_the_zone_offset() {
        let at = |zone: &str| {
            let line = format!(r#"h - - [17/May/2015:10:05:03 {zone}] "GET / HTTP/1.1" 304 -"#);
            parse_line(line.as_bytes()).unwrap()
        };
        let utc = at("+0000");
        assert_eq!(at("+0200").time_ms, utc.time_ms - 2 * 3_600_000);
        assert_eq!(
            at("-0530").time_ms,
            utc.time_ms + 5 * 3_600_000 + 30 * 60_000
        );
        assert_eq!(utc.bytes, 0);
    }

    #[test]
    fn escaped_quotes_stay_inside_the_request() {
        let line =
            br#"h - - [17/May/2015:10:05:03 +0000] "GET /\"quoted\" HTTP/1.1" 404 12 "-" "-""#;
        let request = parse_line(line).unwrap();
        assert_eq!((request.status, request.bytes), (*b"404", 12));
    }

    #[test]
    fn says_what_is_wrong() {
        let err = |line: &str| parse_line(line.as_bytes()).unwrap_err().to_string();
        assert_eq!(err("garbage"), "no [timestamp] in the line");
        assert_eq!(
            err(r#"h - - [17/Mai/2015:10:05:03 +0000] "GET /" 200 1"#),
            r#"timestamp "17/Mai/2015:10:05:03 +0000" is not like 17/May/2015:10:05:03 +0000"#
        );
        assert_eq!(
            err("h - - [17/May/2015:10:05:03 +0000] GET"),
            "no quoted request after the timestamp"
        );
        assert_eq!(
            err(r#"h - - [17/May/2015:10:05:03 +0000] "GET /""#),
            "no status and size after the request"
        );
        assert_eq!(
            err(r#"h - - [17/May/2015:10:05:03 +0000] "GET /" 20x 1"#),
            r#"status "20x" is not three digits"#
        );
        assert_eq!(
            err(r#"h - - [17/May/2015:10:05:03 +0000] "GET /" 200 1k"#),
            r#"response size "1k" is neither a number nor -"#
        );
    }
}
