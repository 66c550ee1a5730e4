"""The service's identities, tokens, audit log and storage, through the real HTTP stack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from service_helpers import ADMIN_PASSWORD, assert_problem, login, make_user

from teaclave_infer.api import create_app
from teaclave_infer.api.security import issue_token, read_token
from teaclave_infer.domain.settings import Settings


def test_first_start_creates_the_admin_once(client, settings, admin):
    me = client.get("/v1/users/me", headers=admin).json()
    assert me["role"] == "PlatformAdmin" and me["username"] == "admin"
    again = TestClient(create_app(settings))
    assert again.get("/v1/users", headers=admin).json()["total"] == 1


def test_without_a_password_file_a_one_time_password_is_printed(tmp_path, capsys):
    app = create_app(Settings(data_dir=tmp_path))
    printed = capsys.readouterr().out
    password = printed.strip().rsplit(" ", 1)[-1]
    assert "one-time password" in printed
    login(TestClient(app), "admin", password)
    create_app(Settings(data_dir=tmp_path))
    assert capsys.readouterr().out == ""  # printed once only


def test_wrong_password_and_missing_or_bad_tokens(client, settings, admin):
    bad = client.post("/v1/auth/login", json={"username": "admin", "password": "nope-nope"})
    assert_problem(bad, 401, "wrong password")
    assert_problem(client.get("/v1/users/me"), 401, "Authorization: Bearer")
    garbage = {"Authorization": "Bearer not.a.token"}
    assert_problem(client.get("/v1/users/me", headers=garbage), 401, "forged or expired")
    forged, _ = issue_token(b"another secret" * 3, "someone", 0, 60)
    assert_problem(
        client.get("/v1/users/me", headers={"Authorization": f"Bearer {forged}"}),
        401,
        "forged or expired",
    )
    me = client.get("/v1/users/me", headers=admin).json()
    expired, _ = issue_token(settings.secret_file.read_bytes(), me["id"], 0, -1)
    assert_problem(
        client.get("/v1/users/me", headers={"Authorization": f"Bearer {expired}"}), 401, "expired"
    )


def test_logout_revokes_that_token_only(client, admin):
    other = login(client, "admin", ADMIN_PASSWORD)
    assert client.post("/v1/auth/logout", headers=admin).status_code == 204
    assert_problem(client.get("/v1/users/me", headers=admin), 401, "revoked")
    assert client.get("/v1/users/me", headers=other).status_code == 200


def test_password_change_revokes_every_token(client, admin):
    make_user(client, admin, "dora")
    first, second = login(client, "dora", "dora-password"), login(client, "dora", "dora-password")
    wrong = client.post(
        "/v1/auth/password",
        headers=first,
        json={"old_password": "nope-nope", "new_password": "dora-new-pass"},
    )
    assert_problem(wrong, 403, "old_password")
    ok = client.post(
        "/v1/auth/password",
        headers=first,
        json={"old_password": "dora-password", "new_password": "dora-new-pass"},
    )
    assert ok.status_code == 204
    for token in (first, second):
        assert_problem(client.get("/v1/users/me", headers=token), 401, "revoked")
    login(client, "dora", "dora-new-pass")


def test_admin_manages_users(client, admin):
    dora = make_user(client, admin, "dora")
    assert_problem(
        client.post(
            "/v1/users",
            headers=admin,
            json={"username": "dora", "password": "whatever-1", "role": "DataOwner"},
        ),
        409,
        "taken",
    )
    for n in range(3):
        make_user(client, admin, f"user{n}", "FunctionOwner")
    page = client.get("/v1/users?offset=1&limit=2", headers=admin).json()
    assert page["total"] == 5 and len(page["items"]) == 2 and page["offset"] == 1
    token = login(client, "dora", "dora-password")
    changed = client.patch(
        f"/v1/users/{dora}", headers=admin, json={"role": "FunctionOwner", "attribute": "team=x"}
    )
    assert changed.json()["role"] == "FunctionOwner" and changed.json()["attribute"] == "team=x"
    assert_problem(client.get("/v1/users/me", headers=token), 401, "revoked")
    reset = client.post(
        f"/v1/users/{dora}/password", headers=admin, json={"password": "reset-pw-1"}
    )
    assert reset.status_code == 204
    token = login(client, "dora", "reset-pw-1")
    assert client.delete(f"/v1/users/{dora}", headers=admin).status_code == 204
    assert_problem(client.get("/v1/users/me", headers=token), 401, "revoked")
    assert_problem(client.get(f"/v1/users/{dora}", headers=admin), 404, "no user")
    me = client.get("/v1/users/me", headers=admin).json()["id"]
    assert_problem(client.delete(f"/v1/users/{me}", headers=admin), 409, "own account")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/v1/users"),
        ("post", "/v1/users"),
        ("get", "/v1/users/x"),
        ("patch", "/v1/users/x"),
        ("delete", "/v1/users/x"),
        ("post", "/v1/users/x/password"),
        ("get", "/v1/audit"),
    ],
)
def test_admin_endpoints_refuse_others(client, admin, method, path):
    make_user(client, admin, "fred", "FunctionOwner")
    fred = login(client, "fred", "fred-password")
    body = {"json": {}} if method in ("post", "patch") else {}
    assert_problem(getattr(client, method)(path, headers=fred, **body), 403, "PlatformAdmin")
    assert_problem(getattr(client, method)(path, **body), 401, "Bearer")


def test_bad_bodies_are_problems(client, admin, settings):
    short = client.post(
        "/v1/users", headers=admin, json={"username": "x", "password": "short", "role": "DataOwner"}
    )
    assert_problem(short, 422, "password")
    role = client.post(
        "/v1/users",
        headers=admin,
        json={"username": "x", "password": "long-enough", "role": "King"},
    )
    assert_problem(role, 422, "role")
    malformed = client.post(
        "/v1/users", headers={**admin, "Content-Type": "application/json"}, content=b"{not json"
    )
    assert_problem(malformed, 422, "JSON")
    huge = client.post(
        "/v1/auth/login",
        content=b"x" * (settings.max_body_bytes + 1),
        headers={"Content-Type": "application/json"},
    )
    assert_problem(huge, 413, "bytes")


def test_every_state_changing_request_is_audited(client, admin):
    dora = make_user(client, admin, "dora")
    dora_token = login(client, "dora", "dora-password")
    client.post("/v1/users", headers=dora_token, json={})  # refused: audited too
    client.delete(f"/v1/users/{dora}", headers=admin)
    events = client.get("/v1/audit?limit=500", headers=admin).json()["items"]
    seen = [(e["username"], e["action"], e["status"]) for e in events]
    assert ("admin", "POST /v1/users", 201) in seen
    assert ("dora", "POST /v1/users", 403) in seen
    assert ("admin", "DELETE /v1/users/{user_id}", 204) in seen
    deleted = [e for e in events if e["action"] == "DELETE /v1/users/{user_id}"]
    assert deleted[0]["targets"] == {"user_id": dora}
    only = client.get("/v1/audit?action=POST%20/v1/auth/login&status=200", headers=admin).json()
    assert only["total"] >= 2 and all(e["status"] == 200 for e in only["items"])
    assert client.get("/v1/users", headers=admin).status_code == 200
    assert not any(e["action"].startswith("GET") for e in events)


def test_restart_loses_nothing(settings):
    first = TestClient(create_app(settings))
    admin = login(first, "admin", ADMIN_PASSWORD)
    dora = make_user(first, admin, "dora")
    second = TestClient(create_app(settings))  # same data dir (and database)
    assert second.get(f"/v1/users/{dora}", headers=admin).status_code == 200  # token still good
    assert second.get("/v1/audit", headers=admin).json()["total"] >= 2


def test_secret_is_owner_only(client, settings):
    assert settings.secret_file.stat().st_mode & 0o777 == 0o600


def test_openapi_is_published(client):
    spec = client.get("/openapi.json").json()
    assert "/v1/users" in spec["paths"] and "/v1/auth/login" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_tokens_expire(tmp_path):
    """A token lives token_ttl_s from its login, and not a second more (no clock waited out:
    the expired token is signed already expired)."""
    settings = Settings(data_dir=tmp_path, token_ttl_s=600, admin_password_file=None)
    app = create_app(settings)
    # the one-time password is printed; read it back by resetting through the database instead
    from teaclave_infer.domain.models import User
    from teaclave_infer.domain.passwords import hash_password

    with app.state.platform.sessions() as session:
        admin = session.query(User).one()
        admin.password_hash = hash_password("known-password")
        admin_id, epoch = admin.id, admin.token_epoch
        session.commit()
    client = TestClient(app)
    before = datetime.now(UTC)
    token = login(client, "admin", "known-password")
    after = datetime.now(UTC)
    assert client.get("/v1/users/me", headers=token).status_code == 200
    claims = read_token(app.state.platform.secret, token["Authorization"].split()[1])
    assert claims is not None
    assert before + timedelta(seconds=599) <= claims.expires_at <= after + timedelta(seconds=600)
    expired, _ = issue_token(app.state.platform.secret, admin_id, epoch, ttl_s=-1)
    gone = client.get("/v1/users/me", headers={"Authorization": f"Bearer {expired}"})
    assert_problem(gone, 401, "expired")
