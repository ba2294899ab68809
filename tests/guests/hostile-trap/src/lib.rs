//! Hostile test guest: executes `unreachable`.
//!
//! `lines` → `crash` → `out`: passes each record through, and misbehaves on a record
//! containing `TRIGGER`.

use spillway_guest::Pipeline;

fn build(p: &mut Pipeline) {
    p.source("lines")
        .transform("crash", |line, out| {
            if line.value.windows(7).any(|w| w == b"TRIGGER") {
                #[cfg(target_arch = "wasm32")]
                core::arch::wasm32::unreachable();
            }
            out.emit(None, line.time, line.value);
            Ok::<_, String>(())
        })
        .sink("out");
}

spillway_guest::export_pipeline!(build);

