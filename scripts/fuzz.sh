#!/usr/bin/env bash
# Fuzzes the module loader and the pipeline-graph validation for a few minutes each.
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 120)
# cargo-fuzz needs nightly for its sanitizer flags; on a stable toolchain RUSTC_BOOTSTRAP=1
# lets it pass them. Crashes are saved under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-120}"

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi

# Seed the loader with real components when the examples are built.
mkdir -p fuzz/corpus/module_loader
cp examples/target/wasm32-wasip2/release/*.wasm fuzz/corpus/module_loader/ 2>/dev/null || true

for target in graph_validation module_loader; do
    echo "fuzzing $target for ${seconds}s"
    # Leak detection is off: wasmtime keeps process-wide caches on purpose.
    cargo fuzz run --fuzz-dir fuzz --sanitizer none "$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -detect_leaks=0 -max_len=262144
done
