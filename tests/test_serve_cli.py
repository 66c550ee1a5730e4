"""`serve` and `worker` settings (flag, TEACLAVE_* variable, default), their table, and what
`serve` says when it is ready or cannot start."""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import requests
from cheap_kdf import ENTRY
from conftest import ADMIN_PASSWORD
from service_helpers import refused_port

from teaclave_infer import local, serve
from teaclave_infer.cli import main
from teaclave_infer.domain.setting_sources import definitions, from_sources, table
from teaclave_infer.domain.settings import Settings
from teaclave_infer.serve import (
    DB_ENV,
    add_serve_arguments,
    add_worker_arguments,
    settings_from,
    worker_argv,
)


def _parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    (add_serve_arguments if command == "serve" else add_worker_arguments)(parser)
    return parser


def test_every_setting_has_a_flag_a_variable_and_a_row():
    rows = table().splitlines()
    flags = {c: _parser(c)._option_string_actions for c in ("serve", "worker")}
    for s in definitions():
        assert s.env.startswith("TEACLAVE_") and s.flag.startswith("--")
        assert sum(f"`{s.env}`" in row for row in rows) == 1, s.env
        assert s.help and s.default
        for command, text in flags.items():
            assert (s.flag in text) == (command in s.commands), (s.flag, command)
    assert len({s.env for s in definitions()}) == len(Settings.model_fields)
    assert DB_ENV in {s.env for s in definitions()}


def test_a_flag_wins_over_its_variable_which_wins_over_the_default(monkeypatch):
    monkeypatch.setenv("TEACLAVE_LEASE", "12")
    monkeypatch.setenv("TEACLAVE_POLL", "3")
    monkeypatch.setenv("TEACLAVE_MAX_UPLOAD_BYTES", "2MiB")
    monkeypatch.setenv("TEACLAVE_ALLOW_FETCH", "localhost, 10.0.0.0/8")
    monkeypatch.setenv(DB_ENV, "")  # empty: unset
    settings = settings_from(_parser("serve").parse_args(["--lease", "7", "--port", "0"]))
    assert settings.lease_s == 7.0 and settings.port == 0  # flags
    assert settings.poll_s == 3.0 and settings.max_upload_bytes == 2 << 20  # variables
    assert settings.fetch_allow == ("localhost", "10.0.0.0/8")
    assert settings.db_url is None and settings.max_attempts == Settings().max_attempts
    again = settings_from(_parser("serve").parse_args(["--allow-fetch", "a", "--allow-fetch", "b"]))
    assert again.fetch_allow == ("a", "b")


def test_settings_made_in_code_read_no_variable(monkeypatch):
    monkeypatch.setenv("TEACLAVE_LEASE", "12")
    monkeypatch.setenv(DB_ENV, "postgresql://u:p@db.example/x")
    assert Settings().lease_s == 30.0 and Settings().db_url is None


@pytest.mark.parametrize(
    ("given", "environ", "named"),
    [
        ({"lease_s": "-1"}, {}, "--lease / TEACLAVE_LEASE"),
        ({}, {"TEACLAVE_MAX_ATTEMPTS": "0"}, "--max-attempts / TEACLAVE_MAX_ATTEMPTS"),
        ({}, {"TEACLAVE_MAX_BODY_BYTES": "lots"}, "--max-body-bytes / TEACLAVE_MAX_BODY_BYTES"),
        ({"platform_url": "ftp://x"}, {}, "--platform / TEACLAVE_PLATFORM"),
        ({"port": "70000"}, {}, "--port / TEACLAVE_PORT"),
    ],
)
def test_a_bad_value_names_its_setting(given, environ, named):
    with pytest.raises(Exception) as caught:
        from_sources(given, environ)
    message = str(caught.value)
    assert message.startswith(named) and "\n" not in message


def test_a_bad_value_on_the_command_line_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("TEACLAVE_TOKEN_TTL", "soon")
    assert main(["serve"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--token-ttl / TEACLAVE_TOKEN_TTL" in err[0]


def test_a_worker_process_gets_every_worker_setting(tmp_path, monkeypatch):
    """Each of a worker's settings, away from its default, reaches a supervised worker through
    its flags; the database URL never does (it may hold a password)."""
    values = {
        "data_dir": tmp_path / "data",
        "db_url": "postgresql://u:secret@db.example/x",
        "keys_path": tmp_path / "keys",
        "blob_path": tmp_path / "blobs",
        "lease_s": 12.5,
        "max_attempts": 5,
        "poll_s": 0.25,
        "platform_url": "https://platform.example:8000",
        "wasm_cache_bytes": 3 << 20,
        "weights_cache_bytes": 5 << 20,
        "max_input_bytes": 7 << 20,
        "fetch_timeout_s": 9.5,
        "file_roots": (tmp_path / "a", tmp_path / "b"),
        "fetch_allow": ("localhost", "10.0.0.0/8"),
    }
    worker_settings = {s.name for s in definitions() if "worker" in s.commands}
    assert set(values) == worker_settings  # a new worker setting belongs in this test
    settings = Settings(**values)
    argv = worker_argv(settings)
    assert not any("secret" in part for part in argv)
    monkeypatch.setenv(DB_ENV, settings.db_url or "")  # as worker_command hands it over
    assert settings_from(_parser("worker").parse_args(argv)) == settings


# --- `teaclave-infer serve` as a process ------------------------------------------------------


def _serve(
    tmp_path: Path, *flags: str, env: dict[str, str] | None = None, command: str = "serve"
) -> subprocess.Popen:
    (tmp_path / "admin.txt").write_text(ADMIN_PASSWORD)
    cmd = [sys.executable, "-m", "teaclave_infer.cli", command]
    cmd += ["--workers", "0"] if command == "serve" else []
    cmd += ["--data-dir", str(tmp_path / "data"), *flags]
    return subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_serve_says_where_it_serves_once_ready(tmp_path):
    process = _serve(tmp_path, "--port", "0", "--admin-password-file", str(tmp_path / "admin.txt"))
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("teaclave-infer: serving on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        with urllib.request.urlopen(f"{url}/v1/health") as response:
            assert json.load(response)["status"] == "ok"  # ready means it answers
    finally:
        process.terminate()
        process.communicate(timeout=60)


def test_the_ready_line_is_one_write(monkeypatch):
    """With stdout unbuffered (PYTHONUNBUFFERED, as on CI), print() writes a line's text and its
    newline apart, and a worker's log line, written to the same file, landed between them: the
    reader never saw the line and waited out its timeout."""
    writes: list[str] = []

    class Unbuffered(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

    monkeypatch.setattr(sys, "stdout", Unbuffered())
    serve.announce("http://127.0.0.1:8000")
    assert writes == [f"{serve.READY}http://127.0.0.1:8000\n"]


def test_serve_process_serves_on_the_port_the_service_bound(tmp_path, monkeypatch):
    """The service binds port 0 itself and serve_process reads the port from its log: a port
    picked for it beforehand is free only when picked, and another process may take it before
    the service starts (here, one that never answers has it from the moment it is picked)."""
    (tmp_path / "admin.txt").write_text(ADMIN_PASSWORD)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setattr(local, "free_port", lambda: taken.getsockname()[1])
        with local.serve_process(tmp_path / "data", tmp_path / "admin.txt", 0, entry=ENTRY) as s:
            assert s.url != f"http://127.0.0.1:{taken.getsockname()[1]}"
            assert requests.get(f"{s.url}/v1/health", timeout=60).json()["status"] == "ok"


def test_a_busy_port_fails_before_the_admin_is_made(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out, err = _serve(tmp_path, "--port", str(port)).communicate(timeout=120)
    assert "password" not in out  # no one-time password for an admin of a service never up
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0]
    assert not (tmp_path / "data" / "teaclave.db").exists()


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_database_that_is_down_is_one_line_without_its_password(tmp_path, command):
    with refused_port() as port:
        url = f"postgresql://teaclave:hunter2secret@127.0.0.1:{port}/teaclave"
        flags = ("--port", "0") if command == "serve" else ()
        process = _serve(tmp_path, *flags, env={DB_ENV: url}, command=command)
        out, err = process.communicate(timeout=120)
    assert process.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"127.0.0.1:{port}" in lines[0] and "'teaclave'" in lines[0]
    assert "hunter2secret" not in out + err
