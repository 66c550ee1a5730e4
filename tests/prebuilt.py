"""The MNIST function, built by our builder and committed, so that the fast tier's service,
client and web tests run a real function without importing TVM.

Two variants, as the tests need them: `separate` (weights in their own file, the input
`weights`) and `embedded` (weights inside, the pixel range in the manifest: what `infer` runs).
The full tier (`tests/builder/test_mnist.py`) builds both afresh and fails when the committed
ones no longer give a fresh build's manifest and scores; `python tests/prebuilt.py` rebuilds them.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paths import MNIST, REPO

PREBUILT = REPO / "tests" / "data" / "prebuilt"
# Build options of each variant, as keyword arguments of teaclave_infer.builder.BuildOptions.
VARIANTS: dict[str, dict[str, Any]] = {
    "separate": {"name": "mnist", "weights": "separate"},
    "embedded": {"name": "mnist", "pixel_range": (0.0, 1.0)},
}
REBUILD = "python tests/prebuilt.py"


@dataclass(frozen=True)
class Prebuilt:
    """What the tests use of a build (the fields of the builder's BuildResult)."""

    wasm: Path
    manifest_path: Path
    weights: Path | None
    manifest: dict[str, Any]


def prebuilt(variant: str) -> Prebuilt:
    """The committed build of one variant."""
    folder = PREBUILT / f"mnist-{variant}"
    manifest_path = folder / "mnist.json"
    weights = folder / "mnist.weights"
    return Prebuilt(
        wasm=folder / "mnist.wasm",
        manifest_path=manifest_path,
        weights=weights if weights.exists() else None,
        manifest=json.loads(manifest_path.read_text()),
    )


def build_variant(variant: str, out: Path) -> Prebuilt:
    """A fresh build of one variant into `out` (imports the builder, hence TVM)."""
    from teaclave_infer.builder import BuildOptions, build

    built = build(MNIST / "mnist.onnx", out, BuildOptions(**VARIANTS[variant]))
    return Prebuilt(built.wasm, built.manifest_path, built.weights, built.manifest)


def main() -> None:
    for variant in VARIANTS:
        folder = PREBUILT / f"mnist-{variant}"
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        build_variant(variant, folder)
        print(f"rebuilt {folder.relative_to(REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main()
