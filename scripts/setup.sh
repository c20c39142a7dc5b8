#!/usr/bin/env bash
# Installs what llava-lens needs on a Debian machine, skipping whatever is already there:
# Mesa's lavapipe (a Vulkan driver on the CPU, so wgpu has an adapter without a GPU), and the
# Rust pieces the tests use (clippy, rustfmt, the wasm32 target that the browser build compiles
# for). Safe to run again.
set -euo pipefail

apt_missing=()
for pkg in mesa-vulkan-drivers libvulkan1; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || apt_missing+=("$pkg")
done
if [ ${#apt_missing[@]} -gt 0 ]; then
    echo "setup: installing ${apt_missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    $sudo_cmd apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${apt_missing[@]}"
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust with rustup (https://rustup.rs)" >&2; exit 1; }
installed_components=$(rustup component list --installed 2>/dev/null || true)
for c in clippy rustfmt; do
    grep -q "^$c" <<<"$installed_components" || rustup component add "$c"
done
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
