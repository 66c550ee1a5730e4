"""Races on a task's state changes: many requests at once against a live service (its own
process, so they truly run side by side), on SQLite and on PostgreSQL. The quota is never
overrun, a task is staged once, concurrent assignments and approvals are all kept, a cancel is
never undone; and, in order: a re-assignment withdraws the approvals, and the owner of a private
function does not see the data owner's return value."""

from __future__ import annotations

import dataclasses
import os
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from cheap_kdf import ENTRY
from guests import BUF, ECHO, IN
from platform_helpers import Platform
from service_helpers import (
    ADMIN_PASSWORD,
    DATABASES,
    HttpClient,
    assert_problem,
    fresh_postgres,
    login,
    make_user,
)
from teaclave_client import Client, TeaclaveClientError
from teaclave_client.vocabulary import FailureKind, ResultKind

from teaclave_infer.local import local_service

OWNERS = ("do1", "do2", "do3", "do4")  # one input slot each
ROUNDS = 8


@dataclasses.dataclass
class Live:
    p: Platform
    base: str

    def post(self, who: str, path: str, body: object = None) -> requests.Response:
        return requests.post(self.base + path, headers=self.p.auth[who], json=body, timeout=120)

    def at_once(self, calls: list[tuple[str, str, object]]) -> list[requests.Response]:
        """POSTs every (who, path, body) from a thread of its own, all released together by a
        barrier once each thread's connection is open (so that the requests overlap)."""
        barrier = threading.Barrier(len(calls))

        def run(call: tuple[str, str, object]) -> requests.Response:
            who, path, body = call
            with requests.Session() as http:
                http.headers.update(self.p.auth[who])
                assert http.get(self.base + "/v1/health", timeout=120).ok  # connected
                barrier.wait()
                return http.post(self.base + path, json=body, timeout=120)

        with ThreadPoolExecutor(len(calls)) as pool:
            return list(pool.map(run, calls))


@pytest.fixture(scope="module", params=DATABASES)
def live(request, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """`teaclave-infer serve` (no workers: invoked tasks stay Staged) with users fo, do1..do4;
    one per module and database: each test makes its own functions, tasks and files."""
    db = None
    if request.param == "postgresql":
        db = fresh_postgres(os.environ["TEACLAVE_TEST_POSTGRES_URL"], "races")
    tmp_path = tmp_path_factory.mktemp("races")
    (tmp_path / "admin.txt").write_text(ADMIN_PASSWORD)
    with local_service(tmp_path / "live", tmp_path / "admin.txt", 0, db=db, entry=ENTRY) as base:
        p = Platform(HttpClient(base))
        for name in OWNERS[2:]:
            p.ids[name] = make_user(p.client, p.admin, name)
            p.auth[name] = login(p.client, name, f"{name}-password")
        yield Live(p, base)


def approved_task(p: Platform, function_id: str) -> str:
    """A task of do1's alone on a function without data: Approved once assigned."""
    r = p.client.post("/v1/tasks", headers=p.auth["do1"], json={"function_id": function_id})
    assert r.status_code == 201, r.text
    task_id = str(r.json()["id"])
    r = p.client.post(f"/v1/tasks/{task_id}/assign", headers=p.auth["do1"], json={})
    assert r.status_code == 200 and r.json()["state"] == "Approved", r.text
    return task_id


def usage(p: Platform, function_id: str) -> dict:
    return dict(p.client.get(f"/v1/functions/{function_id}/usage", headers=p.auth["fo"]).json())


@pytest.mark.slow  # many processes or requests: the full tier
def test_fifty_invocations_at_once_on_a_quota_of_five_count_exactly_five(live):
    p = live.p
    for _ in range(3):  # a lost update shows in most rounds, not in every one
        fid = p.register_guest("(i32.const 0)", inputs=(), outputs=(), quota=5)
        tasks = [approved_task(p, fid) for _ in range(50)]
        responses = live.at_once([("do1", f"/v1/tasks/{t}/invoke", None) for t in tasks])
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] * 5 + [429] * 45, [
            r.text for r in responses if r.status_code >= 500
        ]
        counted = usage(p, fid)
        assert counted["usage"] == 5 and counted["tasks_by_state"] == {"Staged": 5, "Approved": 45}


def test_a_task_invoked_by_ten_threads_at_once_is_staged_and_counted_once(live):
    p = live.p
    fid = p.register_guest("(i32.const 0)", inputs=(), outputs=())
    for _ in range(ROUNDS):
        task_id = approved_task(p, fid)
        responses = live.at_once([("do1", f"/v1/tasks/{task_id}/invoke", None)] * 10)
        assert sorted(r.status_code for r in responses) == [200] + [409] * 9
        assert all("Staged" in r.text for r in responses)
    assert usage(p, fid)["usage"] == ROUNDS


def data_task(live: Live, public: bool = True) -> tuple[str, dict[str, str]]:
    """A task on a function with one input per owner (and, if private, its owner approving
    too); returns it and each owner's input file, registered but not assigned."""
    p = live.p
    spec = {} if public else {"public": False, "allowlist": [p.ids["do1"]]}
    fid = p.register_guest("(i32.const 0)", inputs=OWNERS, outputs=(), **spec)
    body = {
        "function_id": fid,
        "arguments": {o: o for o in OWNERS},
        "inputs_ownership": [{"name": o, "owners": [p.ids[o]]} for o in OWNERS],
    }
    r = p.client.post("/v1/tasks", headers=p.auth["do1"], json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"]), {o: p.input(o, o.encode()) for o in OWNERS}


def test_owners_assigning_their_slots_at_once_all_keep_their_assignment(live):
    for _ in range(ROUNDS):
        task_id, files = data_task(live)
        responses = live.at_once(
            [(o, f"/v1/tasks/{task_id}/assign", {"inputs": {o: files[o]}}) for o in OWNERS]
        )
        assert [r.status_code for r in responses] == [200] * len(OWNERS)
        task = live.p.task(task_id)
        assert task["assigned_inputs"] == files and task["state"] == "DataAssigned"


def assigned_private_task(live: Live) -> tuple[str, dict[str, str]]:
    """A private function's task with every input assigned: the owners and fo must approve."""
    task_id, files = data_task(live, public=False)
    for o in OWNERS:
        r = live.post(o, f"/v1/tasks/{task_id}/assign", {"inputs": {o: files[o]}})
        assert r.status_code == 200, r.text
    return task_id, files


def test_participants_approving_at_once_end_approved_with_every_approval(live):
    approvers = ("fo", *OWNERS)
    for _ in range(ROUNDS):
        task_id, _ = assigned_private_task(live)
        responses = live.at_once([(w, f"/v1/tasks/{task_id}/approve", None) for w in approvers])
        assert [r.status_code for r in responses] == [200] * len(approvers)
        task = live.p.task(task_id)
        assert task["state"] == "Approved" and set(task["approvals"].values()) == {True}
        assert live.post("do1", f"/v1/tasks/{task_id}/invoke").status_code == 200


def test_a_reassignment_racing_approvals_leaves_approved_only_if_all_approved_after_it(live):
    """The state and the approvals agree whoever wins: Approved exactly when every approval
    stands, and an assignment that came last left none."""
    approvers = ("fo", *OWNERS)
    for _ in range(ROUNDS):
        task_id, files = assigned_private_task(live)
        again = {"inputs": {"do1": files["do1"]}}
        calls = [(w, f"/v1/tasks/{task_id}/approve", None) for w in approvers]
        responses = live.at_once([*calls, ("do1", f"/v1/tasks/{task_id}/assign", again)])
        assert {r.status_code for r in responses} <= {200, 409}, [r.text for r in responses]
        task = live.p.task(task_id)
        everyone = all(task["approvals"].values())
        assert (task["state"] == "Approved") == everyone, task
        if responses[-1].status_code == 409:  # refused: the task was Approved already
            assert everyone


def test_a_cancel_racing_approvals_is_never_undone(live):
    approvers = ("fo", *OWNERS)
    for _ in range(ROUNDS):
        task_id, _ = assigned_private_task(live)
        calls = [(w, f"/v1/tasks/{task_id}/approve", None) for w in approvers]
        responses = live.at_once([*calls, ("do2", f"/v1/tasks/{task_id}/cancel", None)])
        assert responses[-1].status_code == 200, responses[-1].text
        assert {r.status_code for r in responses} <= {200, 409}
        assert live.p.task(task_id)["state"] == "Canceled"


@pytest.fixture
def in_process(client) -> Platform:
    """The in-process service (TestClient, no workers), on each database."""
    return Platform(client)


def test_a_reassignment_withdraws_every_approval(in_process):
    p = in_process
    fid = p.register_guest(ECHO, public=False, allowlist=[p.ids["do1"]])
    r = p.client.post(
        "/v1/tasks",
        headers=p.auth["do1"],
        json={
            "function_id": fid,
            "arguments": {"in": "in", "out": "out"},
            "inputs_ownership": [{"name": "in", "owners": [p.ids["do2"]]}],
            "outputs_ownership": [{"name": "out", "owners": [p.ids["do1"]]}],
        },
    )
    task_id = r.json()["id"]

    def post(who: str, verb: str, body: object = None) -> dict:
        r = p.client.post(f"/v1/tasks/{task_id}/{verb}", headers=p.auth[who], json=body)
        assert r.status_code == 200, r.text
        return dict(r.json())

    post("do1", "assign", {"outputs": {"out": p.output("do1")}})
    post("do2", "assign", {"inputs": {"in": p.input("do2", b"first")}})
    for who in ("do1", "fo"):
        assert post(who, "approve")["state"] == "DataAssigned"
    task = post("do2", "assign", {"inputs": {"in": p.input("do2", b"second")}})
    assert task["state"] == "DataAssigned" and set(task["approvals"].values()) == {False}
    for who in ("do1", "fo"):
        post(who, "approve")
    assert post("do2", "approve")["state"] == "Approved"
    again = p.client.post(
        f"/v1/tasks/{task_id}/assign",
        headers=p.auth["do1"],
        json={"outputs": {"out": p.output("do1")}},
    )
    assert_problem(again, 409, "Approved")


# Fails with the first 4 bytes of input "in" as a negative status.
LEAK = f"""
  (local.set $h (call $open (i32.const {IN})))
  (drop (call $read (local.get $h) (i32.const {BUF}) (i32.const 4)))
  (i32.or (i32.load (i32.const {BUF})) (i32.const 0x80000000))
"""


def test_the_owner_of_a_private_function_does_not_see_the_return_value(live_service_with_workers):
    p = Platform(HttpClient(live_service_with_workers))
    fid = p.register_guest(ECHO, public=False, allowlist=[p.ids["do1"]])
    inputs = {"in": ("do1", p.input("do1", b"a prediction"))}
    task_id = p.submit(fid, inputs, {"out": ("do1", p.output("do1"))})
    mine = p.wait(task_id)
    assert mine["state"] == "Finished" and mine["result"]["return_value"] == len(b"a prediction")
    p.verified_receipt(mine)
    for seen in (
        p.task(task_id, "fo"),
        p.client.get("/v1/tasks", headers=p.auth["fo"]).json()["items"][0],
    ):
        assert seen["state"] == "Finished" and seen["result_kind"] == ResultKind.OK
        assert seen["result"]["kind"] == "ok"
        assert not {"return_value", "receipt", "outputs"} & set(seen["result"]), seen["result"]
    with Client(live_service_with_workers) as fo:
        fo.login("fo", "fo-password")
        with pytest.raises(TeaclaveClientError, match="only its creator and data owners"):
            fo.get_task_result(task_id)
    # A function written to leak: it fails with its input's first bytes as the status, which
    # its failure message spells out; its owner sees only that it failed and how.
    leak = p.register_guest(LEAK, public=False, allowlist=[p.ids["do1"]])
    secret = b"PIN=4711"
    task_id = p.submit(
        leak, {"in": ("do1", p.input("do1", secret))}, {"out": ("do1", p.output("do1"))}
    )
    failed = p.wait(task_id)
    assert failed["result"]["kind"] == FailureKind.FUNCTION_ERROR
    status = int.from_bytes(secret[:4], "little") | 1 << 31
    assert str(status - (1 << 32)) in failed["result"]["message"]  # the data owner sees it
    seen = p.task(task_id, "fo")
    assert seen["result"] == {"kind": FailureKind.FUNCTION_ERROR}, seen["result"]


def test_one_place_registered_by_four_users_at_once_goes_to_one(live):
    """Claiming a place is atomic: of four users registering outputs at one URL (each in
    another spelling) at the same moment, exactly one gets it."""
    p = live.p
    spellings = (
        "http://files.example/{n}",
        "http://FILES.example:80/{n}",
        "http://files.example./x/../{n}",
        "http://\uff46\uff49\uff4c\uff45\uff53.example/{n}",  # full-width "files"
    )
    for n in range(ROUNDS):
        calls = []
        for who, spelling in zip(OWNERS, spellings, strict=True):
            url = spelling.format(n=n)
            file_id = uuid.uuid4().hex
            key = p.wrap(bytes(16), file_id, "aes-gcm-128")
            body = {"id": file_id, "url": url, "schema": "aes-gcm-128", "wrapped_key": key}
            calls.append((who, "/v1/files/outputs", body))
        statuses = sorted(r.status_code for r in live.at_once(calls))
        assert statuses == [201, 409, 409, 409], statuses
