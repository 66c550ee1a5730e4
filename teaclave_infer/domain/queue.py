"""The task queue in the database: claim, renew, start, finish, fail.

Every write is a compare-and-swap on (task id, lease owner, attempt): a worker whose lease ran
out and whose task was claimed again can no longer change it, so a task finishes at most once.
Claiming selects with `FOR UPDATE SKIP LOCKED` (PostgreSQL: concurrent workers pass over each
other's rows; SQLite ignores it and serializes writers) and then swaps on the attempt count it
saw, which is atomic on both.

A task's database work is three short transactions: claim it and read all it needs (work.py),
start it, end it with its outputs. Its lease is renewed only if it outlives a third of the lease
(leases.py). The statements are built once, as Core statements with parameters: building and
running ORM ones took ~1 ms each, several times the database's own work (measured on SQLite).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Table, bindparam, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from teaclave_client.vocabulary import FailureKind

from .db import not_awaiting_disk
from .leases import RENEWALS, Renewals, Renewing
from .lifecycle import Action, State, next_state
from .models import DataFile, Task
from .work import Work, load_work

__all__ = [
    "Claim",
    "LeaseKeeper",
    "claim_next",
    "end",
    "renew",
    "start_running",
    "write_output",
]

log = logging.getLogger(__name__)

_TASKS, _FILES = cast(Table, Task.__table__), cast(Table, DataFile.__table__)
_T, _F = _TASKS.c, _FILES.c
_LIVE = [State.STAGED.value, State.RUNNING.value]
_NEXT = (
    select(
        _T.id,
        _T.state,
        _T.attempts,
        _T.function_id,
        _T.function_sha256,
        _T.arguments,
        _T.assigned_inputs,
        _T.assigned_outputs,
    )
    .where(
        _T.state.in_(_LIVE), or_(_T.lease_expires.is_(None), _T.lease_expires < bindparam("now"))
    )
    .order_by(_T.invoked_at, _T.id)
    .limit(1)
    .with_for_update(skip_locked=True)
)
# The row as it was read: the claim's swap.
_SEEN = (_T.id == bindparam("task"), _T.state == bindparam("seen"), _T.attempts == bindparam("n"))
_TAKE = (
    update(_TASKS)
    .where(*_SEEN)
    .values(
        state=bindparam("to"),
        attempts=bindparam("n") + 1,
        lease_owner=bindparam("worker"),
        lease_expires=bindparam("expires"),
    )
)
_ENDED: dict[str, Any] = {
    "state": bindparam("to"),
    "result_kind": bindparam("kind"),
    "result": bindparam("outcome"),
    "lease_owner": None,
    "lease_expires": None,
    "finished_at": bindparam("at"),
}
_GIVE_UP = update(_TASKS).where(*_SEEN).values(**_ENDED)
# The claim's: every later swap of this worker's.
_MINE = (
    _T.id == bindparam("task"),
    _T.lease_owner == bindparam("worker"),
    _T.attempts == bindparam("n"),
)
_RENEW = update(_TASKS).where(*_MINE, _T.state.in_(_LIVE))
_RENEW = _RENEW.values(lease_expires=bindparam("expires"))
_START = update(_TASKS).where(*_MINE, _T.state == State.STAGED.value)
_START = _START.values(state=State.RUNNING.value)
_END = update(_TASKS).where(*_MINE, _T.state.in_(_LIVE)).values(**_ENDED)
# An output is written once: a file that already has a cmac is refused.
_OUTPUT = (
    update(_FILES)
    .where(_F.id == bindparam("file"), _F.cmac.is_(None))
    .values(url=bindparam("to_url"), iv=bindparam("to_iv"), cmac=bindparam("tag"))
)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Claim:
    task_id: str
    attempt: int
    worker: str
    work: Work  # what the task needs, read with the claim

    def params(self) -> dict[str, Any]:
        """The compare part of every compare-and-swap on the task."""
        return {"task": self.task_id, "worker": self.worker, "n": self.attempt}

    def log(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "attempt": self.attempt, "worker": self.worker}


def _changed(connection: Connection, statement: Any, params: dict[str, Any]) -> bool:
    """Whether the compare-and-swap `statement` changed its one row."""
    return cast(CursorResult[Any], connection.execute(statement, params)).rowcount == 1


def claim_next(
    sessions: sessionmaker[Session],
    worker: str,
    lease_s: float,
    max_attempts: int,
    ended: Callable[[str], None] | None = None,
) -> Claim | None:
    """Takes the oldest Staged task, or one whose worker's lease ran out, with all it needs, in
    one transaction; None if there is none (or the database is busy: the caller polls again).
    A task whose workers died `max_attempts` times fails as lost instead; `ended` is told its
    id once that is committed."""
    try:
        while True:
            with sessions.begin() as session:
                connection = session.connection()
                row = connection.execute(_NEXT, {"now": utcnow()}).first()
                if row is None:
                    return None
                if row.attempts >= max_attempts:  # its workers died each time: give up
                    _give_up(connection, row)
                    lost = row.id
                else:
                    not_awaiting_disk(connection)
                    claim = _claim(connection, row, worker, lease_s)
                    if claim is not None:
                        return claim
                    lost = None
            if lost is not None and ended is not None:
                ended(lost)
    except OperationalError as err:  # SQLite busy beyond its timeout: try again later
        log.warning("claim failed", extra={"worker": worker, "error": type(err).__name__})
        return None


def _give_up(connection: Connection, row: Any) -> None:
    kind = FailureKind.LOST
    message = f"{kind}: the task's worker stopped {row.attempts} times before it ended"
    seen = {"task": row.id, "seen": row.state, "n": row.attempts}
    connection.execute(
        _GIVE_UP, seen | _ended(State.FAILED, {"kind": kind.value, "message": message})
    )
    log.warning("gave up", extra={"task_id": row.id, "attempts": row.attempts})


def _claim(connection: Connection, row: Any, worker: str, lease_s: float) -> Claim | None:
    """Reads the task's work (before the write: on SQLite the write lock is then held only for
    the swap), then swaps; None if another worker took the task in between."""
    work = load_work(
        connection,
        row.function_id,
        row.function_sha256,
        row.arguments,
        (row.assigned_inputs, row.assigned_outputs),
    )
    params = {
        "task": row.id,
        "seen": row.state,
        "n": row.attempts,
        "to": next_state(row.state, Action.REQUEUE).value,
        "worker": worker,
        "expires": utcnow() + timedelta(seconds=lease_s),
    }
    if not _changed(connection, _TAKE, params):
        return None
    return Claim(row.id, row.attempts + 1, worker, work)


def _ended(state: State, result: dict[str, Any]) -> dict[str, Any]:
    """The parameters of _ENDED for a task that ended with `result`."""
    return {"to": state.value, "kind": str(result["kind"]), "outcome": result, "at": utcnow()}


def renew(sessions: sessionmaker[Session], claim: Claim, lease_s: float) -> bool:
    with sessions.begin() as session:
        expires = utcnow() + timedelta(seconds=lease_s)
        not_awaiting_disk(connection := session.connection())
        return _changed(connection, _RENEW, claim.params() | {"expires": expires})


def start_running(sessions: sessionmaker[Session], claim: Claim) -> bool:
    next_state(State.STAGED, Action.START)  # the transition _START makes
    with sessions.begin() as session:
        not_awaiting_disk(connection := session.connection())
        return _changed(connection, _START, claim.params())


def end(session: Session, claim: Claim, state: State, result: dict[str, Any]) -> bool:
    """Finished or Failed with `result`, in the caller's transaction; False if the task is no
    longer this worker's (canceled, or claimed again after the lease ran out)."""
    return _changed(session.connection(), _END, claim.params() | _ended(state, result))


def write_output(session: Session, file_id: str, url: str, iv: str, cmac: str) -> bool:
    """Records a task's output in the caller's transaction (the end's); False if the file was
    already written (by another task): an output is written once."""
    params = {"file": file_id, "to_url": url, "to_iv": iv, "tag": cmac}
    return _changed(session.connection(), _OUTPUT, params)


class LeaseKeeper:
    """Keeps a claim's lease while the task runs: renewed every lease_s / 3 by the process's
    renewal thread (none if the task ends sooner). `lost` is set once a renewal finds the task
    gone (canceled or claimed by another worker)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        claim: Claim,
        lease_s: float,
        renewals: Renewals = RENEWALS,
    ) -> None:
        self.renewals = renewals
        self._lease = Renewing(lambda: renew(sessions, claim, lease_s), lease_s / 3, claim.log())

    @property
    def lost(self) -> threading.Event:
        return self._lease.lost

    @contextmanager
    def held(self) -> Iterator[LeaseKeeper]:
        self.renewals.hold(self._lease)
        try:
            yield self
        finally:
            self.renewals.release(self._lease)
