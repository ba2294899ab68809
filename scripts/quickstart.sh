#!/usr/bin/env bash
# Builds Spillway and the example guests, then runs the main job (the hourly access-log
# report) on the real log with 2 worker processes.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> adding the wasm32-wasip2 target"
rustup target add wasm32-wasip2
echo "==> building spillway (release; the first build takes several minutes)"
cargo build --release -p spillway --target-dir target
echo "==> building the example guests"
cargo build --release --target wasm32-wasip2 --manifest-path examples/Cargo.toml \
  --target-dir examples/target

mkdir -p out
echo "==> running the access-log report with 2 worker processes"
./target/release/spillway spawn -n 2 -t 1 \
  --source logs=examples/access-log/data/apache_access.log \
  --sink report=out/access-report.jsonl \
  --dead-letter out/access-rejected.jsonl \
  examples/target/wasm32-wasip2/release/access_log.wasm
echo
echo "The hourly report is in out/access-report.jsonl ($(wc -l < out/access-report.jsonl) rows). First rows:"
sort out/access-report.jsonl | head -n 5
