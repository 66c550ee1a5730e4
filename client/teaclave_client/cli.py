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
import getpass
import hashlib
import io
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .crypto import decrypt_file, encrypt_file, generate_key
from .errors import TeaclaveClientError
from .images import npy_bytes, prepare_for
from .models import User, parse
from .progress import Progress
from .sdk import Client, DirectoryKeyStore, Function, Task, TaskResult, write_private
from .vocabulary import DEFAULT_SCHEMA, Schema

__all__ = ["main"]

DEFAULT_URL = "http://127.0.0.1:8000"
Output = tuple[Any, str]  # (what --json prints, what a person reads)


# -- where things live ---------------------------------------------------------------------------


def _home(args: argparse.Namespace) -> Path:
    if args.home:
        return Path(args.home)
    if env := os.environ.get("TEACLAVE_CLIENT_HOME"):
        return Path(env)
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config) / "teaclave-client"


def _session(args: argparse.Namespace) -> dict[str, Any]:
    try:
        return dict(json.loads((_home(args) / "session.json").read_text()))
    except FileNotFoundError:
        return {}


def _client(args: argparse.Namespace, login_required: bool = True) -> Client:
    session = _session(args)
    url = args.url or os.environ.get("TEACLAVE_URL") or session.get("url") or DEFAULT_URL
    same = session.get("url") == url
    token = session.get("token") if same else None
    if login_required and not token:
        raise NotLoggedIn(f"not logged in to {url}: run `teaclave-client login USERNAME` first")
    client = Client(
        url,
        token,
        keys=DirectoryKeyStore(_home(args) / "keys"),
        timeout=args.timeout,
        pinned_keys=session.get("key_ids") if same else None,
    )
    if same and session.get("user"):  # who logged in: no request to ask
        client.user = parse(User, session["user"])
    return client


class NotLoggedIn(TeaclaveClientError):
    exit_code = 4


def _plain(value: Any) -> Any:
    """Dataclasses, datetimes and bytes as JSON."""
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _pairs(items: Sequence[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise TeaclaveClientError(f"{what} {item!r}: expected NAME=VALUE")
        out[key] = value
    return out


def _progress(args: argparse.Namespace, steps: int) -> Progress:
    return Progress(steps, None if not (args.json or args.quiet) else False)


# -- local tools ---------------------------------------------------------------------------------


def _key_file(path: Path) -> dict[str, Any]:
    try:
        body = json.loads(path.read_text())
        return {**body, "schema": body["schema"], "key": bytes.fromhex(body.get("key", ""))}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise TeaclaveClientError(f"key file {path}: {err}") from None


def cmd_keygen(args: argparse.Namespace) -> Output:
    key = generate_key(args.schema)
    body = {"schema": args.schema, "key": key.hex()}
    if args.out:
        write_private(args.out, json.dumps(body).encode())
        return {**body, "key": None, "key_file": str(args.out)}, f"wrote {args.out} (0600)"
    return body, key.hex()


def cmd_encrypt(args: argparse.Namespace) -> Output:
    key = bytes.fromhex(args.key) if args.key else generate_key(args.schema)
    meta = encrypt_file(args.schema, key, args.input, args.output)
    body = {"schema": args.schema, "key": key.hex(), "iv": meta.iv.hex(), "cmac": meta.cmac.hex()}
    if args.key_file:
        write_private(args.key_file, json.dumps(body).encode())
        shown = {**body, "key": None, "key_file": str(args.key_file)}
        return shown, f"wrote {args.output}; key, iv and cmac in {args.key_file} (0600)"
    text = "\n".join(f"{k}: {v}" for k, v in body.items())
    return body, text


def cmd_decrypt(args: argparse.Namespace) -> Output:
    if args.key_file:
        spec = _key_file(args.key_file)
        schema, key, iv, cmac = spec["schema"], spec["key"], spec.get("iv", ""), spec.get("cmac")
    else:
        if not (args.schema and args.key is not None):
            raise TeaclaveClientError("give --key-file, or --schema and --key (with --iv, --cmac)")
        schema, key, iv, cmac = args.schema, bytes.fromhex(args.key), args.iv or "", args.cmac
    decrypt_file(
        schema,
        key,
        bytes.fromhex(iv),
        args.input,
        args.output,
        bytes.fromhex(cmac) if cmac else None,
    )
    return {"output": str(args.output), "bytes": args.output.stat().st_size}, f"wrote {args.output}"


def cmd_prepare_image(args: argparse.Namespace) -> Output:
    try:
        manifest = json.loads(args.model_manifest.read_text())
    except (OSError, ValueError) as err:
        raise TeaclaveClientError(f"manifest {args.model_manifest}: {err}") from None
    if args.range:
        for spec in manifest.get("inputs", []):
            spec["image"] = {"range": args.range}
    slot, tensor = prepare_for(manifest, args.image, args.input, args.invert)
    np.save(args.output, tensor, allow_pickle=False)
    body = {
        "input": slot,
        "shape": list(tensor.shape),
        "dtype": str(tensor.dtype),
        "output": str(args.output),
        "min": float(tensor.min()),
        "max": float(tensor.max()),
    }
    return body, f"wrote {args.output}: input {slot!r}, {tensor.dtype} {list(tensor.shape)}"


# -- platform ------------------------------------------------------------------------------------


def _password(args: argparse.Namespace) -> str:
    if args.password_file:
        return args.password_file.read_text().rstrip("\n")
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if env := os.environ.get("TEACLAVE_PASSWORD"):
        return env
    return getpass.getpass(f"password for {args.username}: ")


def cmd_login(args: argparse.Namespace) -> Output:
    with _client(args, login_required=False) as client:
        if args.trust_new_keys:
            client.pinned_keys = {}
        user = client.login(args.username, _password(args))
        client.save_session(_home(args) / "session.json")
        body = {"url": client.url, "user": _plain(user), "key_ids": client.key_ids()}
    return body, f"logged in to {client.url} as {user.username} ({user.role})"


def cmd_logout(args: argparse.Namespace) -> Output:
    with _client(args) as client:
        client.logout()
    (_home(args) / "session.json").unlink(missing_ok=True)
    return {"logged_out": True}, "logged out"


def cmd_user_create(args: argparse.Namespace) -> Output:
    with _client(args) as client:
        user = client.register_user(args.username, _password(args), args.role, args.attribute)
    return _plain(user), f"{user.id}  {user.username}  {user.role}"


def cmd_function_register(args: argparse.Namespace) -> Output:
    manifest = args.manifest or args.wasm.with_suffix(".json")
    spec = json.loads(args.spec.read_text()) if args.spec else {}
    if not isinstance(spec, dict):
        raise TeaclaveClientError(f"{args.spec}: the spec is not a JSON object")
    options = {
        "name": args.name,
        "public": args.public,
        "description": args.description,
        "allowlist": args.allow,
        "quota": args.quota,
        "browser": args.browser,
    }
    with _client(args) as client:  # the spec file's fields win over the flags' defaults
        function = client.register_function(args.wasm, manifest, **(options | spec))
    return _plain(function), f"{function.id}  {function.name}  sha256 {function.sha256}"


def cmd_function_list(args: argparse.Namespace) -> Output:
    with _client(args) as client:
        functions = client.list_functions("mine" if args.mine else "allowed", args.name)
    lines = [
        f"{f.id}  {f.name:<20} {'public' if f.public else 'private'}  {f.profile}  "
        f"usage {f.usage}/{'-' if f.quota < 0 else f.quota}"
        for f in functions
    ]
    return _plain(functions), "\n".join(lines) or "no functions"


def cmd_function_show(args: argparse.Namespace) -> Output:
    with _client(args) as client:
        function = client.find_function(args.function)
        manifest = client.get_function_manifest(function.id) if args.manifest else None
    body = _plain(function) | ({"manifest": manifest} if manifest is not None else {})
    return body, json.dumps(body, indent=2)


def cmd_data_register_input(args: argparse.Namespace) -> Output:
    with _client(args) as client:
        if args.at:
            if not args.key_file:
                raise TeaclaveClientError("--at needs --key-file (from `encrypt --key-file`)")
            spec = _key_file(args.key_file)
            info = client.register_input_file(
                args.at,
                spec["schema"],
                spec["key"],
                bytes.fromhex(spec.get("iv", "")),
                bytes.fromhex(spec["cmac"]),
                owners=args.owner,
            )
        else:
            if args.file is None:
                raise TeaclaveClientError("give FILE (encrypted and uploaded here) or --at URL")
            info = client.put_input(args.file.read_bytes(), args.schema, owners=args.owner)
    return _plain(info), info.id


def cmd_data_register_output(args: argparse.Namespace) -> Output:
    with _client(args) as client:
        info = client.register_output_file(args.at, args.schema, owners=args.owner)
    return _plain(info), info.id


def cmd_data_fetch(args: argparse.Namespace) -> Output:
    with _client(args) as client:
        data = client.fetch_output(args.file_id)
    write_private(args.output, data)
    return {"output": str(args.output), "bytes": len(data)}, f"wrote {args.output}"


def _owners(items: Sequence[str], me: str) -> dict[str, list[str]]:
    return {
        slot: (users.split(",") if users != "me" else [me])
        for slot, users in _pairs(items, "owner").items()
    }


def cmd_task_create(args: argparse.Namespace) -> Output:
    with _client(args) as client:
        me = (client.user or client.me()).id
        function = client.find_function(args.function)
        arguments = function.default_arguments() | _pairs(args.arg, "--arg")
        inputs = {s["name"]: [me] for s in function.inputs} | _owners(args.input_owner, me)
        outputs = {s["name"]: [me] for s in function.outputs} | _owners(args.output_owner, me)
        assign = _pairs(args.input, "--input"), _pairs(args.output, "--output")
        if any(assign) or args.approve or args.invoke:  # the caller's steps, in one request
            task = client.submit_task(
                function.id,
                *assign,
                arguments=arguments,
                inputs_ownership=inputs,
                outputs_ownership=outputs,
                approve=args.approve or args.invoke,
                invoke=args.invoke,
            )
        else:
            task = client.create_task(function.id, arguments, inputs, outputs)
    if task.stopped and not (args.json or args.quiet):
        print(f"task {task.id}: {task.stopped}", file=sys.stderr)
    return _plain(task), task.id


def cmd_task_assign(args: argparse.Namespace) -> Output:
    with _client(args) as client:
        task = client.assign_data(
            args.task,
            _pairs(args.input, "--input"),
            _pairs(args.output, "--output"),
            approve=args.approve,
        )
    return _plain(task), task.state


def _task_verb(verb: str) -> Callable[[argparse.Namespace], Output]:
    def command(args: argparse.Namespace) -> Output:
        with _client(args) as client:
            options = {"invoke": True} if getattr(args, "invoke", False) else {}
            task: Task = getattr(client, f"{verb}_task")(args.task, **options)
        return _plain(task), task.state

    return command


def cmd_task_status(args: argparse.Namespace) -> Output:
    with _client(args) as client:
        task = (
            client.wait(args.task, args.wait_timeout) if args.wait else client.get_task(args.task)
        )
    kind = f" ({task.result_kind})" if task.result_kind else ""
    return _plain(task), f"{task.state}{kind}"


def _decoded(data: bytes) -> Any:
    """An output for --json: the array if it is a small .npy, else its size and digest."""
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
        if array.size <= 4096:
            return {"npy": array.tolist(), "bytes": len(data)}
    except ValueError:
        pass
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _report(result: TaskResult, out_dir: Path | None) -> dict[str, Any]:
    if out_dir is not None:
        for slot, data in result.outputs.items():
            write_private(out_dir / f"{result.task.id}.{slot}.npy", data)
    return {
        "task_id": result.task.id,
        "return_value": result.return_value,
        "receipt_verified": True,
        "outputs": {slot: _decoded(data) for slot, data in result.outputs.items()},
        "outputs_without_key": result.missing_keys,
        "timings_ms": (result.task.result or {}).get("timings", {}),
    }


def cmd_task_result(args: argparse.Namespace) -> Output:
    with _client(args) as client:
        result = client.get_task_result(args.task)
    body = _report(result, args.out_dir)
    return body, f"{result.return_value}  (receipt verified)"


def _infer_one(
    client: Client,
    args: argparse.Namespace,
    function: Function,
    manifest: dict[str, Any],
    image: Path,
    progress: Progress,
) -> dict[str, Any]:
    if image.suffix == ".npy":
        slot, tensor = args.input or manifest["inputs"][0]["id"], np.load(image)
    else:
        slot, tensor = prepare_for(manifest, image, args.input, args.invert)
    me = client.user.id if client.user else client.me().id
    others = _owners(args.input_owner, me)
    if "weights" in {s["name"] for s in function.inputs} and "weights" not in others:
        others["weights"] = [function.owner_id]  # separate weights: the model owner gives them
    started = time.monotonic()
    result = client.infer(
        function,
        {slot: npy_bytes(tensor)},
        schema=args.schema,
        others=others,
        timeout=args.wait_timeout,
        progress=lambda step: progress(f"{image.name}: {step}"),
    )
    return {"image": str(image), "latency_ms": round((time.monotonic() - started) * 1000, 1)} | (
        _report(result, args.out_dir)
    )


def cmd_infer(args: argparse.Namespace) -> Output:
    rows = []
    progress = _progress(args, 4 * len(args.images))
    try:
        with _client(args) as client:
            function = client.find_function(args.function)
            manifest = client.get_function_manifest(function.id)
            for image in args.images:
                rows.append(_infer_one(client, args, function, manifest, image, progress))
    finally:
        progress.close()
    lines = [
        f"{Path(r['image']).name}: {r['return_value']}  "
        f"(receipt verified, {r['latency_ms']:.0f} ms, task {r['task_id']})"
        for r in rows
    ]
    return (rows[0] if len(rows) == 1 else rows), "\n".join(lines)


# -- the parser ----------------------------------------------------------------------------------


def _range(text: str) -> list[float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LO,HI e.g. 0,1") from None
    return [low, high]


def _invert(text: str) -> bool | None:
    return {"auto": None, "yes": True, "no": False}[text]


def _image_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", help="the model input the image is for (default: the first)")
    parser.add_argument(
        "--invert",
        type=_invert,
        default=None,
        metavar="auto|yes|no",
        help="make a dark-on-light image light-on-dark (default: auto, from its background)",
    )


def _assign_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", action="append", default=[], metavar="SLOT=FILE_ID")
    parser.add_argument("--output", action="append", default=[], metavar="SLOT=FILE_ID")


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


def _parser() -> argparse.ArgumentParser:
    common = _common(top=False)
    parser = argparse.ArgumentParser(
        prog="teaclave-client",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_common(top=True)],
    )
    parser.set_defaults(timeout=30.0)
    sub = parser.add_subparsers(dest="command_name", required=True)
    schemas = [s.value for s in Schema]
    sealed = [s.value for s in Schema if s.sealed]

    def add(s: Any, name: str, command: Callable[[argparse.Namespace], Output], help: str) -> Any:
        p = s.add_parser(name, help=help, description=help, parents=[common])
        p.set_defaults(command=command)
        return p

    p = add(sub, "keygen", cmd_keygen, "make a random file key")
    p.add_argument("--schema", choices=schemas, default=DEFAULT_SCHEMA.value)
    p.add_argument("--out", type=Path, help="write it to a key file (0600) instead of printing")

    p = add(sub, "encrypt", cmd_encrypt, "encrypt a file (Teaclave's layout)")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--schema", choices=schemas, default=DEFAULT_SCHEMA.value)
    p.add_argument("--key", help="the key in hex (default: a fresh one)")
    p.add_argument("--key-file", type=Path, help="write schema, key, iv and cmac here (0600)")

    p = add(sub, "decrypt", cmd_decrypt, "decrypt a file; nothing is written unless it verifies")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--key-file", type=Path, help="from `encrypt --key-file`")
    p.add_argument("--schema", choices=schemas)
    p.add_argument("--key")
    p.add_argument("--iv")
    p.add_argument("--cmac")

    p = add(sub, "prepare-image", cmd_prepare_image, "a PNG or JPEG as a model's input (.npy)")
    p.add_argument("image", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--model-manifest", type=Path, required=True, help="the model's NAME.json")
    p.add_argument(
        "--range", type=_range, metavar="LO,HI", help="pixel range (default: manifest's)"
    )
    _image_options(p)

    p = add(sub, "login", cmd_login, "log in and keep the token (0600)")
    p.add_argument("username")
    p.add_argument(
        "--trust-new-keys",
        action="store_true",
        help="accept platform keys that differ from those of the last login to this URL",
    )
    p.add_argument("--password-file", type=Path)
    p.add_argument("--password-stdin", action="store_true")
    add(sub, "logout", cmd_logout, "revoke the token and forget it")

    users = sub.add_parser("user", help="users (PlatformAdmin)").add_subparsers(required=True)
    p = add(users, "create", cmd_user_create, "create a user")
    p.add_argument("username")
    p.add_argument(
        "--role", choices=["DataOwner", "FunctionOwner", "PlatformAdmin"], default="DataOwner"
    )
    p.add_argument("--attribute", default="")
    p.add_argument("--password-file", type=Path)
    p.add_argument("--password-stdin", action="store_true")

    functions = sub.add_parser("function", help="functions").add_subparsers(required=True)
    p = add(functions, "register", cmd_function_register, "register a built function")
    p.add_argument("wasm", type=Path)
    p.add_argument("--manifest", type=Path, help="NAME.json (default: beside the wasm)")
    p.add_argument("--name", help="default: the manifest's")
    p.add_argument("--public", action="store_true", help="anyone may use it")
    p.add_argument("--allow", action="append", default=[], metavar="USER_ID")
    p.add_argument("--description", default="")
    p.add_argument("--quota", type=int, default=-1)
    p.add_argument("--browser", action="store_true", help="its users may run it in browsers")
    p.add_argument("--spec", type=Path, help="JSON with more of the spec (arguments, limits...)")
    p = add(functions, "list", cmd_function_list, "functions you may use")
    p.add_argument("--mine", action="store_true", help="only your own")
    p.add_argument("--name")
    p = add(functions, "show", cmd_function_show, "one function")
    p.add_argument("function", help="id or name")
    p.add_argument("--manifest", action="store_true", help="with its manifest")

    data = sub.add_parser("data", help="input and output files").add_subparsers(required=True)
    p = add(data, "register-input", cmd_data_register_input, "encrypt, upload, register")
    p.add_argument("file", type=Path, nargs="?")
    p.add_argument("--schema", choices=schemas, default=DEFAULT_SCHEMA.value)
    p.add_argument("--at", help="the URL of a file you encrypted (`encrypt`) and placed there")
    p.add_argument("--key-file", type=Path, help="its key file (from `encrypt --key-file`)")
    p.add_argument("--owner", action="append", default=[], metavar="USER_ID")
    p = add(data, "register-output", cmd_data_register_output, "an output file (key kept here)")
    p.add_argument("--schema", choices=sealed, default=DEFAULT_SCHEMA.value)
    p.add_argument("--at", default="blob:", help="its URL (default: the platform's blob store)")
    p.add_argument("--owner", action="append", default=[], metavar="USER_ID")
    p = add(data, "fetch", cmd_data_fetch, "download and decrypt a written output")
    p.add_argument("file_id")
    p.add_argument("output", type=Path)

    tasks = sub.add_parser("task", help="tasks").add_subparsers(required=True)
    p = add(tasks, "create", cmd_task_create, "create a task (you own every slot by default)")
    p.add_argument("function", help="id or name")
    p.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--input-owner", action="append", default=[], metavar="SLOT=ID[,ID]|me")
    p.add_argument("--output-owner", action="append", default=[], metavar="SLOT=ID[,ID]|me")
    _assign_options(p)
    p.add_argument("--approve", action="store_true", help="and approve (once the data is in)")
    p.add_argument("--invoke", action="store_true", help="and approve and invoke (if all did)")
    p = add(tasks, "assign", cmd_task_assign, "assign your files to a task")
    p.add_argument("task")
    _assign_options(p)
    p.add_argument("--approve", action="store_true", help="and approve, in the same request")
    for verb in ("approve", "invoke", "cancel"):
        p = add(tasks, verb, _task_verb(verb), f"{verb} a task")
        p.add_argument("task")
        if verb == "approve":
            p.add_argument("--invoke", action="store_true", help="and invoke, if yours was last")
    p = add(tasks, "status", cmd_task_status, "a task's state")
    p.add_argument("task")
    p.add_argument("--wait", action="store_true", help="until it ends")
    p.add_argument("--wait-timeout", type=float, default=300.0, metavar="S")
    p = add(tasks, "result", cmd_task_result, "verify, fetch and decrypt a task's result")
    p.add_argument("task")
    p.add_argument("--out-dir", type=Path, help="write the decrypted outputs here")

    p = add(sub, "infer", cmd_infer, "run a registered function on images, end to end")
    p.add_argument("images", type=Path, nargs="+", help="PNG, JPEG, or a ready .npy tensor")
    p.add_argument("--function", required=True, help="id or name")
    p.add_argument("--schema", choices=sealed, default=DEFAULT_SCHEMA.value)
    p.add_argument(
        "--input-owner",
        action="append",
        default=[],
        metavar="SLOT=ID[,ID]",
        help="owners of the function's other inputs (they assign and approve)",
    )
    p.add_argument("--wait-timeout", type=float, default=300.0, metavar="S")
    p.add_argument("--out-dir", type=Path, help="write the decrypted outputs here")
    _image_options(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
