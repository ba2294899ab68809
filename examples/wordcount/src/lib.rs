//! Spillway example: how often each word occurs in the input.
//!
//! `lines` → `words` (split on Unicode whitespace, lower-cased; key = the word) →
//! `count` (global window) → `counts`, one JSON line per word when the input ends:
//!
//! ```text
//! {"word":"the","count":4242}
//! ```
//!
//! Lines are decoded as UTF-8, with invalid bytes replaced by U+FFFD. This guest is a
//! throughput benchmark, so the hot path allocates only for words that are not ASCII
//! lower case already, and then into a reused buffer where it can.

use std::cell::RefCell;

use serde::Serialize;
use spillway_guest::{Aggregator, Emitter, Pipeline, Window, WindowBounds};

/// Declares the pipeline.
pub fn build(p: &mut Pipeline) {
    let scratch = RefCell::new(Vec::new());
    p.source("lines")
        .transform("words", move |line, out| {
            let text = String::from_utf8_lossy(line.value);
            let mut scratch = scratch.borrow_mut();
            for word in text.split_whitespace() {
                emit_lowercase(word, line.time, &mut scratch, out);
            }
        })
        .aggregate("count", Window::global(), 0, Count)
        .sink("counts");
}

spillway_guest::export_pipeline!(build);

/// Emits `word.to_lowercase()` as the key of an event without a value.
#[inline]
fn emit_lowercase(word: &str, time: i64, scratch: &mut Vec<u8>, out: &mut Emitter) {
    let bytes = word.as_bytes();
    if !bytes
        .iter()
        .any(|b| b.is_ascii_uppercase() || !b.is_ascii())
    {
        out.emit(Some(bytes), time, b"");
    } else if bytes.is_ascii() {
        scratch.clear();
        scratch.extend(bytes.iter().map(u8::to_ascii_lowercase));
        out.emit(Some(scratch), time, b"");
    } else {
        // Unicode lower-casing depends on context (a final sigma), so leave it to `str`.
        out.emit(Some(word.to_lowercase().as_bytes()), time, b"");
    }
}

/// Counts the events of each word.
pub struct Count;

/// One line of the output.
#[derive(Serialize)]
struct WordCount<'a> {
    word: &'a str,
    count: u64,
}

impl Aggregator for Count {
    type Acc = u64;

    #[inline]
    fn fold(&self, count: &mut u64, _value: &[u8]) {
        *count += 1;
    }

    fn finish(&self, word: &[u8], window: WindowBounds, count: u64, out: &mut Emitter) {
        let word = String::from_utf8_lossy(word);
        let line = WordCount { word: &word, count };
        out.emit_with(None, window.start, |buf| serde_json::to_writer(buf, &line))
            .expect("a word count always serialises");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spillway_guest::local;

    fn counts(lines: &[&[u8]]) -> Vec<String> {
        let run = local::run(&Pipeline::build(build), &[("lines", lines)]).unwrap();
        assert_eq!(run.rejected, []);
        run.sinks["counts"]
            .iter()
            .map(|line| String::from_utf8(line.clone()).unwrap())
            .collect()
    }

    #[test]
    fn counts_lower_cased_words() {
        assert_eq!(
            counts(&[
                b"To be, or not to be:",
                "  that is\tthe\u{2003}QUESTION  ".as_bytes(),
                b""
            ]),
            [
                r#"{"word":"be,","count":1}"#,
                r#"{"word":"be:","count":1}"#,
                r#"{"word":"is","count":1}"#,
                r#"{"word":"not","count":1}"#,
                r#"{"word":"or","count":1}"#,
                r#"{"word":"question","count":1}"#,
                r#"{"word":"that","count":1}"#,
                r#"{"word":"the","count":1}"#,
                r#"{"word":"to","count":2}"#,
            ]
        );
    }

    #[test]
    fn lower_cases_unicode_like_str_does() {
        let lines: &[&[u8]] = &["ΟΔΟΣ Straße ÉTÉ été".as_bytes()];
        assert_eq!(
            counts(lines),
            [
                r#"{"word":"straße","count":1}"#,
                r#"{"word":"été","count":2}"#,
                "{\"word\":\"οδο\u{3c2}\",\"count\":1}",
            ]
        );
    }

    #[test]
    fn escapes_json_and_replaces_invalid_utf8() {
        let lines: &[&[u8]] = &[br#"say "hi" \o/ "#, b"caf\xe9"];
        assert_eq!(
            counts(lines),
            [
                r#"{"word":"\"hi\"","count":1}"#,
                r#"{"word":"\\o/","count":1}"#,
                "{\"word\":\"caf\u{FFFD}\",\"count\":1}",
                r#"{"word":"say","count":1}"#,
            ]
        );
    }
}
