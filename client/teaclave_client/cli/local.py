"""Local tools, no service: `keygen`, `encrypt`, `decrypt`, `prepare-image`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..crypto import SCHEMAS, decrypt_file, encrypt_file, generate_key
from ..errors import TeaclaveClientError
from ..images import is_blank, prepare_for
from ..keystore import write_private
from ..vocabulary import DEFAULT_SCHEMA, Schema
from .common import Output, add_command, key_file, warn

__all__ = ["add_commands", "image_options"]


def cmd_keygen(args: argparse.Namespace) -> Output:
    key = generate_key(args.schema)
    body = {"schema": args.schema, "key": key.hex()}
    if args.out:
        write_private(args.out, json.dumps(body).encode())
        return {**body, "key": None, "key_file": str(args.out)}, f"wrote {args.out} (0600)"
    return body, key.hex()


def _encryption_key(args: argparse.Namespace) -> tuple[str, bytes]:
    """The schema and key to encrypt with: `--key`, else the key of an existing `--key-file`
    (as `keygen --out` wrote it: never overwritten with another key), else a fresh one."""
    path: Path | None = args.key_file
    if path is None or not path.exists():
        schema = args.schema or DEFAULT_SCHEMA.value
        return schema, bytes.fromhex(args.key) if args.key else generate_key(schema)
    existing = key_file(path)
    if existing.get("iv") or existing.get("cmac"):
        raise TeaclaveClientError(
            f"key file {path} already holds the key, iv and cmac of an encrypted file: "
            "give another --key-file (replacing it would lose that file's key)"
        )
    if args.key and bytes.fromhex(args.key) != existing["key"]:
        raise TeaclaveClientError(f"--key is not the key in {path}: give one or the other")
    if args.schema and args.schema != existing["schema"]:
        other = existing["schema"]
        raise TeaclaveClientError(f"--schema {args.schema}: the key in {path} is {other}")
    return str(existing["schema"]), bytes(existing["key"])


def cmd_encrypt(args: argparse.Namespace) -> Output:
    schema, key = _encryption_key(args)
    meta = encrypt_file(schema, key, args.input, args.output, args.name)
    body = {"schema": schema, "key": key.hex(), "iv": meta.iv.hex(), "cmac": meta.cmac.hex()}
    if args.key_file:
        try:
            write_private(args.key_file, json.dumps(body).encode())
        except OSError:
            args.output.unlink(missing_ok=True)  # a file nobody could decrypt: not left behind
            raise
        shown = {**body, "key": None, "key_file": str(args.key_file)}
        return shown, f"wrote {args.output}; key, iv and cmac in {args.key_file} (0600)"
    text = "\n".join(f"{k}: {v}" for k, v in body.items())
    return body, text


def _decryption_key(args: argparse.Namespace) -> tuple[str, bytes, str, str | None]:
    """(schema, key, iv, cmac) from `--key-file` (flags may add iv and cmac) or the flags."""
    if not args.key_file:
        if not (args.schema and args.key is not None):
            raise TeaclaveClientError("give --key-file, or --schema and --key (with --iv, --cmac)")
        return args.schema, bytes.fromhex(args.key), args.iv or "", args.cmac
    spec = key_file(args.key_file)
    iv, cmac = args.iv or spec.get("iv") or "", args.cmac or spec.get("cmac")
    if not iv and spec["schema"] in SCHEMAS and Schema(spec["schema"]).takes_iv:
        raise TeaclaveClientError(
            f"key file {args.key_file} has no iv: it holds a key only (from `keygen`); give "
            "--iv (and --cmac), or the key file `encrypt --key-file` wrote"
        )
    return spec["schema"], spec["key"], iv, cmac


def cmd_decrypt(args: argparse.Namespace) -> Output:
    schema, key, iv, cmac = _decryption_key(args)
    tag = bytes.fromhex(cmac) if cmac else None
    decrypt_file(schema, key, bytes.fromhex(iv), args.input, args.output, tag)
    return {"output": str(args.output), "bytes": args.output.stat().st_size}, f"wrote {args.output}"


def cmd_prepare_image(args: argparse.Namespace) -> Output:
    try:
        manifest = json.loads(args.model_manifest.read_text())
    except (OSError, ValueError) as err:
        raise TeaclaveClientError(f"manifest {args.model_manifest}: {err}") from None
    if args.range:
        for spec in manifest.get("inputs", []):
            spec["image"] = {"range": args.range}
    slot, tensor = prepare_for(manifest, args.image, args.input, args.invert)
    if is_blank(tensor):
        warn(f"{args.image} is blank (all one colour): a model's answer on it means nothing")
    np.save(args.output, tensor, allow_pickle=False)
    body = {
        "input": slot,
        "shape": list(tensor.shape),
        "dtype": str(tensor.dtype),
        "output": str(args.output),
        "min": float(tensor.min()),
        "max": float(tensor.max()),
    }
    return body, f"wrote {args.output}: input {slot!r}, {tensor.dtype} {list(tensor.shape)}"


def _range(text: str) -> list[float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LO,HI e.g. 0,1") from None
    return [low, high]


def _invert(text: str) -> bool | None:
    return {"auto": None, "yes": True, "no": False}[text]


def image_options(parser: argparse.ArgumentParser) -> None:
    """How an image becomes a model's input (`prepare-image`, `infer`)."""
    parser.add_argument("--input", help="the model input the image is for (default: the first)")
    parser.add_argument(
        "--invert",
        type=_invert,
        default=None,
        metavar="auto|yes|no",
        help="make a dark-on-light image light-on-dark (default: auto, from its background)",
    )


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    schemas = [s.value for s in Schema]
    p = add_command(sub, common, "keygen", cmd_keygen, "make a random file key")
    p.add_argument("--schema", choices=schemas, default=DEFAULT_SCHEMA.value)
    p.add_argument("--out", type=Path, help="write it to a key file (0600) instead of printing")

    p = add_command(sub, common, "encrypt", cmd_encrypt, "encrypt a file (Teaclave's layout)")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    help = f"default: the key file's, or {DEFAULT_SCHEMA.value}"
    p.add_argument("--schema", choices=schemas, help=help)
    p.add_argument("--key", help="the key in hex (default: the key file's, or a fresh one)")
    p.add_argument(
        "--key-file",
        type=Path,
        help="a key from `keygen --out` to use, completed with the iv and cmac; or, if it does "
        "not exist, where to write schema, key, iv and cmac (0600)",
    )
    p.add_argument(
        "--name",
        help="teaclave-file-128: the file name stored in it (default: OUTPUT's; Teaclave's "
        "own tools open the file only under that name)",
    )

    help = "decrypt a file; nothing is written unless it verifies"
    p = add_command(sub, common, "decrypt", cmd_decrypt, help)
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--key-file", type=Path, help="from `encrypt --key-file`")
    p.add_argument("--schema", choices=schemas)
    p.add_argument("--key")
    p.add_argument("--iv")
    p.add_argument("--cmac")

    help = "a PNG or JPEG as a model's input (.npy)"
    p = add_command(sub, common, "prepare-image", cmd_prepare_image, help)
    p.add_argument("image", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--model-manifest", type=Path, required=True, help="the model's NAME.json")
    p.add_argument(
        "--range", type=_range, metavar="LO,HI", help="pixel range (default: manifest's)"
    )
    image_options(p)
