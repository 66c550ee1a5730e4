"""The 20 sample digits redrawn as users photograph them (bigger, smaller, not square, dark on
light, JPEG, transparent): shared by the Python client's image tests and the web page's."""

from __future__ import annotations

import io
import json

from paths import MNIST
from PIL import Image, ImageOps

LABELS: dict[str, int] = json.loads((MNIST / "samples" / "labels.json").read_text())
SHAPE = (1, 1, 28, 28)


def encoded(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _on_canvas(img: Image.Image) -> Image.Image:
    canvas = Image.new("L", (300, 180), 0)  # wide, the digit off-centre
    canvas.paste(img.resize((130, 130), Image.Resampling.BICUBIC), (30, 25))
    return canvas


def _transparent(img: Image.Image) -> Image.Image:
    ink = Image.new("RGBA", (84, 84), (20, 20, 20, 0))  # dark ink on a transparent sheet
    ink.putalpha(img.resize((84, 84), Image.Resampling.BICUBIC))
    return ink


VARIANTS = {
    "as is (28x28 PNG)": lambda img: encoded(img, "PNG"),
    "112x112 PNG, light on dark": lambda img: encoded(img.resize((112, 112)), "PNG"),
    "200x200 PNG, dark on light": lambda img: encoded(
        ImageOps.invert(img.resize((200, 200), Image.Resampling.BICUBIC)), "PNG"
    ),
    "50x50 JPEG, dark on light": lambda img: encoded(
        ImageOps.invert(img.resize((50, 50), Image.Resampling.BICUBIC)), "JPEG", quality=70
    ),
    "300x180 JPEG, light on dark, off centre": lambda img: encoded(
        _on_canvas(img), "JPEG", quality=85
    ),
    "300x180 RGB JPEG, dark on light": lambda img: encoded(
        ImageOps.invert(_on_canvas(img)).convert("RGB"), "JPEG", quality=85
    ),
    "84x84 transparent PNG": lambda img: encoded(_transparent(img), "PNG"),
}
