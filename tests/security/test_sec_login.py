"""Logins: concurrent ones through a served process (no KDF deadlock), throttling with an
injected clock, no user enumeration by timing, the password policy, the first admin's password,
legacy hashes, and an admin's password reset (which the user is told of and which withdraws
their approvals)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from argon2 import PasswordHasher, profiles
from fastapi.testclient import TestClient
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

from teaclave_infer.api import create_app
from teaclave_infer.api.routes.auth import login_throttle
from teaclave_infer.api.throttle import Backoff, LoginThrottle, ThrottleLimits
from teaclave_infer.domain import passwords
from teaclave_infer.domain.models import User
from teaclave_infer.domain.password_policy import weakness
from teaclave_infer.domain.passwords import KdfPool, PasswordKdf, password_kdf
from teaclave_infer.domain.setting_sources import definitions
from teaclave_infer.domain.settings import Settings
from teaclave_infer.errors import TeaclaveInferError
from teaclave_infer.local import serve_process

# Made once with the cryptography Argon2id the service used before (64 MiB, 3 passes, 4 lanes).
LEGACY_PASSWORD = "legacy-password-1"
LEGACY_HASH = "argon2id$AAECAwQFBgcICQoLDA0ODw==$7LiIUNZY9KCu2upjIlGf0zMBaeMbLWQ76ah5DcbdTKU="
HANG_GUARD_S = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingHasher(PasswordHasher):
    """The test's cheap Argon2id, counting its derivations."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=64, parallelism=4)
        self.hashes = self.verifies = 0

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self.hashes += 1
        return super().hash(password, salt=salt)

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self.verifies += 1
        return super().verify(hash, password)


def _login(client, username: str, password: str):
    return client.post("/v1/auth/login", json={"username": username, "password": password})


def _stored_hash(client: TestClient, username: str) -> str:
    with client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
        return str(session.query(User).filter_by(username=username).one().password_hash)


def _set_hash(client: TestClient, username: str, password_hash: str) -> None:
    with client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
        session.query(User).filter_by(username=username).one().password_hash = password_hash
        session.commit()


# --- 100 concurrent logins through `teaclave-infer serve`, real KDF costs -------------------


@contextmanager
def _served(tmp_path: Path, db: str | None) -> Iterator[tuple[str, subprocess.Popen]]:
    """`teaclave-infer serve` (no workers, the real KDF) and its process, stopped if it
    outlives the test."""
    (tmp_path / "admin.txt").write_text(ADMIN_PASSWORD)
    with serve_process(tmp_path / "data", tmp_path / "admin.txt", 0, HANG_GUARD_S, db) as served:
        yield served.url, served.process


@pytest.mark.slow  # many processes or requests: the full tier
@pytest.mark.parametrize("database", DATABASES)
def test_100_concurrent_logins_answer_and_the_service_stays_up(tmp_path, database):
    db = fresh_postgres(os.environ["TEACLAVE_TEST_POSTGRES_URL"]) if database != "sqlite" else None
    with _served(tmp_path, db) as (url, process):
        http = HttpClient(url)
        admin = login(http, "admin", ADMIN_PASSWORD)
        names = [f"user{k}" for k in range(10)]
        for name in names:
            make_user(http, admin, name)
        # 10 wrong passwords (one per account), 5 unknown users, 85 right passwords: fewer
        # failures than any counter lets through free, so that a login afterwards needs no wait.
        attempts = [(names[i], "not-the-password", "wrong") for i in range(10)]
        attempts += [(f"ghost{i}", "not-the-password", "wrong") for i in range(5)]
        attempts += [(names[i % 10], f"{names[i % 10]}-password", "right") for i in range(85)]
        start = threading.Barrier(len(attempts), timeout=HANG_GUARD_S)
        answers: list[tuple[str, int, str | None]] = []

        def attempt(username: str, password: str, kind: str) -> None:
            start.wait()
            r = requests.post(
                f"{url}/v1/auth/login",
                json={"username": username, "password": password},
                timeout=HANG_GUARD_S,
            )
            answers.append((kind, r.status_code, r.headers.get("Retry-After")))

        threads = [threading.Thread(target=attempt, args=a) for a in attempts]
        for t in threads:
            t.start()
        for t in threads:
            t.join(HANG_GUARD_S)
        assert len(answers) == 100, "some logins got no answer"
        for kind, status, retry_after in answers:
            assert status in ({200, 429} if kind == "right" else {401, 429}), (kind, status)
            assert (retry_after is not None) == (status == 429)
        assert any(status == 200 for _, status, _ in answers)
        assert http.get("/v1/health").ok
        login(http, "admin", ADMIN_PASSWORD)
        process.send_signal(signal.SIGTERM)
        assert process.wait(HANG_GUARD_S) is not None  # a hang guard: it answers SIGTERM


def test_derivations_with_several_lanes_at_once_do_not_deadlock():
    """Real costs (64 MiB, 3 passes, 4 lanes), four derivations at once."""
    real = PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY)
    kdf = PasswordKdf(real, KdfPool(threads=4))
    assert kdf.hasher.parallelism == 4
    futures = [kdf.pool.submit(kdf.hash_now, f"password-{i}") for i in range(4)]
    hashes = [f.result(timeout=HANG_GUARD_S) for f in futures]
    assert all(h.startswith("$argon2id$v=19$m=65536,t=3,p=4$") for h in hashes)


# --- throttling ----------------------------------------------------------------------------


def test_backoff_doubles_up_to_its_cap():
    backoff = Backoff(free=5, first_s=1.0, cap_s=300.0)
    waits = [backoff.wait(n) for n in range(16)]
    assert waits == [0.0] * 6 + [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0]
    assert backoff.wait(10_000) == 300.0


def test_a_pair_is_throttled_with_growing_waits_and_a_success_resets_it():
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    assert [throttle.attempt("alice", "10.0.0.1") for _ in range(6)] == [0.0] * 6
    assert throttle.attempt("alice", "10.0.0.1") == 1.0  # not counted: no try was made
    clock.now += 1.0
    assert throttle.attempt("alice", "10.0.0.1") == 0.0
    assert throttle.attempt("alice", "10.0.0.1") == 2.0
    clock.now += 2.0
    assert throttle.attempt("alice", "10.0.0.1") == 0.0
    assert throttle.attempt("alice", "10.0.0.1") == 4.0
    assert throttle.attempt("alice", "10.0.0.2") == 0.0  # another address: its own pair
    clock.now += 4.0
    assert throttle.attempt("alice", "10.0.0.1") == 0.0
    throttle.succeeded("alice", "10.0.0.1")
    assert [throttle.attempt("alice", "10.0.0.1") for _ in range(6)] == [0.0] * 6
    assert throttle.attempt("alice", "10.0.0.1") == 1.0


def test_one_address_spraying_accounts_is_throttled():
    throttle = LoginThrottle(clock=Clock())
    assert all(throttle.attempt(f"user{i}", "10.0.0.1") == 0.0 for i in range(21))
    assert throttle.attempt("someone-else", "10.0.0.1") == 1.0
    assert throttle.attempt("someone-else", "10.0.0.2") == 0.0


def test_many_addresses_throttle_an_account_but_not_from_where_its_owner_logs_in():
    throttle = LoginThrottle(clock=Clock())
    assert throttle.attempt("alice", "home") == 0.0
    throttle.succeeded("alice", "home")
    assert all(throttle.attempt("alice", f"10.0.{i}.1") == 0.0 for i in range(21))
    assert throttle.attempt("alice", "10.9.9.9") == 1.0  # a new address: the account's limit
    assert throttle.attempt("alice", "home") == 0.0  # the owner is not locked out
    throttle.succeeded("alice", "home")
    assert throttle.attempt("bob", "10.9.9.9") == 0.0


def test_counts_are_forgotten_and_the_tables_stay_bounded():
    clock = Clock()
    throttle = LoginThrottle(ThrottleLimits(max_entries=50), clock)
    for _ in range(7):
        throttle.attempt("alice", "10.0.0.1")
    assert throttle.attempt("alice", "10.0.0.1") > 0
    clock.now += 3601.0
    assert throttle.attempt("alice", "10.0.0.1") == 0.0
    for i in range(5000):  # an attacker spraying addresses and accounts
        throttle.attempt(f"user{i}", f"2001:db8::{i:x}")
        throttle.succeeded(f"user{i}", f"2001:db8::{i:x}")
    assert throttle.entries() <= 4 * 50


def test_login_answers_429_with_retry_after_per_pair(client, admin):
    make_user(client, admin, "dora")
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    client.app.dependency_overrides[login_throttle] = lambda: throttle
    for _ in range(6):
        assert_problem(_login(client, "dora", "not-dora-pass"), 401, "wrong password")
    throttled = _login(client, "dora", "dora-password")  # right, but too soon
    assert_problem(throttled, 429, "retry in 1 s")
    assert throttled.headers["Retry-After"] == "1"
    clock.now += 1.0
    assert_problem(_login(client, "dora", "not-dora-pass"), 401, "wrong password")
    assert _login(client, "dora", "not-dora-pass").headers["Retry-After"] == "2"
    # The same account from another address is not locked out by these failures.
    elsewhere = TestClient(client.app, client=("192.0.2.7", 50000))
    assert _login(elsewhere, "dora", "dora-password").status_code == 200
    clock.now += 2.0
    assert _login(client, "dora", "dora-password").status_code == 200  # resets the pair
    for _ in range(6):
        assert _login(client, "dora", "not-dora-pass").status_code == 401


def test_logins_beyond_what_the_kdf_pool_queues_get_429(client, admin):
    kdf = PasswordKdf(pool=KdfPool(threads=1, max_pending=1))
    client.app.dependency_overrides[password_kdf] = lambda: kdf
    gate = threading.Event()
    blocker = kdf.pool.submit(gate.wait, HANG_GUARD_S)
    busy = _login(client, "admin", ADMIN_PASSWORD)
    assert_problem(busy, 429, "too many logins at once")
    assert busy.headers["Retry-After"] == "1"
    gate.set()
    blocker.result(HANG_GUARD_S)
    assert _login(client, "admin", ADMIN_PASSWORD).status_code == 200


# --- no user enumeration by timing ---------------------------------------------------------


def test_an_unknown_user_costs_one_derivation_like_a_known_one(client, admin):
    hasher = CountingHasher()
    kdf = PasswordKdf(hasher)
    client.app.dependency_overrides[password_kdf] = lambda: kdf
    make_user(client, admin, "dora")
    calls = []
    for username, password in [
        ("nobody-here", "dora-password"),
        ("dora", "not-dora-pass"),
        ("dora", "dora-password"),
    ]:
        hasher.hashes = hasher.verifies = 0
        response = _login(client, username, password)
        calls.append((response.status_code, hasher.verifies, hasher.hashes))
    assert calls == [(401, 1, 0), (401, 1, 0), (200, 1, 0)]
    unknown, wrong = _login(client, "nobody-here", "x" * 8), _login(client, "dora", "x" * 8)
    assert unknown.json() == wrong.json()


# --- the password policy -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Password", "common"),
        ("PASSWORD", "common"),
        ("12345678", "common"),
        ("password1", "common"),
        ("  password  ", "common"),
        ("cAROL-wRITES", "user name"),
        ("        ", "empty"),
        ("short", "shorter than 8"),
    ],
)
def test_weak_passwords(password, reason):
    assert reason in (weakness(password, "Carol-Writes") or "")


def test_fine_passwords():
    assert weakness("Carol-Writes-2", "Carol-Writes") is None  # contains the name: fine
    assert weakness(ADMIN_PASSWORD, "admin") is None
    assert weakness("dora-password", "dora") is None


def test_creation_reset_and_change_refuse_weak_passwords(client, admin):
    for password in ("Password", "PASSWORD", "12345678", "carol-WRITES"):
        created = client.post(
            "/v1/users",
            headers=admin,
            json={"username": "Carol-Writes", "password": password, "role": "DataOwner"},
        )
        assert_problem(created, 422, "the password is")
    dora = make_user(client, admin, "doramarie")
    reset = client.post(f"/v1/users/{dora}/password", headers=admin, json={"password": "DoraMarie"})
    assert_problem(reset, 422, "user name")
    token = login(client, "doramarie", "doramarie-password")
    change = {"old_password": "doramarie-password", "new_password": "iloveyou"}
    assert_problem(client.post("/v1/auth/password", headers=token, json=change), 422, "common")
    same = {"old_password": "doramarie-password", "new_password": "doramarie-password"}
    assert_problem(client.post("/v1/auth/password", headers=token, json=same), 422, "differ")


# --- the first admin's password ------------------------------------------------------------


@pytest.mark.parametrize("content", ["", "  \n", "password\n", "admin\n"])
def test_a_weak_admin_password_file_is_refused_at_start(settings, content):
    assert settings.admin_password_file is not None
    settings.admin_password_file.write_text(content)
    with pytest.raises(TeaclaveInferError, match=r"the admin password in .* is"):
        create_app(settings)


def test_serve_refuses_an_empty_admin_password_file_in_one_line(tmp_path):
    (tmp_path / "admin.txt").write_text("   \n")
    cmd = [
        *(sys.executable, "-m", "teaclave_infer.cli", "serve", "--data-dir", str(tmp_path / "d")),
        *("--workers", "0", "--port", "0"),  # the kernel picks the port: never one in use
        *("--admin-password-file", str(tmp_path / "admin.txt")),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "admin password" in line and "is empty" in line


# --- stored hashes -------------------------------------------------------------------------


def test_a_legacy_hash_verifies_and_is_upgraded_to_phc(client, admin):
    make_user(client, admin, "dora")
    _set_hash(client, "dora", LEGACY_HASH)
    assert_problem(_login(client, "dora", "not-the-password"), 401, "wrong password")
    assert _stored_hash(client, "dora") == LEGACY_HASH
    assert _login(client, "dora", LEGACY_PASSWORD).status_code == 200
    upgraded = _stored_hash(client, "dora")
    assert upgraded.startswith("$argon2id$v=19$")
    assert PasswordHasher().verify(upgraded, LEGACY_PASSWORD)
    assert _login(client, "dora", LEGACY_PASSWORD).status_code == 200


def test_a_hash_below_todays_costs_is_rehashed_at_login(client, admin):
    make_user(client, admin, "dora")
    old = PasswordHasher(time_cost=1, memory_cost=32, parallelism=4).hash("dora-password")
    _set_hash(client, "dora", old)
    assert _login(client, "dora", "dora-password").status_code == 200
    today = passwords.PARAMETERS
    assert f"m={today.memory_cost},t={today.time_cost},p=" in _stored_hash(client, "dora")


def test_costs_are_not_a_setting():
    """No field, flag or TEACLAVE_* variable reaches the KDF's costs."""
    names = (
        set(Settings.model_fields)
        | {s.flag for s in definitions()}
        | {s.env for s in definitions()}
    )
    costly = {n for n in names if any(w in n.lower() for w in ("password", "kdf", "argon", "cost"))}
    assert costly == {
        "admin_password_file",
        "--admin-password-file",
        "TEACLAVE_ADMIN_PASSWORD_FILE",
    }


# --- an admin's password reset -------------------------------------------------------------


def _approved_task(p: Platform, fid: str) -> str:
    """A task of do1's on do2's input and do1's output, approved by all (fo too: the function
    is private), not invoked."""
    body = {
        "function_id": fid,
        "arguments": {"in": "in", "out": "out"},
        "inputs_ownership": [{"name": "in", "owners": [p.ids["do2"]]}],
        "outputs_ownership": [{"name": "out", "owners": [p.ids["do1"]]}],
    }
    created = p.client.post("/v1/tasks", headers=p.auth["do1"], json=body)
    assert created.status_code == 201, created.text
    task = created.json()["id"]
    assign = [
        ("do2", {"inputs": {"in": p.input("do2", b"secret")}}),
        ("do1", {"outputs": {"out": p.output("do1")}}),
    ]
    for who, files in assign:
        r = p.client.post(f"/v1/tasks/{task}/assign", headers=p.auth[who], json=files)
        assert r.status_code == 200, r.text
    for who in ("do2", "fo", "do1"):
        r = p.client.post(f"/v1/tasks/{task}/approve", headers=p.auth[who])
        assert r.status_code == 200, r.text
    assert p.task(task)["state"] == "Approved"
    return str(task)


def test_an_admin_reset_is_told_and_withdraws_the_users_approvals(client):
    p = Platform(client)
    fid = p.register_guest("(i32.const 0)", public=False, allowlist=[p.ids["do1"]])
    pending = _approved_task(p, fid)
    invoked = p.submit(
        fid, {"in": ("do2", p.input("do2", b"x"))}, {"out": ("do1", p.output("do1"))}
    )
    old_token = p.auth["do2"]

    reset = client.post(
        f"/v1/users/{p.ids['do2']}/password", headers=p.admin, json={"password": "given-by-admin"}
    )
    assert reset.status_code == 204
    assert_problem(client.get("/v1/users/me", headers=old_token), 401, "revoked")
    task = p.task(pending)
    assert task["state"] == "DataAssigned"
    assert task["approvals"] == {p.ids["do1"]: True, p.ids["fo"]: True, p.ids["do2"]: False}
    assert_problem(client.post(f"/v1/tasks/{pending}/invoke", headers=p.auth["do1"]), 409, "")
    assert p.task(invoked)["state"] == "Staged"  # invoked before the reset: left alone

    # Whoever logs in with the reset password (the admin too) is told, and can do nothing else.
    response = _login(client, "do2", "given-by-admin")
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["must_change_password"] is True
    assert "an admin reset your password" in body["notice"]
    reset_token = {"Authorization": f"Bearer {body['token']}"}
    me = client.get("/v1/users/me", headers=reset_token).json()
    assert me["must_change_password"] is True and me["password_reset_at"] is not None
    approve = client.post(f"/v1/tasks/{pending}/approve", headers=reset_token)
    assert_problem(approve, 403, "change it with POST /v1/auth/password")
    assert_problem(client.get(f"/v1/tasks/{pending}", headers=reset_token), 403, "reset")
    assert_problem(client.get("/v1/functions", headers=reset_token), 403, "reset")

    change = {"old_password": "given-by-admin", "new_password": "do2-own-choice"}
    assert client.post("/v1/auth/password", headers=reset_token, json=change).status_code == 204
    p.auth["do2"] = login(client, "do2", "do2-own-choice")
    me = client.get("/v1/users/me", headers=p.auth["do2"]).json()
    assert me["must_change_password"] is False and me["password_reset_at"] is not None
    assert client.post(f"/v1/tasks/{pending}/approve", headers=p.auth["do2"]).status_code == 200
    assert p.task(pending)["state"] == "Approved"
