"""Write 20 held-out MNIST digits as PNG samples and check a model on them.

Usage: python make_samples.py [--mnist-dir DIR] [--model MODEL.onnx] [--out DIR]

Picks the first two HELD-OUT images of each class 0..9 (deterministic),
skipping the few listed in ``MISLABELLED`` (source label visibly wrong), and
writes them as 28x28 8-bit grayscale PNGs, white digit on black, pixel =
round(value * 255), named ``digit_<label>_<a|b>.png``, plus ``labels.json``
mapping file name -> label. If the model file exists, runs it with
onnxruntime on the PNGs read back (pixel / 255) and prints what it predicts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import data
import evaluate
import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
PER_CLASS = 2
MISLABELLED: dict[int, set[int]] = {3: {1}}
"""Class -> held-out indices to skip: held-out 3 #1 is plainly a 5."""


def pick(digits: data.Digits) -> dict[str, tuple[np.ndarray, int]]:
    """File name -> (28x28 float image, label): first held-out images per class,
    skipping ``MISLABELLED``."""
    chosen: dict[str, tuple[np.ndarray, int]] = {}
    for label, images in enumerate(digits):
        heldout = images[data.n_train(len(images)) :]
        skip = MISLABELLED.get(label, set())
        keep = [i for i in range(len(heldout)) if i not in skip][:PER_CLASS]
        for tag, i in zip("ab", keep, strict=True):
            chosen[f"digit_{label}_{tag}.png"] = (heldout[i], label)
    return chosen


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float pixels in [0, 1] -> uint8 pixels, round(value * 255)."""
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def write(samples: dict[str, tuple[np.ndarray, int]], out: Path) -> None:
    """Write each sample as a grayscale PNG and ``labels.json`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for name, (img, _) in samples.items():
        Image.fromarray(to_uint8(img)).save(out / name)
    labels = {name: label for name, (_, label) in samples.items()}
    (out / "labels.json").write_text(json.dumps(labels, indent=2) + "\n")


def check(model: Path, out: Path) -> int:
    """Run ``model`` on the written PNGs; print mistakes, return the count right."""
    labels: dict[str, int] = json.loads((out / "labels.json").read_text())
    names = sorted(labels)
    x = np.stack([np.asarray(Image.open(out / n), dtype=np.float32) / 255.0 for n in names])[
        :, None
    ]
    preds = evaluate.predict(evaluate.session(model), x)
    for name, pred in zip(names, preds, strict=True):
        if pred != labels[name]:
            print(f"{name}: predicted {pred}, label {labels[name]}")
    return int(sum(p == labels[n] for n, p in zip(names, preds, strict=True)))


def main() -> None:
    """Parse the CLI, write the samples, check the model if present."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist-dir", type=Path, default=None)
    ap.add_argument("--model", type=Path, default=HERE / "mnist.onnx")
    ap.add_argument("--out", type=Path, default=HERE / "samples")
    args = ap.parse_args()
    samples = pick(data.load_digits(args.mnist_dir))
    write(samples, args.out)
    print(f"wrote {len(samples)} samples to {args.out}")
    if args.model.is_file():
        right = check(args.model, args.out)
        print(f"{args.model.name}: {right}/{len(samples)} samples predicted correctly")


if __name__ == "__main__":
    main()
