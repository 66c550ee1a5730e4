"""The task queue in the database: claim, renew, start, finish, fail.

Every write is a compare-and-swap on (task id, lease owner, attempt): a worker whose lease ran
out and whose task was claimed again can no longer change it, so a task finishes at most once.
Claiming selects with `FOR UPDATE SKIP LOCKED` (PostgreSQL: concurrent workers pass over each
other's rows; SQLite ignores it and serializes writers) and then swaps on the attempt count it
saw, which is atomic on both.

A task's database work is three short transactions: claim it and read all it needs (work.py),
start it, end it with its outputs. Its lease is renewed only if it outlives a third of the lease
(leases.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from .db import changed
from .leases import RENEWALS, Renewals, Renewing
from .lifecycle import Action, State, next_state
from .models import Task
from .work import Work, load_work

__all__ = ["Claim", "LeaseKeeper", "claim_next", "end", "renew", "start_running"]

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Claim:
    task_id: str
    attempt: int
    worker: str
    work: Work  # what the task needs, read with the claim

    def mine(self) -> tuple[Any, ...]:
        """The compare part of every compare-and-swap on the task."""
        return (
            Task.id == self.task_id,
            Task.lease_owner == self.worker,
            Task.attempts == self.attempt,
        )

    def log(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "attempt": self.attempt, "worker": self.worker}


_CLAIMED = (
    Task.id,
    Task.state,
    Task.attempts,
    Task.function_id,
    Task.function_sha256,
    Task.arguments,
    Task.assigned_inputs,
    Task.assigned_outputs,
)


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
                row = session.execute(
                    select(*_CLAIMED)
                    .where(
                        Task.state.in_((State.STAGED, State.RUNNING)),
                        or_(Task.lease_expires.is_(None), Task.lease_expires < utcnow()),
                    )
                    .order_by(Task.invoked_at, Task.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                ).first()
                if row is None:
                    return None
                if row.attempts >= max_attempts:  # its workers died each time: give up
                    _give_up(session, row)
                    lost = row.id
                else:
                    claim = _claim(session, row, worker, lease_s)
                    if claim is not None:
                        return claim
                    lost = None
            if lost is not None and ended is not None:
                ended(lost)
    except OperationalError as err:  # SQLite busy beyond its timeout: try again later
        log.warning("claim failed", extra={"worker": worker, "error": type(err).__name__})
        return None


def _seen(row: Any) -> tuple[Any, ...]:
    return (Task.id == row.id, Task.state == row.state, Task.attempts == row.attempts)


def _give_up(session: Session, row: Any) -> None:
    message = f"lost: the task's worker stopped {row.attempts} times before it ended"
    lost = _ended(State.FAILED, {"kind": "lost", "message": message})
    session.execute(update(Task).where(*_seen(row)).values(**lost))
    log.warning("gave up", extra={"task_id": row.id, "attempts": row.attempts})


def _claim(session: Session, row: Any, worker: str, lease_s: float) -> Claim | None:
    """Reads the task's work (before the write: on SQLite the write lock is then held only for
    the swap), then swaps; None if another worker took the task in between."""
    work = load_work(
        session,
        row.function_id,
        row.function_sha256,
        row.arguments,
        (row.assigned_inputs, row.assigned_outputs),
    )
    values = {
        "state": next_state(row.state, Action.REQUEUE),
        "attempts": row.attempts + 1,
        "lease_owner": worker,
        "lease_expires": utcnow() + timedelta(seconds=lease_s),
    }
    if changed(session, update(Task).where(*_seen(row)).values(**values)) != 1:
        return None
    return Claim(row.id, row.attempts + 1, worker, work)


def _ended(state: State, result: dict[str, Any]) -> dict[str, Any]:
    """The columns of a task that ended with `result`."""
    return {
        "state": state,
        "result_kind": str(result["kind"]),
        "result": result,
        "lease_owner": None,
        "lease_expires": None,
        "finished_at": utcnow(),
    }


def _swap(
    session: Session, claim: Claim, states: tuple[State, ...], values: dict[str, Any]
) -> bool:
    statement = update(Task).where(*claim.mine(), Task.state.in_(states)).values(**values)
    return changed(session, statement) == 1


def renew(sessions: sessionmaker[Session], claim: Claim, lease_s: float) -> bool:
    with sessions.begin() as session:
        expires = utcnow() + timedelta(seconds=lease_s)
        return _swap(session, claim, (State.STAGED, State.RUNNING), {"lease_expires": expires})


def start_running(sessions: sessionmaker[Session], claim: Claim) -> bool:
    with sessions.begin() as session:
        state = next_state(State.STAGED, Action.START)
        return _swap(session, claim, (State.STAGED,), {"state": state})


def end(session: Session, claim: Claim, state: State, result: dict[str, Any]) -> bool:
    """Finished or Failed with `result`, in the caller's transaction; False if the task is no
    longer this worker's (canceled, or claimed again after the lease ran out)."""
    return _swap(session, claim, (State.STAGED, State.RUNNING), _ended(state, result))


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
