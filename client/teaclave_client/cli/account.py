"""Who you are: `login`, `logout`, and `user create` (PlatformAdmin)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import TeaclaveClientError
from .common import Output, add_command, client, home, plain

__all__ = ["add_commands"]


def _has_terminal() -> bool:
    """Whether getpass can ask: it reads the controlling terminal, else stdin if that is one."""
    if sys.stdin is not None and sys.stdin.isatty():
        return True
    try:
        with open("/dev/tty", "rb"):
            return True
    except OSError:
        return False


def _password(args: argparse.Namespace) -> str:
    """From --password-file, --password-stdin or $TEACLAVE_PASSWORD, else asked on the
    terminal; an error (not a prompt nobody sees, nor a traceback) without one."""
    if args.password_file:
        return str(args.password_file.read_text().rstrip("\n"))
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if env := os.environ.get("TEACLAVE_PASSWORD"):
        return env
    if not _has_terminal():
        raise TeaclaveClientError(
            f"no terminal to ask {args.username}'s password on: give --password-file F, "
            "--password-stdin or $TEACLAVE_PASSWORD"
        )
    return getpass.getpass(f"password for {args.username}: ")


def cmd_login(args: argparse.Namespace) -> Output:
    password = _password(args)
    with client(args, login_required=False) as session:
        if args.trust_new_keys:
            session.pinned_keys = {}
        user = session.login(args.username, password)
        session.save_session(home(args) / "session.json")
        body = {"url": session.url, "user": plain(user), "key_ids": session.key_ids()}
    return body, f"logged in to {session.url} as {user.username} ({user.role})"


def cmd_logout(args: argparse.Namespace) -> Output:
    with client(args) as session:
        session.logout()
    (home(args) / "session.json").unlink(missing_ok=True)
    return {"logged_out": True}, "logged out"


def cmd_user_create(args: argparse.Namespace) -> Output:
    password = _password(args)
    with client(args) as session:
        user = session.register_user(args.username, password, args.role, args.attribute)
    return plain(user), f"{user.id}  {user.username}  {user.role}"


def _password_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--password-file", type=Path)
    parser.add_argument("--password-stdin", action="store_true")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    p = add_command(sub, common, "login", cmd_login, "log in and keep the token (0600)")
    p.add_argument("username")
    p.add_argument(
        "--trust-new-keys",
        action="store_true",
        help="accept platform keys that differ from those of the last login to this URL",
    )
    _password_options(p)
    add_command(sub, common, "logout", cmd_logout, "revoke the token and forget it")

    users = sub.add_parser("user", help="users (PlatformAdmin)").add_subparsers(required=True)
    p = add_command(users, common, "create", cmd_user_create, "create a user")
    p.add_argument("username")
    p.add_argument(
        "--role", choices=["DataOwner", "FunctionOwner", "PlatformAdmin"], default="DataOwner"
    )
    p.add_argument("--attribute", default="")
    _password_options(p)
