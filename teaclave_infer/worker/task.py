"""One claimed task, run to its end: the only place where file keys and plaintext exist.

Staged: everything the task needs came with its claim (domain/work.py); fetch each input, check
its cmac, unwrap its key, decrypt → Running: the executor with the function's limits → seal each
output for its owners and store it → Finished with a signed receipt, or Failed with the reason;
then Channel.ENDED is published. Three transactions in all: the claim, the start, the end.

What tasks share is kept in memory (caches.py): the compiled module (the executor's cache, asked
by sha256: a warm task reads no wasm), the wasm's bytes, and the plaintext of a function owner's
separate weights. Keys and plaintext otherwise live in local variables of this one call and are
never logged or written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from teaclave_client.crypto import IntegrityError, decrypt, encrypt
from teaclave_client.protected_fs import name_for
from teaclave_client.vocabulary import FailureKind, Schema

from .. import __version__
from ..abi import explain_status
from ..domain import queue
from ..domain.keys import PlatformKeys
from ..domain.lifecycle import Action, State, next_state
from ..domain.queue import Claim, LeaseKeeper
from ..domain.signals import Channel, Signals
from ..domain.work import FileRow, FunctionRow, Work
from ..errors import LimitError, TaskFailed
from ..executor import Limits, ModuleCache, Result, Wasm, run
from ..laps import Laps
from .caches import Caches, weights_version
from .storage import Storage

__all__ = ["EXECUTOR_VERSION", "Context", "execute"]

log = logging.getLogger(__name__)

EXECUTOR_VERSION = f"teaclave-infer {__version__}; wasmtime-py {metadata.version('wasmtime')}"


@dataclass(frozen=True)
class Context:
    """What a worker needs: the database, the files, the keys, compiled modules, the signals
    that tell waiting clients a task ended, and what tasks share in memory."""

    sessions: sessionmaker[Session]
    storage: Storage
    keys: PlatformKeys
    cache: ModuleCache
    lease_s: float
    signals: Signals
    caches: Caches = field(default_factory=Caches)


def execute(ctx: Context, claim: Claim) -> State | None:
    """Runs a claimed task to Finished or Failed; returns the state it ended in, or None if the
    task stopped being this worker's (canceled, or claimed again) and nothing was recorded."""
    laps, work = Laps(), claim.work
    with LeaseKeeper(ctx.sessions, claim, ctx.lease_s).held() as lease:
        try:
            function, limits = _runnable(work)
            inputs = {f.slot: _input(ctx, work, f) for f in work.inputs}  # Staged
            laps("fetch_decrypt")
            if not queue.start_running(ctx.sessions, claim):  # → Running
                return _discarded(claim, "the task is no longer this worker's")
            log.info("running", extra=claim.log())
            result = _run(ctx, work, function, limits, inputs)
            del inputs  # the plaintext inputs are not needed past the sandbox
            laps("execute")
            _check(result, work)
            sealed = [_seal(ctx, f, result.outputs[f.slot]) for f in work.outputs]
            laps("seal")
        except TaskFailed as failure:
            return _fail(ctx, claim, failure, laps, lease.lost.is_set())
        return _finish(ctx, claim, result, sealed, laps)


def _runnable(work: Work) -> tuple[FunctionRow, Limits]:
    """The function and its limits; TaskFailed if it is gone, its limits do not hold, or an
    assigned file was deleted."""
    if work.function is None:
        raise TaskFailed(FailureKind.FUNCTION_UNAVAILABLE, "the function was deleted or disabled")
    try:
        limits = Limits(**work.function.limits)
    except (TypeError, ValueError) as err:
        raise TaskFailed(FailureKind.INVALID_LIMITS, f"the function's limits: {err}") from None
    if work.missing:
        raise TaskFailed(FailureKind.FETCH, f"{work.missing[0]} was deleted")
    return work.function, limits


def _run(
    ctx: Context, work: Work, function: FunctionRow, limits: Limits, inputs: dict[str, bytes]
) -> Result:
    wasm = Wasm(work.function_sha256, lambda: _wasm(ctx, function.id, work.function_sha256))
    try:
        return run(
            wasm,
            work.arguments,
            inputs,
            [f.slot for f in work.outputs],
            limits,
            profile=function.profile,
            cache=ctx.cache,
        )
    except LimitError as err:  # an input over the function's limit
        raise TaskFailed(FailureKind.INPUT_LIMIT, str(err)) from None


def _wasm(ctx: Context, blob_id: str, sha256: str) -> bytes:
    """The function's wasm, read from the blob store once and checked against the sha256 the
    task names (called only when the executor must compile it)."""
    wasm = ctx.caches.wasm.get(sha256)
    if wasm is not None:
        return wasm
    try:
        wasm = ctx.storage.blobs.get(blob_id)
    except (OSError, ValueError):
        raise TaskFailed(
            FailureKind.FUNCTION_UNAVAILABLE, "the function's wasm is missing"
        ) from None
    if ctx.cache.digest(wasm) != sha256:
        raise TaskFailed(
            FailureKind.INTEGRITY, "the stored wasm is not the function the task names"
        )
    ctx.caches.wasm.put(sha256, wasm)
    return wasm


def _input(ctx: Context, work: Work, f: FileRow) -> bytes:
    """An input's plaintext; a function owner's weights come from memory after the first
    task, as long as the file's cmac, iv, schema and wrapped key stay what they were."""
    if f.slot not in work.reusable or not f.cmac:
        return _open_input(ctx, f)
    version = weights_version(f.cmac, f.iv, f.schema, f.wrapped_key, f.key_file_id)
    plaintext = ctx.caches.weights.get(f.id, version)
    if plaintext is None:
        plaintext = _open_input(ctx, f)
        ctx.caches.weights.put(f.id, plaintext, version)
    return plaintext


def _key(ctx: Context, f: FileRow, what: str) -> bytes:
    if f.schema == Schema.RAW:  # an unknown schema fails as integrity, in unwrap
        return b""
    try:
        return ctx.keys.unwrap(f.wrapped_key, f.key_file_id, f.schema)
    except (IntegrityError, ValueError) as err:
        raise TaskFailed(FailureKind.INTEGRITY, f"{what}: {err}") from None


def _open_input(ctx: Context, f: FileRow) -> bytes:
    data = ctx.storage.fetch(f.url, f"input {f.slot}")
    try:
        return decrypt(
            f.schema,
            _key(ctx, f, f"input {f.slot}"),
            bytes.fromhex(f.iv),
            data,
            bytes.fromhex(f.cmac or ""),
        )
    except IntegrityError as err:
        raise TaskFailed(FailureKind.INTEGRITY, f"input {f.slot}: {err}") from None


def _check(result: Result, work: Work) -> None:
    """A run that did not end well is a failure with its reason, never an empty success (a
    negative return value is one for a function whose statuses say so: FunctionRow)."""
    if not result.ok:
        raise TaskFailed(result.kind, result.message, result.trap_code)
    assert result.return_value is not None
    if result.return_value < 0 and (work.function is None or work.function.statuses):
        raise TaskFailed(FailureKind.FUNCTION_ERROR, explain_status(result.return_value))
    if missing := [f.slot for f in work.outputs if f.slot not in result.outputs]:
        raise TaskFailed(
            FailureKind.MISSING_OUTPUT, f"the function did not write outputs {missing}"
        )


@dataclass(frozen=True)
class _Sealed:
    file: FileRow
    url: str
    iv: str
    cmac: str


def _seal(ctx: Context, f: FileRow, plaintext: bytes) -> _Sealed:
    """The output in the schema its owner registered; a teaclave-file-128 file stores the name
    Teaclave would (its URL's file name; the file's id for the blob store)."""
    name = name_for(f.url, f.id)
    sealed, meta = encrypt(f.schema, _key(ctx, f, f"output {f.slot}"), plaintext, name=name)
    url = ctx.storage.store(f.url, sealed, f"output {f.slot}")
    return _Sealed(f, url, meta.iv.hex(), meta.cmac.hex())


def _finish(
    ctx: Context, claim: Claim, result: Result, sealed: list[_Sealed], laps: Laps
) -> State | None:
    state = next_state(State.RUNNING, Action.FINISH)
    outcome = _outcome(ctx, claim, result, sealed, laps)
    try:
        with ctx.sessions.begin() as session:  # the task and its outputs, all or nothing
            if not queue.end(session, claim, state, outcome):
                raise _Rollback(None)
            for s in sealed:  # each output is written once: a file already written is refused
                if not queue.write_output(session, s.file.id, s.url, s.iv, s.cmac):
                    message = f"output {s.file.slot}: file {s.file.id} was already written"
                    raise _Rollback(TaskFailed(FailureKind.OUTPUT_CONFLICT, message))
    except _Rollback as rollback:
        _forget(ctx, sealed)
        if rollback.failure is None:
            return _discarded(claim, "the task is no longer this worker's")
        return _fail(ctx, claim, rollback.failure, laps, False)
    _ended(ctx, claim)
    log.info(
        "finished", extra=claim.log() | {"kind": result.kind.value, **laps.milliseconds("_ms")}
    )
    return state


def _outcome(
    ctx: Context, claim: Claim, result: Result, sealed: list[_Sealed], laps: Laps
) -> dict[str, Any]:
    """The finished task's result, with its signed receipt."""
    receipt = ctx.keys.sign(
        {
            "task_id": claim.task_id,
            "function_sha256": claim.work.function_sha256,
            "inputs": {f.slot: f.cmac for f in claim.work.inputs},
            "outputs": {s.file.slot: s.cmac for s in sealed},
            "return_value": result.return_value,
            "result_kind": result.kind.value,
            "executor": EXECUTOR_VERSION,
            "finished_at": queue.utcnow().isoformat(),
        }
    )
    return {
        "kind": result.kind.value,
        "return_value": result.return_value,
        # the iv too: a client decrypts an output with no request for its file's record
        "outputs": {
            s.file.slot: {"file_id": s.file.id, "cmac": s.cmac, "iv": s.iv} for s in sealed
        },
        # the worker's stages (fetch_decrypt_ms, execute_ms, seal_ms), then the executor's
        "timings": laps.milliseconds("_ms")
        | {k: round(v * 1000, 3) for k, v in result.timings.items()},
        "attempt": claim.attempt,
        "worker": claim.worker,
        "receipt": receipt,
    }


class _Rollback(Exception):
    def __init__(self, failure: TaskFailed | None) -> None:
        self.failure = failure


def _forget(ctx: Context, sealed: list[_Sealed]) -> None:
    """Deletes the blobs of outputs that will not be recorded."""
    for s in sealed:
        if s.url.startswith("blob:") and s.url != s.file.url:
            ctx.storage.blobs.delete(s.url[5:])


def _fail(ctx: Context, claim: Claim, failure: TaskFailed, laps: Laps, lost: bool) -> State | None:
    if lost:
        return _discarded(claim, "the lease was lost")
    outcome = {
        "kind": failure.kind.value,
        "message": failure.message,
        "trap_code": failure.trap_code,
        "timings": laps.milliseconds("_ms"),
        "attempt": claim.attempt,
        "worker": claim.worker,
    }
    with ctx.sessions.begin() as session:
        if not queue.end(session, claim, State.FAILED, outcome):
            return _discarded(claim, "the task is no longer this worker's")
    _ended(ctx, claim)
    log.info("failed", extra=claim.log() | {"kind": failure.kind.value})
    return State.FAILED


def _ended(ctx: Context, claim: Claim) -> None:
    """Wakes whoever waits for the task (a long-poll, the SDK's wait): its end is committed."""
    ctx.signals.publish(Channel.ENDED, claim.task_id)


def _discarded(claim: Claim, why: str) -> State | None:
    log.warning("discarded", extra=claim.log() | {"reason": why})
    return None
