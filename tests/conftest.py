"""Fixtures of the service tests: a fresh service on SQLite, and on PostgreSQL too when
TEACLAVE_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from fastapi.testclient import TestClient
from service_helpers import ADMIN_PASSWORD, DATABASES, fresh_postgres, login

from teaclave_infer.builder import BuildOptions, BuildResult, build
from teaclave_infer.service import Settings, create_app

MNIST = Path(__file__).resolve().parent.parent / "functions" / "mnist" / "mnist.onnx"


@pytest.fixture(params=DATABASES)
def settings(request, tmp_path) -> Settings:
    (tmp_path / "admin.txt").write_text(ADMIN_PASSWORD + "\n")
    db = None
    if request.param == "postgresql":
        db = fresh_postgres(os.environ["TEACLAVE_TEST_POSTGRES_URL"])
    return Settings(
        data_dir=tmp_path / "data", db_url=db, admin_password_file=tmp_path / "admin.txt"
    )


@pytest.fixture
def client(settings) -> TestClient:
    return TestClient(create_app(settings))


@pytest.fixture
def admin(client) -> dict[str, str]:
    return login(client, "admin", ADMIN_PASSWORD)


@pytest.fixture(scope="session")
def mnist_build(tmp_path_factory) -> BuildResult:
    """The MNIST function with separate weights (inputs `input_img` and `weights`)."""
    return build(MNIST, tmp_path_factory.mktemp("fn"), BuildOptions(weights="separate"))


@pytest.fixture(scope="session")
def mnist(mnist_build) -> tuple[bytes, bytes]:
    """The MNIST function's wasm and manifest, for registering."""
    return mnist_build.wasm.read_bytes(), mnist_build.manifest_path.read_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(base: str, process: subprocess.Popen) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"the service exited with status {process.returncode}")
        try:
            requests.get(f"{base}/v1/health", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("the service did not start")


@contextmanager
def serving(tmp_path: Path, workers: int) -> Iterator[str]:
    """`teaclave-infer serve` as its own process on a free loopback port; yields its URL."""
    port = free_port()
    (tmp_path / "admin.txt").write_text(ADMIN_PASSWORD)
    cmd = [
        sys.executable,
        "-m",
        "teaclave_infer.cli",
        "serve",
        "--data-dir",
        str(tmp_path / "live"),
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--admin-password-file",
        str(tmp_path / "admin.txt"),
    ]
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(cmd, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, server)
        yield base
    finally:
        server.terminate()
        server.wait(10)
        log.close()


@pytest.fixture
def live_service(tmp_path) -> Iterator[str]:
    """The service with no workers (tasks stay Staged)."""
    with serving(tmp_path, workers=0) as base:
        yield base


@pytest.fixture
def live_service_with_workers(tmp_path) -> Iterator[str]:
    """The service with two in-process workers; its JSON log is tmp_path / "serve.log"."""
    with serving(tmp_path, workers=2) as base:
        yield base
