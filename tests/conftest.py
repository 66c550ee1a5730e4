"""Fixtures of the service tests: a fresh service on SQLite, and on PostgreSQL too when
TEACLAVE_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from service_helpers import ADMIN_PASSWORD, DATABASES, fresh_postgres, login

from teaclave_infer.builder import BuildOptions, build
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
def mnist(tmp_path_factory) -> tuple[bytes, bytes]:
    """The MNIST function with separate weights (inputs `input_img` and `weights`): its wasm and
    manifest, for registering."""
    result = build(MNIST, tmp_path_factory.mktemp("fn"), BuildOptions(weights="separate"))
    return result.wasm.read_bytes(), result.manifest_path.read_bytes()
