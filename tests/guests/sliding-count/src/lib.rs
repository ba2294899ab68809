//! Test guest: counts events per key in sliding windows of 10 s starting every 2 s.
//!
//! `lines` (`KEY TIME_MS`) → `parse` → `count` (sliding windows, no out-of-orderness allowed)
//! → `counts` (`KEY START END COUNT`, one line per key and window).

use spillway_guest::{Aggregator, Emitter, Pipeline, Window, WindowBounds};

fn build(p: &mut Pipeline) {
    p.source("lines")
        .transform("parse", |line, out| {
            let text = std::str::from_utf8(line.value).map_err(|_| "not UTF-8")?;
            let (key, time) = text.split_once(' ').ok_or("no space")?;
            let time: i64 = time.trim().parse().map_err(|_| "bad time")?;
            out.emit(Some(key.as_bytes()), time, b"");
            Ok::<_, &str>(())
        })
        .aggregate("count", Window::sliding_ms(10_000, 2_000), 0, Count)
        .sink("counts");
}

struct Count;

impl Aggregator for Count {
    type Acc = u64;

    fn fold(&self, count: &mut u64, _value: &[u8]) {
        *count += 1;
    }

    fn finish(&self, key: &[u8], window: WindowBounds, count: u64, out: &mut Emitter) {
        out.emit_with(None, window.start, |buf| {
            buf.extend_from_slice(key);
            buf.extend_from_slice(format!(" {} {} {count}", window.start, window.end).as_bytes());
        });
    }
}

spillway_guest::export_pipeline!(build);
