#!/usr/bin/env bash
# Runs the whole test suite from a fresh clone: installs what the tests need, builds the
# example guests, checks formatting and lints, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo build --release --target wasm32-wasip2 --manifest-path examples/Cargo.toml
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
# The example guests' own unit tests, run natively.
cargo test --manifest-path examples/Cargo.toml
