"""Golden fixtures from HF transformers for llava-lens's parity tests.

Loads a tiny model folder (written by `llava-lens make-tiny`, or by transformers itself:
scripts/golden/make_tiny_hf.py) with LlavaForConditionalGeneration (CPU, fp32, eager attention),
runs the committed test image and the paper's prompt, and writes one safetensors file with what
the Rust tests compare against:

  pixel_values        [3, S, S]   the vision tower's Pillow processor at the model size:
                                  CLIPImageProcessor (bicubic, center crop) or
                                  SiglipImageProcessor (bicubic to the square)
  pixel_values_336    [3, 336, 336] with --real-size (CLIP towers): the image at llava-1.5's real size
  input_ids           [L0]        the prompt with one <image> token (int64): llava-1.5's template, or
                                  the checkpoint's chat_template.json where it has one (ChatML)
  image_features      [N, D]      multi_modal_projector output
  resid_pre           [layers, D] residual stream entering every decoder layer, last position
  resid_final         [D]         last layer's output at the last position (before the final norm)
  logits              [V]         final logits at the last position
  attn_last_row       [layers, heads, L] attention of the last query, every layer and head
  greedy_tokens       [T]         greedy continuation (int64)

and the attribution of Yu & Ananiadou (2024) computed as the authors' notebook does (fixed
final-norm scale from the last layer's output at the last position, eps 1e-6; baseline = the
residual entering the layer; target = the top-1 next token):

  explain_target      [1]         the scored token (int64)
  head_scores         [layers, heads]  logp(w | x^l + o^{l,h}) - logp(w | x^l)
  attention_layer_scores [layers] logp(w | r^l) - logp(w | x^l)
  mlp_layer_scores    [layers]    logp(w | x^{l+1}) - logp(w | r^l)
  position_scores     [L]         best head: logp(w | x^l + alpha_j v_j W_O^h) - logp(w | x^l)
  position_scores_all [layers, heads, L] the same for every head (GQA: head h reads key/value
                                  head h // (heads // kv_heads))
  baseline_map        [N]         mean over layers and heads of the last query's attention on patches
  storage_tokens      [4]         probe tokens: the target, the next id, 7, the last id (int64)
  storage_value_ranks [L, 4]      best head: rank (1 = top) of each probe in z(alpha_j v_j W_O^h)
  storage_input_ranks [L, 4]      best head: rank of each probe in z(x^l_j), the residual entering its layer
  storage_*_near_ties [L, 4]      how many other logits lie within 1e-5 x the row's largest |logit| of
                                  the probe's: ties float error may order either way (int64)

and the original LLaVA's pad-to-square preprocessing (its expand2square: the image pasted centred
on a square of the CLIP mean colour, int(255 * mean), then the same processor):

  pixel_values_pad    [3, S, S]

Usage (needs torch, transformers, pillow, safetensors; tests never run Python):
  llava-lens make-tiny --out tests/data/tiny-llava --seed 0 --gqa
  python scripts/golden/make_fixtures.py tests/data/tiny-llava tests/data/images/scene-500x375.png \
      tests/data/golden/tiny-llava.safetensors --real-size
"""
import json
import sys
from pathlib import Path

import torch
import transformers
from PIL import Image
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, LlavaForConditionalGeneration, PreTrainedTokenizerFast

try:  # transformers 5: the PIL backend by name (the default one needs torchvision)
    from transformers import CLIPImageProcessorPil as CLIPImageProcessor
    from transformers import SiglipImageProcessorPil as SiglipImageProcessor
except ImportError:  # transformers 4: these are the PIL ones
    from transformers import CLIPImageProcessor, SiglipImageProcessor

QUESTION = "What is the color of the dog?"
TEXT_CONTEXT = "The dog in the picture is brown and the cat next to it is black."
ANSWER_PREFIX = "The color of the dog is"
PROMPT = f"USER: <image>\n{QUESTION}\nASSISTANT: {ANSWER_PREFIX}"
GREEDY_TOKENS = 8
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def processor(size):
    # llava-hf/llava-1.5-7b-hf's preprocessor_config.json, at `size`, with Pillow resampling.
    return CLIPImageProcessor(
        do_resize=True, size={"shortest_edge": size}, resample=3, do_center_crop=True,
        crop_size={"height": size, "width": size}, do_rescale=True, rescale_factor=1 / 255,
        do_normalize=True, image_mean=CLIP_MEAN, image_std=CLIP_STD, do_convert_rgb=True)


def siglip_processor(size):
    # llava-hf/llava-interleave-qwen-0.5b-hf's preprocessor_config.json, at `size`.
    return SiglipImageProcessor(
        do_resize=True, size={"height": size, "width": size}, resample=3, do_rescale=True,
        rescale_factor=1 / 255, do_normalize=True, image_mean=[0.5] * 3, image_std=[0.5] * 3)


def expand2square(image, background):
    # LLaVA's llava/mm_utils.py: the shorter side centred, (long - short) // 2 from the top/left.
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    square = Image.new(image.mode, (side, side), background)
    square.paste(image, ((side - width) // 2, (side - height) // 2))
    return square


def main(model_dir, image_path, out_path, *flags):
    model_dir, out_path = Path(model_dir), Path(out_path)
    # `-` for the image and `--text-context`: the question answered from TEXT_CONTEXT alone (the
    # paper's "TQA"), no image token, no pixel values.
    text_only = image_path == "-"
    assert text_only == ("--text-context" in flags), "give the image '-' together with --text-context"
    torch.manual_seed(0)
    plain = json.loads((model_dir / "config.json").read_text())["model_type"] != "llava"
    # A plain decoder checkpoint (LlamaForCausalLM: the LLM a Llava was tuned from) answers from
    # text only.
    cls = AutoModelForCausalLM if plain else LlavaForConditionalGeneration
    assert text_only or not plain, "a plain decoder takes --text-context"
    model = cls.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    cfg = model.config
    template = model_dir / "chat_template.json"
    if template.exists():
        # A ChatML checkpoint (llava-interleave): its own chat template renders the user turn with
        # the image and opens the assistant's, which the answer prefix then continues.
        tok = PreTrainedTokenizerFast(tokenizer_file=str(model_dir / "tokenizer.json"), eos_token="<|im_end|>")
        content = [{"type": "text", "text": f"{TEXT_CONTEXT}\n{QUESTION}"}] if text_only else \
            [{"type": "image"}, {"type": "text", "text": QUESTION}]
        chat = [{"role": "user", "content": content}]
        prompt = tok.apply_chat_template(chat, chat_template=json.loads(template.read_text())["chat_template"],
                                         tokenize=False, add_generation_prompt=True) + ANSWER_PREFIX
    else:
        tok = PreTrainedTokenizerFast(tokenizer_file=str(model_dir / "tokenizer.json"), bos_token="<s>", eos_token="</s>",
                                      unk_token="<unk>")
        prompt = f"USER: {TEXT_CONTEXT}\n{QUESTION}\nASSISTANT: {ANSWER_PREFIX}" if text_only else PROMPT
    if text_only:
        return main_text(model, tok, prompt, model_dir, out_path)
    # The processor converts to RGB itself (transparency onto white); LLaVA's own pad-to-square
    # pipeline opens images with .convert("RGB"), which drops the alpha channel instead.
    image = Image.open(image_path)
    image.load()
    size = cfg.vision_config.image_size
    clip = cfg.vision_config.model_type == "clip_vision_model"
    make = processor if clip else siglip_processor
    mean = CLIP_MEAN if clip else [0.5] * 3
    pixel_values = make(size)(images=image, return_tensors="pt")["pixel_values"]
    square = expand2square(image.convert("RGB"), tuple(int(255 * m) for m in mean))
    pixel_values_pad = make(size)(images=square, return_tensors="pt")["pixel_values"]

    ids = tok(prompt)["input_ids"]
    assert ids.count(cfg.image_token_index) == 1, ids
    off = ids.index(cfg.image_token_index)
    # One row per patch, plus CLIP's class token when the "full" strategy keeps it.
    n_img = (size // cfg.vision_config.patch_size) ** 2 + int(clip and cfg.vision_feature_select_strategy == "full")
    # Current transformers expects the image token repeated once per image feature.
    expanded = ids[:off] + [cfg.image_token_index] * n_img + ids[off + 1:]
    input_ids = torch.tensor([expanded])

    grabbed = {}
    model.model.multi_modal_projector.register_forward_hook(lambda m, i, o: grabbed.__setitem__("image_features", o))
    hooks(model, grabbed)
    with torch.no_grad():
        out = model(input_ids=input_ids, pixel_values=pixel_values, output_hidden_states=True, output_attentions=True)
        forward = dict(grabbed)  # generate() below fires the hooks again, one token at a time
        greedy = model.generate(input_ids=input_ids, pixel_values=pixel_values, max_new_tokens=GREEDY_TOKENS, do_sample=False)
    hs = out.hidden_states  # embeddings, then each layer's output (the last one after the final norm)
    n_layers = cfg.text_config.num_hidden_layers
    tensors = {
        "pixel_values": pixel_values[0].contiguous(),
        "pixel_values_pad": pixel_values_pad[0].contiguous(),
        "input_ids": torch.tensor(ids, dtype=torch.int64),
        "image_features": forward["image_features"].reshape(-1, cfg.text_config.hidden_size).contiguous(),
        "resid_pre": torch.stack([hs[layer][0, -1] for layer in range(n_layers)]).contiguous(),
        "resid_final": forward["resid_final"][0, -1].contiguous(),
        "logits": out.logits[0, -1].contiguous(),
        "attn_last_row": torch.stack([a[0, :, -1, :] for a in out.attentions]).contiguous(),
        "greedy_tokens": greedy[0, input_ids.shape[1]:].to(torch.int64).contiguous(),
    }
    meta = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "model": model_dir.name,
        "image": Path(image_path).name,
        "prompt": json.dumps(prompt),
        "image_offset": str(off),
    }
    if clip and "--real-size" in flags:
        tensors["pixel_values_336"] = processor(336)(images=image, return_tensors="pt")["pixel_values"][0].contiguous()
    tensors.update(attribution(model, forward, hs, out.attentions, off, n_img))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_path), metadata=meta)
    print(f"wrote {out_path}: " + ", ".join(f"{k} {list(v.shape)}" for k, v in tensors.items()))
    print("greedy:", tok.decode(tensors["greedy_tokens"]), "| top-1:", int(tensors["logits"].argmax()))


def decoder(model):
    """The decoder stack: inside a Llava, or a plain XxxForCausalLM's own."""
    return model.model.language_model if hasattr(model.model, "language_model") else model.model


def text_config(model):
    return getattr(model.config, "text_config", model.config)


def hooks(model, grabbed):
    def keep(name, value):  # hooks must return None, or they replace the module's input/output
        grabbed.setdefault(name, value)

    for i, layer in enumerate(decoder(model).layers):
        attn = layer.self_attn
        attn.o_proj.register_forward_pre_hook(lambda m, a, i=i: keep(f"z{i}", a[0]))
        attn.o_proj.register_forward_hook(lambda m, a, o, i=i: keep(f"attn_out{i}", o))
        attn.v_proj.register_forward_hook(lambda m, a, o, i=i: keep(f"v{i}", o))
    last_layer = decoder(model).layers[-1]
    last_layer.register_forward_hook(lambda m, i, o: grabbed.__setitem__("resid_final", o[0] if isinstance(o, tuple) else o))


def main_text(model, tok, prompt, model_dir, out_path):
    """The text-context fixture: the same tensors without the image's (no pixel values, no
    projector output, an empty baseline map)."""
    ids = tok(prompt)["input_ids"]
    assert getattr(model.config, "image_token_index", None) not in ids, ids
    input_ids = torch.tensor([ids])
    grabbed = {}
    hooks(model, grabbed)
    with torch.no_grad():
        out = model(input_ids=input_ids, output_hidden_states=True, output_attentions=True)
        forward = dict(grabbed)
        greedy = model.generate(input_ids=input_ids, max_new_tokens=GREEDY_TOKENS, do_sample=False)
    hs = out.hidden_states
    n_layers = text_config(model).num_hidden_layers
    tensors = {
        "input_ids": torch.tensor(ids, dtype=torch.int64),
        "resid_pre": torch.stack([hs[layer][0, -1] for layer in range(n_layers)]).contiguous(),
        "resid_final": forward["resid_final"][0, -1].contiguous(),
        "logits": out.logits[0, -1].contiguous(),
        "attn_last_row": torch.stack([a[0, :, -1, :] for a in out.attentions]).contiguous(),
        "greedy_tokens": greedy[0, input_ids.shape[1]:].to(torch.int64).contiguous(),
    }
    tensors.update(attribution(model, forward, hs, out.attentions, 0, 0))
    meta = {"transformers": transformers.__version__, "torch": torch.__version__, "model": model_dir.name,
            "image": "none", "prompt": json.dumps(prompt), "image_offset": "none"}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_path), metadata=meta)
    print(f"wrote {out_path}: " + ", ".join(f"{k} {list(v.shape)}" for k, v in tensors.items()))


def attribution(model, forward, hs, attentions, off, n_img):
    tc = text_config(model)
    n_layers, heads, kv = tc.num_hidden_layers, tc.num_attention_heads, tc.num_key_value_heads
    hd = getattr(tc, "head_dim", None) or tc.hidden_size // heads  # Qwen2Config has no head_dim
    w_u = model.lm_head.weight  # [V, d]
    g = decoder(model).norm.weight
    x_final = forward["resid_final"][0, -1]
    scale = torch.rsqrt(x_final.pow(2).mean() + 1e-6)

    def logp(v):  # v [n, d] -> log p(target) under the frozen-scale projection
        return torch.log_softmax((v * g * scale) @ w_u.T, dim=-1)[:, target]

    with torch.no_grad():
        target = int((decoder(model).norm(forward["resid_final"][:, -1:]) @ w_u.T)[0, -1].argmax())
        head_scores = torch.zeros(n_layers, heads)
        attn_scores, mlp_scores = torch.zeros(n_layers), torch.zeros(n_layers)
        for layer in range(n_layers):
            x = hs[layer][0, -1]
            w_o = decoder(model).layers[layer].self_attn.o_proj.weight  # [d, heads * hd]
            z = forward[f"z{layer}"][0, -1].view(heads, hd)
            o = torch.stack([z[h] @ w_o[:, h * hd:(h + 1) * hd].T for h in range(heads)])
            base = logp(x[None])[0]
            head_scores[layer] = logp(x[None] + o) - base
            r = x + forward[f"attn_out{layer}"][0, -1]
            nxt = hs[layer + 1][0, -1] if layer + 1 < n_layers else x_final
            attn_scores[layer] = logp(r[None])[0] - base
            mlp_scores[layer] = logp(nxt[None])[0] - logp(r[None])[0]
        def positions(layer, h):
            x = hs[layer][0, -1]
            w_o_h = decoder(model).layers[layer].self_attn.o_proj.weight[:, h * hd:(h + 1) * hd]
            kvh = h // (heads // kv)
            v = forward[f"v{layer}"][0, :, kvh * hd:(kvh + 1) * hd]  # [L, hd]
            alpha = attentions[layer][0, h, -1, :]
            u = alpha[:, None] * (v @ w_o_h.T)
            return logp(x[None] + u) - logp(x[None])[0]

        best = int(head_scores.argmax())
        position_scores = positions(*divmod(best, heads))
        position_scores_all = torch.stack([torch.stack([positions(layer, h) for h in range(heads)]) for layer in range(n_layers)])
        baseline = torch.stack([a[0, :, -1, off:off + n_img] for a in attentions]).mean(dim=(0, 1))

        # Information storage at every position of the best head: where fixed probe tokens rank
        # (1 = top) through z(.) in its value-output vectors u_j and in the residual entering its
        # layer x^l_j; and how many other logits lie within 1e-5 of the row's largest magnitude of
        # the probe's (near ties, whose order float error may flip: the rank is scale-free, and a
        # position the head barely attends to has logits a thousand times smaller).
        layer, h = divmod(best, heads)
        vocab = w_u.shape[0]
        probes = torch.tensor([target, (target + 1) % vocab, 7, vocab - 1])
        w_o_h = decoder(model).layers[layer].self_attn.o_proj.weight[:, h * hd:(h + 1) * hd]
        kvh = h // (heads // kv)
        u = attentions[layer][0, h, -1, :][:, None] * (forward[f"v{layer}"][0, :, kvh * hd:(kvh + 1) * hd] @ w_o_h.T)

        def ranks(rows):
            z = (rows * g * scale) @ w_u.T  # [L, V]
            at = z[:, probes]  # [L, m]
            above = (z[:, None, :] > at[:, :, None]).sum(-1) + 1
            band = 1e-5 * z.abs().amax(-1, keepdim=True)  # [L, 1]
            near = ((z[:, None, :] - at[:, :, None]).abs() <= band[:, :, None]).sum(-1) - 1
            return above.to(torch.int64), near.to(torch.int64)

        value_ranks, value_near = ranks(u)
        input_ranks, input_near = ranks(hs[layer][0])
    return {
        "storage_tokens": probes.to(torch.int64),
        "storage_value_ranks": value_ranks.contiguous(),
        "storage_value_near_ties": value_near.contiguous(),
        "storage_input_ranks": input_ranks.contiguous(),
        "storage_input_near_ties": input_near.contiguous(),
        "explain_target": torch.tensor([target], dtype=torch.int64),
        "head_scores": head_scores.contiguous(),
        "attention_layer_scores": attn_scores.contiguous(),
        "mlp_layer_scores": mlp_scores.contiguous(),
        "position_scores": position_scores.contiguous(),
        "position_scores_all": position_scores_all.contiguous(),
        "baseline_map": baseline.contiguous(),
    }


if __name__ == "__main__":
    main(*sys.argv[1:])
