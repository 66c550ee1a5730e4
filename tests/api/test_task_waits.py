"""`GET /v1/tasks/{id}?wait=S`: answered as soon as the task ends, told by a signal (as a worker
in another process would send it), else with the task as it is once S has passed; only for the
task's participants, bounded per user and in all. Time is the waits' injected clock: a frozen
one shows that nothing but the signal (or the re-check) answered, a jumping one that S passed."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from guests import guest
from service_helpers import assert_problem, builder_manifest
from sqlalchemy import update
from test_service_tasks import World

from teaclave_infer.api import create_app
from teaclave_infer.api.waits import TaskWaits
from teaclave_infer.domain.models import Task
from teaclave_infer.domain.signals import Channel, signals_for

BOUND = 30  # seconds a test thread may take before the test fails: never waited out


@pytest.fixture
def served(settings) -> Iterator[tuple[World, TaskWaits]]:
    """The app with its lifespan running (the waits listen), users, and its waits."""
    with TestClient(create_app(settings)) as client:
        waits = client.app.state.platform.waits
        waits.clock, waits.recheck_s = (lambda: 0.0), 3600.0  # only a signal can answer
        yield World(client), waits


def created_task(w: World, owners: tuple[str, ...] = ("do1", "do2")) -> str:
    """A task of do1's on a public function whose one input `owners` own together."""
    r = w.register(
        "fo",
        guest("(i32.const 0)"),
        builder_manifest(),
        public=True,
        inputs=[{"name": "in"}],
        outputs=[],
        arguments=[{"name": "in", "default": "in"}],
    )
    body = {
        "function_id": r.json()["id"],
        "arguments": {"in": "in"},
        "inputs_ownership": [{"name": "in", "owners": [w.ids[o] for o in owners]}],
    }
    task = w.post("do1", "/v1/tasks", body)
    assert task.status_code == 201, task.text
    return str(task.json()["id"])


@contextmanager
def waiting_as(
    w: World, waits: TaskWaits, calls: list[tuple[dict[str, str], str]]
) -> Iterator[list[Future]]:
    """Each (headers, path) as a request in a thread of its own; yields once all of them wait
    (asleep between two reads)."""
    before = waits.waiting()
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(w.client.get, path, headers=h) for h, path in calls]
        try:
            assert waits.settle(before + len(calls), BOUND), [
                f.result() for f in futures if f.done()
            ]
            yield futures
        except BaseException:
            waits.finish()  # a failing test answers its waits rather than hang on them
            raise


def waiting(w: World, waits: TaskWaits, *calls: tuple[str, str]):
    """`waiting_as` with each (user, path) under that user's token."""
    return waiting_as(w, waits, [(w.auth[who], path) for who, path in calls])


def ended_elsewhere(settings, w: World, task_id: str, state: str = "Finished") -> None:
    """What a worker process does when a task ends: its row, then Channel.ENDED."""
    sessions = w.client.app.state.platform.sessions
    with sessions() as session:
        session.execute(update(Task).where(Task.id == task_id).values(state=state))
        session.commit()
    signals_for(settings.database_url).publish(Channel.ENDED, task_id)


def test_a_wait_is_answered_by_the_signal_of_a_task_ending(served, settings):
    w, waits = served
    task_id = created_task(w)
    with waiting(w, waits, ("do1", f"/v1/tasks/{task_id}?wait=60")) as (answer,):
        ended_elsewhere(settings, w, task_id)
        r = answer.result(BOUND)
    assert r.status_code == 200 and r.json()["state"] == "Finished"
    assert waits.waiting() == 0


def test_a_cancel_answers_every_participants_wait(served):
    w, waits = served
    task_id = created_task(w)
    path = f"/v1/tasks/{task_id}?wait=60"
    with waiting(w, waits, ("do1", path), ("do2", path)) as answers:
        assert w.post("do2", f"/v1/tasks/{task_id}/cancel").status_code == 200
        states = [a.result(BOUND).json()["state"] for a in answers]
    assert states == ["Canceled", "Canceled"] and waits.waiting() == 0


def test_time_up_answers_with_the_task_as_it_is(served):
    w, waits = served
    task_id = created_task(w)
    waits.clock = itertools.count(0.0, 100.0).__next__  # each look at the clock: 100 s later
    r = w.client.get(f"/v1/tasks/{task_id}?wait=5", headers=w.auth["do1"])
    assert r.status_code == 200 and r.json()["state"] == "Created" and waits.waiting() == 0
    ended = w.client.get(f"/v1/tasks/{task_id}?wait=0", headers=w.auth["do1"])
    assert ended.json()["state"] == "Created"


def test_a_wait_may_stop_at_a_state_named_in_until(served):
    w, waits = served
    task_id = created_task(w)
    path = f"/v1/tasks/{task_id}?wait=60&until=DataAssigned&until=Approved"
    with waiting(w, waits, ("do1", path)) as (answer,):
        file_id = w.input_file("do1", "do2")
        assert w.post("do2", f"/v1/files/{file_id}/accept").status_code == 200
        assigned = w.post("do1", f"/v1/tasks/{task_id}/assign", {"inputs": {"in": file_id}})
        assert assigned.json()["state"] == "DataAssigned", assigned.text
        assert answer.result(BOUND).json()["state"] == "DataAssigned"


def test_a_lost_signal_is_made_up_for_by_the_recheck(served):
    w, waits = served
    task_id = created_task(w)
    waits.recheck_s = 0.05  # the platform's own timer; the clock stays frozen
    with waiting(w, waits, ("do1", f"/v1/tasks/{task_id}?wait=60")) as (answer,):
        sessions = w.client.app.state.platform.sessions
        with sessions() as session:  # a worker ends the task, and its signal is lost
            session.execute(update(Task).where(Task.id == task_id).values(state="Failed"))
            session.commit()
        assert answer.result(BOUND).json()["state"] == "Failed"


def test_only_participants_may_wait(served):
    w, waits = served
    task_id = created_task(w)
    for path in (f"/v1/tasks/{task_id}?wait=60", f"/v1/tasks/{'0' * 32}?wait=60"):
        assert_problem(w.client.get(path, headers=w.auth["eve"]), 404, "no task")
    assert waits.waiting() == 0
    for bad in ("61", "-1", "soon"):
        r = w.client.get(f"/v1/tasks/{task_id}?wait={bad}", headers=w.auth["do1"])
        assert r.status_code == 422, r.text


def test_waits_are_bounded_per_user_and_in_all(served):
    w, waits = served
    waits.max_per_user, waits.max_total = 1, 2
    task_id = created_task(w)
    path = f"/v1/tasks/{task_id}?wait=60"
    with waiting(w, waits, ("do1", path)) as (first,):
        r = w.client.get(path, headers=w.auth["do1"])
        assert_problem(r, 429, "per user")
        assert int(r.headers["retry-after"]) >= 1
        with waiting(w, waits, ("do2", path)) as (second,):
            assert_problem(w.client.get(path, headers=w.auth["eve"]), 404, "no task")
            eves = created_task(w, ("do1", "eve"))
            r = w.client.get(f"/v1/tasks/{eves}?wait=60", headers=w.auth["eve"])
            assert_problem(r, 429, "the platform holds 2 waits")
            assert w.post("do1", f"/v1/tasks/{task_id}/cancel").status_code == 200
            assert first.result(BOUND).json()["state"] == "Canceled"
            assert second.result(BOUND).json()["state"] == "Canceled"
    assert waits.waiting() == 0


def test_stopping_the_waits_answers_every_wait(settings):
    with TestClient(create_app(settings)) as client:
        w = World(client)
        waits: TaskWaits = client.app.state.platform.waits
        waits.clock, waits.recheck_s = (lambda: 0.0), 3600.0
        task_id = created_task(w)
        with waiting(w, waits, ("do1", f"/v1/tasks/{task_id}?wait=60")) as (answer,):
            stopper = threading.Thread(target=waits.stop)
            stopper.start()
            assert answer.result(BOUND).json()["state"] == "Created"
            stopper.join(BOUND)
        # A server shutting down waits for requests in flight: later waits answer at once.
        later = w.client.get(f"/v1/tasks/{task_id}?wait=60", headers=w.auth["do1"])
        assert later.json()["state"] == "Created" and waits.waiting() == 0
        waits.start()  # the lifespan's end stops them again: stop() is idempotent
