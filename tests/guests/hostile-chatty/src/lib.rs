//! Hostile test guest: prints without end.
//!
//! `lines` → `chatter` → `out`: passes each record through, and misbehaves on a record
//! containing `TRIGGER`.

use spillway_guest::Pipeline;

fn build(p: &mut Pipeline) {
    p.source("lines")
        .transform("chatter", |line, out| {
            if line.value.windows(7).any(|w| w == b"TRIGGER") {
                for i in 0..100_000 {
                    println!("stdout line {i} of a chatty guest");
                    eprintln!("stderr line {i} of a chatty guest");
                }
            }
            out.emit(None, line.time, line.value);
            Ok::<_, String>(())
        })
        .sink("out");
}

spillway_guest::export_pipeline!(build);

