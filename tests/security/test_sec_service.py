"""The service as a whole under attack: bodies with no length, requests that fail (audited all the
same), slow work that must not stall the event loop, and a data dir readable by other users."""

from __future__ import annotations

import os
import select
import socket
import stat
import threading
from contextlib import suppress
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import pytest
import requests
from fastapi.testclient import TestClient
from guests import guest
from platform_helpers import Platform
from service_helpers import HttpClient, serving

from teaclave_infer.api import create_app
from teaclave_infer.api.middleware import AuditLog
from teaclave_infer.api.routes import functions

CHUNK = 1 << 16
HANG_GUARD_S = 30  # a bound on a hang, never a figure the test measures


def _chunked_login(app, limit: int) -> tuple[int, int]:
    """Streams an endless chunked JSON body at /v1/auth/login; (status, bytes the app read)."""
    read = 0
    status: list[int] = []

    async def receive():
        nonlocal read
        read += CHUNK
        assert read < 64 * limit, "the app kept reading a body far over its limit"
        return {"type": "http.request", "body": b" " * CHUNK, "more_body": True}

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/auth/login",
        "raw_path": b"/v1/auth/login",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    anyio.run(app, scope, receive, send)
    return status[0], read


def test_a_body_without_a_length_is_cut_off_at_its_limit(client: TestClient, settings):
    status, read = _chunked_login(client.app, settings.max_body_bytes)
    assert status == 413
    assert read <= settings.max_body_bytes + CHUNK


def test_a_live_service_stops_reading_a_chunked_body(live_service: str):
    """200 MiB announced as chunks: the service answers 413 long before it all is sent."""
    url = urlsplit(live_service)
    sent, answer = 0, b""
    with socket.create_connection((url.hostname, url.port), timeout=HANG_GUARD_S) as s:
        s.sendall(
            b"POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"%x\r\n%s\r\n" % (CHUNK, b" " * CHUNK)
        try:
            while sent < 200 << 20 and not select.select([s], [], [], 0)[0]:
                s.sendall(chunk)
                sent += CHUNK
        except (BrokenPipeError, ConnectionResetError):
            pass
        with suppress(ConnectionResetError):
            answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 64 << 20


def test_requests_that_fail_are_audited_even_a_crash(settings):
    app = create_app(settings)

    @app.post("/v1/crash")
    def crash() -> None:
        raise RuntimeError("a bug")

    client = TestClient(app, raise_server_exceptions=False)
    platform = Platform(client)
    assert client.post("/v1/crash").status_code == 500
    assert client.get("/v1/files/" + "0" * 32, headers=platform.auth["do1"]).status_code == 404
    assert client.post("/v1/auth/login", content=b"{" * 10).status_code == 422
    wrong = {"username": "do2", "password": "not-do2s-password"}
    assert client.post("/v1/auth/login", json=wrong).status_code == 401
    rows = client.get("/v1/audit", headers=platform.admin, params={"limit": 500}).json()["items"]
    seen = {(r["action"], r["status"]) for r in rows}
    assert ("POST /v1/crash", 500) in seen
    assert ("GET /v1/files/{file_id}", 404) in seen
    assert ("POST /v1/auth/login", 422) in seen
    probe = next(r for r in rows if r["status"] == 404)
    assert probe["user_id"] == platform.ids["do1"]
    guess = next(r for r in rows if r["status"] == 401)  # whose account was tried
    assert (guess["action"], guess["username"]) == ("POST /v1/auth/login", "do2")
    assert guess["user_id"] == platform.ids["do2"]


class _Gate:
    """Blocks whoever calls it until the test opens it; tells the test once it is entered."""

    def __init__(self) -> None:
        self.entered, self.opened = threading.Event(), threading.Event()

    def __call__(self, *args: object, **kwargs: object) -> None:
        self.entered.set()
        assert self.opened.wait(HANG_GUARD_S)


@pytest.mark.parametrize("stalled", ["compile", "audit"])
def test_slow_work_never_stalls_the_event_loop(settings, monkeypatch, stalled: str):
    """While a registration's compile (or an audit row's database write) is held, /v1/health
    and other requests are answered."""
    app = create_app(settings)
    gate = _Gate()
    if stalled == "compile":
        monkeypatch.setattr(functions, "compile_checked", gate)
    else:
        original = AuditLog._write

        def write(self, event):
            if event["action"] == "POST /v1/auth/logout":
                gate()
            original(self, event)

        monkeypatch.setattr(AuditLog, "_write", write)
    with serving(app) as base:
        platform = Platform(HttpClient(base))
        if stalled == "compile":
            slow = threading.Thread(target=platform.register, args=(guest("(i32.const 0)"),))
        else:
            slow = threading.Thread(target=requests.post, args=(f"{base}/v1/auth/logout",))
        slow.start()
        assert gate.entered.wait(HANG_GUARD_S)
        try:
            assert requests.get(f"{base}/v1/health", timeout=HANG_GUARD_S).status_code == 200
            me = requests.get(f"{base}/v1/users/me", headers=platform.auth["do1"], timeout=10)
            assert me.status_code == 200
        finally:
            gate.opened.set()
            slow.join(HANG_GUARD_S)


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in root.rglob("*")}


def test_the_data_dir_is_owner_only_whatever_the_umask(settings, tmp_path):
    before = os.umask(0o022)
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)  # the fixture may have made it
        settings.data_dir.chmod(0o755)  # as an older version left it
        for old in settings.data_dir.iterdir():  # the fixture's database copy, if any
            old.chmod(0o644)
        platform = Platform(TestClient(create_app(settings)))
        platform.input("do1", b"a digit")
        platform.register_guest("(i32.const 0)")
    finally:
        os.umask(before)
    modes = _modes(settings.data_dir) | {".": stat.S_IMODE(settings.data_dir.stat().st_mode)}
    loose = {
        name: oct(mode)
        for name, mode in modes.items()
        if mode & 0o077 or ((settings.data_dir / name).is_dir() and mode != 0o700)
    }
    assert not loose, loose
    if settings.db_url is None:
        assert {"teaclave.db", "teaclave.db-wal"} <= set(modes)


def test_a_served_data_dir_is_owner_only(live_service_with_workers: str, tmp_path):
    platform = Platform(HttpClient(live_service_with_workers))
    platform.input("do1", b"a digit")
    data = tmp_path / "live"
    loose = {n: oct(m) for n, m in _modes(data).items() if m & 0o077}
    assert not loose, loose
