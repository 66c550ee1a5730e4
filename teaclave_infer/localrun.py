"""`teaclave-infer run`: one invocation of a function on local files."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from teaclave_client.vocabulary import MIB, FailureKind

from .abi import DEFAULT_PROFILE, explain_status
from .errors import TeaclaveInferError
from .executor import Limits, ModuleCache, Result, run

__all__ = ["run_local"]


def _manifest(function: Path) -> dict[str, Any]:
    """NAME.json beside the wasm, if there is one to read ({} otherwise)."""
    try:
        manifest = json.loads(function.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _profile(manifest: dict[str, Any], given: str | None) -> str:
    if given:
        return given
    try:
        return str(manifest["profile"]["name"])
    except (KeyError, TypeError):
        return DEFAULT_PROFILE.name


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as err:
        raise TeaclaveInferError(f"{what} {path}: {err.strerror}") from err


def _report(result: Result, outputs: dict[str, str], failure: str | None) -> dict[str, Any]:
    return {
        "kind": FailureKind.FUNCTION_ERROR if failure and result.ok else str(result.kind),
        "return_value": result.return_value,
        "message": failure or result.message,
        "trap_code": result.trap_code,
        "outputs": {
            fid: {
                "path": outputs[fid],
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            for fid, data in result.outputs.items()
            if not failure
        },
        "timings_s": {k: round(v, 6) for k, v in result.timings.items()},
    }


def _failure(result: Result, manifest: dict[str, Any]) -> str | None:
    """Why the call failed, or None: as the platform judges a task (worker/task.py), a
    negative return value is the function's own error, explained by its manifest."""
    if not result.ok:
        return result.message
    if result.return_value is not None and result.return_value < 0:
        codes = manifest.get("error_codes")
        return f"{FailureKind.FUNCTION_ERROR}: " + explain_status(
            result.return_value, codes if isinstance(codes, dict) else None
        )
    return None


def _write_outputs(result: Result, outputs: dict[str, str]) -> None:
    from teaclave_client.files import write_atomic  # the client's __init__ is slow: when needed

    for fid, data in result.outputs.items():
        write_atomic(Path(outputs[fid]), data)


def run_local(args: argparse.Namespace) -> int:
    """Runs the function; exit 0 only for `ok` with a return value >= 0, else one line naming
    the result kind (a negative return value: what the manifest's `error_codes` says of it)."""
    wasm = _read(str(args.function), "function")
    manifest = _manifest(args.function)
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
    profile = _profile(manifest, args.profile)
    result = run(wasm, arguments, inputs, list(outputs), limits, profile=profile, cache=cache)
    failure = _failure(result, manifest)
    if failure is None:
        _write_outputs(result, outputs)
    if args.json:
        print(json.dumps(_report(result, outputs, failure), indent=2))
    elif failure is None:
        print(result.return_value)
    if failure is not None:
        print(f"teaclave-infer run: {failure}", file=sys.stderr)
        return 2
    return 0
