#!/usr/bin/env python3
"""Train the llava-lens demo model: a tiny LlavaForConditionalGeneration on generated scenes.

The scenes come from the Rust generator (`llava-lens scenes`), so training, the CLI's held-out
evaluations and the web gallery share one implementation. The model is HF Llava-1.5's exact
architecture (CLIP vision tower, feature layer -2 without CLS, 2-layer GELU projector, LLaMA) at a
tiny size, and is saved as an HF folder (config.json, model.safetensors, tokenizer.json,
preprocessor_config.json) with a model card.

Recipe (measured against the plateau of the first attempts, docs/DEMO-MODEL.md):
- loss: the answer word's cross-entropy at the last prompt position (the paper's setting: the
  answer is the next token after "The color of the {shape} is"), plus an auxiliary per-patch
  loss on the projector output (which shape and which colour covers each patch). The auxiliary
  heads are thrown away: the saved model is a plain Llava. They make the image tokens say "red
  star here" early, so the language model only has to learn the look-up, which is the binding
  the notes found hard;
- a linear probe on the last position's residual after the first decoder layer must name the
  shape asked about (also thrown away). Without it the answer loss alone sat on the notes' plateau
  (38 % after 2,000 steps here: "guess among the colours present"): the answer position has to
  fetch the shape word before it can look up that shape's patches, a two-hop circuit with no
  gradient until both hops work; the probe teaches the first hop directly;
- every question of a scene in the same step, the vision tower run once per scene;
- AdamW, linear warm-up then cosine decay; a short curriculum of 1-2 object scenes first;
- horizontal flips (every shape is mirror-symmetric up to its random rotation).

Runs on the CPU (2 threads: about an hour here) or on a CUDA GPU (`--device cuda`). Seeded:
the same arguments give the same model on the same torch build and device.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tokenizers import Tokenizer
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

SHAPES = ["circle", "square", "triangle", "star", "cross"]
COLORS = ["red", "green", "blue", "yellow", "orange", "purple", "white", "black"]
ANSWERS = COLORS + ["none"]
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)


def args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--llava-lens", default="target/release/llava-lens", help="the llava-lens binary (scene generator, tokenizer)")
    p.add_argument("--out", required=True, help="output HF model folder")
    p.add_argument("--work", default="target/train-scenes", help="scratch folder for generated scenes")
    p.add_argument("--seed", type=int, default=1, help="training scenes' seed and torch seed")
    p.add_argument("--val-seed", type=int, default=7, help="seed of the validation scenes watched during training")
    p.add_argument("--n-train", type=int, default=40000)
    p.add_argument("--n-val", type=int, default=300)
    p.add_argument("--steps", type=int, default=9000)
    p.add_argument("--scenes-per-step", type=int, default=12)
    p.add_argument("--absent-rate", type=float, default=0.5, help="chance a scene's absent-shape question joins the batch")
    p.add_argument("--lr", type=float, default=5e-4, help="2e-3 and 1e-3 left the CLIP tower unable to learn shapes (flat at chance); 5e-4 learns")
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--vision-steps", type=int, default=1500, help="first stage: the vision tower and projector on the per-patch targets alone")
    p.add_argument("--vision-batch", type=int, default=32)
    p.add_argument("--curriculum", type=float, default=0.1, help="fraction of steps on 1-2 object scenes")
    p.add_argument("--aux-weight", type=float, default=1.0)
    p.add_argument("--vision-layers", type=int, default=4, help="CLIP layers (the last is unused: feature layer -2, as in Llava)")
    p.add_argument("--probe-layer", type=int, default=1, help="decoder layers after which the last position must name the asked shape")
    p.add_argument("--probe-weight", type=float, default=0.5)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--text-heads", type=int, default=4, help="attention heads per decoder layer (head dim = 128 / heads)")
    p.add_argument("--text-layers", type=int, default=4)
    p.add_argument("--budget-minutes", type=float, default=None, help="after 100 joint steps, shorten the joint stage (and its cosine schedule) to end within this many minutes of the start")
    p.add_argument("--size", type=int, default=168)
    p.add_argument("--patch", type=int, default=14)
    return p.parse_args()


def generate(binary, folder, n, seed, size):
    manifest = folder / "scenes.jsonl"
    if manifest.exists() and sum(1 for _ in open(manifest)) == n:
        return manifest
    subprocess.run([binary, "scenes", "--out", str(folder), "--n", str(n), "--seed", str(seed), "--size", str(size)], check=True)
    return manifest


def load_scenes(manifest, grid):
    """Images (N, H, W, 3) uint8, per-patch shape/colour classes (N, grid*grid) with 0 = none,
    and the questions as (scene, shape index, answer index, present)."""
    records = [json.loads(line) for line in open(manifest)]
    folder = manifest.parent
    images = np.stack([np.asarray(Image.open(folder / r["image"]).convert("RGB")) for r in records])
    patch_shape = np.zeros((len(records), grid * grid), dtype=np.int64)
    patch_color = np.zeros_like(patch_shape)
    questions = []
    for i, r in enumerate(records):
        labels = np.asarray(Image.open(folder / r["mask"]))
        h = labels.shape[0] // grid
        cells = labels.reshape(grid, h, grid, h).transpose(0, 2, 1, 3).reshape(grid * grid, h * h)
        for o in r["objects"]:
            cover = (cells == o["id"]).mean(axis=1)
            take = cover >= 0.3
            patch_shape[i, take] = SHAPES.index(o["shape"]) + 1
            patch_color[i, take] = COLORS.index(o["color"]) + 1
        for q in r["questions"]:
            questions.append((i, SHAPES.index(q["shape"]), ANSWERS.index(q["answer"]), "object" in q))
    return records, images, patch_shape, patch_color, questions


def build_model(tok, size, patch, vision_layers, text_heads, text_layers):
    vocab = tok.get_vocab_size(with_added_tokens=True)
    image_id = tok.token_to_id("<image>")
    pad_id = tok.token_to_id("<pad>")
    text = LlamaConfig(
        vocab_size=-(-vocab // 64) * 64,
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=text_layers,
        num_attention_heads=text_heads,
        num_key_value_heads=text_heads,
        max_position_embeddings=512,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=pad_id,
        tie_word_embeddings=False,
    )
    vision = CLIPVisionConfig(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=vision_layers,
        num_attention_heads=4,
        image_size=size,
        patch_size=patch,
        hidden_act="quick_gelu",
        projection_dim=128,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_id,
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        image_seq_length=(size // patch) ** 2,
        pad_token_id=pad_id,
        tie_word_embeddings=False,
    )
    return LlavaForConditionalGeneration(config)


def prompt_ids(tok, shape, n_image):
    """llava-1.5's template, as `llava-lens` builds it, with <image> expanded to the patch tokens."""
    text = f"USER: <image>\nWhat is the color of the {shape}?\nASSISTANT: The color of the {shape} is"
    ids = tok.encode(text).ids
    at = ids.index(tok.token_to_id("<image>"))
    return ids[:at] + ids[at : at + 1] * n_image + ids[at + 1 :], at


class Batcher:
    def __init__(self, data, tok, n_image, device):
        self.records, self.images, self.pshape, self.pcolor, self.questions = data
        self.device = device
        self.by_scene = {}
        for q in self.questions:
            self.by_scene.setdefault(q[0], []).append(q)
        self.prompts = {}
        for s in SHAPES:
            ids, at = prompt_ids(tok, s, n_image)
            self.prompts[s] = torch.tensor(ids)
            self.offset = at
        self.shape_token = {tok.token_to_id("▁" + s): k for k, s in enumerate(SHAPES)}
        self.answer_ids = torch.tensor([tok.token_to_id("▁" + a) for a in ANSWERS])
        assert all(i is not None for i in self.answer_ids.tolist())

    def shape_of_prompt(self, ids):
        """Index of the shape each prompt asks about (its second-to-last token)."""
        return torch.tensor([self.shape_token[int(t)] for t in ids[:, -2]], device=ids.device)

    def pixels(self, idx, flip):
        x = self.images[idx].astype(np.float32) / 255.0
        if flip is not None:
            x[flip] = x[flip, :, ::-1]
        x = (x - CLIP_MEAN) / CLIP_STD
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(self.device)

    def batch(self, scene_idx, rng, absent_rate, flip=True):
        flips = rng.random(len(scene_idx)) < 0.5 if flip else None
        pv = self.pixels(scene_idx, flips)
        pshape = torch.from_numpy(self.pshape[scene_idx].copy())
        pcolor = torch.from_numpy(self.pcolor[scene_idx].copy())
        if flip:
            g = int(math.isqrt(pshape.shape[1]))
            for k in np.nonzero(flips)[0]:
                pshape[k] = pshape[k].view(g, g).flip(1).reshape(-1)
                pcolor[k] = pcolor[k].view(g, g).flip(1).reshape(-1)
        owner, ids, answers, present = [], [], [], []
        for k, s in enumerate(scene_idx):
            for _, shape, answer, is_present in self.by_scene[int(s)]:
                if not is_present and rng.random() >= absent_rate:
                    continue
                owner.append(k)
                ids.append(self.prompts[SHAPES[shape]])
                answers.append(answer)
                present.append(is_present)
        return (
            pv,
            pshape.to(self.device),
            pcolor.to(self.device),
            torch.tensor(owner, device=self.device),
            torch.stack(ids).to(self.device),
            torch.tensor(answers, device=self.device),
            torch.tensor(present),
        )


def image_features(model, pv):
    """HF's path (vision tower, hidden state -2, CLS dropped, projector), once per scene."""
    hs = model.model.vision_tower(pv, output_hidden_states=True).hidden_states[-2][:, 1:]
    return model.model.multi_modal_projector(hs)


def answer_logits(model, feats, owner, ids, offset, n_image, probe_layer=None):
    """Logits at the last position; with `probe_layer`, also the last position's residual after
    that many decoder layers (for the shape probe)."""
    emb = model.model.get_input_embeddings()(ids)
    emb = torch.cat([emb[:, :offset], feats[owner], emb[:, offset + n_image :]], dim=1)
    out = model.model.language_model(inputs_embeds=emb, output_hidden_states=probe_layer is not None)
    logits = model.lm_head(out.last_hidden_state[:, -1])
    if probe_layer is None:
        return logits
    return logits, out.hidden_states[probe_layer][:, -1]


def aux_loss(aux_shape, aux_color, feats, pshape, pcolor):
    """Colour of every patch (background included) and shape of the object patches only: the
    shape of a patch inside an object is a property of the whole object, which the vision tower
    must gather by attention, and averaging it with the easy background patches drowned it."""
    shape_target = torch.where(pshape > 0, pshape - 1, torch.full_like(pshape, -100))
    return F.cross_entropy(aux_shape(feats).flatten(0, 1), shape_target.flatten(), ignore_index=-100) + F.cross_entropy(aux_color(feats).flatten(0, 1), pcolor.flatten())


@torch.no_grad()
def evaluate(model, batcher, n_image, answer_ids, aux_shape=None, chunk=16):
    """Answer accuracy (present, absent) and the auxiliary head's shape accuracy on object patches."""
    model.eval()
    right_present = total_present = right_absent = total_absent = 0
    shape_right = shape_total = 0
    rng = np.random.default_rng(0)
    n = len(batcher.records)
    for start in range(0, n, chunk):
        idx = np.arange(start, min(n, start + chunk))
        pv, pshape, _, owner, ids, answers, present = batcher.batch(idx, rng, absent_rate=1.0, flip=False)
        feats = image_features(model, pv)
        logits = answer_logits(model, feats, owner, ids, batcher.offset, n_image)
        if aux_shape is not None:
            obj = pshape > 0
            shape_right += int((aux_shape(feats).argmax(-1)[obj] == pshape[obj] - 1).sum())
            shape_total += int(obj.sum())
        pred = logits.argmax(-1).cpu()
        ok = pred == answer_ids[answers.cpu()]
        right_present += int(ok[present].sum())
        total_present += int(present.sum())
        right_absent += int(ok[~present].sum())
        total_absent += int((~present).sum())
    model.train()
    return right_present / max(1, total_present), right_absent / max(1, total_absent), shape_right / max(1, shape_total)


def main():
    a = args()
    t_start = time.time()
    steps_planned = a.steps
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(a.seed)
    grid = a.size // a.patch
    n_image = grid * grid
    work = Path(a.work)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    # The tokenizer is make-tiny's word-level BPE (LLaMA's normaliser and template), so the
    # tokenizer the Rust runtime tests against is the one the demo model speaks.
    tok_dir = work / "tokenizer"
    subprocess.run([a.llava_lens, "make-tiny", "--out", str(tok_dir)], check=True, capture_output=True)
    shutil.copy(tok_dir / "tokenizer.json", out / "tokenizer.json")
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))

    t0 = time.time()
    train = load_scenes(generate(a.llava_lens, work / f"train-{a.seed}", a.n_train, a.seed, a.size), grid)
    val = load_scenes(generate(a.llava_lens, work / f"val-{a.val_seed}", a.n_val, a.val_seed, a.size), grid)
    data_s = time.time() - t0
    print(f"scenes: {len(train[0])} train ({len(train[4])} questions), {len(val[0])} val, {data_s:.0f} s", flush=True)

    model = build_model(tok, a.size, a.patch, a.vision_layers, a.text_heads, a.text_layers).to(a.device)
    d = model.config.text_config.hidden_size
    aux_shape = torch.nn.Linear(d, len(SHAPES)).to(a.device)
    aux_color = torch.nn.Linear(d, len(COLORS) + 1).to(a.device)
    probe = torch.nn.Linear(d, len(SHAPES)).to(a.device)
    params = list(model.parameters()) + list(aux_shape.parameters()) + list(aux_color.parameters()) + list(probe.parameters())
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.98))

    def lr_at(step):
        if step < a.warmup:
            return a.lr * (step + 1) / a.warmup
        t = (step - a.warmup) / max(1, a.steps - a.warmup)
        return a.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))

    tb = Batcher(train, tok, n_image, a.device)
    vb = Batcher(val, tok, n_image, a.device)

    # Stage 1: the vision tower learns what is where (shape and colour per patch) before the
    # language model asks about it. Trained jointly from the start, the tower stayed at chance
    # on shapes for 2,000+ steps while the answer loss settled on "a colour that is present".
    t_vision = time.time()
    vision_params = list(model.model.vision_tower.parameters()) + list(model.model.multi_modal_projector.parameters()) + list(aux_shape.parameters()) + list(aux_color.parameters())
    vopt = torch.optim.AdamW(vision_params, lr=a.lr, betas=(0.9, 0.98), weight_decay=0.01)
    vision_log = []
    for step in range(a.vision_steps):
        idx = rng.integers(0, len(train[0]), a.vision_batch)
        pv, pshape, pcolor, *_ = tb.batch(idx, rng, 0.0)
        for g in vopt.param_groups:
            g["lr"] = a.lr * min(1.0, (step + 1) / a.warmup)
        loss = aux_loss(aux_shape, aux_color, image_features(model, pv), pshape, pcolor)
        vopt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vision_params, 1.0)
        vopt.step()
        if (step + 1) % 250 == 0 or step + 1 == a.vision_steps:
            _, _, acc_shape = evaluate(model, vb, n_image, tb.answer_ids, aux_shape)
            entry = {"vision_step": step + 1, "minutes": round((time.time() - t_vision) / 60, 2), "loss_aux": round(loss.item(), 4), "val_patch_shape_accuracy": round(acc_shape, 4)}
            vision_log.append(entry)
            print(json.dumps(entry), flush=True)
    vision_s = time.time() - t_vision
    answer_ids = tb.answer_ids
    counts = np.array([len(r["objects"]) for r in train[0]])
    easy = np.nonzero(counts <= 2)[0]
    log = []
    log_file = open(out / "training_log.jsonl", "w")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f} M parameters; {a.steps} steps of {a.scenes_per_step} scenes", flush=True)
    t_train = time.time()
    running = []
    step = -1
    while step + 1 < a.steps:
        step += 1
        if a.budget_minutes is not None and step == 100:
            # Still inside the warm-up, so the cosine schedule is rescaled before it has acted.
            per_step = (time.time() - t_train) / 100 * 1.15  # margin for the periodic evaluations
            left = a.budget_minutes * 60 - (time.time() - t_start) - 20
            a.steps = max(101, min(a.steps, 100 + int(left / per_step)))
            print(f"budget: {per_step * 1000:.0f} ms per step, {a.steps} joint steps", flush=True)
        pool = easy if step < a.curriculum * a.steps else None
        idx = rng.choice(pool, a.scenes_per_step, replace=False) if pool is not None else rng.integers(0, len(counts), a.scenes_per_step)
        pv, pshape, pcolor, owner, ids, answers, _ = tb.batch(idx, rng, a.absent_rate)
        asked_shape = tb.shape_of_prompt(ids)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        feats = image_features(model, pv)
        logits, resid = answer_logits(model, feats, owner, ids, tb.offset, n_image, a.probe_layer)
        loss_answer = F.cross_entropy(logits, answer_ids.to(a.device)[answers])
        loss_aux = aux_loss(aux_shape, aux_color, feats, pshape, pcolor)
        loss_probe = F.cross_entropy(probe(resid), asked_shape)
        loss = loss_answer + a.aux_weight * loss_aux + a.probe_weight * loss_probe
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        running.append((loss_answer.item(), loss_aux.item(), loss_probe.item()))
        if (step + 1) % a.eval_every == 0 or step + 1 == a.steps:
            acc, acc_absent, acc_shape = evaluate(model, vb, n_image, answer_ids, aux_shape)
            la, lx, lp = np.mean(running, axis=0)
            running = []
            entry = {"step": step + 1, "minutes": round((time.time() - t_train) / 60, 2), "loss_answer": round(float(la), 4), "loss_aux": round(float(lx), 4), "loss_probe": round(float(lp), 4), "val_accuracy": round(acc, 4), "val_accuracy_absent": round(acc_absent, 4), "val_patch_shape_accuracy": round(acc_shape, 4), "lr": lr_at(step)}
            log.append(entry)
            log_file.write(json.dumps(entry) + "\n")
            log_file.flush()
            print(json.dumps(entry), flush=True)
    train_s = time.time() - t_train

    # Check the manual fast path against HF's own forward before trusting the numbers.
    model.eval()
    with torch.no_grad():
        pv, _, _, owner, ids, answers, _ = vb.batch(np.arange(4), rng, 1.0, flip=False)
        fast = answer_logits(model, image_features(model, pv), owner, ids, vb.offset, n_image)
        hf = model(input_ids=ids, pixel_values=pv[owner]).logits[:, -1]
        gap = (fast - hf).abs().max().item()
        assert gap < 1e-4, f"manual forward differs from HF's by {gap}"
    acc, acc_absent, _ = evaluate(model, vb, n_image, answer_ids)

    model.save_pretrained(out, safe_serialization=True)
    with open(out / "preprocessor_config.json", "w") as f:
        json.dump({"image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": {"shortest_edge": a.size}, "resample": 3, "do_center_crop": True, "crop_size": {"height": a.size, "width": a.size}, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": CLIP_MEAN.tolist(), "image_std": CLIP_STD.tolist(), "do_convert_rgb": True}, f, indent=2)
    summary = {
        "seed": a.seed,
        "val_seed": a.val_seed,
        "n_train_scenes": a.n_train,
        "n_train_questions": len(train[4]),
        "n_val_scenes": a.n_val,
        "steps": a.steps,
        "steps_planned": steps_planned,
        "text_heads": a.text_heads,
        "text_layers": a.text_layers,
        "scenes_per_step": a.scenes_per_step,
        "lr": a.lr,
        "aux_weight": a.aux_weight,
        "vision_layers": a.vision_layers,
        "probe_layer": a.probe_layer,
        "probe_weight": a.probe_weight,
        "parameters": n_params,
        "train_minutes": round(train_s / 60, 1),
        "data_seconds": round(data_s),
        "device": a.device,
        "threads": a.threads,
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "val_accuracy": acc,
        "val_accuracy_absent": acc_absent,
        "manual_vs_hf_logit_gap": gap,
        "vision_steps": a.vision_steps,
        "vision_minutes": round(vision_s / 60, 1),
        "vision_curve": vision_log,
        "curve": log,
        "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
    }
    with open(out / "training_summary.json", "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps({k: v for k, v in summary.items() if k != "curve"}), flush=True)


if __name__ == "__main__":
    main()
