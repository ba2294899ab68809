//! Hostile test guest: recurses without end.
//!
//! `lines` → `recurse` → `out`: passes each record through, and misbehaves on a record
//! containing `TRIGGER`.

use spillway_guest::Pipeline;

fn build(p: &mut Pipeline) {
    p.source("lines")
        .transform("recurse", |line, out| {
            if line.value.windows(7).any(|w| w == b"TRIGGER") {
                return Err(format!("depth {}", descend(0)));
            }
            out.emit(None, line.time, line.value);
            Ok::<_, String>(())
        })
        .sink("out");
}

spillway_guest::export_pipeline!(build);

/// Recurses forever; the work after the call keeps it from becoming a loop.
fn descend(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 16]);
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    descend(depth + 1) + frame[(depth % 16) as usize]
}
