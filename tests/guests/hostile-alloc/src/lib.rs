//! Hostile test guest: allocates without end.
//!
//! `lines` → `hoard` → `out`: passes each record through, and misbehaves on a record
//! containing `TRIGGER`.

use spillway_guest::Pipeline;

fn build(p: &mut Pipeline) {
    p.source("lines")
        .transform("hoard", |line, out| {
            if line.value.windows(7).any(|w| w == b"TRIGGER") {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    // Touch every page, so the memory is really used.
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            out.emit(None, line.time, line.value);
            Ok::<_, String>(())
        })
        .sink("out");
}

spillway_guest::export_pipeline!(build);

