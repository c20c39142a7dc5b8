#!/usr/bin/env bash
# Everything docs/BENCHMARKS.md reports from a real GPU, into OUTDIR, as stages (default: all):
#   kernels   `llava-lens bench` at full Llava-1.5-7B shapes (bench.jsonl, bench.md), the vendor
#             libraries' ceilings (torch.jsonl, scripts/torch_baseline.py), the card (gpu.csv)
#   e2e       `bench e2e` at Llava-1.5-7B q4 (e2e-llava-1.5-7b-q4.json: the explanation, prefill,
#             decode, per-token host work, peak memory) and its input written for PyTorch
#   torch     the paper's pipeline in PyTorch on that input: fp32 eager (as the authors ran it)
#             and fp16 SDPA (torch-explain-*.json, scripts/torch_explain.py)
#   presets   `bench e2e` of every larger preset at q4 (e2e-preset-*.json): peak GPU memory
#             beside the estimate
#   variants  the 7B run again on core WebGPU kernels only (e2e-llava-1.5-7b-q4-core.json: no
#             subgroup matvec) and with the reduced-precision kernels (...-reduced.json)
# then prints the side by side (side-by-side.md, scripts/side_by_side.py). Random 7B weights
# took 50.7 s to build on the H200 machine's host (2026-11-26); no stage's full time on a GPU is
# known yet (torch has never run on one), so a device with a 10-minute call limit runs it in
# calls: `kernels e2e torch` first (every speed target), then `variants`, then `presets`.
# Usage: scripts/bench-gpu.sh OUTDIR [LLAVA_LENS_BIN] [STAGE...]
set -euo pipefail
out=${1:?usage: scripts/bench-gpu.sh OUTDIR [LLAVA_LENS_BIN] [STAGE...]}
bin=${2:-target/release/llava-lens}
shift $(( $# < 2 ? $# : 2 ))
stages=${*:-kernels e2e torch presets variants}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
export WGPU_BACKEND=${WGPU_BACKEND:-vulkan} PYTHONUNBUFFERED=1
for stage in $stages; do
  echo "== $stage ($(date -u +%T))" >&2
  case $stage in
    kernels)
      nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv >"$out/gpu.csv" 2>&1 || true
      "$bin" bench --repeats 9 --warmup 3 --markdown "$out/bench.md" >"$out/bench.jsonl"
      python3 "$here/torch_baseline.py" >"$out/torch.jsonl" 2>"$out/torch.err" || echo "no PyTorch baseline (see torch.err)" >&2 ;;
    e2e)
      "$bin" bench e2e --preset llava-1.5-7b --dtype q4 --write-inputs "$out/inputs-7b" >"$out/e2e-llava-1.5-7b-q4.json" ;;
    torch)
      python3 "$here/torch_explain.py" --inputs "$out/inputs-7b" --dtype fp32 --attn eager >"$out/torch-explain-fp32-eager.json"
      python3 "$here/torch_explain.py" --inputs "$out/inputs-7b" --dtype fp16 --attn sdpa >"$out/torch-explain-fp16-sdpa.json" ;;
    presets)
      for p in llava-1.5-13b bakllava-v1 llava-interleave-qwen-7b; do
        "$bin" bench e2e --preset "$p" --dtype q4 --new-tokens 8 >"$out/e2e-preset-$p-q4.json"
      done ;;
    variants)
      # The 7B run again on core WebGPU kernels only (no subgroup matvec), and with the
      # reduced-precision kernels (f16 GEMM, 8-bit-activation matvec): each way end to end.
      "$bin" bench e2e --preset llava-1.5-7b --dtype q4 --core-features >"$out/e2e-llava-1.5-7b-q4-core.json"
      "$bin" bench e2e --preset llava-1.5-7b --dtype q4 --reduced-precision >"$out/e2e-llava-1.5-7b-q4-reduced.json" ;;
    *) echo "unknown stage $stage (kernels, e2e, torch, presets, variants)" >&2; exit 2 ;;
  esac
done
python3 "$here/side_by_side.py" "$out" | tee "$out/side-by-side.md"
