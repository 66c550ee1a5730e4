"""Functions: `function register`, `function list`, `function show`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import TeaclaveClientError
from .common import Output, add_command, client, plain

__all__ = ["add_commands"]


def cmd_function_register(args: argparse.Namespace) -> Output:
    manifest = args.manifest or args.wasm.with_suffix(".json")
    spec = json.loads(args.spec.read_text()) if args.spec else {}
    if not isinstance(spec, dict):
        raise TeaclaveClientError(f"{args.spec}: the spec is not a JSON object")
    options = {
        "name": args.name,
        "public": args.public,
        "description": args.description,
        "allowlist": args.allow,
        "quota": args.quota,
        "browser": args.browser,
    }
    with client(args) as session:  # the spec file's fields win over the flags' defaults
        function = session.register_function(args.wasm, manifest, **(options | spec))
    return plain(function), f"{function.id}  {function.name}  sha256 {function.sha256}"


def cmd_function_list(args: argparse.Namespace) -> Output:
    with client(args) as session:
        functions = session.list_functions("mine" if args.mine else "allowed", args.name)
    lines = [
        f"{f.id}  {f.name:<20} {'public' if f.public else 'private'}  {f.profile}  "
        f"usage {f.usage}/{'-' if f.quota < 0 else f.quota}"
        for f in functions
    ]
    return plain(functions), "\n".join(lines) or "no functions"


def cmd_function_show(args: argparse.Namespace) -> Output:
    with client(args) as session:
        function = session.find_function(args.function)
        manifest = session.get_function_manifest(function.id) if args.manifest else None
    body = plain(function) | ({"manifest": manifest} if manifest is not None else {})
    return body, json.dumps(body, indent=2)


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    functions = sub.add_parser("function", help="functions").add_subparsers(required=True)
    help = "register a built function"
    p = add_command(functions, common, "register", cmd_function_register, help)
    p.add_argument("wasm", type=Path)
    p.add_argument("--manifest", type=Path, help="NAME.json (default: beside the wasm)")
    p.add_argument("--name", help="default: the manifest's")
    p.add_argument("--public", action="store_true", help="anyone may use it")
    p.add_argument("--allow", action="append", default=[], metavar="USER_ID")
    p.add_argument("--description", default="")
    p.add_argument("--quota", type=int, default=-1)
    p.add_argument("--browser", action="store_true", help="its users may run it in browsers")
    p.add_argument("--spec", type=Path, help="JSON with more of the spec (arguments, limits...)")
    p = add_command(functions, common, "list", cmd_function_list, "functions you may use")
    p.add_argument("--mine", action="store_true", help="only your own")
    p.add_argument("--name")
    p = add_command(functions, common, "show", cmd_function_show, "one function")
    p.add_argument("function", help="id or name")
    p.add_argument("--manifest", action="store_true", help="with its manifest")
