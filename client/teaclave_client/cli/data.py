"""Input and output files: `data register-input`, `data register-output`, `data fetch`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import TeaclaveClientError
from ..keystore import write_private
from ..vocabulary import DEFAULT_SCHEMA, Schema
from .common import Output, add_command, client, key_file, plain

__all__ = ["add_commands"]


def cmd_data_register_input(args: argparse.Namespace) -> Output:
    with client(args) as session:
        if args.at:
            if not args.key_file:
                raise TeaclaveClientError("--at needs --key-file (from `encrypt --key-file`)")
            spec = key_file(args.key_file)
            info = session.register_input_file(
                args.at,
                spec["schema"],
                spec["key"],
                bytes.fromhex(spec.get("iv", "")),
                bytes.fromhex(spec["cmac"]),
                owners=args.owner,
            )
        else:
            if args.file is None:
                raise TeaclaveClientError("give FILE (encrypted and uploaded here) or --at URL")
            info = session.put_input(args.file.read_bytes(), args.schema, owners=args.owner)
    return plain(info), info.id


def cmd_data_register_output(args: argparse.Namespace) -> Output:
    with client(args) as session:
        info = session.register_output_file(args.at, args.schema, owners=args.owner)
    return plain(info), info.id


def cmd_data_fetch(args: argparse.Namespace) -> Output:
    with client(args) as session:
        data = session.fetch_output(args.file_id)
    write_private(args.output, data)
    return {"output": str(args.output), "bytes": len(data)}, f"wrote {args.output}"


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    schemas = [s.value for s in Schema]
    sealed = [s.value for s in Schema if s.sealed]
    data = sub.add_parser("data", help="input and output files").add_subparsers(required=True)
    help = "encrypt, upload, register"
    p = add_command(data, common, "register-input", cmd_data_register_input, help)
    p.add_argument("file", type=Path, nargs="?")
    p.add_argument("--schema", choices=schemas, default=DEFAULT_SCHEMA.value)
    p.add_argument("--at", help="the URL of a file you encrypted (`encrypt`) and placed there")
    p.add_argument("--key-file", type=Path, help="its key file (from `encrypt --key-file`)")
    p.add_argument("--owner", action="append", default=[], metavar="USER_ID")
    help = "an output file (key kept here)"
    p = add_command(data, common, "register-output", cmd_data_register_output, help)
    p.add_argument("--schema", choices=sealed, default=DEFAULT_SCHEMA.value)
    p.add_argument("--at", default="blob:", help="its URL (default: the platform's blob store)")
    p.add_argument("--owner", action="append", default=[], metavar="USER_ID")
    p = add_command(data, common, "fetch", cmd_data_fetch, "download and decrypt a written output")
    p.add_argument("file_id")
    p.add_argument("output", type=Path)
