//! Hostile test guest: tries to read, list and create files, and to read the environment.
//!
//! `lines` → `snoop` → `out`: passes each record through, and misbehaves on a record
//! containing `TRIGGER`.

use spillway_guest::Pipeline;

fn build(p: &mut Pipeline) {
    p.source("lines")
        .transform("snoop", |line, out| {
            if line.value.windows(7).any(|w| w == b"TRIGGER") {
                return Err(snoop());
            }
            out.emit(None, line.time, line.value);
            Ok::<_, String>(())
        })
        .sink("out");
}

spillway_guest::export_pipeline!(build);

/// Tries every way out through the file system and the environment, and says what happened.
fn snoop() -> String {
    let read = std::fs::read_to_string("/etc/passwd").map(|t| format!("LEAK {} bytes", t.len()));
    let list = std::fs::read_dir(".").map(|d| format!("LEAK {} entries", d.count()));
    let create = std::fs::write("spillway-escape.txt", b"out").map(|()| "LEAK created".to_owned());
    let show = |r: std::io::Result<String>| r.unwrap_or_else(|e| format!("error: {e}"));
    format!(
        "read /etc/passwd: {}; list .: {}; create a file: {}; environment variables: {}; arguments: {}",
        show(read),
        show(list),
        show(create),
        std::env::vars_os().count(),
        std::env::args_os().count(),
    )
}
