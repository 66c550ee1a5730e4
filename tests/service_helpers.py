"""Helpers shared by the service tests (fixtures live in conftest.py)."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import requests
import uvicorn
from fastapi.testclient import TestClient
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from sqlalchemy import Engine, create_engine, text
from teaclave_client import Client
from teaclave_client.vocabulary import MANIFEST_FORMAT

ADMIN_PASSWORD = "admin-password-1"


BUILDER = {"format": MANIFEST_FORMAT}  # what every builder's NAME.json has


def builder_manifest(**fields: object) -> bytes:
    """A builder's NAME.json with `fields` (its `format` given, as the builder writes it)."""
    return json.dumps({**BUILDER, **fields}).encode()


DATABASES = ["sqlite"] + (["postgresql"] if os.environ.get("TEACLAVE_TEST_POSTGRES_URL") else [])


@cache
def _server(url: str) -> Engine:
    """One AUTOCOMMIT engine per test process for CREATE/DROP DATABASE (connecting costs tens of
    milliseconds, and every PostgreSQL test makes a database)."""
    url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    return create_engine(url, isolation_level="AUTOCOMMIT", pool_size=1)


def fresh_postgres(url: str, purpose: str = "", template: str | None = None) -> str:
    """An empty database of this test worker's own (xdist runs workers side by side); one per
    `purpose` too, for a fixture that keeps its database while other tests make theirs; a copy
    of the database at URL `template` when given (PostgreSQL copies it in a few milliseconds)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"{url.rsplit('/', 1)[1]}_{worker}{'_' + purpose if purpose else ''}"
    copy = f' TEMPLATE "{template.rsplit("/", 1)[1]}"' if template else ""
    with _server(url).connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    return f"{url.rsplit('/', 1)[0]}/{name}"


def login(client: TestClient, username: str, password: str) -> dict[str, str]:
    response = client.post("/v1/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def make_user(client: TestClient, admin: dict, name: str, role: str = "DataOwner") -> str:
    response = client.post(
        "/v1/users",
        headers=admin,
        json={"username": name, "password": f"{name}-password", "role": role},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def assert_problem(response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and words in body["detail"]


class HttpClient:
    """requests on a live service, with the few TestClient call shapes the tests use."""

    def __init__(self, base: str) -> None:
        import requests

        self.base, self.http = base, requests.Session()

    def request(self, method: str, path: str, **kw: object):
        if "content" in kw:
            kw["data"] = kw.pop("content")
        return self.http.request(method, self.base + path, **kw)  # type: ignore[arg-type]

    def get(self, path: str, **kw: object):
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: object):
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: object):
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: object):
        return self.request("DELETE", path, **kw)


class TestClientAdapter(BaseAdapter):
    """requests sent to an app in a TestClient: the SDK drives an app in the test's process."""

    def __init__(self, client: TestClient) -> None:
        super().__init__()
        self.client = client

    def send(self, request: requests.PreparedRequest, *args: object, **kw: object):
        answer = self.client.request(
            str(request.method),
            str(request.url),
            headers={k: v for k, v in request.headers.items() if k.lower() != "content-length"},
            content=request.body,  # type: ignore[arg-type]
        )
        response = requests.Response()
        response.status_code, response.reason = answer.status_code, answer.reason_phrase
        response.headers = CaseInsensitiveDict(answer.headers)
        response._content = answer.content
        response.url, response.request = str(request.url), request
        return response

    def close(self) -> None:
        pass


def sdk_client(client: TestClient | HttpClient) -> Client:
    """An SDK client of the app `client` talks to (in process, or the live service)."""
    if isinstance(client, HttpClient):
        return Client(client.base)
    session = requests.Session()
    session.mount(str(client.base_url), TestClientAdapter(client))
    return Client(str(client.base_url), session=session)


def bearer(client: Client) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.token}"}


class Users:
    """The admin and users it made (name -> role), each logged in with an SDK client of its
    own. The raw HTTP client (`client`) and bearer headers (`admin`, `auth`) stay for the tests
    of the HTTP layer itself; a test that logs a user in again sets `auth[who]`, and the user's
    SDK client follows."""

    def __init__(self, client: TestClient | HttpClient, roles: dict[str, str]) -> None:
        self.client = client
        admin = sdk_client(client)
        admin.login("admin", ADMIN_PASSWORD)
        self.admin = bearer(admin)
        self.ids: dict[str, str] = {}
        self.auth: dict[str, dict[str, str]] = {}
        self.users: dict[str, Client] = {"admin": admin}
        for name, role in roles.items():
            self.ids[name] = admin.register_user(name, f"{name}-password", role).id
            self.users[name] = sdk_client(client)
            self.users[name].login(name, f"{name}-password")
            self.auth[name] = bearer(self.users[name])

    def sdk(self, who: str) -> Client:
        """`who`'s SDK client, with the token of `auth[who]` (a user a test made itself gets
        one here)."""
        if who not in self.users:
            self.users[who] = sdk_client(self.client)
        client = self.users[who]
        client.token = self.auth[who].get("Authorization", "").removeprefix("Bearer ") or None
        return client


@contextmanager
def serving(app, hang_guard_s: float = 30.0) -> Iterator[str]:
    """The app under uvicorn in a thread of this process (so a test can patch it), without
    its lifespan; its base URL. uvicorn is handed a socket bound here: a port only picked here
    could be taken by another process before uvicorn bound it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
        )
        thread = threading.Thread(target=server.run, args=([sock],), daemon=True)
        thread.start()
        deadline = time.monotonic() + hang_guard_s
        while not server.started:  # waits for a condition, not for time to pass
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(hang_guard_s)


@contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port where connections are refused for as long as the block runs: bound by
    this socket, which does not listen, so that no other process can listen there meanwhile (a
    port that was merely free when picked could be)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])
