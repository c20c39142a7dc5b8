#!/usr/bin/env bash
# Kernel benchmark at full Llava-1.5-7B shapes on a real GPU, plus the ceilings beside it:
# nvidia-smi's description of the card and, where PyTorch is installed, the vendor libraries'
# numbers for the same shapes (torch_baseline.py). Everything lands in OUTDIR:
#   gpu.csv  bench.jsonl (one JSON line per measurement)  bench.md  torch.jsonl
# Usage: scripts/bench-gpu.sh OUTDIR [path/to/llava-lens]
set -euo pipefail
out=${1:?usage: scripts/bench-gpu.sh OUTDIR [LLAVA_LENS_BIN]}
bin=${2:-target/release/llava-lens}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
export WGPU_BACKEND=${WGPU_BACKEND:-vulkan}
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv >"$out/gpu.csv" 2>&1 || true
"$bin" bench --repeats 9 --warmup 3 --markdown "$out/bench.md" >"$out/bench.jsonl"
python3 "$here/torch_baseline.py" >"$out/torch.jsonl" 2>"$out/torch.err" || echo "no PyTorch baseline (see torch.err)"
