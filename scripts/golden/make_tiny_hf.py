"""A tiny Llava variant made by HF transformers itself, for the parity tests of the families
beyond llava-1.5: the same architecture classes and config fields as the real checkpoint, shrunk.

  siglip: llava-interleave-qwen's vision side (SiglipVisionModel, features from the last layer
          with the "full" strategy, SiglipImageProcessor) on the tiny LLaMA decoder of
          tests/data/tiny-llava, whose tokenizer it shares. 64 px in 12 px patches: a 5 x 5 grid
          with 4 px left over, as so400m's 384 px in 14 px patches leave 6.
  mistral: bakLLaVA's decoder (MistralForCausalLM: LLaMA's layers, a sliding window of 4096, its
          own defaults) under tests/data/tiny-llava's CLIP tower, with rope_theta 1e6 so a wrong
          theta shows.

The weights are drawn again after construction (transformers' own init is tiny for some
modules, which would leave every score near zero and the parity checks blunt): matrices
N(0, 1/fan_in), norm weights 1 + N(0, 0.1^2), biases and the rest N(0, 0.1^2), from one seed.

Usage (needs torch, transformers, safetensors; tests never run Python):
  python scripts/golden/make_tiny_hf.py siglip tests/data/tiny-llava-siglip
  python scripts/golden/make_fixtures.py tests/data/tiny-llava-siglip tests/data/images/tall-301x689.png \
      tests/data/golden/tiny-llava-siglip.safetensors
  python scripts/golden/make_tiny_hf.py mistral tests/data/tiny-llava-mistral
  python scripts/golden/make_fixtures.py tests/data/tiny-llava-mistral tests/data/images/wide-alpha-640x233.png \
      tests/data/golden/tiny-llava-mistral.safetensors
"""
import json
import math
import shutil
import sys
from pathlib import Path

import torch
from transformers import (CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, MistralConfig,
                          SiglipVisionConfig)

TINY_TEXT = Path(__file__).resolve().parents[2] / "tests" / "data" / "tiny-llava"


def siglip_config():
    text = json.loads((TINY_TEXT / "config.json").read_text())
    vision = SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
        image_size=64, patch_size=12, layer_norm_eps=1e-6, hidden_act="gelu_pytorch_tanh")
    return LlavaConfig(
        vision_config=vision, text_config=LlamaConfig(**text["text_config"]),
        image_token_index=text["image_token_index"], pad_token_id=text["pad_token_id"],
        vision_feature_layer=-1, vision_feature_select_strategy="full", projector_hidden_act="gelu",
        multimodal_projector_bias=True, tie_word_embeddings=False, image_seq_length=25)


def mistral_config():
    tiny = json.loads((TINY_TEXT / "config.json").read_text())
    text = {k: v for k, v in tiny["text_config"].items() if k not in ("model_type", "rope_theta")}
    return LlavaConfig(
        vision_config=CLIPVisionConfig(**{k: v for k, v in tiny["vision_config"].items() if k != "model_type"}),
        text_config=MistralConfig(**text, sliding_window=4096, rope_parameters={"rope_type": "default", "rope_theta": 1e6}),
        image_token_index=tiny["image_token_index"], pad_token_id=tiny["pad_token_id"], vision_feature_layer=-2,
        vision_feature_select_strategy="default", projector_hidden_act="gelu", multimodal_projector_bias=True,
        tie_word_embeddings=False, image_seq_length=16)


def redraw(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p[0].numel()))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def main(kind, out):
    out = Path(out)
    config = {"siglip": siglip_config, "mistral": mistral_config}[kind]()
    model = LlavaForConditionalGeneration(config).eval()
    redraw(model, seed=0)
    model.save_pretrained(out, safe_serialization=True)
    shutil.copy(TINY_TEXT / "tokenizer.json", out / "tokenizer.json")
    size = config.vision_config.image_size
    if kind == "siglip":
        processor = {"image_processor_type": "SiglipImageProcessor", "do_resize": True, "size": {"height": size, "width": size},
                     "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                     "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "do_convert_rgb": None}
        (out / "preprocessor_config.json").write_text(json.dumps(processor, indent=2) + "\n")
    print(f"wrote {out}: {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main(*sys.argv[1:3])
