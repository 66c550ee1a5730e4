"""Workers are processes: the supervisor's restarts and backoff (an injected clock), an idle
worker's wake-ups (an injected clock and a statement counter), the CLI's settings round trip,
and `teaclave-infer serve --workers N` for real: tasks run in its worker processes and never in
its own, a killed worker is replaced, SIGTERM lets a running task finish."""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cheap_kdf import ENTRY
from guests import ECHO
from held_store import ALLOW, held_store
from platform_helpers import Platform
from service_helpers import ADMIN_PASSWORD, HttpClient
from sqlalchemy import event
from test_tasks_run import slow

from teaclave_infer.domain.db import make_engine, migrate, session_factory
from teaclave_infer.domain.lifecycle import State
from teaclave_infer.domain.models import Task
from teaclave_infer.domain.settings import Settings
from teaclave_infer.domain.signals import Channel
from teaclave_infer.local import Served, serve_process
from teaclave_infer.serve import DB_ENV, add_worker_arguments, settings_from, worker_command
from teaclave_infer.supervisor import Backoff, Supervisor
from teaclave_infer.worker import Context, Worker

GUARD_S = 120.0  # a hang guard: every wait below ends on a condition long before


# --- the supervisor, with fake processes and an injected clock ----------------------------


class FakeProcess:
    def __init__(self, pid: int) -> None:
        self.pid, self.signals = pid, []
        self._status: queue.Queue[int] = queue.Queue()

    def wait(self) -> int:
        return self._status.get(timeout=GUARD_S)

    def exit(self, status: int) -> None:
        self._status.put(status)

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        self.exit(-sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_copy_that_dies_is_restarted_after_a_backoff_that_grows_while_copies_die_young():
    spawned: queue.Queue[FakeProcess] = queue.Queue()
    pauses: list[float] = []
    clock = Clock()

    def spawn(command):
        assert command == ["worker"]
        process = FakeProcess(100 + spawned.qsize() + len(pauses))
        spawned.put(process)
        return process

    backoff = Backoff(first_s=0.5, max_s=30.0, healthy_s=60.0)
    supervisor = Supervisor(["worker"], 1, backoff, spawn=spawn, clock=clock, pause=pauses.append)
    with supervisor:
        for _ in range(3):  # each dies at once: 0.5, 1, 2 s before the next
            spawned.get(timeout=GUARD_S).exit(1)
        long_lived = spawned.get(timeout=GUARD_S)
        clock.now += 61.0
        long_lived.exit(1)  # it lived long: restarted at once
        last = spawned.get(timeout=GUARD_S)
        assert supervisor.pids() == [last.pid]
    assert pauses == [0.5, 1.0, 2.0, 0.0]
    assert last.signals == [signal.SIGTERM]  # stopped, and not started again
    assert spawned.empty()
    assert [backoff.delay(n) for n in (0, 1, 2, 7, 8, 50)] == [0.0, 0.5, 1.0, 30.0, 30.0, 30.0]


def test_stop_reaches_every_copy_and_none_starts_again():
    spawned: queue.Queue[FakeProcess] = queue.Queue()

    def spawn(command):
        spawned.put(process := FakeProcess(200 + spawned.qsize()))
        return process

    supervisor = Supervisor(["worker"], 3, spawn=spawn, clock=Clock(), pause=lambda s: None)
    supervisor.start()
    copies = [spawned.get(timeout=GUARD_S) for _ in range(3)]
    supervisor.stop()
    supervisor.stop()  # idempotent
    assert all(c.signals == [signal.SIGTERM] for c in copies)
    assert spawned.empty() and supervisor.pids() == []


def test_a_stop_signal_during_start_stops_what_started(monkeypatch):
    """SIGTERM raises SystemExit in serve's main thread, which may be inside start(): the
    copies started so far are stopped, and stop() does not trip over the threads never started."""
    spawned: queue.Queue[FakeProcess] = queue.Queue()

    def spawn(command):
        spawned.put(process := FakeProcess(300 + spawned.qsize()))
        return process

    real_start, starts = threading.Thread.start, []

    def start_or_interrupt(thread: threading.Thread) -> None:
        starts.append(thread)
        if len(starts) == 2:
            raise SystemExit(0)  # what serve's handler raises, here as the second thread starts
        real_start(thread)

    supervisor = Supervisor(["worker"], 3, spawn=spawn, clock=Clock(), pause=lambda s: None)
    monkeypatch.setattr(threading.Thread, "start", start_or_interrupt)
    with pytest.raises(SystemExit):
        supervisor.start()
    monkeypatch.undo()
    first = spawned.get(timeout=GUARD_S)
    supervisor.stop()
    assert first.signals == [signal.SIGTERM]
    assert spawned.empty() and supervisor.pids() == []


# --- an idle worker: wake-ups, not polling ------------------------------------------------


class ScriptedSignals:
    """A STAGED listener whose wait() returns the scripted payloads in turn and moves the clock:
    by the whole timeout when nothing comes, by 0.1 s when something does. It counts the
    database statements made before each wait; when the script ends, the worker is stopped."""

    def __init__(self, clock: Clock, script: list[list[str]], statements: list[int]) -> None:
        self.clock, self.script, self.statements = clock, script, statements
        self.stop = threading.Event()
        self.waits: list[tuple[float, int]] = []  # (timeout, statements so far)

    @contextmanager
    def listen(self, channel: Channel) -> Iterator[ScriptedSignals]:
        assert channel == Channel.STAGED
        yield self

    def wait(self, timeout: float) -> list[str]:
        self.waits.append((round(timeout, 6), len(self.statements)))
        if not self.script:
            self.stop.set()
            return ["stop:this-pool"]
        got = self.script.pop(0)
        self.clock.now += 0.1 if got else timeout
        return got

    def publish(self, channel: Channel, payload: str = "") -> None:
        raise AssertionError("an idle worker publishes nothing")


def test_an_idle_worker_queries_only_after_a_wake_up_or_its_fallback_period(tmp_path):
    settings = Settings(data_dir=tmp_path, poll_s=5.0)
    engine = make_engine(settings.database_url)
    migrate(engine)
    statements: list[int] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(1))
    clock = Clock()
    script = [[], [], ["task-a"], ["stop:another-pool"], []]
    signals = ScriptedSignals(clock, script, statements)
    ctx = Context(session_factory(engine), None, None, None, settings.lease_s, signals)
    worker = Worker(ctx, settings, name="idle", clock=clock)  # it listens on ctx.signals
    assert not worker.run_once()
    per_claim = len(statements)  # what one look at an empty queue costs
    statements.clear()
    worker.serve(signals.stop)
    engine.dispose()
    # A look at start, then one after each fallback period and each task signal; a stop token
    # of another pool wakes the worker but it looks only when its period is over.
    assert signals.waits == [
        (5.0, 1 * per_claim),  # the look at start
        (5.0, 2 * per_claim),  # after the 1st fallback
        (5.0, 3 * per_claim),  # after the 2nd fallback
        (5.0, 4 * per_claim),  # after "task-a"
        (4.9, 4 * per_claim),  # woken by a foreign stop token: no look, back to sleep
        (5.0, 5 * per_claim),  # after the rest of that period
    ]
    assert len(statements) == 5 * per_claim


# --- the CLI ------------------------------------------------------------------------------


def test_a_worker_process_gets_the_settings_of_its_supervisor(tmp_path, monkeypatch):
    monkeypatch.setenv(DB_ENV, "")  # put back as it was after the test (as delenv would not)
    settings = Settings(
        data_dir=tmp_path / "data",
        db_url="postgresql://u:p@db.example/teaclave",
        keys_path=tmp_path / "keys",
        blob_path=tmp_path / "blobs",
        lease_s=12.5,
        poll_s=7.0,
        file_roots=(tmp_path / "a", tmp_path / "b"),
        fetch_allow=("localhost", "10.0.0.0/8"),
        platform_url="https://platform.example:8000",
    )
    command = worker_command(settings)
    assert not any("u:p@" in part for part in command)  # a password is never on a command line
    assert os.environ[DB_ENV] == settings.db_url  # but in what the children inherit
    parser = argparse.ArgumentParser()
    add_worker_arguments(parser)  # after the environment is set, as in a child
    worker = command[command.index("worker") + 1 :]
    assert settings_from(parser.parse_args(worker)) == settings
    assert settings_from(parser.parse_args([])).keys_dir == Path("teaclave-data") / "keys"


# --- `teaclave-infer serve --workers N`, for real -----------------------------------------


@contextmanager
def served(
    tmp_path: Path,
    workers: int,
    python_flags: tuple[str, ...] = (),
    flags: tuple[str, ...] = (),
) -> Iterator[Served]:
    (tmp_path / "admin.txt").write_text(ADMIN_PASSWORD)
    data = tmp_path / "live"
    with serve_process(
        data, tmp_path / "admin.txt", workers, flags=flags, python_flags=python_flags, entry=ENTRY
    ) as s:
        until(lambda: len(events(s, "worker started")) >= workers, "the workers did not start")
        yield s


def events(s: Served, *names: str) -> list[dict]:
    """The log's events with these names, in the log's order (JSON lines; the API process's
    and its workers' alike)."""
    lines = s.log.read_text(errors="replace").splitlines()
    found = [json.loads(line) for line in lines if line.startswith("{")]
    return [e for e in found if e["event"] in names]


def until(condition, what: str) -> None:
    """Waits for a condition (not for time to pass), GUARD_S at most."""
    deadline = time.monotonic() + GUARD_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def children(pid: int) -> set[int]:
    """The live (not zombie) child processes of `pid`."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, parent = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, IndexError):
            continue
        if int(parent) == pid and state != "Z":
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def pid_of(worker_name: str) -> int:
    return int(worker_name.split(":")[1])  # host:pid:nonce


def echo(p: Platform, function_id: str, data: bytes) -> str:
    inputs, outputs = {"in": ("do1", p.input("do1", data))}, {"out": ("do1", p.output("do1"))}
    return p.submit(function_id, inputs, outputs)


@pytest.mark.slow  # many processes or requests: the full tier
def test_serve_runs_tasks_in_its_worker_processes_and_never_imports_the_worker(tmp_path):
    with served(tmp_path, workers=2, python_flags=("-X", "importtime")) as s:
        workers = children(s.process.pid)
        assert len(workers) == 2
        p = Platform(HttpClient(s.url))
        fid = p.register_guest(slow(ECHO, 20_000_000))
        tasks = [echo(p, fid, b"x" * i) for i in range(1, 7)]
        for i, task_id in enumerate(tasks, start=1):
            task = p.wait(task_id, timeout=GUARD_S)
            assert task["state"] == "Finished" and task["result"]["return_value"] == i
            assert pid_of(task["result"]["worker"]) in workers
        assert {pid_of(e["worker"]) for e in events(s, "worker started")} == workers
    # -X importtime is the API process's only: its imports, the workers' none
    imports = [line for line in s.log.read_text().splitlines() if line.startswith("import time:")]
    assert any(line.endswith("teaclave_infer.api.app") for line in imports)
    assert not [line for line in imports if "teaclave_infer.worker" in line]
    assert len(events(s, "worker stopped")) == 2


@pytest.mark.slow  # many processes or requests: the full tier
def test_a_killed_worker_process_is_replaced_and_workers_outlive_no_supervisor(tmp_path):
    with served(tmp_path, workers=1) as s:
        (first,) = children(s.process.pid)
        os.kill(first, signal.SIGKILL)
        until(lambda: children(s.process.pid) - {first}, "no worker process replaced it")
        (second,) = children(s.process.pid)
        exited = events(s, "worker process exited")
        assert [(e["pid"], e["status"]) for e in exited] == [(first, -signal.SIGKILL)]
        p = Platform(HttpClient(s.url))
        fid = p.register_guest(ECHO)
        task = p.wait(echo(p, fid, b"x"))
        assert task["state"] == "Finished" and pid_of(task["result"]["worker"]) == second
        s.process.kill()  # the supervisor dies without a word: its worker stops on its own
        s.process.wait()
        until(lambda: not alive(second), "the worker outlived its supervisor")
    assert len(events(s, "supervisor gone: stopping")) == 1
    assert len(events(s, "worker stopped")) == 1


@pytest.mark.slow  # many processes or requests: the full tier
def test_sigterm_stops_the_api_and_lets_the_running_task_finish(tmp_path):
    """SIGTERM while the worker stores the task's output (Running; the store holds its answer
    until the worker has taken the signal): the task still finishes, then the worker stops."""
    allowed = ("--allow-fetch", ALLOW, "--fetch-timeout", str(GUARD_S))
    # the store inside: a failing test releases its PUT before the service is stopped
    with served(tmp_path, workers=1, flags=allowed) as s, held_store() as store:
        p = Platform(HttpClient(s.url))
        fid = p.register_guest(ECHO)
        out = p.output("do1", url=store.url("/out.bin"))
        task_id = p.submit(fid, {"in": ("do1", p.input("do1", b"finished"))}, {"out": ("do1", out)})
        store.wait_for_a_put()
        assert p.task(task_id)["state"] == "Running"
        s.process.send_signal(signal.SIGTERM)
        until(lambda: events(s, "stopping"), "the worker was not told to stop")
        store.release()
        assert s.process.wait(GUARD_S) == 0
    engine = make_engine(f"sqlite:///{tmp_path / 'live' / 'teaclave.db'}")
    with session_factory(engine)() as session:
        task = session.get(Task, task_id)
        assert task is not None and task.state == State.FINISHED and task.attempts == 1
    engine.dispose()
    assert [e["task_id"] for e in events(s, "finished")] == [task_id]
    order = [e["event"] for e in events(s, "stopping", "finished", "worker stopped")]
    assert order == ["stopping", "finished", "worker stopped"]  # SIGTERM came while it ran
    assert [e["status"] for e in events(s, "worker process stopped")] == [0]


def test_stopping_the_server_first_answers_every_long_poll():
    """uvicorn waits for requests in flight before it stops, and a long-poll may last a
    minute: `serve`'s server answers them all first (TaskWaits.finish) when told to stop."""
    import uvicorn

    from teaclave_infer.serve import _server_class

    finished: list[bool] = []
    server = _server_class()(uvicorn.Config(lambda *_: None), lambda: finished.append(True))
    server.handle_exit(signal.SIGTERM, None)
    assert finished == [True] and server.should_exit
