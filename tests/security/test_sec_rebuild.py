"""The rebuilt platform attacked: the one-request task form, the long-poll, the worker blob
endpoints, the signals, the worker's weights cache and the bounded listings.

Each test states the property the platform must hold. The review found two holes, fixed since:
a long-poll went on answering a token revoked while it waited (logout, an admin's password
reset, the account deleted), and a signal listener on SQLite heard datagrams from any local
account (abstract-namespace sockets carry no permission check)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import queue
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from guests import guest
from service_helpers import assert_problem, builder_manifest, login
from sqlalchemy import update
from test_service_tasks import World
from test_task_waits import waiting_as as waiting

from teaclave_infer.api import create_app
from teaclave_infer.api.routes.worker_blobs import wall_clock
from teaclave_infer.api.waits import TaskWaits
from teaclave_infer.domain.keys import PlatformKeys
from teaclave_infer.domain.models import Task
from teaclave_infer.domain.signals import Channel, SocketSignals, ThreadSignals, signals_for
from teaclave_infer.domain.worker_access import sign_request
from teaclave_infer.worker.caches import BytesCache, weights_version

BOUND = 30  # seconds a thread may take before the test fails: a hang guard, never waited out
NOTHING = guest("(i32.const 0)")
SECRET_RESULT = {"kind": "ok", "return_value": 7, "outputs": {}, "receipt": {"payload": {}}}


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def served(settings) -> Iterator[tuple[World, TaskWaits]]:
    """The app with its lifespan (the waits listen); only a signal or a change answers a wait."""
    with TestClient(create_app(settings)) as client:
        waits = client.app.state.platform.waits
        waits.clock, waits.recheck_s = (lambda: 0.0), 3600.0
        yield World(client), waits


def function(w: World, owner: str = "fo", *, public: bool = True, **spec: object) -> str:
    r = w.register(
        owner,
        NOTHING,
        builder_manifest(),
        public=public,
        inputs=[{"name": "in"}],
        outputs=[{"name": "out"}],
        arguments=[{"name": "in", "default": "in"}, {"name": "out", "default": "out"}],
        **spec,
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def body(w: World, fid: str, in_owners: list[str], out_owners: list[str], **more: object) -> dict:
    return {
        "function_id": fid,
        "arguments": {"in": "in", "out": "out"},
        "inputs_ownership": [{"name": "in", "owners": [w.ids[o] for o in in_owners]}],
        "outputs_ownership": [{"name": "out", "owners": [w.ids[o] for o in out_owners]}],
        **more,
    }


def created_task(w: World) -> str:
    """A task of do1's whose input do1 and do2 own together: both take part."""
    r = w.post("do1", "/v1/tasks", body(w, function(w), ["do1", "do2"], ["do1"]))
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def tasks_total(w: World, who: str) -> int:
    return int(w.client.get("/v1/tasks", headers=w.auth[who]).json()["total"])


def finished_elsewhere(settings, w: World, task_id: str) -> None:
    """What a worker process does when a task ends: its row (with a result), then ENDED."""
    with w.client.app.state.platform.sessions() as session:
        session.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(state="Finished", result=SECRET_RESULT, result_kind="ok")
        )
        session.commit()
    signals_for(settings.database_url).publish(Channel.ENDED, task_id)


# --- the long-poll ----------------------------------------------------------------------------


def _logout(w: World, who: str, token: dict[str, str]) -> None:
    assert w.client.post("/v1/auth/logout", headers=token).status_code == 204


def _reset(w: World, who: str, token: dict[str, str]) -> None:
    r = w.client.post(
        f"/v1/users/{w.ids[who]}/password",
        headers=w.admin,
        json={"password": "a-fresh-Password-42!"},
    )
    assert r.status_code == 204, r.text


@pytest.mark.parametrize("revoke", [_logout, _reset], ids=["logout", "admin-reset"])
def test_a_long_poll_answers_nothing_once_its_token_is_revoked(served, settings, revoke):
    """A wait (up to 60 s) that outlives a logout or an admin's password reset must not hand
    the task, with its return value and receipt, to the revoked token: each re-read checks the
    token again (api/routes/tasks.py, `again`)."""
    w, waits = served
    task_id = created_task(w)
    token = login(w.client, "do2", "do2-password")  # a token of do2's own, then revoked
    with waiting(w, waits, [(token, f"/v1/tasks/{task_id}?wait=60")]) as (answer,):
        revoke(w, "do2", token)
        assert w.client.get(f"/v1/tasks/{task_id}", headers=token).status_code == 401
        finished_elsewhere(settings, w, task_id)
        r = answer.result(BOUND)
    assert r.status_code == 401, (r.status_code, r.text)
    assert "return_value" not in r.text


def test_a_long_poll_of_a_deleted_user_answers_nothing(served, settings):
    """An account the admin deleted while its wait was open gets nothing (the participant row
    outlives the user: the token's check is what stops it)."""
    w, waits = served
    task_id = created_task(w)
    with waiting(w, waits, [(w.auth["do2"], f"/v1/tasks/{task_id}?wait=60")]) as (answer,):
        assert w.client.delete(f"/v1/users/{w.ids['do2']}", headers=w.admin).status_code == 204
        finished_elsewhere(settings, w, task_id)
        r = answer.result(BOUND)
    assert r.status_code in (401, 404), r.text
    assert "return_value" not in r.text


def test_a_non_participant_learns_nothing_whatever_the_spelling(served, settings):
    w, waits = served
    task_id = created_task(w)
    finished_elsewhere(settings, w, task_id)
    unknown = "0" * 32
    for query in ("", "?wait=60", "?wait=60&until=Created", "?wait=0.000001&until=Finished"):
        for tid in (task_id, unknown, task_id.upper()):
            r = w.client.get(f"/v1/tasks/{tid}{query}", headers=w.auth["eve"])
            assert_problem(r, 404, "no task")
            assert r.json()["detail"] == f"no task {tid}"
    # A malformed `until` or `wait` is refused before the task is looked at: the same 422 for a
    # task that exists and one that does not.
    for bad in ("until=finished", "until=Bogus", "wait=nan", "wait=inf", "wait=1e9", "wait=-0.5"):
        codes = {
            w.client.get(f"/v1/tasks/{tid}?{bad}", headers=w.auth["eve"]).status_code
            for tid in (task_id, unknown)
        }
        assert codes == {422}, (bad, codes)
    too_many = "&".join(["until=Created"] * 50)
    assert (
        w.client.get(f"/v1/tasks/{task_id}?wait=1&{too_many}", headers=w.auth["do1"]).status_code
        == 422
    )
    assert waits.waiting() == 0


def test_the_private_function_owner_waits_and_still_sees_only_how_it_ended(served, settings):
    w, waits = served
    fid = function(w, "fo2", public=False, allowlist=[w.ids["do1"]])
    r = w.post("do1", "/v1/tasks", body(w, fid, ["do1"], ["do1"]))
    task_id = r.json()["id"]
    with waiting(w, waits, [(w.auth["fo2"], f"/v1/tasks/{task_id}?wait=60")]) as (answer,):
        finished_elsewhere(settings, w, task_id)
        seen = answer.result(BOUND)
    assert seen.status_code == 200 and seen.json()["state"] == "Finished"
    assert seen.json()["result"] == {"kind": "ok"}


def test_many_waits_hold_no_database_connection(served):
    """Every user at its bound: the waits hold no pooled connection, and the API still
    answers everyone else at once."""
    w, waits = served
    task_id = created_task(w)
    path = f"/v1/tasks/{task_id}?wait=60"
    per_user = waits.max_per_user
    calls = [(w.auth[who], path) for who in ("do1", "do2") for _ in range(per_user)]
    engine = w.client.app.state.platform.sessions.kw["bind"]
    with waiting(w, waits, calls) as answers:
        checked_out = getattr(engine.pool, "checkedout", lambda: 0)()
        assert checked_out <= 1, checked_out  # the listener's is its own, not the pool's
        assert_problem(w.client.get(path, headers=w.auth["do1"]), 429, "per user")
        assert w.client.get("/v1/tasks", headers=w.auth["eve"]).status_code == 200
        assert w.post("do1", f"/v1/tasks/{task_id}/cancel").status_code == 200
        states = {a.result(BOUND).json()["state"] for a in answers}
    assert states == {"Canceled"} and waits.waiting() == 0


# --- signals: a hint, never the truth ---------------------------------------------------------


def test_a_spoofed_end_signal_only_makes_a_wait_read_the_task_again():
    """Whatever a signal says, a wait answers only what the database holds."""
    signals = ThreadSignals()
    waits = TaskWaits(signals, recheck_s=3600.0, clock=lambda: 0.0)
    reads: queue.Queue[str] = queue.Queue()
    state = {"now": "Running"}

    def read() -> str:
        reads.put(state["now"])
        return state["now"]

    async def one_wait() -> str:
        return await waits.wait("u", "t", 60, read, lambda s: s == "Finished")

    with waits.running(), ThreadPoolExecutor(1) as pool:
        answer = pool.submit(asyncio.run, one_wait())
        assert reads.get(timeout=BOUND) == "Running"
        for spoof in ("t", "t" * 300, "\udcff", "", "stop:t", "t\nFinished"):
            signals.publish(Channel.ENDED, spoof)
        waits.notify("t")
        assert reads.get(timeout=BOUND) == "Running"  # read again, and nothing else
        assert not answer.done()
        state["now"] = "Finished"
        waits.notify("t")
        assert answer.result(BOUND) == "Finished"
    assert waits.waiting() == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to send as another local user")
def test_a_local_user_of_another_account_cannot_signal_the_platform(tmp_path: Path):
    """The listeners' sockets live in the abstract namespace, which has no permissions, and
    their names are listed in /proc/net/unix for everyone: another local account can send to
    them, but a listener drops what the kernel says another account sent (SO_PASSCRED), so it
    cannot make workers query the database or waits read again at will."""
    signals = SocketSignals(tmp_path / "teaclave.db.signals")
    os.chmod(tmp_path, 0o755)
    with signals.listen(Channel.ENDED) as listener:
        names = [
            line.split()[-1]
            for line in Path("/proc/net/unix").read_text().splitlines()
            if "@teaclave-signal-" in line
        ]
        assert names  # what any account can read
        pid = os.fork()
        if pid == 0:  # the child: another account ("nobody"), sending to every name it saw
            try:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                    for name in names:
                        with contextlib.suppress(OSError):
                            sock.sendto(b"spoofed", b"\0" + name[1:].encode())
            finally:
                os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
        signals.publish(Channel.ENDED, "legit")
        heard = listener.wait(BOUND)
    assert heard == ["legit"], heard


# --- the one-request form ---------------------------------------------------------------------


def test_one_request_never_approves_for_a_co_owner(served):
    """do1 names do2 co-owner of the input and assigns their shared file (accepted by do2):
    do1's approve and invoke count for do1 alone; nothing is staged or counted."""
    w, _ = served
    fid = function(w)
    shared = w.input_file("do1", "do2")
    assert w.post("do2", f"/v1/files/{shared}/accept").status_code == 200
    out = w.output_file("do1")
    r = w.post(
        "do1",
        "/v1/tasks",
        body(
            w,
            fid,
            ["do1", "do2"],
            ["do1"],
            assign={"inputs": {"in": shared}, "outputs": {"out": out}},
            approve=True,
            invoke=True,
        ),
    )
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["state"] == "DataAssigned" and task["invoked_at"] is None
    assert task["approvals"] == {w.ids["do1"]: True, w.ids["do2"]: False}
    usage = w.client.get(f"/v1/functions/{fid}/usage", headers=w.auth["fo"]).json()
    assert usage["usage"] == 0


def test_one_request_cannot_assign_into_another_users_slot_or_name_a_stranger(served):
    w, _ = served
    fid = function(w)
    before = tasks_total(w, "do1"), tasks_total(w, "do2")
    # do1 owns the file, but the task says do2 owns the slot: refused, nothing created.
    mine = w.input_file("do1")
    r = w.post(
        "do1",
        "/v1/tasks",
        body(w, fid, ["do2"], ["do1"], assign={"inputs": {"in": mine}}, approve=True, invoke=True),
    )
    assert r.status_code == 403, r.text
    # do2's output file, assigned by do1 to an output do1 named do2 owner of: a 404.
    theirs = w.output_file("do2")
    r = w.post(
        "do1",
        "/v1/tasks",
        body(w, fid, ["do1"], ["do2"], assign={"outputs": {"out": theirs}}, invoke=True),
    )
    assert r.status_code == 404, r.text
    # An owner that is no user, in another spelling of a real id.
    spec = body(w, fid, ["do1"], ["do1"], invoke=True)
    spec["inputs_ownership"][0]["owners"] = [w.ids["do2"].upper()]
    assert w.post("do1", "/v1/tasks", spec).status_code == 422
    assert (tasks_total(w, "do1"), tasks_total(w, "do2")) == before


def test_approve_with_invoke_is_the_creators_alone_in_one_request_too(served):
    w, _ = served
    fid = function(w)
    r = w.post(
        "do1",
        "/v1/tasks",
        body(w, fid, ["do2"], ["do1"], assign={"outputs": {"out": w.output_file("do1")}}),
    )
    task_id = r.json()["id"]
    a = w.post("do2", f"/v1/tasks/{task_id}/assign", {"inputs": {"in": w.input_file("do2")}})
    assert a.json()["state"] == "DataAssigned", a.text
    assert w.post("do1", f"/v1/tasks/{task_id}/approve").status_code == 200
    r = w.post("do2", f"/v1/tasks/{task_id}/approve", {"invoke": True})
    assert r.status_code == 403
    task = w.client.get(f"/v1/tasks/{task_id}", headers=w.auth["do1"]).json()
    assert task["state"] == "DataAssigned" and task["approvals"][w.ids["do2"]] is False


# --- the worker blob endpoints ----------------------------------------------------------------

NOW = 1_900_000_000.0
BLOBS = "/v1/worker/blobs"


@pytest.fixture
def worker_api(settings) -> tuple[TestClient, PlatformKeys]:
    small = settings.model_copy(update={"max_upload_bytes": 4096})
    app = create_app(small)
    app.dependency_overrides[wall_clock] = lambda: lambda: NOW
    return TestClient(app), PlatformKeys.load_or_create(small.keys_dir, create=False)


def signed(keys: PlatformKeys, method: str, target: str, data: bytes = b"") -> dict[str, str]:
    digest = hashlib.sha256(data).hexdigest()
    return {"Authorization": sign_request(keys.signing, method, target, digest, NOW)}


def test_a_read_or_delete_credential_is_good_once(worker_api):
    api, keys = worker_api
    data = b"ciphertext"
    r = api.post(BLOBS, headers=signed(keys, "POST", BLOBS, data), content=data)
    assert r.status_code == 201, r.text
    target = f"{BLOBS}/{r.json()['id']}"
    read = signed(keys, "GET", target)
    assert api.get(target, headers=read).status_code == 200
    assert_problem(api.get(target, headers=read), 401, "used already")
    gone = signed(keys, "DELETE", target)
    assert api.delete(target, headers=gone).status_code == 204
    assert_problem(api.delete(target, headers=gone), 401, "used already")


def test_a_worker_credential_opens_no_user_route_and_a_user_token_no_worker_route(worker_api):
    api, keys = worker_api
    admin = login(api, "admin", "admin-password-1")
    for path in ("/v1/tasks", "/v1/users/me", "/v1/functions"):
        assert api.get(path, headers=signed(keys, "GET", path)).status_code == 401
    r = api.post(
        "/v1/blobs", headers={**admin, "Content-Type": "application/octet-stream"}, content=b"x"
    )
    blob = r.json()["url"].removeprefix("blob:")
    for method in ("GET", "DELETE"):
        r = api.request(method, f"{BLOBS}/{blob}", headers=admin)
        assert_problem(r, 401, "no worker credential")
    # A user's upload cannot be deleted even with a valid credential.
    target = f"{BLOBS}/{blob}"
    assert api.delete(target, headers=signed(keys, "DELETE", target)).status_code == 409


# --- the weights cache ------------------------------------------------------------------------


def test_the_weights_cache_never_serves_an_entry_under_another_version():
    cache = BytesCache(1 << 20)
    old = weights_version("aa" * 16, "00" * 12, "aes-gcm-128", "d3JhcA==", "w")
    cache.put("w", b"owner's weights", old)
    for other in (
        weights_version("bb" * 16, "00" * 12, "aes-gcm-128", "d3JhcA==", "w"),
        weights_version("aa" * 16, "01" * 12, "aes-gcm-128", "d3JhcA==", "w"),
        weights_version("aa" * 16, "00" * 12, "aes-gcm-256", "d3JhcA==", "w"),
        weights_version("aa" * 16, "00" * 12, "aes-gcm-128", "b3RoZXI=", "w"),
        weights_version("aa" * 16, "00" * 12, "aes-gcm-128", "d3JhcA==", "x"),
        weights_version("AA" * 16, "00" * 12, "aes-gcm-128", "d3JhcA==", "w") + "x",
    ):
        assert cache.get("w", other) is None
        cache.put("w", b"owner's weights", old)
    assert cache.get("x", old) is None  # another file's id, the same version
    assert cache.get("w", old) == b"owner's weights"


# --- listings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/tasks?limit=501",
        "/v1/tasks?limit=0",
        "/v1/tasks?offset=-1",
        f"/v1/tasks?offset={2**31}",
        "/v1/functions?limit=100000",
        "/v1/users?limit=501",
        "/v1/audit?limit=501",
    ],
)
def test_every_listing_is_bounded(served, path):
    w, _ = served
    who = w.admin if path.startswith(("/v1/users", "/v1/audit")) else w.auth["do1"]
    assert w.client.get(path, headers=who).status_code == 422
