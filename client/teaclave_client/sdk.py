"""The platform's verbs over HTTP, in the order of Teaclave's Python SDK flow:

    with Client("http://127.0.0.1:8000") as client:
        client.login("alice", password)
        image = client.put_input(npy_bytes(tensor))              # encrypt, upload, register
        scores = client.register_output_file()                   # key made and kept here
        task = client.create_task(fid, inputs_ownership={"input_img": [client.user.id]}, ...)
        client.assign_data(task.id, inputs={"input_img": image.id}, outputs={"scores": scores.id})
        client.approve_task(task.id); client.invoke_task(task.id)
        result = client.get_task_result(client.wait(task.id))    # verified and decrypted

or, the caller's steps in one request each: `submit_task` (create, assign, approve, invoke),
`assign_data(..., approve=True)`, `approve_task(..., invoke=True)`; and all of it for plaintext
inputs with `client.infer(fid, {"input_img": npy})`. `wait` long-polls: the platform answers
when the task ends.

File keys are made on this machine, kept in a `KeyStore` (memory, or a 0600 file per key with
`DirectoryKeyStore`) and travel only wrapped to the platform's published key. Results are
checked three ways: the receipt's signature against the platform's signing key, the receipt's
contents against the task, and each output's tag against the cmac the receipt names.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from . import flows
from .crypto import SCHEMAS, decrypt, encrypt, generate_key
from .errors import ApiError, IntegrityError, TaskTimeout, TeaclaveClientError
from .keystore import DirectoryKeyStore, KeyStore, MemoryKeyStore, write_private
from .models import ENDED, FileInfo, Function, Task, TaskResult, User, parse
from .sealing import verify_receipt, wrap_key
from .transport import Transport
from .verify import check_finished, check_input, check_receipt
from .vocabulary import DEFAULT_SCHEMA

MAX_WAIT_S = 60.0  # the longest long-poll the platform holds

__all__ = [
    "ENDED",
    "Client",
    "DirectoryKeyStore",
    "FileInfo",
    "Function",
    "KeyStore",
    "MemoryKeyStore",
    "Task",
    "TaskResult",
    "User",
    "write_private",
]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


class Client(Transport):
    """A session with one platform. `token` resumes a login; `pinned_keys` ({"sealing": id,
    "signing": id}, as `key_ids()` returns) refuses a platform whose keys changed."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        keys: KeyStore | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        pinned_keys: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(url, token, timeout=timeout, retries=retries)
        self.keys: KeyStore = keys if keys is not None else MemoryKeyStore()
        self.pinned_keys = dict(pinned_keys or {})
        self.user: User | None = None
        self._platform_keys: dict[str, Any] | None = None
        # The tags of the inputs this client registered (an input's never changes): a result
        # is checked against them without asking the platform again.
        self._input_cmacs: dict[str, str] = {}

    def __enter__(self) -> Client:
        return self

    # -- identity ------------------------------------------------------------------------------

    def login(self, username: str, password: str) -> User:
        """Logs in; the token stays in memory (`save_session` stores it, 0600)."""
        body = self._json(
            "POST", "/v1/auth/login", json={"username": username, "password": password}
        )
        self.token = body["token"]
        self.user = parse(User, body["user"])
        return self.user

    def save_session(self, path: Path) -> None:
        """Stores the service's URL, the token, the user and the platform's key ids in a 0600
        file, for `from_session`: only when asked, since the token is a credential."""
        if not self.token:
            raise TeaclaveClientError("not logged in: no session to save")
        user = self.user or self.me()
        body = {"url": self.url, "token": self.token, "user": user, "key_ids": self.key_ids()}
        write_private(path, json.dumps(body, default=_jsonable).encode())

    @classmethod
    def from_session(cls, path: Path, **kw: Any) -> Client:
        """A client resuming a saved session; it refuses the platform if its keys changed."""
        body = json.loads(path.read_text())
        client = cls(body["url"], body["token"], pinned_keys=body.get("key_ids"), **kw)
        client.user = parse(User, body["user"]) if body.get("user") else None
        return client

    def logout(self) -> None:
        """Revokes the token on the platform."""
        self._request("POST", "/v1/auth/logout")
        self.token, self.user = None, None

    def me(self) -> User:
        self.user = parse(User, self._json("GET", "/v1/users/me"))
        return self.user

    def register_user(
        self, username: str, password: str, role: str = "DataOwner", attribute: str = ""
    ) -> User:
        """(PlatformAdmin) A new user: role PlatformAdmin, FunctionOwner or DataOwner."""
        body = {"username": username, "password": password, "role": role, "attribute": attribute}
        return parse(User, self._json("POST", "/v1/users", json=body))

    def platform_keys(self) -> dict[str, Any]:
        """The platform's published keys, checked against `pinned_keys` if any."""
        if self._platform_keys is None:
            keys = self._json("GET", "/v1/platform/keys")
            for use, expected in self.pinned_keys.items():
                if keys[use]["key_id"] != expected:
                    raise IntegrityError(
                        f"the platform's {use} key is {keys[use]['key_id']}, not the pinned "
                        f"{expected}: another platform, or its keys were replaced"
                    )
            self._platform_keys = keys
        return self._platform_keys

    def key_ids(self) -> dict[str, str]:
        return {use: str(self.platform_keys()[use]["key_id"]) for use in ("sealing", "signing")}

    # -- functions -----------------------------------------------------------------------------

    def register_function(
        self,
        wasm: bytes | Path,
        manifest: Mapping[str, Any] | Path,
        name: str | None = None,
        *,
        public: bool = False,
        description: str = "",
        allowlist: Sequence[str] = (),
        quota: int = -1,
        limits: Mapping[str, Any] | None = None,
        **spec: Any,
    ) -> Function:
        """(FunctionOwner) Uploads a built function: its .wasm and NAME.json. `spec` may add
        `arguments`, `inputs`, `outputs` (see the service's FunctionSpec)."""
        payload = wasm.read_bytes() if isinstance(wasm, Path) else wasm
        manifest_dict = (
            json.loads(manifest.read_text()) if isinstance(manifest, Path) else dict(manifest)
        )
        body = {
            "name": name or manifest_dict.get("name") or "function",
            "public": public,
            "description": description,
            "allowlist": list(allowlist),
            "quota": quota,
            "limits": dict(limits or {}),
            **spec,
        }
        files = {
            "wasm": ("function.wasm", payload, "application/wasm"),
            "manifest": ("function.json", json.dumps(manifest_dict), "application/json"),
        }
        data = {"spec": json.dumps(body)}
        return parse(Function, self._json("POST", "/v1/functions", files=files, data=data))

    def update_function(self, function_id: str, **changes: Any) -> Function:
        """(Its owner) Changes `description`, `public`, `allowlist`, `quota`, `disabled`,
        `limits`, `browser` or `browser_weights` (an input file id of yours; "" for none)."""
        return parse(Function, self._json("PATCH", f"/v1/functions/{function_id}", json=changes))

    def list_functions(self, scope: str = "allowed", name: str | None = None) -> list[Function]:
        """`allowed`: every function the caller may use; `mine`: the caller's own."""
        params = {"scope": scope, **({"name": name} if name else {})}
        return [parse(Function, f) for f in self._pages("/v1/functions", params)]

    def get_function(self, function_id: str) -> Function:
        return parse(Function, self._json("GET", f"/v1/functions/{function_id}"))

    def get_function_manifest(self, function_id: str) -> dict[str, Any]:
        """The builder's NAME.json the function was registered with: its inputs and outputs."""
        return dict(self._json("GET", f"/v1/functions/{function_id}/manifest"))

    def find_function(self, name_or_id: str) -> Function:
        """A function by id, or by name among those the caller may use (the name must be
        unambiguous)."""
        matches = self.list_functions(name=name_or_id)
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            ids = ", ".join(f.id for f in matches)
            raise TeaclaveClientError(
                f"{len(matches)} functions are named {name_or_id!r} ({ids}): give its id"
            )
        return self.get_function(name_or_id)

    # -- data ----------------------------------------------------------------------------------

    def upload(self, data: bytes) -> str:
        """Stores encrypted bytes in the platform's blob store; returns its `blob:` URL."""
        headers = {"Content-Type": "application/octet-stream"}
        return str(self._json("POST", "/v1/blobs", data=data, headers=headers)["url"])

    def download(self, file_id: str) -> bytes:
        """A file's encrypted bytes from the platform's blob store (its owners only)."""
        return self._request("GET", f"/v1/files/{file_id}/content").content

    def get_file(self, file_id: str) -> FileInfo:
        return parse(FileInfo, self._json("GET", f"/v1/files/{file_id}"))

    def _wrap(self, key: bytes, file_id: str, schema: str) -> str:
        return wrap_key(key, self.platform_keys()["sealing"]["public_key"], file_id, schema)

    def register_input_file(
        self,
        url: str,
        schema: str,
        key: bytes,
        iv: bytes,
        cmac: bytes,
        *,
        file_id: str | None = None,
        owners: Sequence[str] = (),
    ) -> FileInfo:
        """An input file already encrypted with `key` and placed at `url` (`blob:...` from
        `upload`, `https://...` or `file://...`). The key is wrapped to the platform key here,
        bound to the file's id, and kept in this client's key store."""
        file_id = file_id or uuid.uuid4().hex
        body: dict[str, Any] = {
            "id": file_id,
            "url": url,
            "schema": schema,
            "iv": iv.hex(),
            "cmac": cmac.hex(),
            "owners": list(owners),
        }
        if SCHEMAS.get(schema):
            body["wrapped_key"] = self._wrap(key, file_id, schema)
        info = parse(FileInfo, self._json("POST", "/v1/files/inputs", json=body))
        self.keys.put(info.id, schema, key)
        self._remember_input(info)
        return info

    def put_input(
        self, plaintext: bytes, schema: str = DEFAULT_SCHEMA, owners: Sequence[str] = ()
    ) -> FileInfo:
        """Encrypts with a fresh key, uploads and registers: the usual way to give an input."""
        key = generate_key(schema)
        sealed, meta = encrypt(schema, key, plaintext)
        return self.register_input_file(
            self.upload(sealed), schema, key, meta.iv, meta.cmac, owners=owners
        )

    def register_output_file(
        self,
        url: str = "blob:",
        schema: str = DEFAULT_SCHEMA,
        key: bytes | None = None,
        *,
        file_id: str | None = None,
        owners: Sequence[str] = (),
    ) -> FileInfo:
        """An output file the platform encrypts with `key` (fresh if None; kept in the key
        store) and stores at `url` (`blob:`: the platform's store)."""
        key = key if key is not None else generate_key(schema)
        file_id = file_id or uuid.uuid4().hex
        body = {
            "id": file_id,
            "url": url,
            "schema": schema,
            "wrapped_key": self._wrap(key, file_id, schema),
            "owners": list(owners),
        }
        info = parse(FileInfo, self._json("POST", "/v1/files/outputs", json=body))
        self.keys.put(info.id, schema, key)
        return info

    def _remember_input(self, info: FileInfo) -> None:
        if len(self._input_cmacs) >= 4096:  # bounded: the oldest goes
            del self._input_cmacs[next(iter(self._input_cmacs))]
        self._input_cmacs[info.id] = info.cmac or ""

    def fetch_output(self, file_id: str, cmac: str | None = None, iv: str | None = None) -> bytes:
        """An output's plaintext, decrypted with the key in the store. Its tag must be the
        `cmac` given (the receipt's) and the one the platform recorded. Given both `cmac` and
        `iv` (a task's result holds them), the file's record is not fetched: decryption itself
        checks the bytes against the receipt's tag."""
        stored = self.keys.get(file_id)
        if stored is None:
            raise IntegrityError(f"no key for file {file_id} in this client's key store")
        if cmac is None or iv is None:
            info = self.get_file(file_id)
            if info.cmac is None:
                raise TeaclaveClientError(f"file {file_id} has not been written yet")
            if cmac is not None and info.cmac.lower() != cmac.lower():
                raise IntegrityError(f"file {file_id}: its cmac is not the one the receipt names")
            cmac, iv = info.cmac, info.iv
        schema, key = stored
        try:
            iv_bytes, tag = bytes.fromhex(iv), bytes.fromhex(cmac)
        except ValueError:
            raise IntegrityError(f"file {file_id}: its iv or cmac is not hex") from None
        return decrypt(schema, key, iv_bytes, self.download(file_id), tag)

    # -- tasks ---------------------------------------------------------------------------------

    def _task_body(
        self,
        function_id: str,
        arguments: Mapping[str, Any] | None,
        inputs_ownership: Mapping[str, Sequence[str]] | None,
        outputs_ownership: Mapping[str, Sequence[str]] | None,
    ) -> dict[str, Any]:
        if arguments is None:
            arguments = self.get_function(function_id).default_arguments()
        return {
            "function_id": function_id,
            "arguments": dict(arguments),
            "inputs_ownership": [
                {"name": n, "owners": list(o)} for n, o in (inputs_ownership or {}).items()
            ],
            "outputs_ownership": [
                {"name": n, "owners": list(o)} for n, o in (outputs_ownership or {}).items()
            ],
        }

    def _post_task(self, body: Mapping[str, Any], idempotency_key: str | None) -> Task:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return parse(Task, self._json("POST", "/v1/tasks", json=body, headers=headers))

    def create_task(
        self,
        function_id: str,
        arguments: Mapping[str, Any] | None = None,
        inputs_ownership: Mapping[str, Sequence[str]] | None = None,
        outputs_ownership: Mapping[str, Sequence[str]] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Task:
        """A task of the function. `arguments` default to the function's overwritable ones;
        ownership maps each input and output slot to its owners' user ids."""
        body = self._task_body(function_id, arguments, inputs_ownership, outputs_ownership)
        return self._post_task(body, idempotency_key)

    def submit_task(
        self,
        function_id: str,
        inputs: Mapping[str, str] | None = None,
        outputs: Mapping[str, str] | None = None,
        *,
        arguments: Mapping[str, Any] | None = None,
        inputs_ownership: Mapping[str, Sequence[str]] | None = None,
        outputs_ownership: Mapping[str, Sequence[str]] | None = None,
        approve: bool = True,
        invoke: bool = True,
        idempotency_key: str | None = None,
    ) -> Task:
        """Creates a task and, in the same request (one transaction on the platform), assigns
        the caller's files (slot -> file id), approves and invokes it, each as far as the
        rules allow. The task comes back Staged when the caller owns every slot and nobody
        else must approve; otherwise where it must wait for others, `task.stopped` saying why
        and `task.waiting_for` what (the slots and approvals missing). A slot in `inputs` or
        `outputs` is the caller's unless the ownership maps say otherwise."""
        me = (self.user or self.me()).id
        owners_in = {slot: [me] for slot in inputs or {}} | dict(inputs_ownership or {})
        owners_out = {slot: [me] for slot in outputs or {}} | dict(outputs_ownership or {})
        body = self._task_body(function_id, arguments, owners_in, owners_out)
        body |= {
            "assign": {"inputs": dict(inputs or {}), "outputs": dict(outputs or {})},
            "approve": approve,
            "invoke": invoke,
        }
        return self._post_task(body, idempotency_key)

    def assign_data(
        self,
        task_id: str,
        inputs: Mapping[str, str] | None = None,
        outputs: Mapping[str, str] | None = None,
        *,
        approve: bool = False,
    ) -> Task:
        """Assigns the caller's files (slot -> file id) to the task; with `approve`, approves
        it in the same request once its data is complete."""
        body = {"inputs": dict(inputs or {}), "outputs": dict(outputs or {}), "approve": approve}
        return parse(Task, self._json("POST", f"/v1/tasks/{task_id}/assign", json=body))

    def approve_task(self, task_id: str, *, invoke: bool = False) -> Task:
        """Approves the task; with `invoke` (its creator only), an approval that is the last
        one also invokes it, in the same request."""
        body = {"invoke": True} if invoke else None
        return parse(Task, self._json("POST", f"/v1/tasks/{task_id}/approve", json=body))

    def invoke_task(self, task_id: str) -> Task:
        return parse(Task, self._json("POST", f"/v1/tasks/{task_id}/invoke"))

    def cancel_task(self, task_id: str) -> Task:
        return parse(Task, self._json("POST", f"/v1/tasks/{task_id}/cancel"))

    def get_task(self, task_id: str, wait: float = 0.0, until: Iterable[str] = ()) -> Task:
        """The task; with `wait` (seconds, at most 60), once it ends (or reaches a state in
        `until`) or when `wait` is up, whichever comes first: one long-poll."""
        if wait <= 0:
            return parse(Task, self._json("GET", f"/v1/tasks/{task_id}"))
        wait = min(wait, MAX_WAIT_S)
        params = {"wait": f"{wait:.3f}", "until": sorted(until)}
        body = self._json(
            "GET", f"/v1/tasks/{task_id}", params=params, timeout=(5.0, self.timeout + wait)
        )
        return parse(Task, body)

    def list_tasks(self, state: str | None = None) -> list[Task]:
        return [parse(Task, t) for t in self._pages("/v1/tasks", {"state": state} if state else {})]

    def wait(
        self,
        task_id: str,
        timeout: float | None = 300.0,
        *,
        states: Iterable[str] = ENDED,
        progress: Callable[[Task], None] | None = None,
    ) -> Task:
        """Waits until the task reaches one of `states` (by default: it ended; an ended task
        ends every wait), in long-polls of up to a minute: the platform answers as soon as the
        task ends, without polling. `progress(task)` after each answer. TaskTimeout after
        `timeout` seconds (None: no limit)."""
        wanted = frozenset(states)
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.5  # after a 429: the platform holds as many waits as it allows
        while True:
            left = MAX_WAIT_S if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                task = self.get_task(task_id, left, wanted - ENDED)
            except ApiError as err:
                if err.status != 429 or left < pause:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 8.0)
                continue
            if progress is not None:
                progress(task)
            if task.state in wanted or task.ended:
                return task
            if deadline is not None and time.monotonic() >= deadline:
                raise TaskTimeout(f"task {task_id} is still {task.state} after {timeout:g} s")

    def get_task_result(self, task: str | Task) -> TaskResult:
        """The result of a finished task, verified: the receipt is signed by the platform's
        signing key and speaks of this task, this function, this return value and these
        outputs; each output this client holds a key for is fetched, its tag checked against
        the receipt and decrypted. TaskFailed if the task failed or was canceled."""
        task = self.get_task(task) if isinstance(task, str) else task
        result = check_finished(task)
        slots = (*task.input_owners.values(), *task.output_owners.values())
        me = (self.user or self.me()).id
        if "receipt" not in result and me != task.creator_id and all(me not in s for s in slots):
            raise TeaclaveClientError(
                f"task {task.id} finished, but only its creator and data owners see its return "
                "value, receipt and outputs (you take part as the function's owner)"
            )
        signing = self.platform_keys()["signing"]["public_key"]
        payload = verify_receipt(result.get("receipt") or {}, signing)
        check_receipt(payload, task, result)
        for slot, file_id in task.assigned_inputs.items():  # our own inputs: were they used?
            if self.keys.get(file_id) is not None:
                cmac = self._input_cmacs.get(file_id) or self.get_file(file_id).cmac or ""
                check_input(payload, slot, file_id, cmac)
        outputs, missing = {}, []
        for slot, out in result.get("outputs", {}).items():
            if self.keys.get(out["file_id"]) is None:
                missing.append(slot)
                continue
            outputs[slot] = self.fetch_output(
                out["file_id"], payload["outputs"][slot], out.get("iv")
            )
        return TaskResult(task, int(result["return_value"]), outputs, payload, missing)

    # -- the whole flow ------------------------------------------------------------------------

    def infer(
        self,
        function: Function | str,
        inputs: Mapping[str, bytes],
        *,
        schema: str = DEFAULT_SCHEMA,
        others: Mapping[str, Sequence[str]] | None = None,
        timeout: float | None = 300.0,
        progress: Callable[[str], None] | None = None,
    ) -> TaskResult:
        """A data owner's whole flow: encrypts, uploads and registers `inputs` (slot ->
        plaintext) and an output for each of the function's outputs; creates, assigns,
        approves and invokes the task in one request; waits for it (long-polls) and returns
        its result, verified and decrypted. `others` names the owners of the function's other
        inputs (slot -> user ids): once they have assigned and approved theirs, this approves
        and invokes. `progress(step)` names each step. TaskTimeout after `timeout` seconds.
        Six requests for one input and one output when nobody else takes part (and once per
        client the platform's keys; the function too, when given by id)."""
        return flows.infer(
            self,
            function,
            inputs,
            schema=schema,
            others=others,
            timeout=timeout,
            progress=progress,
        )
