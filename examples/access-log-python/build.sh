#!/usr/bin/env bash
# Builds the Python access-log pipeline into a component:
#   examples/target/polyglot/access_log_python.wasm
# Installs componentize-py (PyPI) into a git-ignored venv on first use; later runs reuse it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
componentize_py_version=0.25.1
venv=${SPILLWAY_PY_VENV:-$repo/.cache/polyglot/python-venv}
out=$repo/examples/target/polyglot/access_log_python.wasm

if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -qx "componentize-py $componentize_py_version"; then
    echo "installing componentize-py $componentize_py_version into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$componentize_py_version"
fi

# Up to date: nothing it is built from is newer than the component.
if [ -f "$out" ] && [ -z "$(find "$here" "$repo/guest-sdk/python" "$repo/wit" -newer "$out" -type f -not -path '*/node_modules/*' -not -path '*/__pycache__/*' -print -quit)" ]; then
    echo "$out"
    exit 0
fi
mkdir -p "$(dirname "$out")"
"$venv/bin/componentize-py" -d "$repo/wit" -w spillway:pipeline/pipeline@0.1.0 \
    componentize -p "$here" -p "$repo/guest-sdk/python" app -o "$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
