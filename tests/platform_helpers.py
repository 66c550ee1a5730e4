"""Owners driving the platform through its HTTP API, as a client would: encrypt locally, wrap
keys to the published platform key, upload, register, submit, wait, fetch and decrypt."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from fastapi.testclient import TestClient
from guests import guest
from service_helpers import ADMIN_PASSWORD, HttpClient, login, make_user
from teaclave_client.crypto import decrypt, encrypt, generate_key
from teaclave_client.sealing import verify_receipt, wrap_key

from teaclave_infer.api import create_app
from teaclave_infer.domain.settings import Settings
from teaclave_infer.worker import in_threads

ENDED = {"Finished", "Failed", "Canceled"}


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


class Platform:
    def __init__(self, client: TestClient | HttpClient) -> None:
        self.client = client
        self.admin = login(client, "admin", ADMIN_PASSWORD)
        self.ids: dict[str, str] = {}
        self.auth: dict[str, dict[str, str]] = {}
        self.keys = client.get("/v1/platform/keys").json()
        self.secrets = Secrets()
        self.file_keys: dict[str, tuple[str, bytes]] = {}  # file id -> (schema, key)
        self.last_sealed = b""  # the ciphertext of the last input, for URLs the test serves
        for name, role in [("fo", "FunctionOwner"), ("do1", "DataOwner"), ("do2", "DataOwner")]:
            self.ids[name] = make_user(client, self.admin, name, role)
            self.auth[name] = login(client, name, f"{name}-password")

    def register(
        self, wasm: bytes, manifest: bytes = b"{}", public: bool = True, **spec: object
    ) -> str:
        r = self.client.post(
            "/v1/functions",
            headers=self.auth["fo"],
            files={"wasm": ("f.wasm", wasm), "manifest": ("f.json", manifest)},
            data={"spec": json.dumps({"name": "f", "public": public, **spec})},
        )
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

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
        r = self.client.post(
            "/v1/blobs",
            headers={**self.auth[who], "Content-Type": "application/octet-stream"},
            content=data,
        )
        assert r.status_code == 201, r.text
        return str(r.json()["url"])

    def input(
        self, who: str, plaintext: bytes, schema: str = "aes-gcm-128", url: str | None = None
    ) -> str:
        """Encrypts, uploads (unless `url` is given: the caller put the ciphertext there) and
        registers an input; returns its file id."""
        file_id, key = uuid.uuid4().hex, generate_key(schema)
        sealed, meta = encrypt(schema, key, plaintext)
        self.secrets.keys.append(key)
        self.secrets.plaintexts.append(plaintext)
        body = {
            "id": file_id,
            "url": url or self.upload(who, sealed),
            "schema": schema,
            "iv": meta.iv.hex(),
            "cmac": meta.cmac.hex(),
        }
        if key:
            body["wrapped_key"] = self.wrap(key, file_id, schema)
        r = self.client.post("/v1/files/inputs", headers=self.auth[who], json=body)
        assert r.status_code == 201, r.text
        self.file_keys[file_id] = (schema, key)
        self.last_sealed = sealed
        return file_id

    def output(self, who: str, schema: str = "aes-gcm-128", url: str = "blob:") -> str:
        file_id, key = uuid.uuid4().hex, generate_key(schema)
        self.secrets.keys.append(key)
        body = {"id": file_id, "url": url, "schema": schema}
        body["wrapped_key"] = self.wrap(key, file_id, schema)
        r = self.client.post("/v1/files/outputs", headers=self.auth[who], json=body)
        assert r.status_code == 201, r.text
        self.file_keys[file_id] = (schema, key)
        return file_id

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
        body = {
            "function_id": function_id,
            "arguments": {n: n for n in (*inputs, *outputs)},  # each slot's id is its name
            "inputs_ownership": [
                {"name": n, "owners": [self.ids[o]]} for n, (o, _) in inputs.items()
            ],
            "outputs_ownership": [
                {"name": n, "owners": [self.ids[o]]} for n, (o, _) in outputs.items()
            ],
        }
        r = self.client.post("/v1/tasks", headers=self.auth[creator], json=body)
        assert r.status_code == 201, r.text
        task = r.json()
        for owner in {o for o, _ in (*inputs.values(), *outputs.values())}:
            assignment = {
                "inputs": {n: f for n, (o, f) in inputs.items() if o == owner},
                "outputs": {n: f for n, (o, f) in outputs.items() if o == owner},
            }
            r = self.client.post(
                f"/v1/tasks/{task['id']}/assign", headers=self.auth[owner], json=assignment
            )
            assert r.status_code == 200, r.text
        for user_id, approved in r.json()["approvals"].items():
            if not approved:
                who = next(n for n, i in self.ids.items() if i == user_id)
                self.client.post(f"/v1/tasks/{task['id']}/approve", headers=self.auth[who])
        r = self.client.post(f"/v1/tasks/{task['id']}/invoke", headers=self.auth[creator])
        assert r.status_code == 200 and r.json()["state"] == "Staged", r.text
        return str(task["id"])

    def task(self, task_id: str, who: str = "do1") -> dict:
        r = self.client.get(f"/v1/tasks/{task_id}", headers=self.auth[who])
        assert r.status_code == 200, r.text
        return dict(r.json())

    def wait(self, task_id: str, timeout: float = 60.0, states=ENDED) -> dict:
        deadline = time.monotonic() + timeout
        while (task := self.task(task_id))["state"] not in states:
            assert time.monotonic() < deadline, f"task still {task['state']}: {task}"
            time.sleep(0.02)
        return task

    def fetch_output(self, who: str, file_id: str) -> bytes:
        """Downloads an output and decrypts it with its owner's key, checking its cmac."""
        meta = self.client.get(f"/v1/files/{file_id}", headers=self.auth[who]).json()
        r = self.client.get(f"/v1/files/{file_id}/content", headers=self.auth[who])
        assert r.status_code == 200, r.text
        schema, key = self.file_keys[file_id]
        return decrypt(
            schema, key, bytes.fromhex(meta["iv"]), r.content, bytes.fromhex(meta["cmac"])
        )

    def verified_receipt(self, task: dict) -> dict:
        """The receipt's payload, checked against the published key and the task's files."""
        payload = verify_receipt(task["result"]["receipt"], self.keys["signing"]["public_key"])
        assert payload["task_id"] == task["id"]
        assert payload["function_sha256"] == task["function_sha256"]
        assert payload["return_value"] == task["result"]["return_value"]
        for slot, out in task["result"]["outputs"].items():
            assert payload["outputs"][slot] == out["cmac"]
        return payload
