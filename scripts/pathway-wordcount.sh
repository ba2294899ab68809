#!/usr/bin/env bash
# Compares Spillway with Pathway 0.33 on the same wordcount, on one core each. Run by hand;
# not part of CI. See docs/benchmarks.md.
#
#   ./scripts/pathway-wordcount.sh
#   WORDS=1000000 RUNS=5 ./scripts/pathway-wordcount.sh
#
# Environment:
#   WORDS       words in the input (default 5000000)
#   RUNS        runs of each engine; the table shows the best (default 3)
#   PYTHON      interpreter for the venv (default: python3 on PATH; Pathway 0.33 needs >= 3.10)
#   PATHWAY_VENV  the virtual environment (default target/pathway-venv)
#   SKIP_BUILD  1 = use the existing target/release/spillway and wordcount.wasm as they are
#
# What it does:
#   1. makes (or reuses) the virtual environment target/pathway-venv with pathway==0.33.0;
#   2. builds spillway (release) and the example guests (wasm32-wasip2, release);
#   3. makes target/bench/words.txt, one word per line: the words of the real access log
#      examples/access-log/data/apache_access.log (split on whitespace, lower-cased),
#      repeated until there are WORDS of them (reused when it is already there);
#   4. runs each engine RUNS times, alternating, with 1 worker thread (`spillway run -t 1`,
#      PATHWAY_THREADS=1), checks after every run that both produced the same
#      word -> count map (exit 1 on a mismatch), and prints a table of the best runs.
set -euo pipefail
cd "$(dirname "$0")/.."

WORDS="${WORDS:-5000000}"
RUNS="${RUNS:-3}"
PYTHON="${PYTHON:-python3}"
SKIP_BUILD="${SKIP_BUILD:-0}"
PATHWAY_VERSION="0.33.0"
VENV="${PATHWAY_VENV:-target/pathway-venv}"
BENCH="target/bench"
LOG_SOURCE="examples/access-log/data/apache_access.log"
SPILLWAY="target/release/spillway"
WASM="examples/target/wasm32-wasip2/release/wordcount.wasm"
HELPER="scripts/pathway_wordcount.py"

die() { echo "error: $*" >&2; exit 1; }

[[ "$WORDS" =~ ^[1-9][0-9]*$ ]] || die "WORDS must be a positive whole number, got '$WORDS'"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive whole number, got '$RUNS'"
[[ -f "$LOG_SOURCE" ]] || die "$LOG_SOURCE is missing (it is part of the repository)"

# --- 1. Python and the Pathway venv -----------------------------------------------------
command -v "$PYTHON" >/dev/null || die "no '$PYTHON' on PATH; set PYTHON=/path/to/python3.10+"
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
  die "Pathway $PATHWAY_VERSION needs Python >= 3.10, but $PYTHON is $("$PYTHON" -V 2>&1).
       Pick another, e.g. PYTHON=\$(pyenv root)/versions/3.11.7/bin/python3 (see 'pyenv versions')."
fi

if [[ -x "$VENV/bin/python" ]] && ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
  echo "==> $VENV is broken (its interpreter does not start); making it again"
  rm -rf "$VENV"
fi
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "==> creating the virtual environment $VENV with $("$PYTHON" -V 2>&1)"
  "$PYTHON" -m venv "$VENV" || die "could not create $VENV with $PYTHON -m venv.
       On Debian the venv module is a separate package (apt-get install python3-venv).
       Retry with: rm -rf $VENV && $0"
fi
installed="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("pathway"))' 2>/dev/null || true)"
if [[ "$installed" != "$PATHWAY_VERSION" ]]; then
  echo "==> pip install pathway==$PATHWAY_VERSION into $VENV (about 100 MB the first time)"
  if ! "$VENV/bin/python" -m pip install --quiet "pathway==$PATHWAY_VERSION"; then
    die "pip could not install pathway==$PATHWAY_VERSION into $VENV (see pip's message above).
       Check that the package index is reachable (pip config list) and that $("$VENV/bin/python" -V 2>&1)
       is one Pathway $PATHWAY_VERSION has wheels for (CPython >= 3.10, Linux/macOS x86_64 or arm64).
       Retry with: $VENV/bin/python -m pip install pathway==$PATHWAY_VERSION
       or start over with: rm -rf $VENV && $0"
  fi
fi
"$VENV/bin/python" -c 'import pathway' 2>/dev/null \
  || die "pathway is installed in $VENV but does not import; run: $VENV/bin/python -c 'import pathway'"

# --- 2. Spillway and the wordcount guest --------------------------------------------------
if [[ "$SKIP_BUILD" == 1 ]]; then
  echo "==> SKIP_BUILD=1: using $SPILLWAY and $WASM as they are"
else
  if command -v rustup >/dev/null; then
    rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
  fi
  echo "==> building spillway (release)"
  cargo build --release -p spillway --target-dir target
  echo "==> building the example guests (wasm32-wasip2, release)"
  cargo build --release --target wasm32-wasip2 --manifest-path examples/Cargo.toml \
    --target-dir examples/target
fi
[[ -x "$SPILLWAY" ]] || die "$SPILLWAY is missing; build it with: cargo build --release -p spillway"
[[ -f "$WASM" ]] || die "$WASM is missing; build it with: cargo build --release --target wasm32-wasip2 --manifest-path examples/Cargo.toml --target-dir examples/target"

# --- 3. The input -------------------------------------------------------------------------
mkdir -p "$BENCH"
"$VENV/bin/python" "$HELPER" make-input "$LOG_SOURCE" "$BENCH/words.txt" "$WORDS"

# --- 4. Run, check, report ----------------------------------------------------------------
echo "==> machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "==> load average before: $(cut -d' ' -f1-3 /proc/loadavg) (other load on the machine skews the figures)"
echo "==> running each engine $RUNS times (alternating), 1 worker thread each"
"$VENV/bin/python" "$HELPER" bench \
  --spillway "$SPILLWAY" --wasm "$WASM" --python "$VENV/bin/python" \
  --input "$BENCH/words.txt" --words "$WORDS" --runs "$RUNS" --out "$BENCH"
echo "==> load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
