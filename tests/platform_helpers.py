"""Owners driving the platform through the SDK (`teaclave_client.Client`), as a client would:
encrypt locally, wrap keys to the published platform key, upload, register, submit, wait,
fetch and decrypt; in the test's process (a TestClient) or against a live service."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi.testclient import TestClient
from guests import guest
from service_helpers import HttpClient, Users, builder_manifest
from teaclave_client import Task
from teaclave_client.crypto import encrypt, generate_key
from teaclave_client.sealing import verify_receipt, wrap_key

from teaclave_infer.api import create_app
from teaclave_infer.domain.settings import Settings
from teaclave_infer.worker import in_threads


@contextmanager
def app_with_workers(settings: Settings, workers: int = 2) -> Iterator[TestClient]:
    """The app in a TestClient (its lifespan run) and `workers` workers beside it, as threads of
    the test's process where `serve --workers N` starts processes; /v1/health reports them."""
    settings = settings.model_copy(update={"workers": workers})
    with TestClient(create_app(settings)) as client, in_threads(settings, workers):
        yield client


@dataclass
class Secrets:
    """Every key and plaintext the owners handled: none may appear in the database or logs."""

    keys: list[bytes] = field(default_factory=list)
    plaintexts: list[bytes] = field(default_factory=list)


class Platform(Users):
    """Three owners (a function owner "fo", data owners "do1" and "do2") and the admin, each
    with an SDK client (see `Users`), and what they encrypted."""

    def __init__(self, client: TestClient | HttpClient) -> None:
        super().__init__(client, {"fo": "FunctionOwner", "do1": "DataOwner", "do2": "DataOwner"})
        self.keys = self.users["admin"].platform_keys()
        self.secrets = Secrets()
        self.file_keys: dict[str, tuple[str, bytes]] = {}  # file id -> (schema, key)
        self.last_sealed = b""  # the ciphertext of the last input, for URLs the test serves

    def register(
        self, wasm: bytes, manifest: bytes | None = None, public: bool = True, **spec: Any
    ) -> str:
        name = spec.pop("name", "f")
        function = self.sdk("fo").register_function(
            wasm, json.loads(manifest or builder_manifest()), name, public=public, **spec
        )
        return function.id

    def post_function(
        self, spec: dict[str, Any], wasm: bytes | None = None, manifest: bytes | None = None
    ) -> Any:
        """`fo`'s raw POST /v1/functions (a no-op guest by default, no manifest unless given),
        for the tests of what it refuses."""
        files = {"wasm": ("f.wasm", wasm or guest("(i32.const 0)"))}
        if manifest is not None:
            files["manifest"] = ("f.json", manifest)
        return self.client.post(
            "/v1/functions",
            headers=self.auth["fo"],
            files=files,
            data={"spec": json.dumps({"name": "f", **spec})},
        )

    def register_guest(self, body: str, inputs=("in",), outputs=("out",), **spec: object) -> str:
        """A hand-written WAT function with the given inputs and outputs."""
        return self.register(
            guest(body),
            inputs=[{"name": n} for n in inputs],
            outputs=[{"name": n} for n in outputs],
            arguments=[{"name": n, "default": n} for n in (*inputs, *outputs)],
            **spec,
        )

    def upload(self, who: str, data: bytes) -> str:
        return self.sdk(who).upload(data)

    def input(
        self, who: str, plaintext: bytes, schema: str = "aes-gcm-128", url: str | None = None
    ) -> str:
        """Encrypts, uploads (unless `url` is given: the caller put the ciphertext there) and
        registers an input; returns its file id."""
        key = generate_key(schema)
        sealed, meta = encrypt(schema, key, plaintext)
        self.secrets.keys.append(key)
        self.secrets.plaintexts.append(plaintext)
        owner = self.sdk(who)
        info = owner.register_input_file(
            url or owner.upload(sealed), schema, key, meta.iv, meta.cmac
        )
        self.file_keys[info.id] = (schema, key)
        self.last_sealed = sealed
        return info.id

    def output(self, who: str, schema: str = "aes-gcm-128", url: str = "blob:") -> str:
        key = generate_key(schema)
        self.secrets.keys.append(key)
        info = self.sdk(who).register_output_file(url, schema, key)
        self.file_keys[info.id] = (schema, key)
        return info.id

    def wrap(self, key: bytes, file_id: str, schema: str) -> str:
        return wrap_key(key, self.keys["sealing"]["public_key"], file_id, schema)

    def submit(
        self,
        function_id: str,
        inputs: dict[str, tuple[str, str]],
        outputs: dict[str, tuple[str, str]],
        creator: str = "do1",
    ) -> str:
        """Creates, assigns, approves and invokes a task; slot -> (owner, file id)."""
        task = self.sdk(creator).create_task(
            function_id,
            {n: n for n in (*inputs, *outputs)},  # each slot's id is its name
            {n: [self.ids[o]] for n, (o, _) in inputs.items()},
            {n: [self.ids[o]] for n, (o, _) in outputs.items()},
        )
        for owner in {o for o, _ in (*inputs.values(), *outputs.values())}:
            assigned = self.sdk(owner).assign_data(
                task.id,
                {n: f for n, (o, f) in inputs.items() if o == owner},
                {n: f for n, (o, f) in outputs.items() if o == owner},
            )
        for user_id, approved in assigned.approvals.items():
            if not approved:
                who = next(n for n, i in self.ids.items() if i == user_id)
                self.sdk(who).approve_task(task.id)
        invoked = self.sdk(creator).invoke_task(task.id)
        assert invoked.state == "Staged", invoked
        return task.id

    def task(self, task_id: str, who: str = "do1") -> dict:
        return _plain(self.sdk(who).get_task(task_id))

    def wait(self, task_id: str, timeout: float = 60.0) -> dict:
        """The task once it ended (the SDK's long-poll: the platform wakes it as the task ends).
        Nothing waits for Running: a run may be over before a test that saw it acts; a test
        that must act on a running task holds it (held_store.py) and acts while it is held."""
        return _plain(self.sdk("do1").wait(task_id, timeout))

    def fetch_output(self, who: str, file_id: str) -> bytes:
        """Downloads an output and decrypts it with its owner's key, checking its cmac."""
        client = self.sdk(who)
        if client.keys.get(file_id) is None:  # registered by another owner of the file
            client.keys.put(file_id, *self.file_keys[file_id])
        return client.fetch_output(file_id)

    def verified_receipt(self, task: dict) -> dict:
        """The receipt's payload, checked against the published key and the task's files."""
        payload = verify_receipt(task["result"]["receipt"], self.keys["signing"]["public_key"])
        assert payload["task_id"] == task["id"]
        assert payload["function_sha256"] == task["function_sha256"]
        assert payload["return_value"] == task["result"]["return_value"]
        for slot, out in task["result"]["outputs"].items():
            assert payload["outputs"][slot] == out["cmac"]
        return payload


def _plain(task: Task) -> dict:
    """A task as the tests read it: the JSON's fields (datetimes as datetimes)."""
    return dataclasses.asdict(task)
