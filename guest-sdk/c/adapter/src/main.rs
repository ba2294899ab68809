//! `spillway-wasi-adapter OUT`: writes the WASI preview1 reactor adapter to `OUT`.
fn main() {
    let out = std::env::args_os()
        .nth(1)
        .expect("usage: spillway-wasi-adapter OUT.wasm");
    let adapter = wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;
    std::fs::write(&out, adapter).expect("cannot write the adapter");
}
