#!/usr/bin/env bash
# Runs the whole test suite from a fresh clone: installs what the tests need, builds the
# example guests, checks formatting and lints, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2
rustup component add rustfmt clippy >/dev/null 2>&1 || true
cargo build --release --target wasm32-wasip2 --manifest-path examples/Cargo.toml \
  --target-dir examples/target
# The Python, JavaScript and C guests: each build script installs its toolchain on first use
# (componentize-py, ComponentizeJS, clang + wit-bindgen + wasm-tools; see docs/guests/) and is
# quick once it is there. Here the polyglot tests must build all three, not skip.
for language in python js c; do
    examples/access-log-$language/build.sh >/dev/null
done
export SPILLWAY_POLYGLOT=require
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# A local S3-compatible server for the persistence tests, stopped when this script exits.
s3_pid=$(mktemp)
trap 'kill "$(cat "$s3_pid")" 2>/dev/null || true; rm -f "$s3_pid"' EXIT
SPILLWAY_TEST_S3_ENDPOINT=$(scripts/s3-server.sh "$s3_pid")
export SPILLWAY_TEST_S3_ENDPOINT
echo "local S3 server: $SPILLWAY_TEST_S3_ENDPOINT"

cargo test --workspace
# The example guests' own unit tests, run natively.
cargo test --manifest-path examples/Cargo.toml
