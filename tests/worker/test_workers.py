"""The task queue and standalone workers: leases, re-queueing, bounded attempts, a worker killed
mid-task, workers in several processes on one database, and the schema the migrations make."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from guests import ECHO
from held_store import ALLOW, HANG_GUARD_S, held_store
from platform_helpers import Platform
from sqlalchemy import update
from teaclave_client.crypto import decrypt
from teaclave_client.vocabulary import FailureKind, ResultKind
from test_tasks_run import slow

from teaclave_infer.api import create_app
from teaclave_infer.domain.lifecycle import State
from teaclave_infer.domain.models import Base, Task, User
from teaclave_infer.domain.queue import claim_next, end, renew, start_running


@pytest.fixture
def app(settings):
    return create_app(settings)


def staged_task(app) -> str:
    with app.state.platform.sessions() as session:
        admin = session.query(User).filter_by(username="admin").one()
        task = Task(
            function_sha256="0" * 64,
            creator_id=admin.id,
            state=State.STAGED,
            invoked_at=datetime.now(UTC),
        )
        session.add(task)
        session.commit()
        return task.id


def task_row(app, task_id: str) -> Task:
    with app.state.platform.sessions() as session:
        task = session.get(Task, task_id)
        assert task is not None
        return task


def run_out(sessions, task_id: str) -> None:
    """The task's lease as it is once its time passed (the database's clock is not ours)."""
    with sessions.begin() as session:
        gone = datetime.now(UTC) - timedelta(seconds=1)
        session.execute(update(Task).where(Task.id == task_id).values(lease_expires=gone))


def test_a_lease_is_exclusive_until_it_runs_out_and_a_stale_worker_cannot_write(app):
    sessions, task_id = app.state.platform.sessions, staged_task(app)
    a = claim_next(sessions, "A", lease_s=30, max_attempts=3)
    assert a is not None and a.task_id == task_id and a.attempt == 1
    assert claim_next(sessions, "B", lease_s=30, max_attempts=3) is None  # leased to A
    assert start_running(sessions, a)
    run_out(sessions, task_id)  # A stopped renewing: its lease ran out
    b = claim_next(sessions, "B", lease_s=30, max_attempts=3)
    assert b is not None and b.attempt == 2
    assert task_row(app, task_id).state == State.STAGED  # back to Staged for B
    assert not renew(sessions, a, 30) and not start_running(sessions, a)
    with sessions.begin() as session:
        assert not end(session, a, State.FINISHED, {"kind": "ok"})
    with sessions.begin() as session:
        assert end(session, b, State.FAILED, {"kind": ResultKind.TRAP, "message": "x"})
    task = task_row(app, task_id)
    assert (
        task.state == State.FAILED
        and task.result_kind == ResultKind.TRAP
        and task.lease_owner is None
    )


def test_attempts_are_bounded_then_the_task_fails_as_lost(app):
    sessions, task_id = app.state.platform.sessions, staged_task(app)
    for attempt in (1, 2):
        claim = claim_next(sessions, f"w{attempt}", lease_s=30, max_attempts=2)
        assert claim is not None and claim.attempt == attempt
        run_out(sessions, task_id)  # its worker died: nobody renews
    assert claim_next(sessions, "w3", lease_s=30, max_attempts=2) is None
    task = task_row(app, task_id)
    assert task.state == State.FAILED and task.result_kind == FailureKind.LOST
    assert "stopped 2 times" in (task.result or {})["message"]


def test_a_canceled_task_is_let_go(app):
    sessions, task_id = app.state.platform.sessions, staged_task(app)
    claim = claim_next(sessions, "A", lease_s=30, max_attempts=3)
    assert claim is not None
    assert renew(sessions, claim, 30)  # renewed while the task is the worker's
    with sessions.begin() as session:
        session.get(Task, task_id).state = State.CANCELED  # type: ignore[union-attr]
    assert not renew(sessions, claim, 30)  # the renewal that tells the worker to let go
    with sessions.begin() as session:
        assert not end(session, claim, State.FINISHED, {"kind": "ok"})
    assert task_row(app, task_id).state == State.CANCELED


def test_the_migrations_make_the_models_schema(app):
    with app.state.platform.sessions.kw["bind"].connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


class WorkerProcess:
    """`teaclave-infer worker` in its own process (with --concurrency N > 1, a supervisor of N
    worker processes); its JSON log lines, and its workers', are kept in a file."""

    def __init__(
        self,
        settings,
        log: Path,
        lease_s: float = 30.0,
        poll_s: float = 5.0,
        concurrency: int = 1,
        flags: tuple[str, ...] = (),
    ) -> None:
        self.log, self.concurrency = log, concurrency
        cmd = [
            *(sys.executable, "-m", "teaclave_infer.cli", "worker"),
            *("--db", settings.database_url, "--data-dir", str(settings.data_dir)),
            *("--lease", str(lease_s), "--poll", str(poll_s)),
            *("--concurrency", str(concurrency), *flags),
        ]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log.open("wb"))

    def events(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def started(self) -> int:
        return sum(e["event"] == "worker started" for e in self.events())

    def wait_started(self, timeout: float = 120.0) -> None:
        """Until its workers say they run (SIGTERM is taken gracefully from then on)."""
        deadline = time.monotonic() + timeout
        while self.started() < self.concurrency:
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "the worker did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)


def events_of(task_id: str, *workers: WorkerProcess, event: str) -> list[dict]:
    return [
        e
        for w in workers
        for e in w.events()
        if e.get("task_id") == task_id and e["event"] == event
    ]


@pytest.mark.slow  # many processes or requests: the full tier
def test_a_worker_killed_mid_task_leaves_it_to_another_that_finishes_it_once(settings, tmp_path):
    """The first worker is killed while it stores the task's output (Running; the store holds
    its answer): the second claims the task once the lease runs out, and finishes it."""
    p = Platform(TestClient(create_app(settings)))  # no workers in the service's process
    fid = p.register_guest(ECHO)
    # the second worker looks again after its fallback period: a lease running out is no signal
    fast = {"lease_s": 1.0, "poll_s": 0.5}
    fast |= {"flags": ("--allow-fetch", ALLOW, "--fetch-timeout", str(HANG_GUARD_S))}
    with held_store() as store:
        out = p.output("do1", url=store.url("/out.bin"))
        task_id = p.submit(fid, {"in": ("do1", p.input("do1", b"survives"))}, {"out": ("do1", out)})
        first = WorkerProcess(settings, tmp_path / "first.log", **fast)
        second = None
        try:
            store.wait_for_a_put()
            running = p.task(task_id)
            assert running["state"] == "Running" and running["attempts"] == 1
            first.process.kill()  # SIGKILL: no clean-up, the lease just stops being renewed
            first.process.wait(HANG_GUARD_S)
            store.release()
            second = WorkerProcess(settings, tmp_path / "second.log", **fast)
            task = p.wait(task_id, timeout=HANG_GUARD_S)
        finally:
            store.release()
            first.stop()
            if second is not None:
                second.stop()
    assert task["state"] == "Finished" and task["attempts"] == 2, task["result"]
    assert task["result"]["worker"] == events_of(task_id, second, event="claimed")[0]["worker"]
    assert not events_of(task_id, first, event="finished")
    assert len(events_of(task_id, second, event="finished")) == 1
    written = task["result"]["outputs"]["out"]  # the second worker's PUT, after the first's
    iv, cmac = bytes.fromhex(written["iv"]), bytes.fromhex(written["cmac"])
    schema, key = p.file_keys[out]
    assert decrypt(schema, key, iv, store.stored["/out.bin"], cmac) == b"survives"
    p.verified_receipt(task)


@pytest.mark.slow  # many processes or requests: the full tier
def test_three_worker_processes_on_one_database_never_run_a_task_twice(settings, tmp_path):
    """One `worker` process, and one `worker --concurrency 2` that supervises two more."""
    p = Platform(TestClient(create_app(settings)))
    fid = p.register_guest(slow(ECHO, 20_000_000))
    workers = [WorkerProcess(settings, tmp_path / f"w{n}.log", concurrency=n) for n in (1, 2)]
    try:
        for w in workers:  # both up before the tasks: each is stopped by SIGTERM, gracefully
            w.wait_started()
        tasks = [
            p.submit(
                fid, {"in": ("do1", p.input("do1", b"x" * i))}, {"out": ("do1", p.output("do1"))}
            )
            for i in range(1, 17)
        ]
        ended = [p.wait(t, timeout=120) for t in tasks]
    finally:
        for w in workers:
            w.stop()
    for i, task in enumerate(ended, start=1):
        assert task["state"] == "Finished" and task["result"]["return_value"] == i
        assert task["attempts"] == 1
        assert len(events_of(task["id"], *workers, event="running")) == 1
    assert [sum(e["event"] == "worker stopped" for e in w.events()) for w in workers] == [1, 2]
