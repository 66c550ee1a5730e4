"""`teaclave-infer run`: one invocation of a function on local files."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from .errors import TeaclaveInferError
from .executor import Limits, ModuleCache, Result, run

__all__ = ["run_local"]

MIB = 1 << 20


def _profile(function: Path, given: str | None) -> str:
    if given:
        return given
    manifest = function.with_suffix(".json")
    if manifest.exists():
        try:
            return str(json.loads(manifest.read_text())["profile"]["name"])
        except (ValueError, KeyError, TypeError):
            pass
    return "fast"


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise TeaclaveInferError(f"{what} {path}: {err.strerror}") from err


def _report(result: Result, outputs: dict[str, str]) -> dict[str, Any]:
    return {
        "kind": str(result.kind),
        "return_value": result.return_value,
        "message": result.message,
        "trap_code": result.trap_code,
        "outputs": {
            fid: {
                "path": outputs[fid],
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            for fid, data in result.outputs.items()
        },
        "timings_s": {k: round(v, 6) for k, v in result.timings.items()},
    }


def _write_outputs(result: Result, outputs: dict[str, str]) -> None:
    from teaclave_client.files import write_atomic  # the client's __init__ is slow: when needed

    for fid, data in result.outputs.items():
        write_atomic(Path(outputs[fid]), data)


def run_local(args: argparse.Namespace) -> int:
    """Runs the function; exit 0 only for `ok`, else one line naming the result kind."""
    wasm = _read(str(args.function), "function")
    inputs = {fid: _read(path, f"input {fid}:") for fid, path in args.input}
    outputs = dict(args.output)
    arguments = {fid: fid for fid in [*inputs, *outputs]} | dict(args.arg)
    limits = Limits(
        deadline_s=args.timeout,
        memory_bytes=args.memory_limit * MIB,
        output_bytes=args.output_limit * MIB,
        fuel=args.fuel,
    )
    cache = ModuleCache(args.cache_dir) if args.cache_dir else ModuleCache()
    result = run(
        wasm,
        arguments,
        inputs,
        list(outputs),
        limits,
        profile=_profile(args.function, args.profile),
        cache=cache,
    )
    if result.ok:
        _write_outputs(result, outputs)
    if args.json:
        print(json.dumps(_report(result, outputs), indent=2))
    elif result.ok:
        print(result.return_value)
    if not result.ok:
        print(f"teaclave-infer run: {result.message}", file=sys.stderr)
        return 2
    return 0
