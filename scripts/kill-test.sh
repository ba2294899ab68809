#!/usr/bin/env bash
# The long kill test (not CI): the persistence tests' SIGKILL runs with 20 kills per layout
# instead of 5, on a folder and (when a local S3 server can be started) on S3.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --target wasm32-wasip2 --manifest-path examples/Cargo.toml \
  --target-dir examples/target
s3_pid=$(mktemp)
trap 'kill "$(cat "$s3_pid")" 2>/dev/null || true; rm -f "$s3_pid"' EXIT
SPILLWAY_TEST_S3_ENDPOINT=$(scripts/s3-server.sh "$s3_pid")
export SPILLWAY_TEST_S3_ENDPOINT
SPILLWAY_KILLS=${SPILLWAY_KILLS:-20} cargo test -p spillway --test all -- survives_sigkill --test-threads 1
