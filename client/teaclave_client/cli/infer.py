"""`infer`: a registered function on images (or ready .npy tensors), the whole data owner's
flow for each: prepare, check against the manifest, encrypt, submit, wait, verify, decrypt."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..client import Client
from ..errors import TeaclaveClientError
from ..images import is_blank, npy_bytes, prepare_for
from ..models import Function
from ..progress import Progress
from ..tensors import check_tensor
from ..vocabulary import DEFAULT_SCHEMA, Schema
from .common import Output, add_command, client, progress, warn
from .local import image_options
from .tasks import owners, report

__all__ = ["add_commands"]


def _tensor(args: argparse.Namespace, manifest: dict[str, Any], image: Path) -> tuple[str, Any]:
    """(input slot, tensor) for one image or .npy, checked against the manifest."""
    if image.suffix == ".npy":
        slot = args.input or manifest["inputs"][0]["id"]
        try:
            tensor = np.load(image, allow_pickle=False)
        except ValueError as err:
            raise TeaclaveClientError(f"{image}: not a .npy tensor ({err})") from None
    else:
        slot, tensor = prepare_for(manifest, image, args.input, args.invert)
    check_tensor(manifest, slot, tensor)
    if is_blank(tensor):
        warn(f"{image} is blank (all one colour): the function's answer on it means nothing")
    return slot, tensor


def _infer_one(
    session: Client,
    args: argparse.Namespace,
    function: Function,
    tensor: tuple[str, Any],
    image: Path,
    bar: Progress,
) -> dict[str, Any]:
    slot, array = tensor
    others = owners(args.input_owner, session.my_id())
    if "weights" in {s["name"] for s in function.inputs} and "weights" not in others:
        others["weights"] = [function.owner_id]  # separate weights: the model owner gives them
    started = time.monotonic()
    result = session.infer(
        function,
        {slot: npy_bytes(array)},
        schema=args.schema,
        others=others,
        timeout=args.wait_timeout,
        progress=lambda step: bar(f"{image.name}: {step}"),
    )
    return {"image": str(image), "latency_ms": round((time.monotonic() - started) * 1000, 1)} | (
        report(result, args.out_dir)
    )


def cmd_infer(args: argparse.Namespace) -> Output:
    rows = []
    bar = progress(args, 4 * len(args.images))
    try:
        with client(args) as session:
            function = session.find_function(args.function)
            if not function.has_manifest:
                raise TeaclaveClientError(
                    f"function {function.name} ({function.id}) was registered without a "
                    "builder's manifest: `infer` needs its tensor shapes; run it with "
                    "`teaclave-client task create` instead"
                )
            manifest = session.get_function_manifest(function.id)
            # Every input is checked before the first is uploaded.
            tensors = [_tensor(args, manifest, image) for image in args.images]
            for image, tensor in zip(args.images, tensors, strict=True):
                rows.append(_infer_one(session, args, function, tensor, image, bar))
    finally:
        bar.close()
    lines = [
        f"{Path(r['image']).name}: {r['return_value']}  "
        f"(receipt verified, {r['latency_ms']:.0f} ms, task {r['task_id']})"
        for r in rows
    ]
    return (rows[0] if len(rows) == 1 else rows), "\n".join(lines)


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    help = "run a registered function on images, end to end"
    p = add_command(sub, common, "infer", cmd_infer, help)
    p.add_argument("images", type=Path, nargs="+", help="PNG, JPEG, or a ready .npy tensor")
    p.add_argument("--function", required=True, help="id or name")
    sealed = [s.value for s in Schema if s.sealed]
    p.add_argument("--schema", choices=sealed, default=DEFAULT_SCHEMA.value)
    p.add_argument(
        "--input-owner",
        action="append",
        default=[],
        metavar="SLOT=ID[,ID]",
        help="owners of the function's other inputs (they assign and approve)",
    )
    p.add_argument("--wait-timeout", type=float, default=300.0, metavar="S")
    p.add_argument("--out-dir", type=Path, help="write the decrypted outputs here")
    image_options(p)
