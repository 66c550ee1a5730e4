"""Any PNG or JPEG as a model's input tensor, with pillow: what `prepare-image` does.

The layout comes from the model's manifest (NAME.json, from the builder): its input's shape
(NCHW or NHWC, batch 1) and dtype, and the pixel range the model was trained on (`image.range`,
default [0, 1]). A one-channel model is taken to be a digit model in MNIST's convention: a
light digit on a dark background, contrast stretched so the stroke reaches the top of the range,
and (when the image is not already the model's size) the digit cropped to its ink, scaled so its
longer side is 20/28 of the frame and placed so that its centre of mass is the frame's centre,
as MNIST's digits were made. A photo of a dark digit on light paper is inverted automatically
(the background is judged from the image's border). A three-channel model gets the RGB image
resized to its frame.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import TeaclaveClientError

__all__ = ["ImageError", "image_input", "is_blank", "npy_bytes", "prepare_for", "prepare_image"]

DIGIT_BOX = 20 / 28  # MNIST: a digit's longer side in its 28-pixel frame
INK = 0.1  # a pixel brighter than this (after the stretch) is part of the digit


class ImageError(TeaclaveClientError):
    """An image that cannot be read, or a model input that is not an image."""


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def is_blank(tensor: np.ndarray) -> bool:
    """All one colour: nothing for a model to see, yet it answers as confidently as ever."""
    return tensor.size > 0 and bool(np.all(tensor == tensor.flat[0]))


def image_input(manifest: dict[str, Any], input_id: str | None = None) -> dict[str, Any]:
    """The manifest's entry for the image input: `input_id`, else the only (or first 4-D) one."""
    inputs = manifest.get("inputs") or []
    if input_id is not None:
        found = [i for i in inputs if i.get("id") == input_id]
    else:
        found = [i for i in inputs if len(i.get("shape", [])) in (3, 4)][:1]
    if not found:
        names = [i.get("id") for i in inputs]
        raise ImageError(f"the model has no image input {input_id or ''} (its inputs: {names})")
    return dict(found[0])


def _frame(shape: Sequence[int]) -> tuple[int, int, int, bool]:
    """(channels, height, width, channels_last) of a batch-1 image shape."""
    dims = list(shape)
    if len(dims) == 3 and dims[0] == 1:
        return 1, dims[1], dims[2], False
    if len(dims) == 4 and dims[0] == 1 and dims[1] in (1, 3):
        return dims[1], dims[2], dims[3], False
    if len(dims) == 4 and dims[0] == 1 and dims[3] in (1, 3):
        return dims[3], dims[1], dims[2], True
    raise ImageError(f"shape {dims} is not one image (1xCxHxW or 1xHxWxC with C = 1 or 3)")


def _open(image: str | Path | bytes | Image.Image) -> Image.Image:
    if isinstance(image, Image.Image):
        img = image
    else:
        try:
            img = Image.open(io.BytesIO(image) if isinstance(image, bytes) else image)
            img.load()
        except (OSError, UnidentifiedImageError) as err:
            name = "" if isinstance(image, bytes) else f" {image}"
            raise ImageError(f"cannot read the image{name}: {err}") from None
        img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        paper = Image.new("RGBA", img.size, "white")  # transparent = paper
        img = Image.alpha_composite(paper, img.convert("RGBA"))
    return img


def _light_on_dark(gray: np.ndarray, invert: bool | None) -> np.ndarray:
    """The image as a light digit on a dark background, stretched to [0, 1]: the background
    (judged from the border) to 0, the brightest ink to 1. A forced `invert` takes the image
    as it is: only stretched from its darkest to its brightest pixel."""
    edge = max(1, min(gray.shape) // 20)
    border = np.concatenate(
        [gray[:edge].ravel(), gray[-edge:].ravel(), gray[:, :edge].ravel(), gray[:, -edge:].ravel()]
    )
    level, auto = float(np.median(border)), invert is None
    if invert if invert is not None else level > 0.5:
        gray, level = 1.0 - gray, 1.0 - level
    background = level if auto else float(gray.min())
    top = float(gray.max())
    if top - background < 1e-3:
        return np.zeros_like(gray)
    return np.clip((gray - background) / (top - background), 0.0, 1.0)


def _resize(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    shrinking = width < pixels.shape[1] or height < pixels.shape[0]
    img = Image.fromarray(pixels.astype(np.float32), mode="F")
    resampling = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    img = img.resize((width, height), resampling)
    return np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)


def _fit_digit(digit: np.ndarray, height: int, width: int) -> np.ndarray:
    """MNIST's framing: crop to the ink, scale the longer side to 20/28 of the frame, centre of
    mass at the centre."""
    rows, cols = np.nonzero(digit > INK)
    if rows.size == 0:
        return np.zeros((height, width), np.float32)
    digit = digit[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = DIGIT_BOX * min(height, width) / max(digit.shape)
    h, w = (max(1, round(n * scale)) for n in digit.shape)
    digit = _resize(digit, w, h)
    frame = np.zeros((height, width), np.float32)
    mass = digit.sum()
    ys, xs = np.indices(digit.shape)
    cy, cx = (ys * digit).sum() / mass, (xs * digit).sum() / mass
    top = int(np.clip(round((height - 1) / 2 - cy), 0, height - h))
    left = int(np.clip(round((width - 1) / 2 - cx), 0, width - w))
    frame[top : top + h, left : left + w] = digit
    return frame


def prepare_image(
    image: str | Path | bytes | Image.Image,
    shape: Sequence[int],
    dtype: str = "float32",
    pixel_range: Sequence[float] = (0.0, 1.0),
    invert: bool | None = None,
) -> np.ndarray:
    """The image as a tensor of `shape` and `dtype`, pixels in `pixel_range`. `invert`: None to
    decide from the background (one-channel models only), True or False to force it."""
    channels, height, width, channels_last = _frame(shape)
    img = _open(image)
    if channels == 1:
        gray = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
        pixels = _light_on_dark(gray, invert)
        if pixels.shape != (height, width):
            pixels = _fit_digit(pixels, height, width)
        planes = pixels[None]
    else:
        rgb = img.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
        planes = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 255.0
        if invert:
            planes = 1.0 - planes
    low, high = (float(v) for v in pixel_range)
    tensor = low + planes * (high - low)
    if channels_last:
        tensor = tensor.transpose(1, 2, 0)
    try:
        return tensor.astype(np.dtype(dtype)).reshape(shape)
    except TypeError as err:
        raise ImageError(f"cannot make a {dtype} image tensor: {err}") from None


def prepare_for(
    manifest: dict[str, Any],
    image: str | Path | bytes,
    input_id: str | None = None,
    invert: bool | None = None,
) -> tuple[str, np.ndarray]:
    """(input id, tensor) for `image` as the manifest's image input expects it."""
    spec = image_input(manifest, input_id)
    pixel_range = (spec.get("image") or {}).get("range", (0.0, 1.0))
    return spec["id"], prepare_image(
        image, spec["shape"], spec.get("dtype", "float32"), pixel_range, invert
    )
