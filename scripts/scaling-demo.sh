#!/usr/bin/env bash
# Demo (not CI): wordcount over the access log replayed with a step schedule — a quiet start,
# a burst, quiet again — and the process count over time. Takes a few minutes.
# Usage: scripts/scaling-demo.sh [WINDOW_MS]   (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
window=${1:-20000}
cargo build --release -p spillway --target-dir target
cargo build --release --target wasm32-wasip2 --manifest-path examples/Cargo.toml \
  --target-dir examples/target
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for _ in $(seq 40); do cat examples/access-log/data/apache_access.log; done > "$work/input.log"
echo "input: $(wc -l < "$work/input.log") lines; schedule: 500/s, 60000/s from 30 s, 500/s from 90 s"
start=$(date +%s)
./target/release/spillway spawn -n 1 --scaling --window-ms "$window" --max-processes 4 \
  --persistence "$work/snapshots" --epoch-records 20000 \
  --source "lines=replay:$work/input.log?rate=500@0s,60000@30s,500@90s" \
  --sink "counts=$work/counts.jsonl" \
  examples/target/wasm32-wasip2/release/wordcount.wasm 2>&1 |
  while IFS= read -r line; do printf '[%4ss] %s\n' "$(( $(date +%s) - start ))" "$line"; done
echo
echo "process count over time (from $work/snapshots/scaling-history.jsonl):"
python3 - "$work/snapshots/scaling-history.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print(f"{r['at']}  {r['from']} -> {r['to']}  {r['reason']}")
PY
