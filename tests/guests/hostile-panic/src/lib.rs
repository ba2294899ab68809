//! Hostile test guest: panics.
//!
//! `lines` → `explode` → `out`: passes each record through, and misbehaves on a record
//! containing `TRIGGER`.

use spillway_guest::Pipeline;

fn build(p: &mut Pipeline) {
    p.source("lines")
        .transform("explode", |line, out| {
            if line.value.windows(7).any(|w| w == b"TRIGGER") {
                panic!("hostile guest gave up on {:?}", String::from_utf8_lossy(line.value));
            }
            out.emit(None, line.time, line.value);
            Ok::<_, String>(())
        })
        .sink("out");
}

spillway_guest::export_pipeline!(build);

