#!/usr/bin/env bash
# Builds the JavaScript access-log pipeline into a component:
#   examples/target/polyglot/access_log_js.wasm
# Installs ComponentizeJS (npm, pinned by package-lock.json) into ./node_modules on first use.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$repo/examples/target/polyglot/access_log_js.wasm
cd "$here"

# `npm ci` only when node_modules is missing or older than the lock file.
if [ ! -x node_modules/.bin/componentize-js ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "installing ComponentizeJS into $here/node_modules" >&2
    npm ci --no-audit --no-fund --loglevel=error
fi

# Up to date: nothing it is built from is newer than the component.
if [ -f "$out" ] && [ -z "$(find "$here/app.js" "$here/package-lock.json" "$repo/guest-sdk/js" "$repo/wit" -newer "$out" -type f -not -path '*/node_modules/*' -not -path '*/__pycache__/*' -print -quit)" ]; then
    echo "$out"
    exit 0
fi
mkdir -p "$(dirname "$out")"
# ComponentizeJS lets the module load files under its working directory only: run it from the
# repository root so that app.js can import guest-sdk/js/spillway-guest.js.
cd "$repo"
# -d http -d fetch-event: the pipeline needs no wasi:http, so none is imported.
"$here/node_modules/.bin/componentize-js" examples/access-log-js/app.js --wit wit -n pipeline \
    -d http -d fetch-event -o "$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
