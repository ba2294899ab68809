#!/usr/bin/env bash
# Builds Spillway, the benchmark harness and the guests in release mode, then runs the
# benchmark: Nexmark q0, q1, q2, q5, q7 and wordcount on Spillway (-n 1, -n 2, and -n 1 with
# snapshots every second) and as native Rust loops, printed as one table with the targets.
# Arguments go to spillway-bench, e.g. `scripts/bench.sh --events 5000000 --runs 3`
# or `--queries q0,wordcount`; see `target/release/spillway-bench --help`.
# Measure on an otherwise idle machine: every figure is wall-clock time.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 >/dev/null 2>&1
echo "==> building spillway and spillway-bench (release)" >&2
cargo build --release -p spillway -p spillway-bench --target-dir target
echo "==> building the guests" >&2
cargo build --release --target wasm32-wasip2 --manifest-path examples/Cargo.toml \
  --target-dir examples/target
exec target/release/spillway-bench "$@"
