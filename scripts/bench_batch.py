"""Throughput of `llava-lens batch` against a loop of `llava-lens explain` processes on the same
examples, side by side on one machine; prints one JSON record (docs/BENCHMARKS.md).

Usage (after `cargo build --release -p llava-lens-cli`; python3 standard library only):
  python3 scripts/bench_batch.py [--model tests/data/tiny-llava] [--n 24]

Examples are the first question of N generated scenes at the model's input size. Both sides
explain the same examples with the same options and write their JSON; the loop pays, per example,
what batch pays once: process start, GPU device, shader compilation, model load.
"""
import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "target" / "release" / "llava-lens"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="tests/data/tiny-llava")
    ap.add_argument("--n", type=int, default=24)
    a = ap.parse_args()
    model = (ROOT / a.model).resolve()
    size = json.loads((model / "config.json").read_text())["vision_config"]["image_size"]
    env = dict(os.environ, WGPU_BACKEND=os.environ.get("WGPU_BACKEND", "vulkan"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        subprocess.run([BIN, "scenes", "--out", tmp, "--n", str(a.n), "--seed", "12345", "--size", str(size)],
                       check=True, env=env, capture_output=True)
        rows = [json.loads(l) for l in (tmp / "examples.jsonl").read_text().splitlines() if '-q0"' in l]
        (tmp / "ex.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

        t0 = time.perf_counter()
        subprocess.run([BIN, "batch", "--model", model, "--examples", tmp / "ex.jsonl", "--out", tmp / "batch.jsonl"],
                       check=True, env=env, capture_output=True)
        batch_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        for r in rows:
            subprocess.run([BIN, "explain", "--model", model, "--image", tmp / r["image"], "--question", r["question"],
                            "--answer-prefix", r["answer_prefix"], "--out", tmp / "map.png", "--json", tmp / "one.json"],
                           check=True, env=env, capture_output=True)
        loop_s = time.perf_counter() - t0

    print(json.dumps({
        "bench": "batch_vs_explain_loop", "model": a.model, "examples": len(rows),
        "batch_s": round(batch_s, 2), "explain_loop_s": round(loop_s, 2),
        "batch_examples_per_s": round(len(rows) / batch_s, 2), "explain_loop_examples_per_s": round(len(rows) / loop_s, 2),
        "speedup": round(loop_s / batch_s, 2),
    }))


if __name__ == "__main__":
    main()
