"""`teaclave-client`: a data or model owner's command line.

Local tools (no service): `keygen`, `encrypt`, `decrypt`, `prepare-image`. Platform commands:
`login`, `logout`, `user create`, `function register|list|show`, `data
register-input|register-output|fetch`, `task create|assign|approve|invoke|status|result|cancel`
(`task create --input ... --invoke` takes the caller's steps in one request), and `infer`, the
whole data-owner flow in one command (one request for the task, one long-poll for its end).

`login` keeps the token in HOME/session.json (0600), with the platform's key ids (trusted on
first use: a platform whose keys later differ is refused). Keys of the files you register are
kept in HOME/keys/ (0600 each). HOME is `--home`, else $TEACLAVE_CLIENT_HOME, else
~/.config/teaclave-client. The service is `--url`, else $TEACLAVE_URL, else the one logged in to.

Every command takes `--json` (one JSON document on stdout). Exit status: 0 ok; 1 a local error
(a file, a key, an argument); 2 usage; 3 the service is unreachable or failed; 4 not logged in
or wrong credentials; 5 forbidden or not found; 6 a request the service refused (conflict,
invalid); 7 the task failed or was canceled; 8 an integrity failure (a tampered file or receipt,
a wrong key, changed platform keys); 9 timed out waiting for a task.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from ..errors import TeaclaveClientError
from . import account, data, functions, infer, local, tasks
from .common import DEFAULT_URL

__all__ = ["main"]

COMMAND_GROUPS = (local, account, functions, data, tasks, infer)  # in --help's order


def _common(top: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after its name (after it, an option left out
    must not reset one given before: hence no defaults there)."""
    common = argparse.ArgumentParser(
        add_help=False, argument_default=None if top else argparse.SUPPRESS
    )
    common.add_argument("--url", help=f"the service (default: $TEACLAVE_URL or {DEFAULT_URL})")
    common.add_argument("--home", help="session and keys (default: ~/.config/teaclave-client)")
    common.add_argument("--json", action="store_true", help="print one JSON document")
    common.add_argument("--quiet", action="store_true", help="no progress bar")
    common.add_argument("--timeout", type=float, metavar="S", help="per HTTP request (30)")
    return common


def parser() -> argparse.ArgumentParser:
    """The whole command line: each command group adds its own subcommands."""
    top = argparse.ArgumentParser(
        prog="teaclave-client",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common(top=True)],
    )
    top.set_defaults(timeout=30.0)
    sub = top.add_subparsers(dest="command_name", required=True)
    common = _common(top=False)
    for group in COMMAND_GROUPS:
        group.add_commands(sub, common)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command; an error is one line on stderr (and a JSON document with --json),
    its exit status the error's."""
    args = parser().parse_args(argv)
    try:
        body, text = args.command(args)
    except TeaclaveClientError as err:
        _fail(args, err, err.exit_code)
        return err.exit_code
    except (OSError, ValueError) as err:
        _fail(args, err, 1)
        return 1
    print(json.dumps(body, indent=2) if args.json else text)
    return 0


def _fail(args: argparse.Namespace, err: Exception, code: int) -> None:
    message = str(err) or type(err).__name__
    if isinstance(err, OSError) and err.filename:
        message = f"{err.filename}: {err.strerror}"
    if args.json:
        print(json.dumps({"error": type(err).__name__, "message": message, "exit_code": code}))
    print(f"teaclave-client: error: {message}", file=sys.stderr)
