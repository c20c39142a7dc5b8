#!/usr/bin/env bash
# Reproduce every number of docs/DEMO-MODEL.md: held-out accuracy, pointing game, faithfulness
# table and the mechanism check of the bundled demo model, on scenes of seeds never used in
# training (training used seed 1, its validation seed 7). JSON results go to $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/demo-model}
BIN=${BIN:-target/release/llava-lens}
export WGPU_BACKEND=${WGPU_BACKEND:-vulkan} NODEVICE_SELECT=1
[ -x "$BIN" ] || cargo build --release -p llava-lens-cli
mkdir -p "$OUT"
"$BIN" eval accuracy --n 200 --seed 12345 --dtype f32,q8,q4 > "$OUT/accuracy.json"
"$BIN" eval pointing --n 200 --seed 12345 --records "$OUT/pointing-f32-records.jsonl" > "$OUT/pointing-f32.json"
"$BIN" eval pointing --n 200 --seed 12345 --dtype q4 > "$OUT/pointing-q4.json"
for layer in 1 2 3; do
    "$BIN" eval pointing --n 50 --seed 2024 --lens-layer "$layer" > "$OUT/mechanism-lens-layer$layer.json"
done
"$BIN" eval faithfulness --n 100 --seed 4242 --steps 6 --seeds 2 --markdown "$OUT/faithfulness.md" > "$OUT/faithfulness.json"
