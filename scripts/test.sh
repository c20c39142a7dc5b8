#!/usr/bin/env bash
# The test command: sets up the machine (scripts/setup.sh), then lints, checks that the runtime
# compiles for the browser (wasm32), and runs every test. GPU tests run on the machine's GPU, or on
# Mesa's lavapipe where there is none; they never skip (without any adapter they fail).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

# lavapipe is a Vulkan driver: without this wgpu could pick Mesa's GL adapter, whose features differ.
export WGPU_BACKEND=${WGPU_BACKEND:-vulkan}
# Silences Mesa's device-select layer complaining about XDG_RUNTIME_DIR.
export NODEVICE_SELECT=1

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --locked --target wasm32-unknown-unknown -p llava-lens-gpu
# Which adapter the GPU tests will run on (lavapipe here unless the machine has a GPU).
cargo run --quiet --locked -p llava-lens-cli -- info
cargo test --workspace --locked
# The web page: lints of its browser-only code, then the end-to-end test in headless Chromium
# (Trunk build, the page against the native CLI on the same scene; scripts/test-web.sh).
cargo clippy --locked --target wasm32-unknown-unknown -p llava-lens-web -- -D warnings
scripts/test-web.sh
