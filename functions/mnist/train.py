"""Train a small MNIST CNN on the TRAIN split and export it to ONNX.

Usage: python train.py [--mnist-dir DIR] [--epochs N] [--seed S] [--out PATH]

Training is CPU-only, seeded and deterministic (same data, seed and torch
build give the same weights). The exported file has one input ``input_img``
float32 [1, 1, 28, 28] (pixels in [0, 1], white digit on black) and one
output ``scores`` float32 [1, 10] (logits); opset 17, static shapes, weights
embedded. Prints the held-out accuracy of the torch model and the ONNX file.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import data
import evaluate
import onnx
import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent


def build_model() -> nn.Module:
    """Four 3x3 conv blocks (BatchNorm, ReLU, 3 max-pools), then one dense layer."""

    def block(cin: int, cout: int, pool: bool) -> list[nn.Module]:
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.BatchNorm2d(cout),
            nn.ReLU(),
        ]
        return [*layers, nn.MaxPool2d(2)] if pool else layers

    return nn.Sequential(
        *block(1, 32, False),
        *block(32, 32, True),
        *block(32, 64, True),
        *block(64, 64, True),
        nn.Flatten(),
        nn.Dropout(0.25),
        nn.Linear(64 * 3 * 3, 10),
    )


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random affine per image: rotation +-12 deg, scale 0.9-1.1, shift +-2 px."""
    n = x.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    angle = uniform(-12.0, 12.0) * math.pi / 180.0
    scale = uniform(0.9, 1.1)
    shift = 2.0 / 14.0  # 2 px in normalised [-1, 1] coordinates
    tx, ty = uniform(-shift, shift), uniform(-shift, shift)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def train(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int, batch: int = 64
) -> None:
    """Train in place with AdamW and a one-cycle learning-rate schedule."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = math.ceil(len(x) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=epochs * steps)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(steps):
            idx = order[i * batch : (i + 1) * batch]
            loss = F.cross_entropy(model(augment(x[idx], gen)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f}", flush=True)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``x`` whose arg-max logit equals ``y`` (eval mode)."""
    model.eval()
    return float((model(x).argmax(1) == y).float().mean())


def export(model: nn.Module, out: Path) -> None:
    """Export to a single self-contained ONNX file and check it."""
    model.eval()
    dummy = torch.zeros(1, 1, 28, 28)
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (dummy,),
            str(out),
            dynamo=False,
            opset_version=17,
            input_names=["input_img"],
            output_names=["scores"],
            do_constant_folding=True,
        )
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    assert not any(
        onnx.external_data_helper.uses_external_data(t) for t in proto.graph.initializer
    ), "external data found"
    ops = sorted({n.op_type for n in proto.graph.node})
    print(f"exported {out} ({out.stat().st_size} bytes), ops: {', '.join(ops)}")


def main() -> None:
    """Parse the CLI, train on TRAIN, report held-out accuracy, export."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist-dir", type=Path, default=None)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "mnist.onnx")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(2)
    tx, ty, hx, hy = (torch.from_numpy(a) for a in data.split(data.load_digits(args.mnist_dir)))
    print(f"train {len(tx)} images, held-out {len(hx)} images")
    model = build_model()
    start = time.monotonic()
    train(model, tx, ty, args.epochs, args.seed)
    print(f"training took {time.monotonic() - start:.0f} s")
    print(f"torch held-out accuracy: {accuracy(model, hx, hy):.4f}")
    export(model, args.out)
    correct = evaluate.count_correct(args.out, hx.numpy(), hy.numpy())
    print(f"onnx held-out accuracy: {correct / len(hy):.4f} ({correct}/{len(hy)})")


if __name__ == "__main__":
    main()
