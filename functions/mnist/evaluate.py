"""Held-out accuracy of an MNIST ONNX model, run with onnxruntime (no torch).

Usage: python evaluate.py [MODEL.onnx] [--mnist-dir DIR]

The model must take one float32 [1, 1, 28, 28] input (pixels in [0, 1], white
on black) and return [1, 10] scores; every held-out image is run one at a
time. Prints ``held-out accuracy: 0.XXXX (correct/total)``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import data
import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent


def session(model: Path) -> ort.InferenceSession:
    """Open ``model`` on the CPU provider."""
    return ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])


def predict(sess: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    """Arg-max class of each image of ``x`` (float32 [N, 1, 28, 28]), batch 1."""
    name = sess.get_inputs()[0].name
    preds = [int(np.argmax(sess.run(None, {name: img[None]})[0])) for img in x.astype(np.float32)]
    return np.asarray(preds, dtype=np.int64)


def count_correct(model: Path, x: np.ndarray, y: np.ndarray) -> int:
    """How many images of ``x`` the ONNX ``model`` labels as in ``y``."""
    return int((predict(session(model), x) == y).sum())


def main() -> None:
    """Parse the CLI and print the held-out accuracy of the model."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path, nargs="?", default=HERE / "mnist.onnx")
    ap.add_argument("--mnist-dir", type=Path, default=None)
    args = ap.parse_args()
    _, _, hx, hy = data.split(data.load_digits(args.mnist_dir))
    correct = count_correct(args.model, hx, hy)
    print(f"held-out accuracy: {correct / len(hy):.4f} ({correct}/{len(hy)})")


if __name__ == "__main__":
    main()
