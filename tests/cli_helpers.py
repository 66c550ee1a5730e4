"""`teaclave-client` run in process as one user (own home: session and keys), and the users
the client's CLI tests share."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from guests import ECHO, guest
from service_helpers import ADMIN_PASSWORD, builder_manifest
from teaclave_client.cli import main


class Cli:
    """One user's `teaclave-client`: its own home (session and keys), on the shared service."""

    def __init__(self, capsys, home: Path, url: str) -> None:
        self.capsys, self.home, self.url = capsys, home, url
        self.id = ""

    def __call__(self, *args: str, code: int = 0) -> str:
        """Runs a command in process; checks its exit status; returns its stdout."""
        self.capsys.readouterr()
        status = main(["--home", str(self.home), "--url", self.url, *args])
        out, err = self.capsys.readouterr()
        assert status == code, f"exit {status}, not {code}: {out}{err}"
        self.err = err
        return out

    def json(self, *args: str, code: int = 0) -> dict:
        return json.loads(self(*args, "--json", code=code))


def make_users(url: str, tmp_path: Path, capsys) -> dict[str, Cli]:
    """admin, a function owner ("fo") and a data owner ("do"), each logged in with their own
    home; their passwords are in tmp_path / "fo.txt" and "do.txt"."""
    suffix = secrets.token_hex(3)
    (tmp_path / "admin.txt").write_text(ADMIN_PASSWORD)
    admin = Cli(capsys, tmp_path / "admin", url)
    admin("login", "admin", "--password-file", str(tmp_path / "admin.txt"))
    made = {"admin": admin}
    for who, role in [("fo", "FunctionOwner"), ("do", "DataOwner")]:
        password = tmp_path / f"{who}.txt"
        password.write_text(secrets.token_urlsafe(12) + "\n")
        name = f"{who}-{suffix}"
        user = admin.json("user", "create", name, "--role", role, "--password-file", str(password))
        cli = Cli(capsys, tmp_path / who, url)
        cli.id = user["id"]
        cli("login", name, "--password-file", str(password))
        made[who] = cli
    return made


def register_echo(fo: Cli, folder: Path, manifest: dict | None = None) -> str:
    """`fo` registers the echo guest (input `in`, output `out`), public, with `manifest` (by
    default one naming it "echo"); its id."""
    (folder / "echo.wasm").write_bytes(guest(ECHO))
    (folder / "echo.json").write_bytes(builder_manifest(**(manifest or {"name": "echo"})))
    slots = {"inputs": [{"name": "in"}], "outputs": [{"name": "out"}]}
    arguments = [{"name": n, "default": n} for n in ("in", "out")]
    (folder / "spec.json").write_text(json.dumps({**slots, "arguments": arguments}))
    wasm, spec = str(folder / "echo.wasm"), str(folder / "spec.json")
    return str(fo.json("function", "register", wasm, "--public", "--spec", spec)["id"])
