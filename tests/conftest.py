"""Fixtures of the service tests: a fresh service on SQLite, and on PostgreSQL too when
TEACLAVE_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_helpers import ADMIN_PASSWORD, DATABASES, fresh_postgres, login

from teaclave_infer.api import create_app
from teaclave_infer.builder import BuildOptions, BuildResult, build
from teaclave_infer.domain.settings import Settings
from teaclave_infer.local import local_service

MNIST = Path(__file__).resolve().parent.parent / "functions" / "mnist" / "mnist.onnx"


@pytest.fixture(autouse=True)
def cheap_password_kdf(monkeypatch) -> None:
    """Argon2id at 64 KiB and 1 pass (still 4 lanes) in the tests' own process; a served
    subprocess keeps the real costs. Only a monkeypatch reaches these parameters."""
    from teaclave_infer.domain import passwords

    cheap = dataclasses.replace(passwords.PARAMETERS, time_cost=1, memory_cost=64)
    monkeypatch.setattr(passwords, "PARAMETERS", cheap)


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


@contextmanager
def serving(tmp_path: Path, workers: int) -> Iterator[str]:
    """`teaclave-infer serve` as its own process on a free loopback port; yields its URL. Its
    JSON log is tmp_path / "live" / "serve.log"."""
    (tmp_path / "admin.txt").write_text(ADMIN_PASSWORD)
    with local_service(tmp_path / "live", tmp_path / "admin.txt", workers) as base:
        yield base


@pytest.fixture(scope="module")
def module_service(tmp_path_factory) -> Iterator[str]:
    """One service with two worker processes for a whole test module (the client tests share
    it)."""
    with serving(tmp_path_factory.mktemp("service"), workers=2) as base:
        yield base


@pytest.fixture
def live_service(tmp_path) -> Iterator[str]:
    """The service with no workers (tasks stay Staged)."""
    with serving(tmp_path, workers=0) as base:
        yield base


@pytest.fixture
def live_service_with_workers(tmp_path) -> Iterator[str]:
    """The service with two worker processes; its JSON log (theirs too) is
    tmp_path / "live" / "serve.log"."""
    with serving(tmp_path, workers=2) as base:
        yield base
