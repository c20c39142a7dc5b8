"""Writes tests/data/images/scene-500x375.png: a deterministic non-square test image (smooth
gradients, hard-edged shapes, mild noise) that exercises antialiased bicubic downscaling and the
center crop. Run once; the PNG is committed."""
import random
import sys

from PIL import Image, ImageDraw

random.seed(20261126)
w, h = 500, 375
img = Image.new("RGB", (w, h))
px = img.load()
for y in range(h):
    for x in range(w):
        n = random.randint(-6, 6)
        px[x, y] = (min(255, max(0, 40 + x * 180 // w + n)), min(255, max(0, 60 + y * 150 // h + n)), min(255, max(0, 200 - (x + y) * 120 // (w + h) + n)))
d = ImageDraw.Draw(img)
d.ellipse((60, 80, 200, 220), fill=(200, 40, 40))
d.rectangle((280, 150, 420, 300), fill=(30, 160, 60))
d.polygon([(250, 30), (330, 130), (170, 130)], fill=(240, 220, 30))
d.line((0, 360, 500, 300), fill=(255, 255, 255), width=3)
img.save(sys.argv[1] if len(sys.argv) > 1 else "tests/data/images/scene-500x375.png", optimize=True)
