"""The explanation side by side, from the files scripts/bench-gpu.sh writes into OUTDIR: llava-lens
(`bench e2e`, e2e-llava-1.5-7b-q4.json) against the paper's pipeline in PyTorch
(torch-explain-*.json, scripts/torch_explain.py) on the same input, as a Markdown table with
the ratios; and every preset's `bench e2e` line (peak GPU memory beside the estimate).

  python3 scripts/side_by_side.py OUTDIR
"""
import json
import sys
from pathlib import Path


def load(path):
    return json.loads(path.read_text().strip().splitlines()[-1])


def main(out):
    out = Path(out)
    ours = out / "e2e-llava-1.5-7b-q4.json"
    if ours.exists():
        e = load(ours)
        print(f"llava-lens {e['preset']} {e['dtype']} on {e['adapter']} ({e['backend']}), {e['sequence_length']} positions\n")
        print("| pipeline | explanation (ms) | forward | head scores | positions | llava-lens faster by |")
        print("|---|---|---|---|---|---|")
        print(f"| llava-lens {e['dtype']} | {e['explain_ms']:.1f} | {e['explain_forward_ms']:.1f} | {e['explain_head_scores_ms']:.1f} "
              f"| {e['explain_position_scores_ms']:.1f} | - |")
        for t in sorted(out.glob("torch-explain-*.json")):
            r = load(t)
            assert r["sequence_length"] == e["sequence_length"], (t, r["sequence_length"], e["sequence_length"])
            print(f"| PyTorch {r['torch']}, transformers {r['transformers']}, {r['dtype']} {r['attn']} | {r['explain_ms']:.1f} "
                  f"| {r['forward_ms']:.1f} | {r['head_scores_ms']:.1f} | {r['positions_ms']:.1f} | {r['explain_ms'] / e['explain_ms']:.2f}x |")
        print(f"\ndecode {e['decode_tokens_per_s']:.1f} tokens/s, prefill {e['prefill_tokens_per_s']:.0f} tokens/s, "
              f"peak GPU memory {e['peak_gpu_bytes'] / 2**30:.2f} GiB")
        h, old = e["decode_host_per_token"], e["decode_host_per_token_uniform_buffer_per_dispatch"]
        print(f"per decode token: {h['dispatches']:.0f} dispatches, {h['buffers_created']:.1f} buffers created "
              f"(a uniform buffer per dispatch: {old['buffers_created']:.1f}), {h['bind_groups_created']:.1f} bind groups made "
              f"({old['bind_groups_created']:.1f}), encode {h['encode_ms']:.3f} ms ({old['encode_ms']:.3f})")
        x = e.get("explain_host")
        if x:
            print(f"per explanation: {x['dispatches']:.0f} dispatches, {x['submits']:.0f} submits, {x['bind_groups_created']:.0f} bind groups made")
        for suffix, what in [("core", "core WebGPU kernels only"), ("reduced", "reduced-precision kernels (f16 GEMM, int8 matvec)")]:
            other = out / f"e2e-llava-1.5-7b-q4-{suffix}.json"
            if other.exists():
                c = load(other)
                print(f"{what} ({c.get('matvec_kernel', '?')} matvec) against the default ({e.get('matvec_kernel', '?')}): "
                      f"decode {c['decode_tokens_per_s']:.1f} vs {e['decode_tokens_per_s']:.1f} tokens/s, "
                      f"prefill {c['prefill_tokens_per_s']:.0f} vs {e['prefill_tokens_per_s']:.0f} tokens/s, "
                      f"explanation {c['explain_ms']:.1f} vs {e['explain_ms']:.1f} ms")
        print()
    presets = sorted(out.glob("e2e-preset-*.json"))
    if presets:
        print("| preset | dtype | weights (GB) | peak GPU memory (GB) | estimate (GB) | within estimate |")
        print("|---|---|---|---|---|---|")
        for p in presets:
            r = load(p)
            print(f"| {r['preset']} | {r['dtype']} | {r['weight_bytes'] / 1e9:.2f} | {r['peak_gpu_bytes'] / 1e9:.2f} "
                  f"| {r['estimated_gpu_bytes'] / 1e9:.2f} | {r['within_estimate']} |")


if __name__ == "__main__":
    main(sys.argv[1])
