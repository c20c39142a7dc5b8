"""Golden pixel values from HF transformers' Pillow-based image processors, for the bit-exact
preprocessing tests (crates/model/tests/preprocess_parity.rs).

Writes three synthetic non-square test images (deterministic: smooth patterns, a block-noise
texture and, in one, an alpha channel that HF composites onto white) next to the committed
scene photo, and one safetensors file. The processors' output takes 256 values per channel, so
it is stored as u8 levels (the processor run without rescale and normalise) plus each
processor's table of the 256 normalised values; the script checks that the table applied to the
levels is, bit for bit, what the full processor returns. For each image:

  <image>.clip<S>      [3, S, S] u8   CLIPImageProcessorPil as llava-hf/llava-1.5-7b-hf configures
                                      it, at S = 56 (the tiny model), 168 (the demo model)
  <image>.siglip<S>    [3, S, S] u8   SiglipImageProcessorPil as llava-interleave-qwen configures
                                      it, at S = 28 and 96
and at the real models' sizes, scene-500x375.clip336 and tall-301x689.siglip384;
  clip.table, siglip.table [3, 256] f32   normalised value of each level, per channel

Usage (needs transformers, pillow, numpy, safetensors, torch; tests never run Python):
  python scripts/golden/make_preprocess_fixtures.py tests/data/images tests/data/golden/preprocess.safetensors
"""
import sys
from pathlib import Path

import numpy as np
import PIL
import torch
import transformers
from PIL import Image
from safetensors.torch import save_file
from transformers import CLIPImageProcessorPil, SiglipImageProcessorPil

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def clip(size, **steps):
    return CLIPImageProcessorPil(**{
        "do_resize": True, "size": {"shortest_edge": size}, "resample": 3, "do_center_crop": True,
        "crop_size": {"height": size, "width": size}, "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "image_mean": CLIP_MEAN, "image_std": CLIP_STD, "do_convert_rgb": True, **steps})


def siglip(size, **steps):
    return SiglipImageProcessorPil(**{
        "do_resize": True, "size": {"height": size, "width": size}, "resample": 3, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.5] * 3, "image_std": [0.5] * 3, **steps})


def table(make):
    """The processor's rescale and normalise of every level (no resize: a 16 x 16 image of all
    256 values, the same numpy arithmetic)."""
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    image = Image.fromarray(np.dstack([levels] * 3), "RGB")
    px = make(16, do_resize=False, do_center_crop=False)(images=image, return_tensors="pt")["pixel_values"][0]
    return px.reshape(3, 256).to(torch.float32).contiguous()


def pattern(width, height, seed, alpha=False):
    """Smooth colour waves plus 8 x 8 block noise: edges and gradients at every scale, and a
    PNG that stays small."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    waves = [127 + 120 * np.sin(x / (7 + 5 * c) + y / (11 + 3 * c) + c) for c in range(3)]
    blocks = rng.integers(-40, 41, size=((height + 7) // 8, (width + 7) // 8, 3))
    noise = np.kron(blocks, np.ones((8, 8, 1)))[:height, :width]
    rgb = np.clip(np.stack(waves, -1) + noise, 0, 255).astype(np.uint8)
    if not alpha:
        return Image.fromarray(rgb, "RGB")
    alpha_blocks = np.kron(rng.integers(-60, 61, size=((height + 7) // 8, (width + 7) // 8)), np.ones((8, 8)))[:height, :width]
    a = np.clip(300 * (x / width) - 20 + alpha_blocks, 0, 255).astype(np.uint8)
    return Image.fromarray(np.dstack([rgb, a]), "RGBA")


SYNTHETIC = {
    "tall-301x689.png": (301, 689, 1, False),
    "wide-alpha-640x233.png": (640, 233, 2, True),
    "small-97x61.png": (97, 61, 3, False),
}


def main(images_dir, out):
    images_dir = Path(images_dir)
    for name, (w, h, seed, alpha) in SYNTHETIC.items():
        pattern(w, h, seed, alpha).save(images_dir / name, optimize=True)
    tables = {"clip": table(clip), "siglip": table(siglip)}
    tensors = {f"{k}.table": t for k, t in tables.items()}
    cases = [(name, kind, size) for name in ["scene-500x375.png", *SYNTHETIC] for kind, size in
             [("clip", 56), ("clip", 168), ("siglip", 28), ("siglip", 96)]]
    cases += [("scene-500x375.png", "clip", 336), ("tall-301x689.png", "siglip", 384)]
    for name, kind, size in cases:
        make = {"clip": clip, "siglip": siglip}[kind]
        image = Image.open(images_dir / name)
        full = make(size)(images=image, return_tensors="pt")["pixel_values"][0]
        levels = make(size, do_rescale=False, do_normalize=False)(images=image, return_tensors="pt")["pixel_values"][0]
        assert torch.equal(levels, levels.round()) and levels.min() >= 0 and levels.max() <= 255
        levels = levels.to(torch.uint8)
        rebuilt = torch.stack([tables[kind][c][levels[c].long()] for c in range(3)])
        assert torch.equal(rebuilt, full.to(torch.float32)), f"{name} {kind}{size}: the table does not rebuild the output"
        tensors[f"{name.removesuffix('.png')}.{kind}{size}"] = levels.contiguous()
    meta = {"transformers": transformers.__version__, "pillow": PIL.__version__, "numpy": np.__version__}
    save_file(tensors, out, metadata=meta)
    print(f"wrote {len(tensors)} tensors to {out} ({meta})")


if __name__ == "__main__":
    main(*sys.argv[1:])
