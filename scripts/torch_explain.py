"""The paper's pipeline in PyTorch and HF transformers, timed: the PyTorch side of the side by
side in docs/BENCHMARKS.md. One forward pass with hooks, every head's log-probability increase
under the authors' frozen-scale projection, and the best head's position scores, as the
authors' notebook computes them (and as scripts/golden/make_fixtures.py does for the fixtures),
with the head rows projected in one batch.

  python scripts/torch_explain.py --inputs DIR [--dtype fp32|fp16] [--attn eager|sdpa]
      DIR from `llava-lens bench e2e --preset P --write-inputs DIR`: the preset's config.json
      (random weights are built from it), the prompt's ids and the pixel values llava-lens
      explains. Prints one JSON line: the medians of --repeats timed runs after --warmup.
  python scripts/torch_explain.py --check tests/data/tiny-llava tests/data/golden/tiny-llava.safetensors
      The same code on a real (tiny) checkpoint and a golden fixture's inputs, on the CPU: its
      head and position scores must equal the fixture's (the authors' formulas) within 1e-4.

The paper's authors ran fp32 eager attention; fp16 with SDPA is the strong baseline. SDPA
returns no attention probabilities, so the best head's attention of the last query is
recomputed from the hooked keys and queries with the model's own rotary embedding.
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import transformers
from transformers import LlavaConfig, LlavaForConditionalGeneration

EPS = 1e-6  # the authors' epsilon in the frozen-scale projection


def decoder(model):
    return model.model.language_model


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def n_image_tokens(cfg):
    v = cfg.vision_config
    clip = v.model_type == "clip_vision_model"
    return (v.image_size // v.patch_size) ** 2 + int(clip and cfg.vision_feature_select_strategy == "full")


def hooks(model, grabbed):
    """Keeps what the method reads: each layer's per-head outputs (o_proj's input), its values
    and queries/keys (all positions), and the last layer's output before the final norm."""
    handles = []
    for i, layer in enumerate(decoder(model).layers):
        a = layer.self_attn
        handles.append(a.o_proj.register_forward_pre_hook(lambda m, x, i=i: grabbed.__setitem__(f"z{i}", x[0])))
        for name in ("q_proj", "k_proj", "v_proj"):
            handles.append(getattr(a, name).register_forward_hook(lambda m, x, o, i=i, n=name: grabbed.__setitem__(f"{n[0]}{i}", o)))
    last = decoder(model).layers[-1]
    handles.append(last.register_forward_hook(lambda m, x, o: grabbed.__setitem__("final", o[0] if isinstance(o, tuple) else o)))
    return handles


def last_query_attention(model, grabbed, layer, head, seq, device):
    """Head (layer, head)'s attention of the last query over every position, from the hooked
    queries and keys with the model's rotary embedding (for attention kernels that return none)."""
    tc = model.config.text_config
    heads, kv = tc.num_attention_heads, tc.num_key_value_heads
    hd = getattr(tc, "head_dim", None) or tc.hidden_size // heads
    q = grabbed[f"q{layer}"][0].view(seq, heads, hd)[:, head]
    k = grabbed[f"k{layer}"][0].view(seq, kv, hd)[:, head // (heads // kv)]
    pos = torch.arange(seq, device=device)[None]
    cos, sin = decoder(model).rotary_emb(q[None], pos)
    cos, sin = cos[0], sin[0]

    def rot(x):
        half = x.shape[-1] // 2
        return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin

    q, k = rot(q), rot(k)
    scores = (k @ q[-1]) / hd**0.5
    return torch.softmax(scores.float(), dim=-1).to(q.dtype)


def explain(model, input_ids, pixel_values, device, eager):
    """The method on one input; returns the scores and the three steps' times (ms)."""
    tc = model.config.text_config
    layers, heads, kv = tc.num_hidden_layers, tc.num_attention_heads, tc.num_key_value_heads
    hd = getattr(tc, "head_dim", None) or tc.hidden_size // heads
    seq = input_ids.shape[1]
    grabbed = {}
    handles = hooks(model, grabbed)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model(input_ids=input_ids, pixel_values=pixel_values, output_hidden_states=True, output_attentions=eager)
        for h in handles:
            h.remove()
        hs = out.hidden_states
        w_u = model.lm_head.weight
        g = decoder(model).norm.weight
        final = grabbed["final"][0, -1]
        target = int(out.logits[0, -1].argmax())
        sync(device)
        t1 = time.perf_counter()
        # Every head's output at the last position, o^{l,h} = z^{l,h} W_O^h, added to x^l; and
        # x^l alone: one projection of layers * heads + layers rows.
        scale = torch.rsqrt(final.float().pow(2).mean() + EPS).to(final.dtype)
        x = torch.stack([hs[layer][0, -1] for layer in range(layers)])  # [L, d]
        rows = []
        for layer in range(layers):
            w_o = decoder(model).layers[layer].self_attn.o_proj.weight  # [d, heads * hd]
            z = grabbed[f"z{layer}"][0, -1].view(heads, 1, hd)
            o = torch.bmm(z, w_o.view(-1, heads, hd).transpose(0, 1).transpose(1, 2)).squeeze(1)  # [heads, d]
            rows.append(x[layer] + o)
        rows = torch.cat(rows + [x])

        def logp(v):
            return torch.log_softmax(((v * g * scale) @ w_u.T).float(), dim=-1)[:, target]

        lp = logp(rows)
        base = lp[layers * heads:]
        head_scores = (lp[: layers * heads].view(layers, heads) - base[:, None]).float()
        best = int(head_scores.argmax())
        bl, bh = divmod(best, heads)
        sync(device)
        t2 = time.perf_counter()
        # The best head's position scores: x^l + alpha_j v_j W_O^h for every position j.
        alpha = out.attentions[bl][0, bh, -1] if eager else last_query_attention(model, grabbed, bl, bh, seq, device)
        kvh = bh // (heads // kv)
        v = grabbed[f"v{bl}"][0, :, kvh * hd:(kvh + 1) * hd]
        w_o_h = decoder(model).layers[bl].self_attn.o_proj.weight[:, bh * hd:(bh + 1) * hd]
        u = alpha.to(v.dtype)[:, None] * (v @ w_o_h.T)
        position_scores = (logp(x[bl][None] + u) - base[bl]).float()
        sync(device)
        t3 = time.perf_counter()
    ms = lambda a, b: (b - a) * 1e3  # noqa: E731
    return {"target": target, "head_scores": head_scores, "best": (bl, bh), "position_scores": position_scores,
            "forward_ms": ms(t0, t1), "head_scores_ms": ms(t1, t2), "positions_ms": ms(t2, t3), "total_ms": ms(t0, t3)}


def expand(ids, image_token, n_img):
    off = ids.index(image_token)
    return ids[:off] + [image_token] * n_img + ids[off + 1:]


def check(model_dir, fixture):
    """The pipeline on a real checkpoint and a fixture's inputs equals the fixture's scores."""
    from safetensors.torch import load_file

    f = load_file(fixture)
    model = LlavaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    cfg = model.config
    ids = expand(f["input_ids"].tolist(), cfg.image_token_index, n_image_tokens(cfg))
    device = torch.device("cpu")
    for eager in (True, False):
        if not eager:
            model.set_attn_implementation("sdpa")
        r = explain(model, torch.tensor([ids]), f["pixel_values"][None], device, eager)
        assert r["target"] == int(f["explain_target"][0]), (r["target"], f["explain_target"])
        dh = (r["head_scores"] - f["head_scores"]).abs().max().item()
        dp = (r["position_scores"] - f["position_scores"]).abs().max().item()
        assert dh < 1e-4 and dp < 1e-4, f"{'eager' if eager else 'sdpa'}: head scores {dh}, position scores {dp}"
        print(json.dumps({"check": "eager" if eager else "sdpa", "fixture": str(fixture), "max_diff_head_scores": dh,
                          "max_diff_position_scores": dp}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inputs", type=Path)
    p.add_argument("--dtype", choices=["fp32", "fp16"], default="fp32")
    p.add_argument("--attn", choices=["eager", "sdpa"], default="eager")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--check", nargs=2, metavar=("MODEL_DIR", "FIXTURE"))
    a = p.parse_args()
    if a.check:
        return check(*a.check)
    assert a.inputs, "give --inputs DIR (from `llava-lens bench e2e --write-inputs DIR`) or --check"
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if a.dtype == "fp16" else torch.float32
    torch.backends.cuda.matmul.allow_tf32 = False  # the card's FP32 path, as llava-lens computes
    cfg = LlavaConfig.from_dict(json.loads((a.inputs / "config.json").read_text()))
    prompt = json.loads((a.inputs / "prompt.json").read_text())
    t = time.perf_counter()
    torch.manual_seed(0)
    with torch.device(device):
        model = LlavaForConditionalGeneration._from_config(cfg, dtype=dtype, attn_implementation=a.attn).eval()
    # Random matrices small enough that activations stay finite in fp16 (norm weights stay 1).
    with torch.no_grad():
        for w in model.parameters():
            if w.dim() > 1:
                w.normal_(0.0, 0.02)
    build_s = time.perf_counter() - t
    ids = expand(prompt["ids"], cfg.image_token_index, n_image_tokens(cfg))
    s = cfg.vision_config.image_size
    pixels = torch.frombuffer(bytearray((a.inputs / "pixel_values.f32").read_bytes()), dtype=torch.float32).view(1, 3, s, s)
    input_ids, pixels = torch.tensor([ids], device=device), pixels.to(device, dtype)
    for _ in range(a.warmup):
        explain(model, input_ids, pixels, device, a.attn == "eager")
    runs = [explain(model, input_ids, pixels, device, a.attn == "eager") for _ in range(a.repeats)]
    med = lambda k: statistics.median(r[k] for r in runs)  # noqa: E731
    print(json.dumps({
        "side": "pytorch", "transformers": transformers.__version__, "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu", "dtype": a.dtype, "attn": a.attn,
        "sequence_length": len(ids), "build_s_random_weights": build_s, "repeats": a.repeats,
        "explain_ms": med("total_ms"), "forward_ms": med("forward_ms"), "head_scores_ms": med("head_scores_ms"),
        "positions_ms": med("positions_ms"),
        "peak_gpu_bytes": torch.cuda.max_memory_allocated() if device.type == "cuda" else None,
    }))


if __name__ == "__main__":
    main()
