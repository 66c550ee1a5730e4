"""`Client`: the platform's verbs over HTTP, in the order of Teaclave's Python SDK flow:

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

The verbs live by concern: identity in `accounts`, functions in `functions`, files in `data`,
tasks in `tasks`, the whole data owner's flow in `flows`; HTTP, retries and problem+json ->
exception in `transport`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

from . import flows
from .keystore import KeyStore, MemoryKeyStore
from .models import Function, TaskResult, User, parse
from .tasks import TaskVerbs
from .vocabulary import DEFAULT_SCHEMA

__all__ = ["Client"]


class Client(TaskVerbs):
    """A session with one platform. `token` resumes a login; `pinned_keys` ({"sealing": id,
    "signing": id}, as `key_ids()` returns) refuses a platform whose keys changed; `keys` keeps
    the keys of the files this client registers (in memory by default); `session`, the requests
    session to send with (default: one that retries what is safe to retry)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        keys: KeyStore | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        pinned_keys: Mapping[str, str] | None = None,
        session: requests.Session | None = None,
    ) -> None:
        super().__init__(url, token, timeout=timeout, retries=retries, session=session)
        self.keys = keys if keys is not None else MemoryKeyStore()
        self.pinned_keys = dict(pinned_keys or {})
        self.user = None
        self._platform_keys = None
        self._input_cmacs = {}

    @classmethod
    def from_session(cls, path: Path, **kw: Any) -> Client:
        """A client resuming a saved session; it refuses the platform if its keys changed."""
        body = json.loads(path.read_text())
        client = cls(body["url"], body["token"], pinned_keys=body.get("key_ids"), **kw)
        client.user = parse(User, body["user"]) if body.get("user") else None
        return client

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
