"""Writes the files generated from `teaclave_client.vocabulary`: the C runtime's constants, the
browser host's constants module and the docs' vocabulary tables.

    python -m teaclave_infer.generate           # rewrite the generated files
    python -m teaclave_infer.generate --check   # exit 1 naming each stale file

A source checkout's tool (the files live beside the packages, in `client/web` and `docs/`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from ._c import c_header
from ._docs import vocabulary_md
from ._js import js_module

__all__ = ["COMMAND", "ROOT", "TARGETS", "main", "stale"]

COMMAND = "python -m teaclave_infer.generate"
ROOT = Path(__file__).resolve().parents[2]
# Path from the repository's root -> what it must hold.
TARGETS: dict[str, Callable[[str], str]] = {
    "teaclave_infer/runtime/ti_constants.h": c_header,
    "client/web/teaclave-constants.js": js_module,
    "docs/reference/vocabulary.md": vocabulary_md,
}


def render(relative: str) -> str:
    """The text `relative` must hold."""
    return TARGETS[relative](COMMAND)


def stale(root: Path = ROOT) -> list[str]:
    """The generated files under `root` whose bytes differ from what the vocabulary makes."""
    return [
        relative
        for relative in TARGETS
        if not (root / relative).is_file()
        or (root / relative).read_bytes() != render(relative).encode()
    ]


def main(argv: list[str] | None = None, root: Path | None = None) -> int:
    """Rewrites the stale generated files under `root` (the checkout), or with `--check` only
    names them; 1 if some are stale with `--check`, 2 outside a source checkout."""
    root = root or ROOT
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say which files are stale")
    args = parser.parse_args(argv)
    if not (root / "client" / "web").is_dir():
        print(f"error: {root} is not a source checkout of teaclave-infer", file=sys.stderr)
        return 2
    outdated = stale(root)
    if args.check:
        for relative in outdated:
            print(f"stale: {relative} (run `{COMMAND}`)", file=sys.stderr)
        return 1 if outdated else 0
    for relative in outdated:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")  # a reader never sees half a file
        partial.write_bytes(render(relative).encode())
        partial.replace(path)
        print(f"wrote {relative}")
    return 0
