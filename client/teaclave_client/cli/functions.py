"""Functions: `function register` (built here, with the builder's manifest, or any
Teaclave-ABI .wasm with its arguments and slots given by flags), `function list`, `function
show`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import TeaclaveClientError
from ..functions import read_manifest
from ..vocabulary import EXECUTOR_TYPE
from .common import Output, add_command, client, plain, warn

__all__ = ["add_commands"]


def _manifest(args: argparse.Namespace) -> dict[str, Any] | None:
    """--manifest (which must be the builder's), else NAME.json beside the wasm if it is the
    builder's (a note says why another JSON there is not taken), and none with --no-manifest."""
    if args.no_manifest:
        return None
    if args.manifest is not None:
        return read_manifest(args.manifest)
    beside = args.wasm.with_suffix(".json")
    if not beside.is_file():
        return None
    try:
        return read_manifest(beside)
    except TeaclaveClientError as err:
        warn(f"{err}: registering without a manifest (--manifest FILE to give one)")
        return None


def _declared(args: argparse.Namespace) -> dict[str, Any]:
    """The arguments and slots the flags declare (only those given), in the spec's terms."""
    declared: dict[str, Any] = {}
    given = [(item, True) for item in args.argument]
    given += [(item, False) for item in args.fixed_argument]
    arguments = []
    for item, overwritable in given:
        key, _, default = item.partition("=")
        arguments.append({"name": key, "default": default, "overwritable": overwritable})
    if arguments:
        declared["arguments"] = arguments
    for kind in ("input", "output"):
        required, optional = getattr(args, kind), getattr(args, f"optional_{kind}")
        if required or optional:
            declared[f"{kind}s"] = [{"name": n, "optional": False} for n in required] + [
                {"name": n, "optional": True} for n in optional
            ]
    return declared


def cmd_function_register(args: argparse.Namespace) -> Output:
    try:
        spec = json.loads(args.spec.read_text()) if args.spec else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TeaclaveClientError(f"{args.spec}: the spec is not JSON ({err})") from None
    if not isinstance(spec, dict):
        raise TeaclaveClientError(f"{args.spec}: the spec is not a JSON object")
    declared = _declared(args)
    if both := sorted(set(declared) & set(spec)):
        raise TeaclaveClientError(f"{', '.join(both)}: give them by flags or in --spec, not both")
    options = {
        "name": args.name,
        "public": args.public,
        "description": args.description,
        "allowlist": args.allow,
        "quota": args.quota,
        "browser": args.browser,
        "executor_type": args.executor,
    }
    with client(args) as session:  # the spec file's fields win over the flags' defaults
        function = session.register_function(
            args.wasm, _manifest(args), **(options | declared | spec)
        )
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
    help = "register a function: one built here, or any Teaclave-ABI .wasm"
    p = add_command(functions, common, "register", cmd_function_register, help)
    p.add_argument("wasm", type=Path)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--manifest", type=Path, help="the builder's NAME.json (default: beside it)")
    which.add_argument("--no-manifest", action="store_true", help="even if there is one beside it")
    p.add_argument("--name", help="default: the manifest's, else the wasm file's")
    p.add_argument("--executor", default=EXECUTOR_TYPE, help=f"Teaclave's type ({EXECUTOR_TYPE})")
    p.add_argument(
        "--argument",
        action="append",
        default=[],
        metavar="KEY[=DEFAULT]",
        help="an argument a task may give; repeat (default: one per slot)",
    )
    p.add_argument(
        "--fixed-argument",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an argument no task may change (Teaclave's allow_overwrite false)",
    )
    for kind in ("input", "output"):
        p.add_argument(f"--{kind}", action="append", default=[], metavar="NAME")
        p.add_argument(f"--optional-{kind}", action="append", default=[], metavar="NAME")
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
