"""What every command shares: where the session and keys live, the client it talks with, the
errors of the command line itself, and how results are printed."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from ..client import Client
from ..errors import TeaclaveClientError
from ..keystore import DirectoryKeyStore
from ..models import User, parse
from ..progress import Progress

__all__ = [
    "DEFAULT_URL",
    "Command",
    "NotLoggedIn",
    "Output",
    "add_command",
    "client",
    "home",
    "key_file",
    "pairs",
    "plain",
    "progress",
    "warn",
]

DEFAULT_URL = "http://127.0.0.1:8000"
Output = tuple[Any, str]  # (what --json prints, what a person reads)
Command = Callable[[argparse.Namespace], Output]


class NotLoggedIn(TeaclaveClientError):
    exit_code = 4


def home(args: argparse.Namespace) -> Path:
    if args.home:
        return Path(args.home)
    if env := os.environ.get("TEACLAVE_CLIENT_HOME"):
        return Path(env)
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config) / "teaclave-client"


def _session(args: argparse.Namespace) -> dict[str, Any]:
    try:
        return dict(json.loads((home(args) / "session.json").read_text()))
    except FileNotFoundError:
        return {}


def client(args: argparse.Namespace, login_required: bool = True) -> Client:
    """A client of the service the command names (or the one logged in to), with the saved
    token and pinned platform keys when it is that service, and the keys kept in HOME/keys."""
    session = _session(args)
    url = args.url or os.environ.get("TEACLAVE_URL") or session.get("url") or DEFAULT_URL
    same = session.get("url") == url
    token = session.get("token") if same else None
    if login_required and not token:
        raise NotLoggedIn(f"not logged in to {url}: run `teaclave-client login USERNAME` first")
    made = Client(
        url,
        token,
        keys=DirectoryKeyStore(home(args) / "keys"),
        timeout=args.timeout,
        pinned_keys=session.get("key_ids") if same else None,
    )
    if same and session.get("user"):  # who logged in: no request to ask
        made.user = parse(User, session["user"])
    return made


def plain(value: Any) -> Any:
    """Dataclasses, datetimes and bytes as JSON."""
    if is_dataclass(value) and not isinstance(value, type):
        return plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def pairs(items: Sequence[str], what: str) -> dict[str, str]:
    """NAME=VALUE options as a dict."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise TeaclaveClientError(f"{what} {item!r}: expected NAME=VALUE")
        out[key] = value
    return out


def progress(args: argparse.Namespace, steps: int) -> Progress:
    return Progress(steps, None if not (args.json or args.quiet) else False)


def warn(message: str) -> None:
    """A warning on stderr (also with --json, whose stdout stays one document)."""
    print(f"teaclave-client: warning: {message}", file=sys.stderr)


def key_file(path: Path) -> dict[str, Any]:
    """A key file (`keygen --out`, `encrypt --key-file`): schema and key, maybe iv and cmac."""
    try:
        body = json.loads(path.read_text())
        return {**body, "schema": body["schema"], "key": bytes.fromhex(body.get("key", ""))}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise TeaclaveClientError(f"key file {path}: {err}") from None


def add_command(
    sub: Any, common: argparse.ArgumentParser, name: str, command: Command, help: str
) -> argparse.ArgumentParser:
    """A subcommand that runs `command` and takes the common options after its name too."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help, description=help, parents=[common]
    )
    parser.set_defaults(command=command)
    return parser
