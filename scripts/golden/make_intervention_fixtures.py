"""Golden fixtures for llava-lens's interventions, from HF transformers with forward hooks.

Loads the tiny Llava (LlavaForConditionalGeneration, CPU, fp32, eager attention), runs the
paper's prompt on a clean image and on a corrupted one (another image, the same prompt, so the
positions pair one to one), and writes the last position's log-softmax of every run:

  input_ids            [L0]    the prompt with one <image> token (int64)
  pixel_values_clean   [3, S, S]
  pixel_values_corrupt [3, S, S]
  logprobs_clean       [V]     no intervention
  logprobs_corrupt     [V]
  logprobs_zero        [V]     clean, ZERO_HEADS' outputs (o_proj's input columns) set to 0 at
                               every position
  logprobs_mean        [V]     clean, MEAN_HEADS' outputs set to their mean over the prompt's
                               positions in the unablated clean run
  logprobs_patch_resid [V]     corrupt, the residual entering layer PATCH_LAYER at position
                               PATCH_POSITION (an image patch) taken from the clean run
  logprobs_patch_head  [V]     corrupt, head PATCH_HEAD of layer PATCH_LAYER's output at the last
                               position taken from the clean run

Hooks are where TransformerLens puts hook_z (o_proj's input) and hook_resid_pre (the decoder
layer's input). The head and position choices are in the file's metadata.

Usage (needs torch, transformers, pillow, safetensors; tests never run Python):
  python scripts/golden/make_intervention_fixtures.py tests/data/tiny-llava \
      tests/data/images/scene-500x375.png tests/data/images/tall-301x689.png \
      tests/data/golden/tiny-llava-interventions.safetensors
"""
import json
import sys
from pathlib import Path

import torch
import transformers
from PIL import Image
from safetensors.torch import save_file
from transformers import LlavaForConditionalGeneration, PreTrainedTokenizerFast

sys.path.insert(0, str(Path(__file__).parent))
from make_fixtures import PROMPT, processor  # noqa: E402

ZERO_HEADS = [(0, 1), (1, 2)]
MEAN_HEADS = [(0, 3), (1, 0), (1, 2)]
PATCH_LAYER = 1
PATCH_HEAD = 2
PATCH_PATCH = 5  # an image patch: position image_offset + 5


def main(model_dir, clean_path, corrupt_path, out_path):
    model_dir, out_path = Path(model_dir), Path(out_path)
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    cfg = model.config
    tc = cfg.text_config
    heads = tc.num_attention_heads
    hd = getattr(tc, "head_dim", None) or tc.hidden_size // heads
    tok = PreTrainedTokenizerFast(tokenizer_file=str(model_dir / "tokenizer.json"), bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    size = cfg.vision_config.image_size
    pixels = {name: processor(size)(images=Image.open(p), return_tensors="pt")["pixel_values"]
              for name, p in (("clean", clean_path), ("corrupt", corrupt_path))}
    ids = tok(PROMPT)["input_ids"]
    off = ids.index(cfg.image_token_index)
    n_img = (size // cfg.vision_config.patch_size) ** 2
    input_ids = torch.tensor([ids[:off] + [cfg.image_token_index] * n_img + ids[off + 1:]])
    layers = model.model.language_model.layers
    patch_position = off + PATCH_PATCH

    grabbed = {}
    handles = []

    def hook_z(layer, fn):
        handles.append(layers[layer].self_attn.o_proj.register_forward_pre_hook(lambda m, a: (fn(a[0].clone()),)))

    def hook_resid(layer, fn):
        def pre(m, args, kwargs):
            if args:
                return (fn(args[0].clone()),) + args[1:], kwargs
            kwargs = dict(kwargs)
            kwargs["hidden_states"] = fn(kwargs["hidden_states"].clone())
            return args, kwargs
        handles.append(layers[layer].register_forward_pre_hook(pre, with_kwargs=True))

    def run(name):
        with torch.no_grad():
            out = model(input_ids=input_ids, pixel_values=pixels[name])
        for h in handles:
            h.remove()
        handles.clear()
        return torch.log_softmax(out.logits[0, -1], dim=-1)

    def keep(key):
        def fn(x):
            grabbed[key] = x.clone()
            return x
        return fn

    # The clean run, keeping what the interventions take from it.
    for layer in range(len(layers)):
        hook_z(layer, keep(f"z{layer}"))
        hook_resid(layer, keep(f"resid{layer}"))
    logprobs = {"clean": run("clean")}
    logprobs["corrupt"] = run("corrupt")

    def ablate(chosen, fill):
        for layer in sorted({l for l, _ in chosen}):
            def fn(z, layer=layer):
                for l, h in chosen:
                    if l == layer:
                        z[..., h * hd:(h + 1) * hd] = fill(layer, h)
                return z
            hook_z(layer, fn)

    ablate(ZERO_HEADS, lambda l, h: 0.0)
    logprobs["zero"] = run("clean")
    ablate(MEAN_HEADS, lambda l, h: grabbed[f"z{l}"][0, :, h * hd:(h + 1) * hd].mean(dim=0))
    logprobs["mean"] = run("clean")

    def patch_resid(x):
        x[0, patch_position] = grabbed[f"resid{PATCH_LAYER}"][0, patch_position]
        return x
    hook_resid(PATCH_LAYER, patch_resid)
    logprobs["patch_resid"] = run("corrupt")

    def patch_head(z):
        cols = slice(PATCH_HEAD * hd, (PATCH_HEAD + 1) * hd)
        z[0, -1, cols] = grabbed[f"z{PATCH_LAYER}"][0, -1, cols]
        return z
    hook_z(PATCH_LAYER, patch_head)
    logprobs["patch_head"] = run("corrupt")

    tensors = {
        "input_ids": torch.tensor(ids, dtype=torch.int64),
        "pixel_values_clean": pixels["clean"][0].contiguous(),
        "pixel_values_corrupt": pixels["corrupt"][0].contiguous(),
        **{f"logprobs_{k}": v.contiguous() for k, v in logprobs.items()},
    }
    meta = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "model": model_dir.name,
        "clean_image": Path(clean_path).name,
        "corrupt_image": Path(corrupt_path).name,
        "prompt": json.dumps(PROMPT),
        "image_offset": str(off),
        "zero_heads": json.dumps(ZERO_HEADS),
        "mean_heads": json.dumps(MEAN_HEADS),
        "patch_layer": str(PATCH_LAYER),
        "patch_head": str(PATCH_HEAD),
        "patch_position": str(patch_position),
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_path), metadata=meta)
    for k, v in logprobs.items():
        print(f"{k:12s} top {int(v.argmax()):4d} lp {float(v.max()):.5f}  max |diff| vs clean {float((v - logprobs['clean']).abs().max()):.4f}")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main(*sys.argv[1:])
