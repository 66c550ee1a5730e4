"""The SDK against a real service on loopback (`teaclave-infer serve`, two workers): the whole
Teaclave flow for MNIST with separate encrypted weights, and each way it refuses: a wrong
password, a forbidden call, a wrong key, a tampered receipt, changed platform keys, a failed
task, a timeout, a service that is down."""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from guests import ECHO, guest
from paths import MNIST
from service_helpers import ADMIN_PASSWORD, BUILDER, refused_port
from teaclave_client import Client, DirectoryKeyStore, MemoryKeyStore
from teaclave_client.crypto import generate_key
from teaclave_client.errors import (
    AuthenticationError,
    ConflictError,
    IntegrityError,
    NotFound,
    PermissionDenied,
    ReceiptError,
    ServiceUnavailable,
    TaskFailed,
    TaskTimeout,
    TeaclaveClientError,
)
from teaclave_client.images import npy_bytes, prepare_for

SAMPLES = MNIST / "samples"
LABELS: dict[str, int] = json.loads((SAMPLES / "labels.json").read_text())


@dataclasses.dataclass
class People:
    url: str
    model: Client  # a FunctionOwner
    data: Client  # a DataOwner
    other: Client  # a DataOwner who takes part in nothing
    passwords: dict[str, str]


@pytest.fixture(scope="module")
def people(module_service) -> People:
    suffix = secrets.token_hex(3)
    passwords = {}
    clients = {}
    with Client(module_service) as admin:
        admin.login("admin", ADMIN_PASSWORD)
        for who, role in [
            ("model", "FunctionOwner"),
            ("data", "DataOwner"),
            ("other", "DataOwner"),
        ]:
            name, passwords[who] = f"{who}-{suffix}", secrets.token_urlsafe(12)
            user = admin.register_user(name, passwords[who], role)
            assert user.role == role and user.username == name
            clients[who] = Client(module_service)
            assert clients[who].login(name, passwords[who]).id == user.id
    return People(module_service, **clients, passwords=passwords)


@pytest.fixture(scope="module")
def mnist_function(people, mnist_build):
    """MNIST registered privately for the data owner, its weights uploaded encrypted once."""
    assert people.data.user is not None
    function = people.model.register_function(
        mnist_build.wasm,
        mnist_build.manifest_path,
        allowlist=[people.data.user.id],
    )
    weights = people.model.put_input(mnist_build.weights.read_bytes(), "aes-gcm-256")
    return function, weights


def submit(people: People, function, weights, image: Path) -> str:
    """The data owner's and the model owner's steps up to invoke; returns the task id."""
    data, model = people.data, people.model
    assert data.user and model.user
    slot, tensor = prepare_for(data.get_function_manifest(function.id), image)
    sealed = data.put_input(npy_bytes(tensor))
    scores = data.register_output_file()
    task = data.create_task(
        function.id,
        inputs_ownership={slot: [data.user.id], "weights": [model.user.id]},
        outputs_ownership={"scores": [data.user.id]},
    )
    assert task.state == "Created" and set(task.approvals) == {data.user.id, model.user.id}
    data.assign_data(task.id, {slot: sealed.id}, {"scores": scores.id})
    assert model.assign_data(task.id, {"weights": weights.id}).state == "DataAssigned"
    data.approve_task(task.id)
    assert model.approve_task(task.id).state == "Approved"
    assert data.invoke_task(task.id).state == "Staged"
    return task.id


def test_the_teaclave_flow_with_encrypted_weights_and_images(people, mnist_function):
    function, weights = mnist_function
    assert people.data.find_function(function.name).id == function.id
    assert people.data.get_function(function.id).sha256 == function.sha256
    assert [f.id for f in people.model.list_functions("mine")] == [function.id]
    assert people.other.list_functions(name=function.name) == []  # private: not for them
    for name in sorted(LABELS)[::4]:
        task_id = submit(people, function, weights, SAMPLES / name)
        seen: list = []
        task = people.data.wait(task_id, 60, progress=seen.append)
        assert task.state == "Finished" and [t.state for t in seen][-1] == "Finished"
        result = people.data.get_task_result(task)
        assert result.return_value == LABELS[name]
        scores = np.load(io.BytesIO(result.outputs["scores"]))
        assert scores.shape == (1, 10) and int(scores.argmax()) == LABELS[name]
        assert result.receipt["task_id"] == task_id and result.missing_keys == []
        # the model owner took part but holds no key to the data owner's scores
        assert people.model.get_task_result(task_id).missing_keys == ["scores"]


def test_wrong_password_and_a_revoked_token(people):
    with Client(people.url) as client:
        with pytest.raises(AuthenticationError) as err:
            client.login(people.data.user.username, "not-the-password")  # type: ignore[union-attr]
        assert err.value.status == 401 and err.value.exit_code == 4
        client.login(people.other.user.username, people.passwords["other"])  # type: ignore[union-attr]
        token = client.token
        client.logout()
    with Client(people.url, token) as stale, pytest.raises(AuthenticationError):
        stale.me()


def test_forbidden_and_not_found_carry_the_servers_detail(people, mnist_function, mnist):
    function, weights = mnist_function
    with pytest.raises(PermissionDenied) as err:  # a DataOwner may not register functions
        people.data.register_function(mnist[0], json.loads(mnist[1]))
    assert "FunctionOwner" in err.value.detail and err.value.problem["status"] == 403
    with pytest.raises(NotFound):  # a private function does not exist for a stranger
        people.other.get_function(function.id)
    task_id = submit(people, function, weights, SAMPLES / "digit_1_a.png")
    with pytest.raises(NotFound):
        people.other.get_task(task_id)
    with pytest.raises(ConflictError) as conflict:  # invoked already
        people.data.invoke_task(task_id)
    assert (
        "Staged" in conflict.value.detail
        or "Running" in conflict.value.detail
        or ("Finished" in conflict.value.detail)
    )


def test_a_wrong_key_at_decrypt_yields_nothing(people, mnist_function):
    function, weights = mnist_function
    task = people.data.wait(submit(people, function, weights, SAMPLES / "digit_2_a.png"), 60)
    scores_id = task.assigned_outputs["scores"]
    schema, _ = people.data.keys.get(scores_id) or ("", b"")
    people.data.keys.put(scores_id, schema, generate_key(schema))
    with pytest.raises(IntegrityError) as err:
        people.data.get_task_result(task)
    assert err.value.exit_code == 8


def test_tampered_results_are_rejected(people, mnist_function):
    function, weights = mnist_function
    task = people.data.wait(submit(people, function, weights, SAMPLES / "digit_3_a.png"), 60)
    assert people.data.get_task_result(task).return_value == 3
    result = task.result or {}
    lie = dataclasses.replace(task, result={**result, "return_value": 8})
    with pytest.raises(ReceiptError, match="return_value"):
        people.data.get_task_result(lie)
    receipt = result["receipt"]
    forged = {**receipt, "payload": {**receipt["payload"], "return_value": 8}}
    with pytest.raises(ReceiptError, match="signature"):
        people.data.get_task_result(
            dataclasses.replace(task, result={**result, "return_value": 8, "receipt": forged})
        )
    other = submit(people, function, weights, SAMPLES / "digit_4_a.png")
    other_task = people.data.wait(other, 60)
    swapped = dataclasses.replace(task, result=other_task.result)  # a real receipt, wrong task
    with pytest.raises(ReceiptError, match="task_id"):
        people.data.get_task_result(swapped)


def test_pinned_platform_keys(people):
    with Client(people.url) as client:
        good = client.key_ids()
    with Client(people.url, pinned_keys=good) as client:
        assert client.key_ids() == good
    with (
        Client(people.url, pinned_keys={"signing": "0" * 16}) as client,
        pytest.raises(IntegrityError, match="pinned"),
    ):
        client.platform_keys()


def test_a_failing_function_raises_task_failed(people):
    trap = people.model.register_function(
        guest("(unreachable)"),
        {**BUILDER, "name": "trap"},
        public=True,
        inputs=[],
        outputs=[],
        arguments=[],
    )
    task = people.data.create_task(trap.id, {}, {}, {})
    assert people.data.assign_data(task.id).state == "Approved"  # the only participant
    people.data.invoke_task(task.id)
    ended = people.data.wait(task.id, 60)
    with pytest.raises(TaskFailed) as err:
        people.data.get_task_result(ended)
    assert err.value.kind == "trap" and err.value.exit_code == 7


def test_wait_gives_up_after_its_timeout(people, mnist_function):
    function, _ = mnist_function
    assert people.data.user and people.model.user
    task = people.data.create_task(
        function.id,
        inputs_ownership={"input_img": [people.data.user.id], "weights": [people.model.user.id]},
        outputs_ownership={"scores": [people.data.user.id]},
    )
    with pytest.raises(TaskTimeout, match="Created"):
        people.data.wait(task.id, timeout=0.3)
    assert people.data.cancel_task(task.id).state == "Canceled"


def test_a_service_that_is_down_is_a_clear_error():
    with (
        refused_port() as port,
        Client(f"http://127.0.0.1:{port}", retries=1) as client,
        pytest.raises(ServiceUnavailable, match="cannot reach the service at http://127"),
    ):
        client.login("admin", "whatever")


def test_key_stores(tmp_path):
    memory = MemoryKeyStore()
    memory.put("ab12", "aes-gcm-128", b"k" * 16)
    assert memory.get("ab12") == ("aes-gcm-128", b"k" * 16) and memory.get("cd34") is None
    disk = DirectoryKeyStore(tmp_path / "keys")
    disk.put("ab12", "aes-gcm-256", b"k" * 32)
    assert DirectoryKeyStore(tmp_path / "keys").get("ab12") == ("aes-gcm-256", b"k" * 32)
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "keys" / "ab12.json").stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError):
        disk.get("../session")


def test_a_saved_session_is_private_and_resumes(people, tmp_path):
    assert people.data.user is not None
    path = tmp_path / "home" / "session.json"
    people.data.save_session(path)
    assert path.stat().st_mode & 0o777 == 0o600
    with Client.from_session(path) as resumed:
        assert resumed.me().id == people.data.user.id
        assert resumed.pinned_keys == people.data.key_ids()
    with Client(people.url) as anonymous, pytest.raises(TeaclaveClientError, match="not logged"):
        anonymous.save_session(tmp_path / "nothing.json")
    assert not (tmp_path / "nothing.json").exists()


def test_infer_is_six_requests_with_one_long_poll(people):
    """The data owner's whole flow when nobody else takes part: upload, register the input and
    the output, the task in one request, one long-poll for its end, the output's record and
    content (the platform's keys and the caller's id are asked once per client)."""
    echo = people.model.register_function(
        guest(ECHO),
        {**BUILDER, "name": "echo"},
        public=True,
        inputs=[{"name": "in"}],
        outputs=[{"name": "out"}],
        arguments=[{"name": n, "default": n} for n in ("in", "out")],
    )
    sent: list[str] = []

    def record(response, *args, **kwargs) -> None:
        sent.append(f"{response.request.method} {urlsplit(response.request.url).path}")

    people.data.platform_keys()
    people.data._http.hooks["response"].append(record)
    try:
        result = people.data.infer(echo, {"in": b"hello"})
    finally:
        people.data._http.hooks["response"].remove(record)
    assert result.return_value == 5 and result.outputs == {"out": b"hello"}
    task, out = result.task.id, result.task.assigned_outputs["out"]
    assert sent == [
        "POST /v1/blobs",
        "POST /v1/files/inputs",
        "POST /v1/files/outputs",
        "POST /v1/tasks",
        f"GET /v1/tasks/{task}",
        f"GET /v1/files/{out}/content",  # the result has its iv and cmac: no file record
    ]


def test_infer_waits_for_the_model_owner_then_approves_and_invokes(people, mnist_function):
    """With the model owner's separate weights: `infer` stops where the weights are missing,
    the model owner assigns them and approves in one request, and `infer` approves and
    invokes in one (the model owner's assignment withdrew the data owner's approval)."""
    function, weights = mnist_function
    data, model = people.data, people.model
    assert data.user and model.user
    name = sorted(LABELS)[5]
    slot, tensor = prepare_for(data.get_function_manifest(function.id), SAMPLES / name)
    acted: list[str] = []

    def progress(step: str) -> None:  # the model owner acts when the data owner waits
        if step.startswith("waiting") and not acted:
            assert "weights" in step
            mine = [t for t in model.list_tasks("Created") if t.creator_id == data.user.id]
            task = max(mine, key=lambda t: str(t.created_at))
            acted.append(model.assign_data(task.id, {"weights": weights.id}, approve=True).state)

    result = data.infer(
        function,
        {slot: npy_bytes(tensor)},
        others={"weights": [model.user.id]},
        timeout=60,
        progress=progress,
    )
    assert acted == ["DataAssigned"] and result.return_value == LABELS[name]
    assert result.task.approvals == {data.user.id: True, model.user.id: True}


def test_the_package_imports_its_modules_only_when_a_name_is_used():
    """`teaclave_client` resolves its names lazily (PEP 562): the vocabulary alone imports no
    requests, numpy or cryptography; every exported name resolves to its module's object."""
    code = (
        "import sys, teaclave_client.vocabulary; "
        "print(sorted({'requests', 'numpy', 'cryptography'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    import teaclave_client

    assert set(teaclave_client._HOME) == set(teaclave_client.__all__)
    for name in teaclave_client.__all__:
        module = importlib.import_module(f"teaclave_client.{teaclave_client._HOME[name]}")
        assert getattr(teaclave_client, name) is getattr(module, name)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        teaclave_client.nope  # noqa: B018
