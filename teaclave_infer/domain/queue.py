"""The task queue in the database: claim, renew, start, finish, fail.

Every write is a compare-and-swap on (task id, lease owner, attempt): a worker whose lease ran
out and whose task was claimed again can no longer change it, so a task finishes at most once.
Claiming selects with `FOR UPDATE SKIP LOCKED` (PostgreSQL: concurrent workers pass over each
other's rows; SQLite ignores it and serializes writers) and then swaps on the attempt count it
saw, which is atomic on both.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from .db import changed
from .lifecycle import Action, State, next_state
from .models import Task

__all__ = ["Claim", "LeaseKeeper", "claim_next", "end", "start_running"]

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Claim:
    task_id: str
    attempt: int
    worker: str

    def mine(self) -> tuple[Any, ...]:
        """The compare part of every compare-and-swap on the task."""
        return (
            Task.id == self.task_id,
            Task.lease_owner == self.worker,
            Task.attempts == self.attempt,
        )

    def log(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "attempt": self.attempt, "worker": self.worker}


def claim_next(
    sessions: sessionmaker[Session], worker: str, lease_s: float, max_attempts: int
) -> Claim | None:
    """Takes the oldest Staged task, or one whose worker's lease ran out; None if there is none
    (or the database is busy: the caller polls again)."""
    try:
        while True:
            with sessions.begin() as session:
                now = utcnow()
                row = session.execute(
                    select(Task.id, Task.state, Task.attempts)
                    .where(
                        Task.state.in_((State.STAGED, State.RUNNING)),
                        or_(Task.lease_expires.is_(None), Task.lease_expires < now),
                    )
                    .order_by(Task.invoked_at, Task.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                ).first()
                if row is None:
                    return None
                seen = (Task.id == row.id, Task.state == row.state, Task.attempts == row.attempts)
                if row.attempts >= max_attempts:  # its workers died each time: give up
                    message = (
                        f"lost: the task's worker stopped {row.attempts} times before it ended"
                    )
                    lost = _ended(State.FAILED, {"kind": "lost", "message": message})
                    session.execute(update(Task).where(*seen).values(**lost))
                    log.warning("gave up", extra={"task_id": row.id, "attempts": row.attempts})
                    continue
                state = next_state(row.state, Action.REQUEUE)
                values = {
                    "state": state,
                    "attempts": row.attempts + 1,
                    "lease_owner": worker,
                    "lease_expires": now + timedelta(seconds=lease_s),
                }
                if changed(session, update(Task).where(*seen).values(**values)) == 1:
                    return Claim(row.id, row.attempts + 1, worker)
    except OperationalError as err:  # SQLite busy beyond its timeout: try again later
        log.warning("claim failed", extra={"worker": worker, "error": type(err).__name__})
        return None


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
    """Renews a claim's lease every lease_s / 3 in a thread while the task runs. `lost` is set
    once a renewal finds the task gone (canceled or claimed by another worker)."""

    def __init__(self, sessions: sessionmaker[Session], claim: Claim, lease_s: float) -> None:
        self.sessions, self.claim, self.lease_s = sessions, claim, lease_s
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{claim.task_id[:8]}")

    def _loop(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                if not renew(self.sessions, self.claim, self.lease_s):
                    self.lost.set()
                    log.warning("lease lost", extra=self.claim.log())
                    return
            except OperationalError:  # a busy database: the next renewal will tell
                log.warning("lease renewal failed", extra=self.claim.log())

    @contextmanager
    def held(self) -> Iterator[LeaseKeeper]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()
