"""A tiny Llava variant made by HF transformers itself, for the parity tests of the families
beyond llava-1.5: the same architecture classes and config fields as the real checkpoint, shrunk.

  siglip: llava-interleave-qwen's vision side (SiglipVisionModel, features from the last layer
          with the "full" strategy, SiglipImageProcessor) on the tiny LLaMA decoder of
          tests/data/tiny-llava, whose tokenizer it shares. 64 px in 12 px patches: a 5 x 5 grid
          with 4 px left over, as so400m's 384 px in 14 px patches leave 6.
  mistral: bakLLaVA's decoder (MistralForCausalLM: LLaMA's layers, a sliding window of 4096, its
          own defaults) under tests/data/tiny-llava's CLIP tower, with rope_theta 1e6 so a wrong
          theta shows.
  qwen:   llava-interleave-qwen-0.5b whole: the SigLIP tower of `siglip`, a Qwen2 decoder (q/k/v
          biases, lm_head tied to the embeddings, named only in text_config as the Hub file
          does, use_sliding_window false, rope_theta 1e6, grouped-query heads), a byte-level BPE
          tokenizer laid out as Qwen's (its pre-tokenizer regex, `<|endoftext|>`, `<|im_start|>`,
          `<|im_end|>` and `<image>` added after the vocabulary) but trained here on a small
          fixed text, and llava-interleave's ChatML chat template.
  vicuna: a plain LlamaForCausalLM with tests/data/tiny-llava's decoder shape and tokenizer, its
          own weights (seed 1): the "Vicuna" of the paper's Vicuna-TQA condition, which loads
          without a vision tower and answers text-only prompts.
  layers: tests/data/tiny-llava's CLIP tower and LLaMA decoder with a list of feature layers,
          [-1, 0, -3]: out of order, the embeddings among them, the class token dropped from
          each ("default"), linear_1 three times as wide.

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
  python scripts/golden/make_tiny_hf.py qwen tests/data/tiny-llava-qwen
  python scripts/golden/make_fixtures.py tests/data/tiny-llava-qwen tests/data/images/small-97x61.png \
      tests/data/golden/tiny-llava-qwen.safetensors
  python scripts/golden/make_tiny_hf.py vicuna tests/data/tiny-vicuna
  python scripts/golden/make_fixtures.py tests/data/tiny-vicuna - tests/data/golden/tiny-vicuna-text.safetensors --text-context
  python scripts/golden/make_tiny_hf.py layers tests/data/tiny-llava-layers
  python scripts/golden/make_fixtures.py tests/data/tiny-llava-layers tests/data/images/tall-301x689.png \
      tests/data/golden/tiny-llava-layers.safetensors
"""
import json
import math
import shutil
import sys
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (CLIPVisionConfig, LlamaConfig, LlamaForCausalLM, LlavaConfig, LlavaForConditionalGeneration,
                          MistralConfig, Qwen2Config, SiglipVisionConfig)

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


# Qwen2's pre-tokenizer split (Qwen/Qwen1.5-0.5B-Chat tokenizer.json).
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|"
              r"\s+(?!\S)|\s+")
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"]
# llava-hf/llava-interleave-qwen-0.5b-hf's chat_template.json: each turn opens with the role and a
# space, images before text, text after a newline; the generation prompt opens the assistant's.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>' }}{% endfor %}"
    "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>' }}{% endfor %}"
    "{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] }}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ '\n' + content['text'] }}{% endgeneration %}{% endfor %}{% endif %}"
    "{{'<|im_end|>'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
# What the tiny BPE learns its merges from: the test questions and the scenes' words.
QWEN_CORPUS = """What is the color of the dog? The color of the dog is brown. What color is the cat? The cat is black.
What animal is in the picture? It is a dog. Is there a red ball? The ball is red, the sky is blue, the grass is green.
What is the shape? A circle, a square, a triangle. How many dogs are there? There are 2 dogs and 3 cats.
white yellow orange purple pink grey gray bird horse cow sheep fish car house tree person man woman
"""


def qwen_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=420, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([QWEN_CORPUS] * 4, trainer)
    tok.add_special_tokens(QWEN_SPECIALS)
    return tok


def qwen_config(tok):
    ids = {t: tok.token_to_id(t) for t in QWEN_SPECIALS}
    vision = siglip_config().vision_config
    text = Qwen2Config(
        vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-6, tie_word_embeddings=True,
        use_sliding_window=False, sliding_window=4096, max_window_layers=21,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6},
        bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"])
    return LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=ids["<image>"], vision_feature_layer=-1,
        vision_feature_select_strategy="full", projector_hidden_act="gelu", multimodal_projector_bias=True,
        image_seq_length=25)


def layers_config():
    tiny = json.loads((TINY_TEXT / "config.json").read_text())
    return LlavaConfig(
        vision_config=CLIPVisionConfig(**{k: v for k, v in tiny["vision_config"].items() if k != "model_type"}),
        text_config=LlamaConfig(**tiny["text_config"]), image_token_index=tiny["image_token_index"],
        pad_token_id=tiny["pad_token_id"], vision_feature_layer=[-1, 0, -3], vision_feature_select_strategy="default",
        projector_hidden_act="gelu", multimodal_projector_bias=True, tie_word_embeddings=False, image_seq_length=16)


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


def vicuna(out):
    tiny = json.loads((TINY_TEXT / "config.json").read_text())
    model = LlamaForCausalLM(LlamaConfig(**tiny["text_config"])).eval()
    redraw(model, seed=1)
    model.save_pretrained(out, safe_serialization=True)
    shutil.copy(TINY_TEXT / "tokenizer.json", out / "tokenizer.json")
    print(f"wrote {out}: {sum(p.numel() for p in model.parameters())} parameters")


def main(kind, out):
    out = Path(out)
    if kind == "vicuna":
        return vicuna(out)
    tok = qwen_tokenizer() if kind == "qwen" else None
    config = {"siglip": siglip_config, "mistral": mistral_config, "qwen": lambda: qwen_config(tok),
              "layers": layers_config}[kind]()
    model = LlavaForConditionalGeneration(config).eval()
    redraw(model, seed=0)
    model.save_pretrained(out, safe_serialization=True)
    if tok is None:
        shutil.copy(TINY_TEXT / "tokenizer.json", out / "tokenizer.json")
    else:
        tok.save(str(out / "tokenizer.json"))
        (out / "chat_template.json").write_text(json.dumps({"chat_template": CHATML_TEMPLATE}, indent=2) + "\n")
        # The Hub file names the tie only in text_config (LlavaConfig reads it from there).
        saved = json.loads((out / "config.json").read_text())
        saved.pop("tie_word_embeddings", None)
        (out / "config.json").write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    size = config.vision_config.image_size
    if kind in ("siglip", "qwen"):
        processor = {"image_processor_type": "SiglipImageProcessor", "do_resize": True, "size": {"height": size, "width": size},
                     "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
                     "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "do_convert_rgb": None}
        (out / "preprocessor_config.json").write_text(json.dumps(processor, indent=2) + "\n")
    print(f"wrote {out}: {sum(p.numel() for p in model.parameters())} parameters")


if __name__ == "__main__":
    main(*sys.argv[1:3])
