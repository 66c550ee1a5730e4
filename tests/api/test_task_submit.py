"""A data owner's steps in one request (`POST /v1/tasks` with `assign`, `approve`, `invoke`;
`assign` with `approve`; `approve` with `invoke`), held to the multi-party rules exactly: it
goes only as far as the step-by-step form would, refuses what that form refuses with the same
status and words, and leaves nothing behind when it refuses."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from guests import guest
from service_helpers import builder_manifest
from test_service_tasks import World

from teaclave_infer.api import create_app
from teaclave_infer.domain.signals import Channel, signals_for

NOTHING = guest("(i32.const 0)")


@pytest.fixture
def world(settings) -> World:
    return World(TestClient(create_app(settings)))


def guest_function(w: World, owner: str = "fo", *, public: bool = True, **spec: object) -> str:
    """A function with an input `in`, optionally `weights`, and an output `out`."""
    slots = spec.pop("inputs", ["in"])
    r = w.register(
        owner,
        NOTHING,
        builder_manifest(),
        public=public,
        inputs=[{"name": n} for n in slots],  # type: ignore[union-attr]
        outputs=[{"name": "out"}],
        arguments=[{"name": n, "default": n} for n in (*slots, "out")],  # type: ignore[misc]
        **spec,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def one_request(
    w: World, fid: str, files: dict | None, owners: dict | None = None, **steps: bool
) -> dict:
    """The body of `POST /v1/tasks` for do1, approving and invoking unless `steps` say not:
    each slot do1's unless `owners` names others; `files` assigned unless None."""
    owners = {"in": ["do1"], "out": ["do1"]} | (owners or {})
    named = {s: [w.ids[o] for o in who] for s, who in owners.items()}
    body = {
        "function_id": fid,
        "arguments": {s: s for s in owners},
        "inputs_ownership": [{"name": s, "owners": o} for s, o in named.items() if s != "out"],
        "outputs_ownership": [{"name": "out", "owners": named["out"]}],
        **({"approve": True, "invoke": True} | steps),
    }
    return body | ({"assign": files} if files is not None else {})


def tasks_of(w: World, who: str) -> int:
    return int(w.client.get("/v1/tasks", headers=w.auth[who]).json()["total"])


def usage(w: World, fid: str, owner: str = "fo") -> int:
    return int(w.client.get(f"/v1/functions/{fid}/usage", headers=w.auth[owner]).json()["usage"])


def test_a_task_the_caller_owns_whole_is_staged_in_one_request(world, settings):
    w = world
    fid = guest_function(w)
    files = {"inputs": {"in": w.input_file("do1")}, "outputs": {"out": w.output_file("do1")}}
    with signals_for(settings.database_url).listen(Channel.STAGED) as staged:
        r = w.post("do1", "/v1/tasks", one_request(w, fid, files))
        assert r.status_code == 201, r.text
        task = r.json()
        assert staged.wait(30) == [task["id"]]  # the workers hear of it at once
    assert task["state"] == "Staged" and task["stopped"] is None and task["waiting_for"] == {}
    assert task["approvals"] == {w.ids["do1"]: True} and task["invoked_at"] is not None
    assert task["assigned_inputs"] == files["inputs"] and usage(w, fid) == 1
    assert (
        w.client.get(f"/v1/tasks/{task['id']}", headers=w.auth["do1"]).json()["state"] == "Staged"
    )


def test_it_stops_where_other_owners_must_act_and_says_so(world):
    w = world
    fid = guest_function(w, inputs=["in", "weights"])
    files = {"inputs": {"in": w.input_file("do1")}, "outputs": {"out": w.output_file("do1")}}
    task = w.post("do1", "/v1/tasks", one_request(w, fid, files, {"weights": ["do2"]})).json()
    assert task["state"] == "Created" and task["waiting_for"] == {"inputs": ["weights"]}
    assert "weights" in task["stopped"] and "from their owners" in task["stopped"]
    assert task["approvals"] == {w.ids["do1"]: False, w.ids["do2"]: False}

    # do2's data and approval in one request; do1's approval and invocation in another.
    path = f"/v1/tasks/{task['id']}"
    weights = w.input_file("do2")
    assigned = w.post("do2", f"{path}/assign", {"inputs": {"weights": weights}, "approve": True})
    assert assigned.json()["state"] == "DataAssigned", assigned.text
    assert assigned.json()["approvals"] == {w.ids["do1"]: False, w.ids["do2"]: True}
    invoked = w.post("do1", f"{path}/approve", {"invoke": True}).json()
    assert invoked["state"] == "Staged" and invoked["stopped"] is None and usage(w, fid) == 1


def test_a_private_function_whose_owner_must_approve_is_not_invoked(world):
    w = world
    fid = guest_function(w, "fo2", public=False, allowlist=[w.ids["do1"]])
    files = {"inputs": {"in": w.input_file("do1")}, "outputs": {"out": w.output_file("do1")}}
    task = w.post("do1", "/v1/tasks", one_request(w, fid, files)).json()
    path = f"/v1/tasks/{task['id']}"
    assert task["state"] == "DataAssigned" and task["waiting_for"] == {"approvals": [w.ids["fo2"]]}
    assert task["approvals"] == {w.ids["do1"]: True, w.ids["fo2"]: False}
    assert "approval of" in task["stopped"] and usage(w, fid, "fo2") == 0
    again = w.post("do1", f"{path}/approve", {"invoke": True}).json()
    assert again["state"] == "DataAssigned" and "approval of" in again["stopped"]
    r = w.post("do1", f"{path}/invoke")
    assert r.status_code == 409 and "DataAssigned" in r.json()["detail"]
    # The function's owner may approve, not invoke: asking both is refused, nothing recorded.
    r = w.post("fo2", f"{path}/approve", {"invoke": True})
    assert r.status_code == 403 and r.json()["detail"] == "only the task's creator may invoke it"
    assert w.client.get(path, headers=w.auth["do1"]).json()["approvals"][w.ids["fo2"]] is False
    assert w.post("fo2", f"{path}/approve").json()["state"] == "Approved"
    assert usage(w, fid, "fo2") == 0  # approved is not invoked: only the creator invokes
    assert w.post("do1", f"{path}/invoke").json()["state"] == "Staged"
    assert usage(w, fid, "fo2") == 1


def refused_both_ways(w: World, fid: str, slot: str, file_id: str, status: int, words: str):
    """The same assignment, step by step and in one request: refused alike, and the one
    request leaves no task behind (the step-by-step form's task is the only new one)."""
    before = tasks_of(w, "do1")
    step = w.post("do1", "/v1/tasks", one_request(w, fid, None, approve=False, invoke=False))
    files = {"outputs" if slot == "out" else "inputs": {slot: file_id}}
    by_steps = w.post("do1", f"/v1/tasks/{step.json()['id']}/assign", files)
    at_once = w.post("do1", "/v1/tasks", one_request(w, fid, files))
    assert at_once.status_code == by_steps.status_code == status, (at_once.text, by_steps.text)
    assert at_once.json()["title"] == by_steps.json()["title"]
    assert at_once.json()["detail"] == by_steps.json()["detail"]
    assert words in at_once.json()["detail"]
    assert tasks_of(w, "do1") == before + 1


def test_someone_elses_file_is_refused_exactly_as_step_by_step(world):
    w = world
    fid = guest_function(w)
    refused_both_ways(w, fid, "in", w.input_file("eve"), 404, "no file")  # eve's
    shared = w.input_file("do1", "do2")
    refused_both_ways(w, fid, "in", shared, 409, "waits for its co-owners")  # not accepted
    assert w.post("do2", f"/v1/files/{shared}/accept").status_code == 200
    refused_both_ways(w, fid, "in", shared, 403, "owned by exactly")  # not do1's alone
    refused_both_ways(w, fid, "in", w.output_file("do1"), 422, "is an output")
    refused_both_ways(w, fid, "out", w.input_file("do1"), 422, "is an input")
    assert tasks_of(w, "eve") == 0 and usage(w, fid) == 0


def test_nothing_is_half_created_when_a_step_is_refused(world):
    w = world
    fid = guest_function(w, quota=1)
    files = {"inputs": {"in": w.input_file("do1")}, "outputs": {"out": w.output_file("do1")}}
    assert w.post("do1", "/v1/tasks", one_request(w, fid, files)).status_code == 201
    again = {"inputs": {"in": w.input_file("do1")}, "outputs": {"out": w.output_file("do1")}}
    r = w.post("do1", "/v1/tasks", one_request(w, fid, again))
    assert r.status_code == 429 and "allows 1" in r.json()["detail"]
    assert tasks_of(w, "do1") == 1 and usage(w, fid) == 1  # no task, no count
    # The same files and no invocation: the request that was refused left them unassigned.
    r = w.post("do1", "/v1/tasks", one_request(w, fid, again, invoke=False))
    assert r.status_code == 201 and r.json()["state"] == "Approved", r.text
    # A bad output after a good input: the input's assignment goes with the refusal.
    bad = {"inputs": {"in": w.input_file("do1")}, "outputs": {"out": "0" * 32}}
    assert w.post("do1", "/v1/tasks", one_request(w, fid, bad)).status_code == 404
    assert tasks_of(w, "do1") == 2


def test_an_idempotent_retry_does_not_invoke_twice(world):
    w = world
    fid = guest_function(w)
    files = {"inputs": {"in": w.input_file("do1")}, "outputs": {"out": w.output_file("do1")}}
    headers = {**w.auth["do1"], "Idempotency-Key": "one-request"}
    first = w.client.post("/v1/tasks", headers=headers, json=one_request(w, fid, files))
    again = w.client.post("/v1/tasks", headers=headers, json=one_request(w, fid, files))
    assert first.status_code == again.status_code == 201 and again.headers["Idempotent-Replay"]
    assert first.json() == again.json() and usage(w, fid) == 1 and tasks_of(w, "do1") == 1


def test_approve_and_assign_flags_only_ask_what_the_steps_allow(world):
    w = world
    fid = guest_function(w, inputs=["in", "weights"])
    body = one_request(w, fid, {}, {"weights": ["do2"]}, invoke=False)
    task = w.post("do1", "/v1/tasks", body).json()
    path = f"/v1/tasks/{task['id']}"
    assert task["state"] == "Created" and "be approved" in task["stopped"]
    # Approving with the data incomplete approves nothing (as `approve` alone is refused).
    r = w.post(
        "do2", f"{path}/assign", {"inputs": {"weights": w.input_file("do2")}, "approve": True}
    )
    assert r.json()["state"] == "Created" and not any(r.json()["approvals"].values())
    assert r.json()["waiting_for"] == {"inputs": ["in"], "outputs": ["out"]}
    assert "before it can be approved" in r.json()["stopped"]
    r = w.post("do1", f"{path}/approve", {"invoke": True})
    assert r.status_code == 409 and "Created" in r.json()["detail"]
    # do1 completes the data and approves; do2's earlier approval never counted.
    done = {"inputs": {"in": w.input_file("do1")}, "outputs": {"out": w.output_file("do1")}}
    r = w.post("do1", f"{path}/assign", {**done, "approve": True})
    assert r.json()["state"] == "DataAssigned"
    assert r.json()["approvals"] == {w.ids["do1"]: True, w.ids["do2"]: False}
