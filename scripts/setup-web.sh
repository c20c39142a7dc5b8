#!/usr/bin/env bash
# Installs what the web app needs, skipping whatever is already there at the right version:
# Trunk 0.21.14, wasm-bindgen-cli equal to Cargo.lock's wasm-bindgen (Trunk.toml pins both),
# binaryen's wasm-opt 132, playwright-core and axe-core from npm (web/package.json), and Debian's Chromium
# for the end-to-end test. Prints the PATH additions to eval. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
"$(dirname "$0")/setup.sh" >&2

want_trunk=0.21.14
want_bindgen=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock)
grep -q "wasm_bindgen = \"$want_bindgen\"" Trunk.toml || { echo "setup-web: Trunk.toml's wasm_bindgen differs from Cargo.lock's $want_bindgen" >&2; exit 1; }

if [ "$(trunk --version 2>/dev/null)" != "trunk $want_trunk" ]; then
    echo "setup-web: installing trunk $want_trunk (about 12 minutes on 2 cores)" >&2
    cargo install --locked "trunk@$want_trunk" >&2
fi
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $want_bindgen" ]; then
    echo "setup-web: installing wasm-bindgen-cli $want_bindgen (about 4 minutes)" >&2
    cargo install --force "wasm-bindgen-cli@$want_bindgen" >&2
fi
apt_missing=()
command -v chromium >/dev/null || apt_missing+=(chromium)
command -v npm >/dev/null || apt_missing+=(nodejs npm)
if [ ${#apt_missing[@]} -gt 0 ]; then
    echo "setup-web: installing ${apt_missing[*]}" >&2
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq >&2
    $sudo_cmd apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${apt_missing[@]}" >&2
fi
if [ ! -x web/node_modules/.bin/wasm-opt ] || [ ! -d web/node_modules/playwright-core ] || [ ! -f web/node_modules/axe-core/axe.min.js ]; then
    (cd web && npm ci --no-audit --no-fund) >&2
fi
echo "export PATH=\"$PWD/web/node_modules/.bin:$HOME/.cargo/bin:\$PATH\""
