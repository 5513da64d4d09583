"""A small demo dataset drawn with Pillow: shapes of several colours, with captions and some ground truth.

Multi-label on purpose: a red circle is PRESENT for both `circle` and `red`.
"""

import csv
import io
import random
import zipfile

from PIL import Image, ImageDraw

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (235, 200, 30)}
SHAPES = ("circle", "square", "triangle")
DEMO_CLASSES = ("circle", "square", "red")
SPLITS = ("train", "train", "train", "dev", "valid", "test")


def _draw(shape, colour, rng, size=224):
    background = tuple(rng.randint(200, 255) for _ in range(3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    r = rng.randint(size // 5, size // 3)
    cx, cy = rng.randint(r, size - r), rng.randint(r, size - r)
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=COLOURS[colour])
    elif shape == "square":
        draw.rectangle(box, fill=COLOURS[colour])
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=COLOURS[colour])
    return image


def demo_archive(count=60, seed=7):
    """A zip with `count` PNG images and a manifest.csv (split, caption, size, ground truth for ~half)."""
    rng = random.Random(seed)
    buffer = io.BytesIO()
    rows = []
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index in range(count):
            # Split and shape cycle at different periods, so every split holds every shape in equal numbers.
            split = SPLITS[index % len(SPLITS)]
            shape, colour = SHAPES[(index // len(SPLITS)) % len(SHAPES)], rng.choice(list(COLOURS))
            image = _draw(shape, colour, rng)
            out = io.BytesIO()
            image.save(out, format="PNG")
            name = f"images/{index:04d}_{colour}_{shape}.png"
            archive.writestr(name, out.getvalue())
            labeled = rng.random() < 0.5 or split != "train"
            rows.append({
                "file": name,
                "split": split,
                "external_id": f"demo-{index:04d}",
                "caption": f"a {colour} {shape} on a light background",
                "colour": colour,
                "area": round(3.14159 * (image.width / 4) ** 2) if shape == "circle" else image.width * 10,
                "gt:circle": ("PRESENT" if shape == "circle" else "ABSENT") if labeled else "",
                "gt:square": ("PRESENT" if shape == "square" else "ABSENT") if labeled else "",
                "gt:red": ("PRESENT" if colour == "red" else "ABSENT") if labeled else "",
            })
        manifest = io.StringIO()
        writer = csv.DictWriter(manifest, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        archive.writestr("manifest.csv", manifest.getvalue())
    return buffer.getvalue()
