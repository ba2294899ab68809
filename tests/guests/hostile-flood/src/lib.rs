//! Hostile test guest: returns a gigantic batch.
//!
//! `lines` → `flood` → `out`: passes each record through, and misbehaves on a record
//! containing `TRIGGER`.

use spillway_guest::Pipeline;

fn build(p: &mut Pipeline) {
    p.source("lines")
        .transform("flood", |line, out| {
            if line.value.windows(7).any(|w| w == b"TRIGGER") {
                for i in 0..2_000_000u32 {
                    out.emit(None, i64::from(i), b"");
                }
                return Ok(());
            }
            out.emit(None, line.time, line.value);
            Ok::<_, String>(())
        })
        .sink("out");
}

spillway_guest::export_pipeline!(build);

