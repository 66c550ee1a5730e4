"""The MNIST demo: build the function if it is missing or stale, then classify the sample digits
in the sandbox, each as one invocation with the image as its `input_img` file (the times printed
are instantiate + run; the module is compiled once)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from .executor import run

__all__ = ["image_tensor", "npy_bytes", "run_demo"]


def npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def image_tensor(path: Path) -> np.ndarray:
    """A 28x28 grayscale PNG (white digit on black) as the model's float32 [1, 1, 28, 28]."""
    pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0
    return pixels.reshape(1, 1, 28, 28)


def _built(model: Path, out: Path) -> dict:
    """The manifest of an up-to-date build of `model` in `out`, building it if needed."""
    manifest_path = out / f"{model.stem}.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest["source"]["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest():
            return manifest
    from .builder import build  # TVM only when a build is needed

    print(f"building {model} -> {out}")
    return build(model, out, progress=lambda line: print(f"  {line}")).manifest


def run_demo(model: Path, samples: Path, out: Path) -> int:
    """Prints one line per sample and a summary; returns 0 when every digit is classified as
    labelled."""
    manifest = _built(model, out)
    wasm = (out / f"{manifest['name']}.wasm").read_bytes()
    profile = manifest["profile"]["name"]
    input_id = manifest["inputs"][0]["id"]
    labels: dict[str, int] = json.loads((samples / "labels.json").read_text())
    correct = 0
    for name, label in sorted(labels.items()):
        image = npy_bytes(image_tensor(samples / name))
        result = run(wasm, {input_id: input_id}, {input_id: image}, profile=profile)
        if not result.ok:
            print(f"{name:<24} label {label}  {result.message}")
            continue
        ms = (result.timings["instantiate"] + result.timings["run"]) * 1000
        correct += result.return_value == label
        mark = "ok" if result.return_value == label else "WRONG"
        print(f"{name:<24} label {label}  predicted {result.return_value:>2}  {ms:6.1f} ms  {mark}")
    print(f"{correct}/{len(labels)} digits classified as labelled")
    return 0 if correct == len(labels) else 1
