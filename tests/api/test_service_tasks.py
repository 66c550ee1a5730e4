"""Functions, data and tasks through the HTTP API: the scripted multi-party session, every
lifecycle path, and refusals with the right status for every wrong user."""

from __future__ import annotations

import json
import uuid

import pytest
from fastapi.testclient import TestClient
from service_helpers import HttpClient, Users, assert_problem
from teaclave_client.crypto import generate_key

from teaclave_infer.api import create_app
from teaclave_infer.api.problems import status_of
from teaclave_infer.domain.errors import Conflict
from teaclave_infer.domain.lifecycle import TRANSITIONS, Action, State, next_state

CMAC = "00112233445566778899aabbccddeeff"


class World(Users):
    """Two function owners, two data owners and "eve", a data owner taking part in nothing."""

    def __init__(self, client: TestClient | HttpClient) -> None:
        owners = {"fo": "FunctionOwner", "fo2": "FunctionOwner", "do1": "DataOwner"}
        super().__init__(client, owners | {"do2": "DataOwner", "eve": "DataOwner"})

    def register(self, who: str, wasm: bytes, manifest: bytes, **spec: object):
        return self.client.post(
            "/v1/functions",
            headers=self.auth[who],
            files={"wasm": ("f.wasm", wasm), "manifest": ("f.json", manifest)},
            data={"spec": json.dumps({"name": "mnist", **spec})},
        )

    def input_file(self, who: str, *owners: str) -> str:
        """An input of `who`'s (and `owners`'), its tag CMAC: never run, so never decrypted."""
        sdk = self.sdk(who)
        owner_ids = [self.ids[o] for o in owners]
        key = generate_key("aes-gcm-128")
        iv, cmac = bytes(12), bytes.fromhex(CMAC)
        return sdk.register_input_file(
            sdk.upload(b"cipher"), "aes-gcm-128", key, iv, cmac, owners=owner_ids
        ).id

    def output_file(self, who: str) -> str:
        return self.sdk(who).register_output_file().id

    def post(self, who: str, path: str, body: object = None):
        return self.client.post(path, headers=self.auth[who], json=body)


@pytest.fixture
def world(settings) -> World:
    return World(TestClient(create_app(settings)))


def private_mnist(world: World, mnist, **spec: object) -> str:
    r = world.register("fo", *mnist, allowlist=[world.ids["do1"]], **spec)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def task_body(world: World, function_id: str) -> dict:
    return {
        "function_id": function_id,
        "arguments": {"input_img": "input_img", "weights": "weights", "scores": "scores"},
        "inputs_ownership": [
            {"name": "input_img", "owners": [world.ids["do1"]]},
            {"name": "weights", "owners": [world.ids["do2"]]},
        ],
        "outputs_ownership": [{"name": "scores", "owners": [world.ids["do1"]]}],
    }


def test_the_scripted_multi_party_session(world, mnist):
    scripted_session(world, mnist)


def test_the_scripted_session_with_requests_on_a_live_service(live_service, mnist):
    scripted_session(World(HttpClient(live_service)), mnist)


def scripted_session(w: World, mnist: tuple[bytes, bytes]) -> None:
    """Admin creates a function owner and data owners; the function owner registers MNIST
    privately for do1; do1 and do2 register inputs; a task needing both is created, assigned,
    approved by all and invoked; every wrong user is refused on the way."""
    assert_problem(w.register("do1", *mnist), 403, "FunctionOwner")
    fid = private_mnist(w, mnist)
    function = w.client.get(f"/v1/functions/{fid}", headers=w.auth["do1"]).json()
    assert [s["name"] for s in function["inputs"]] == ["input_img", "weights"]
    assert w.client.get(f"/v1/functions/{fid}/payload", headers=w.auth["do1"]).content == mnist[0]
    assert_problem(w.client.get(f"/v1/functions/{fid}", headers=w.auth["eve"]), 404, "no function")
    assert_problem(w.client.get(f"/v1/functions/{fid}/payload", headers=w.auth["eve"]), 404, "")

    img, weights, scores = w.input_file("do1"), w.input_file("do2"), w.output_file("do1")
    assert_problem(w.client.get(f"/v1/files/{img}", headers=w.auth["do2"]), 404, "no file")

    assert_problem(w.post("eve", "/v1/tasks", task_body(w, fid)), 404, "no function")
    assert_problem(
        w.post("do1", "/v1/tasks", {**task_body(w, fid), "arguments": {}}), 422, "overwritable"
    )
    task = w.post("do1", "/v1/tasks", task_body(w, fid)).json()
    tid = task["id"]
    assert task["state"] == "Created"
    assert set(task["approvals"]) == {w.ids["do1"], w.ids["do2"], w.ids["fo"]}
    assert_problem(w.client.get(f"/v1/tasks/{tid}", headers=w.auth["eve"]), 404, "no task")

    assert_problem(
        w.post("do2", f"/v1/tasks/{tid}/assign", {"inputs": {"input_img": img}}), 404, "no file"
    )
    state = w.post(
        "do1",
        f"/v1/tasks/{tid}/assign",
        {"inputs": {"input_img": img}, "outputs": {"scores": scores}},
    ).json()["state"]
    assert state == "Created"  # the weights are still missing
    assert_problem(w.post("do1", f"/v1/tasks/{tid}/approve"), 409, "Created")
    state = w.post("do2", f"/v1/tasks/{tid}/assign", {"inputs": {"weights": weights}}).json()
    assert state["state"] == "DataAssigned"

    assert_problem(w.post("do1", f"/v1/tasks/{tid}/invoke"), 409, "DataAssigned")
    assert_problem(w.post("eve", f"/v1/tasks/{tid}/approve"), 404, "no task")
    for who in ("do1", "do2"):
        assert w.post(who, f"/v1/tasks/{tid}/approve").json()["state"] == "DataAssigned"
    assert w.post("fo", f"/v1/tasks/{tid}/approve").json()["state"] == "Approved"

    assert_problem(w.post("do2", f"/v1/tasks/{tid}/invoke"), 403, "creator")
    invoked = w.post("do1", f"/v1/tasks/{tid}/invoke").json()
    assert invoked["state"] == "Staged" and invoked["function_sha256"] == function["sha256"]
    assert_problem(w.post("do1", f"/v1/tasks/{tid}/invoke"), 409, "Staged")
    usage = w.client.get(f"/v1/functions/{fid}/usage", headers=w.auth["fo"]).json()
    assert usage["usage"] == 1 and usage["tasks_by_state"] == {"Staged": 1}
    assert_problem(w.client.get(f"/v1/functions/{fid}/usage", headers=w.auth["do1"]), 403, "owner")

    assert_problem(w.post("eve", f"/v1/tasks/{tid}/cancel"), 404, "no task")
    assert w.post("do2", f"/v1/tasks/{tid}/cancel").json()["state"] == "Canceled"
    assert_problem(w.post("do1", f"/v1/tasks/{tid}/cancel"), 409, "Canceled")


def test_wrong_owners_and_kinds_are_refused(world, mnist):
    w = world
    fid = private_mnist(w, mnist)
    tid = w.post("do1", "/v1/tasks", task_body(w, fid)).json()["id"]
    shared = w.input_file("do1", "do2")  # owned by do1 and do2: not what the task says
    assert w.post("do2", f"/v1/files/{shared}/accept").status_code == 200
    assert_problem(
        w.post("do1", f"/v1/tasks/{tid}/assign", {"inputs": {"input_img": shared}}),
        403,
        "owned by exactly",
    )
    out = w.output_file("do1")
    assert_problem(
        w.post("do1", f"/v1/tasks/{tid}/assign", {"inputs": {"input_img": out}}),
        422,
        "is an output",
    )


def test_a_single_participant_task_is_approved_at_once(world, mnist):
    w = world
    r = w.register(
        "fo",
        *mnist,
        public=True,
        inputs=[{"name": "input_img"}],
        outputs=[],
        arguments=[{"name": "input_img", "default": "input_img"}],
    )
    fid = r.json()["id"]
    body = {
        "function_id": fid,
        "arguments": {"input_img": "x"},
        "inputs_ownership": [{"name": "input_img", "owners": [w.ids["do1"]]}],
    }
    tid = w.post("do1", "/v1/tasks", body).json()["id"]
    task = w.post("do1", f"/v1/tasks/{tid}/assign", {"inputs": {"input_img": w.input_file("do1")}})
    assert task.json()["state"] == "Approved"
    assert task.json()["arguments"] == {"input_img": "x"}


def test_approving_an_approved_task_is_harmless(world, mnist):
    """The README's flow, assign then approve, on a task its one participant's assignment
    approved: 200 and nothing changed; a stranger still gets 404, and a cancelled task 409."""
    w = world
    fid = w.register(
        "fo",
        *mnist,
        public=True,
        inputs=[{"name": "input_img"}],
        outputs=[],
        arguments=[{"name": "input_img", "default": "input_img"}],
    ).json()["id"]
    body = {
        "function_id": fid,
        "arguments": {"input_img": "x"},
        "inputs_ownership": [{"name": "input_img", "owners": [w.ids["do1"]]}],
    }
    tid = w.post("do1", "/v1/tasks", body).json()["id"]
    assigned = w.post(
        "do1", f"/v1/tasks/{tid}/assign", {"inputs": {"input_img": w.input_file("do1")}}
    )
    assert assigned.json()["state"] == "Approved"
    before = w.client.get(f"/v1/tasks/{tid}", headers=w.auth["do1"]).json()
    for _ in range(2):
        approved = w.post("do1", f"/v1/tasks/{tid}/approve")
        assert approved.status_code == 200 and approved.json()["state"] == "Approved"
    assert w.client.get(f"/v1/tasks/{tid}", headers=w.auth["do1"]).json() == before
    assert_problem(w.post("eve", f"/v1/tasks/{tid}/approve"), 404, "no task")
    assert w.post("do1", f"/v1/tasks/{tid}/cancel").json()["state"] == "Canceled"
    assert_problem(w.post("do1", f"/v1/tasks/{tid}/approve"), 409, "Canceled")


def test_quota_is_checked_and_counted(world, mnist):
    w = world
    fid = private_mnist(w, mnist, quota=1)
    for expected in (200, 429):
        tid = w.post("do1", "/v1/tasks", task_body(w, fid)).json()["id"]
        w.post(
            "do1",
            f"/v1/tasks/{tid}/assign",
            {
                "inputs": {"input_img": w.input_file("do1")},
                "outputs": {"scores": w.output_file("do1")},
            },
        )
        w.post("do2", f"/v1/tasks/{tid}/assign", {"inputs": {"weights": w.input_file("do2")}})
        for who in ("do1", "do2", "fo"):
            w.post(who, f"/v1/tasks/{tid}/approve")
        response = w.post("do1", f"/v1/tasks/{tid}/invoke")
        assert response.status_code == expected, response.text
    assert_problem(response, 429, "allows 1")


def test_functions_are_validated_and_listed(world, mnist):
    w = world
    bad = w.register("fo", b"\0asm\x01\0\0\0garbage", mnist[1])
    assert_problem(bad, 422, "invalid module")
    assert_problem(w.register("fo", mnist[0], b"{not json"), 422, "manifest")
    fid = private_mnist(w, mnist)
    public = w.register("fo2", *mnist, public=True).json()["id"]
    mine = w.client.get("/v1/functions?scope=mine", headers=w.auth["fo"]).json()
    assert [f["id"] for f in mine["items"]] == [fid]
    allowed = {
        f["id"] for f in w.client.get("/v1/functions", headers=w.auth["do1"]).json()["items"]
    }
    assert allowed == {fid, public}
    eve = {f["id"] for f in w.client.get("/v1/functions", headers=w.auth["eve"]).json()["items"]}
    assert eve == {public}
    assert_problem(
        w.client.patch(f"/v1/functions/{fid}", headers=w.auth["fo2"], json={"public": True}),
        404,
        "no function",
    )
    w.client.patch(f"/v1/functions/{fid}", headers=w.auth["fo"], json={"disabled": True})
    assert_problem(w.post("do1", "/v1/tasks", task_body(w, fid)), 409, "disabled")
    assert w.client.delete(f"/v1/functions/{fid}", headers=w.auth["fo"]).status_code == 204
    assert_problem(w.client.get(f"/v1/functions/{fid}", headers=w.auth["fo"]), 404, "")


def test_idempotency_key_replays_a_create(world, mnist):
    w = world
    fid = private_mnist(w, mnist)
    headers = {**w.auth["do1"], "Idempotency-Key": "task-1"}
    first = w.client.post("/v1/tasks", headers=headers, json=task_body(w, fid))
    again = w.client.post("/v1/tasks", headers=headers, json=task_body(w, fid))
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"] and again.headers["Idempotent-Replay"] == "1"
    assert w.client.get("/v1/tasks", headers=w.auth["do1"]).json()["total"] == 1
    reused = w.client.post(
        "/v1/files/outputs",
        headers=headers,
        json={"id": uuid.uuid4().hex, "schema": "aes-gcm-128", "wrapped_key": "x"},
    )
    assert_problem(reused, 422, "POST /v1/tasks")


@pytest.mark.parametrize(
    ("state", "action"), [(s, a) for s in State for a in Action if (s, a) not in TRANSITIONS]
)
def test_every_illegal_transition_names_the_state(state, action):
    with pytest.raises(Conflict) as err:
        next_state(state.value, action)
    assert status_of(err.value) == 409 and state.value in err.value.detail
    assert err.value.extra == {"state": state.value}


def test_restart_keeps_functions_files_and_tasks(settings, mnist):
    w = World(TestClient(create_app(settings)))
    fid = private_mnist(w, mnist)
    img = w.input_file("do1")
    tid = w.post("do1", "/v1/tasks", task_body(w, fid)).json()["id"]
    w.post("do1", f"/v1/tasks/{tid}/assign", {"inputs": {"input_img": img}})
    restarted = TestClient(create_app(settings))
    task = restarted.get(f"/v1/tasks/{tid}", headers=w.auth["do1"]).json()
    assert task["assigned_inputs"] == {"input_img": img} and task["state"] == "Created"
    payload = restarted.get(f"/v1/functions/{fid}/payload", headers=w.auth["do1"])
    assert payload.content == mnist[0]


def test_a_user_who_created_tasks_cannot_be_deleted(world, mnist):
    w = world
    fid = private_mnist(w, mnist)
    tid = w.post("do1", "/v1/tasks", task_body(w, fid)).json()["id"]
    response = w.client.delete(f"/v1/users/{w.ids['do1']}", headers=w.admin)
    assert_problem(response, 409, "created tasks")
    assert w.client.get(f"/v1/tasks/{tid}", headers=w.auth["do1"]).status_code == 200
