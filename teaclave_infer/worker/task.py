"""One claimed task, run to its end: the only place where file keys and plaintext exist.

Staged: load the task, fetch each input, check its cmac, unwrap its key, decrypt → Running: the
executor with the function's limits → seal each output for its owners and store it → Finished
with a signed receipt, or Failed with the reason. Keys and plaintext live in local variables of
this one call and are never logged or written.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from teaclave_client.crypto import IntegrityError, decrypt, encrypt

from .. import __version__
from ..abi import Status
from ..domain import queue
from ..domain.db import changed
from ..domain.keys import PlatformKeys
from ..domain.lifecycle import Action, State, next_state
from ..domain.models import DataFile, Function, Task
from ..domain.queue import Claim, LeaseKeeper
from ..errors import LimitError, TaskFailed
from ..executor import Limits, ModuleCache, Result, run
from ..laps import Laps
from .storage import Storage

__all__ = ["EXECUTOR_VERSION", "Context", "execute"]

log = logging.getLogger(__name__)

EXECUTOR_VERSION = f"teaclave-infer {__version__}; wasmtime-py {metadata.version('wasmtime')}"


@dataclass(frozen=True)
class Context:
    """What a worker needs: the database, the files, the keys, compiled modules."""

    sessions: sessionmaker[Session]
    storage: Storage
    keys: PlatformKeys
    cache: ModuleCache
    lease_s: float


@dataclass(frozen=True)
class _File:
    slot: str
    id: str
    url: str
    schema: str
    wrapped_key: str
    key_file_id: str
    iv: str
    cmac: str | None


@dataclass(frozen=True)
class _Job:
    """What the database says about the task, read once."""

    task_id: str
    function_sha256: str
    arguments: dict[str, Any]
    wasm: bytes
    profile: str
    limits: Limits
    inputs: list[_File]
    outputs: list[_File]


def execute(ctx: Context, claim: Claim) -> State | None:
    """Runs a claimed task to Finished or Failed; returns the state it ended in, or None if the
    task stopped being this worker's (canceled, or claimed again) and nothing was recorded."""
    laps = Laps()
    with LeaseKeeper(ctx.sessions, claim, ctx.lease_s).held() as lease:
        try:
            job = _load(ctx, claim)  # Staged
            inputs = {f.slot: _open_input(ctx, f) for f in job.inputs}
            laps("fetch_decrypt")
            if not queue.start_running(ctx.sessions, claim):  # → Running
                return _discarded(claim, "the task is no longer this worker's")
            log.info("running", extra=claim.log())
            try:
                result = run(
                    job.wasm,
                    job.arguments,
                    inputs,
                    [f.slot for f in job.outputs],
                    job.limits,
                    profile=job.profile,
                    cache=ctx.cache,
                )
            except LimitError as err:  # an input over the function's limit
                raise TaskFailed("input_limit", str(err)) from None
            del inputs  # the plaintext inputs are not needed past the sandbox
            laps("execute")
            _check(result, job)
            sealed = [_seal(ctx, f, result.outputs[f.slot]) for f in job.outputs]
            laps("seal")
        except TaskFailed as failure:
            return _fail(ctx, claim, failure, laps, lease.lost.is_set())
        return _finish(ctx, claim, job, result, sealed, laps)


def _load(ctx: Context, claim: Claim) -> _Job:
    with ctx.sessions() as session:
        task = session.get(Task, claim.task_id)
        assert task is not None  # claimed, so it exists: tasks are never deleted
        function = session.get(Function, task.function_id) if task.function_id else None
        if function is None or function.disabled:
            raise TaskFailed("function_unavailable", "the function was deleted or disabled")

        def files(assigned: dict[str, Any]) -> list[_File]:
            out = []
            for slot, file_id in sorted(assigned.items()):
                f = session.get(DataFile, file_id)
                if f is None:
                    raise TaskFailed("fetch", f"{slot}: file {file_id} was deleted")
                key_file = f.key_file_id or f.id
                out.append(
                    _File(slot, f.id, f.url, f.schema, f.wrapped_key, key_file, f.iv, f.cmac)
                )
            return out

        try:
            limits = Limits(**function.limits)
        except (TypeError, ValueError) as err:
            raise TaskFailed("invalid_limits", f"the function's limits: {err}") from None
        job_inputs, job_outputs = files(task.assigned_inputs), files(task.assigned_outputs)
        arguments, sha256, profile = dict(task.arguments), task.function_sha256, function.profile
    try:
        wasm = ctx.storage.blobs.get(function.id)
    except OSError:
        raise TaskFailed("function_unavailable", "the function's wasm is missing") from None
    if hashlib.sha256(wasm).hexdigest() != sha256:
        raise TaskFailed("integrity", "the stored wasm is not the function the task names")
    return _Job(claim.task_id, sha256, arguments, wasm, profile, limits, job_inputs, job_outputs)


def _key(ctx: Context, f: _File, what: str) -> bytes:
    if f.schema == "raw":
        return b""
    try:
        return ctx.keys.unwrap(f.wrapped_key, f.key_file_id, f.schema)
    except (IntegrityError, ValueError) as err:
        raise TaskFailed("integrity", f"{what}: {err}") from None


def _open_input(ctx: Context, f: _File) -> bytes:
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
        raise TaskFailed("integrity", f"input {f.slot}: {err}") from None


def _check(result: Result, job: _Job) -> None:
    """A run that did not end well is a failure with its reason, never an empty success."""
    if not result.ok:
        raise TaskFailed(result.kind.value, result.message, result.trap_code)
    assert result.return_value is not None
    if result.return_value < 0:
        known = result.return_value in Status._value2member_map_
        meaning = f": {Status(result.return_value).meaning}" if known else ""
        raise TaskFailed("function_error", f"the function returned {result.return_value}{meaning}")
    if missing := [f.slot for f in job.outputs if f.slot not in result.outputs]:
        raise TaskFailed("missing_output", f"the function did not write outputs {missing}")


@dataclass(frozen=True)
class _Sealed:
    file: _File
    url: str
    iv: str
    cmac: str


def _seal(ctx: Context, f: _File, plaintext: bytes) -> _Sealed:
    sealed, meta = encrypt(f.schema, _key(ctx, f, f"output {f.slot}"), plaintext)
    url = ctx.storage.store(f.url, sealed, f"output {f.slot}")
    return _Sealed(f, url, meta.iv.hex(), meta.cmac.hex())


def _finish(
    ctx: Context,
    claim: Claim,
    job: _Job,
    result: Result,
    sealed: list[_Sealed],
    laps: Laps,
) -> State | None:
    state = next_state(State.RUNNING, Action.FINISH)
    receipt = ctx.keys.sign(
        {
            "task_id": job.task_id,
            "function_sha256": job.function_sha256,
            "inputs": {f.slot: f.cmac for f in job.inputs},
            "outputs": {s.file.slot: s.cmac for s in sealed},
            "return_value": result.return_value,
            "result_kind": result.kind.value,
            "executor": EXECUTOR_VERSION,
            "finished_at": queue.utcnow().isoformat(),
        }
    )
    outcome = {
        "kind": result.kind.value,
        "return_value": result.return_value,
        "outputs": {s.file.slot: {"file_id": s.file.id, "cmac": s.cmac} for s in sealed},
        # the worker's stages (fetch_decrypt_ms, execute_ms, seal_ms), then the executor's
        "timings": laps.milliseconds("_ms")
        | {k: round(v * 1000, 3) for k, v in result.timings.items()},
        "attempt": claim.attempt,
        "worker": claim.worker,
        "receipt": receipt,
    }
    try:
        with ctx.sessions.begin() as session:  # the task and its outputs, all or nothing
            if not queue.end(session, claim, state, outcome):
                raise _Rollback(None)
            for s in sealed:  # each output is written once: a file already written is refused
                written = changed(
                    session,
                    update(DataFile)
                    .where(DataFile.id == s.file.id, DataFile.cmac.is_(None))
                    .values(url=s.url, iv=s.iv, cmac=s.cmac),
                )
                if written != 1:
                    message = f"output {s.file.slot}: file {s.file.id} was already written"
                    raise _Rollback(TaskFailed("output_conflict", message))
    except _Rollback as rollback:
        _forget(ctx, sealed)
        if rollback.failure is None:
            return _discarded(claim, "the task is no longer this worker's")
        return _fail(ctx, claim, rollback.failure, laps, False)
    log.info(
        "finished", extra=claim.log() | {"kind": result.kind.value, **laps.milliseconds("_ms")}
    )
    return state


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
        "kind": failure.kind,
        "message": failure.message,
        "trap_code": failure.trap_code,
        "timings": laps.milliseconds("_ms"),
        "attempt": claim.attempt,
        "worker": claim.worker,
    }
    with ctx.sessions.begin() as session:
        if not queue.end(session, claim, State.FAILED, outcome):
            return _discarded(claim, "the task is no longer this worker's")
    log.info("failed", extra=claim.log() | {"kind": failure.kind})
    return State.FAILED


def _discarded(claim: Claim, why: str) -> State | None:
    log.warning("discarded", extra=claim.log() | {"reason": why})
    return None
