//! Feeds arbitrary bytes to the module loader: every input must be rejected (or accepted)
//! with an error value, never a panic or a crash.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use spillway::config::Limits;
use spillway::runtime::{self, GuestModule};

fn engine() -> &'static wasmtime::Engine {
    static ENGINE: OnceLock<wasmtime::Engine> = OnceLock::new();
    ENGINE.get_or_init(|| runtime::engine(&Limits::default()).expect("engine starts"))
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        call_deadline_ms: 100,
        memory_bytes: 16 << 20,
        ..Limits::default()
    };
    // Seed inputs are usually not components; make every other one at least start like one.
    let mut bytes = data.to_vec();
    if data.first().is_some_and(|b| b & 1 == 1) {
        bytes = b"\0asm\x0d\0\x01\0".to_vec();
        bytes.extend_from_slice(&data[1..]);
    }
    if let Err(error) = GuestModule::from_bytes(engine(), Path::new("fuzz.wasm"), bytes, &limits) {
        // Messages are built from the error: formatting them must not panic either.
        let _ = format!("{error:#}");
    }
});
