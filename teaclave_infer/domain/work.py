"""What a claimed task needs, read once, in the transaction that claims it: the function (its
wasm's identity, profile and limits), the arguments, and the rows of the files assigned to it.

The worker needs nothing more from the database until it starts the function and, at the end,
records the outcome: a task costs three short transactions (queue.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, select

from .models import DataFile, FileOwner, Function

__all__ = ["WEIGHTS_SLOT", "FileRow", "FunctionRow", "Work", "load_work"]

WEIGHTS_SLOT = "weights"  # the input slot of a function built with separate weights


@dataclass(frozen=True)
class FileRow:
    """An assigned file: where its ciphertext is, how it is encrypted, its wrapped key."""

    slot: str
    id: str
    url: str
    schema: str
    wrapped_key: str
    key_file_id: str  # the file id bound in the wrapped key
    iv: str
    cmac: str | None  # an output's is None until a task writes it


@dataclass(frozen=True)
class FunctionRow:
    id: str  # also its wasm's blob id
    profile: str
    limits: dict[str, Any]  # the executor's Limits fields
    # A negative return value is a failure status (our runtime's, a function with a builder's
    # manifest); without one it is a value like any other, as Teaclave's WAMR executor has it.
    statuses: bool = True


@dataclass(frozen=True)
class Work:
    """Everything the worker reads about a claimed task."""

    function: FunctionRow | None  # None: deleted or disabled since the task was invoked
    function_sha256: str  # the wasm the task names: the stored bytes must hash to it
    arguments: dict[str, Any]
    inputs: tuple[FileRow, ...]
    outputs: tuple[FileRow, ...]
    missing: tuple[str, ...]  # "<slot>: file <id>" for each assigned file deleted since
    # Input slots whose plaintext a worker may keep between tasks: the function's separate
    # weights when they are a file of the function owner's alone. A data owner's inputs never.
    reusable: frozenset[str] = frozenset()


_FN, _FILE, _OWNER = (cast(Table, m.__table__).c for m in (Function, DataFile, FileOwner))
_FUNCTION = select(
    _FN.id, _FN.profile, _FN.limits, _FN.disabled, _FN.owner_id, _FN.manifest, _FN.has_manifest
).where(_FN.id == bindparam("function"))
_FILES = select(
    _FILE.id,
    _FILE.url,
    _FILE.schema,
    _FILE.wrapped_key,
    _FILE.key_file_id,
    _FILE.iv,
    _FILE.cmac,
).where(_FILE.id.in_(bindparam("files", expanding=True)))
_OWNERS = select(_OWNER.user_id).where(_OWNER.file_id == bindparam("file"))


def load_work(
    connection: Connection,
    function_id: str | None,
    function_sha256: str,
    arguments: dict[str, Any],
    assigned: tuple[dict[str, Any], dict[str, Any]],
) -> Work:
    """Reads the task's function and files (at most three queries) in the caller's
    transaction; `assigned` is the task's (inputs, outputs): slot -> file id."""
    function = (
        connection.execute(_FUNCTION, {"function": function_id}).first() if function_id else None
    )
    if function is not None and function.disabled:
        function = None
    ids = sorted({str(i) for a in assigned for i in a.values()})
    rows = {f.id: f for f in connection.execute(_FILES, {"files": ids})} if ids else {}
    missing = tuple(
        f"{slot}: file {fid}"
        for a in assigned
        for slot, fid in sorted(a.items())
        if fid not in rows
    )
    inputs, outputs = (
        tuple(_row(slot, rows[fid]) for slot, fid in sorted(a.items()) if fid in rows)
        for a in assigned
    )
    return Work(
        function=FunctionRow(
            function.id, function.profile, dict(function.limits), function.has_manifest
        )
        if function is not None
        else None,
        function_sha256=function_sha256,
        arguments=dict(arguments),
        inputs=inputs,
        outputs=outputs,
        missing=missing,
        reusable=_reusable(connection, function, assigned[0]),
    )


def _row(slot: str, f: Any) -> FileRow:  # a row of _FILES
    return FileRow(slot, f.id, f.url, f.schema, f.wrapped_key, f.key_file_id or f.id, f.iv, f.cmac)


def _reusable(connection: Connection, function: Any, inputs: dict[str, Any]) -> frozenset[str]:
    """{WEIGHTS_SLOT} if the function has separate weights and the file in that slot is its
    owner's alone (the rule `browser_weights` follows too), else nothing."""
    manifest = function.manifest if function is not None else None
    weights = manifest.get("weights") if isinstance(manifest, dict) else None
    separate = isinstance(weights, dict) and weights.get("mode") == "separate"
    if function is None or not separate or WEIGHTS_SLOT not in inputs:
        return frozenset()
    owners = connection.execute(_OWNERS, {"file": inputs[WEIGHTS_SLOT]}).scalars().all()
    return frozenset({WEIGHTS_SLOT}) if list(owners) == [function.owner_id] else frozenset()
