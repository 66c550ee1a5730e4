"""The Teaclave-compatible facade (`teaclave_client.teaclave`) against the app in this process
and two worker threads: Teaclave's calls, in Teaclave's order, give Teaclave's answers; file
keys never cross the network as given; what the platform cannot honour is a clear error."""

from __future__ import annotations

import base64
import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests
from guests import ECHO, guest
from platform_helpers import app_with_workers
from service_helpers import ADMIN_PASSWORD
from service_helpers import TestClientAdapter as InProcess
from teaclave_client.crypto import encrypt, generate_key
from teaclave_client.teaclave import (
    AttestationNotAvailable,
    AuthenticationService,
    DataMap,
    FrontendService,
    FunctionArgument,
    FunctionInput,
    FunctionOutput,
    InsecureConnection,
    Message,
    OwnerList,
    TaskStatus,
    TeaclaveException,
)
from teaclave_client.teaclave._ids import external_id, platform_id
from teaclave_client.vocabulary import TaskState, executor_refusal

ADD = "(i32.add (local.get $argc) (i32.const 3))"  # argc 4 (two arguments) -> 7


@dataclass
class Wire:
    """Every request body the facade sent, to look for keys in the clear."""

    bodies: list[bytes] = field(default_factory=list)

    def seen(self, secret: bytes) -> bool:
        forms = [
            secret,
            secret.hex().encode(),
            base64.b64encode(secret),
            str(list(secret)).encode(),
        ]
        return any(f in body for body in self.bodies for f in forms)


class _Recording(InProcess):
    def __init__(self, client, wire: Wire) -> None:
        super().__init__(client)
        self.wire = wire

    def send(self, request, *args, **kw):
        body = request.body or b""
        self.wire.bodies.append(body if isinstance(body, bytes) else body.encode())
        return super().send(request, *args, **kw)


@dataclass
class Teaclave:
    """Services of the app in this process, made as Teaclave's utils.py makes them."""

    app: object
    wire: Wire
    # The app answers any host; a loopback name keeps the plain-http warning for other hosts.
    url: str = "http://localhost"

    def session(self) -> requests.Session:
        session = requests.Session()
        session.mount(self.url, _Recording(self.app, self.wire))
        return session

    def auth(self) -> AuthenticationService:
        return AuthenticationService(self.url, session=self.session()).connect()

    def frontend(self, user: str, password: str) -> FrontendService:
        with self.auth() as auth:
            token = auth.user_login(user, password)
        client = FrontendService(self.url, session=self.session()).connect()
        client.metadata = {"id": user, "token": token}
        return client


@pytest.fixture
def teaclave(settings) -> Iterator[Teaclave]:
    with app_with_workers(settings, workers=2) as app:
        platform = Teaclave(app, Wire())
        with platform.auth() as admin:
            admin.user_login("admin", ADMIN_PASSWORD)
            admin.user_register("owner", "owner-password-1", "FunctionOwner")
            admin.user_register("user0", "user0-password-1", "DataOwner")
            admin.user_register("user1", "user1-password-1", "DataOwner")
        yield platform


def test_a_lone_creator_runs_a_task_without_approving_as_in_teaclave(teaclave):
    with teaclave.frontend("owner", "owner-password-1") as client:
        function_id = client.register_function(
            name="entrypoint",
            description="adds",
            executor_type="wamr",
            payload=list(guest(ADD)),
            arguments=[FunctionArgument("adder1"), FunctionArgument("adder2")],
        )
        assert function_id.startswith("function-")
        task_id = client.create_task(
            function_id=function_id,
            function_arguments={"adder1": "3", "adder2": "4"},
            executor="wamr",
        )
        assert task_id.startswith("task-")
        client.invoke_task(task_id)
        assert client.get_task_result(task_id) == b"7"
        task = client.get_task(task_id)
        assert task["status"] == TaskStatus.Finished and task["creator"] == "owner"
        assert base64.b64decode(task["result"]["Ok"]["return_value"]) == b"7"
        assert json.loads(task["function_arguments"]) == {"adder1": "3", "adder2": "4"}


def test_two_data_owners_run_a_task_and_their_keys_stay_wrapped(teaclave):
    owner = teaclave.frontend("owner", "owner-password-1")
    function_id = owner.register_function(
        "echo",
        "copies in to out",
        "wamr",
        public=True,
        payload=guest(ECHO),
        arguments=[FunctionArgument("in", "in", False), FunctionArgument("out", "out", False)],
        inputs=[FunctionInput("in", "what to copy")],
        outputs=[FunctionOutput("out", "the copy")],
    )
    user0 = teaclave.frontend("user0", "user0-password-1")
    user1 = teaclave.frontend("user1", "user1-password-1")
    task_id = user0.create_task(
        function_id,
        {},
        "wamr",
        inputs_ownership=[OwnerList("in", ["user0"])],
        outputs_ownership=[OwnerList("out", ["user1"])],
    )
    key_in, key_out = generate_key("aes-gcm-128"), generate_key("aes-gcm-128")
    sealed, meta = encrypt("aes-gcm-128", key_in, b"a secret of user0")
    url = user0.client.upload(sealed)
    input_id = user0.register_input_file(url, "aes-gcm-128", list(key_in), meta.iv, list(meta.cmac))
    output_id = user1.register_output_file("blob:", "aes-gcm-128", key_out, [])
    assert input_id.startswith("input-") and output_id.startswith("output-")
    user0.assign_data_to_task(task_id, [DataMap("in", input_id)], [])
    user1.assign_data_to_task(task_id, [], [DataMap("out", output_id)])
    for client in (user0, user1):
        client.approve_task(task_id)
    user0.invoke_task(task_id)
    assert user0.get_task_result(task_id) == b"17"
    assert user1.get_task_result(task_id) == b"17"
    cmac = user1.get_output_cmac_by_tag(task_id, "out")
    copy = user1.client.fetch_output(output_id.removeprefix("output-").replace("-", ""), cmac.hex())
    assert copy == b"a secret of user0"
    task = user1.get_task(task_id)
    assert sorted(task["participants"]) == ["user0", "user1"]
    assert task["assigned_outputs"] == [{"data_name": "out", "data_id": output_id}]
    assert teaclave.wire.seen(meta.cmac)  # the record holds what was sent...
    assert not teaclave.wire.seen(key_in) and not teaclave.wire.seen(key_out)  # ...not the keys


def test_an_admin_manages_users_by_their_names(teaclave):
    with teaclave.auth() as admin:
        admin.user_login("admin", ADMIN_PASSWORD)
        assert {"admin", "owner", "user0", "user1"} <= set(admin.list_users("admin").ids)
        admin.user_update("user0", "", "FunctionOwner", "team-a")
        reset = admin.reset_user_password("user1")
        admin.delete_user("owner")
        assert "owner" not in admin.list_users().ids
    with teaclave.auth() as user1:
        user1.user_login("user1", reset.password)  # must change it now, as the platform says
        with pytest.raises(TeaclaveException, match="asks for the old password"):
            user1.user_change_password("user1-password-2")  # Teaclave's call: no old password
        user1.user_change_password("user1-password-2", reset.password)
        assert user1.user_login("user1", "user1-password-2")
    promoted = teaclave.frontend("user0", "user0-password-1")
    assert promoted.register_function("f", "", "wamr", payload=guest("(i32.const 1)"))
    with pytest.raises(TeaclaveException, match="Failed to login user"):
        teaclave.auth().user_login("owner", "owner-password-1")


def test_a_function_owner_reads_updates_disables_and_deletes_a_function(teaclave):
    client = teaclave.frontend("owner", "owner-password-1")
    wasm = guest(ECHO)
    spec = {
        "arguments": [FunctionArgument("in", "in", False)],
        "inputs": [FunctionInput("in", "what to copy", optional=True)],
    }
    function_id = client.register_function("echo", "v1", "wamr", False, wasm, **spec)
    got = client.get_function(function_id)
    assert (got.name, got.description, got.owner, got.executor_type) == (
        "echo",
        "v1",
        "owner",
        "wamr",
    )
    assert got.arguments[0].key == "in" and got.arguments[0].allow_overwrite is False
    assert got["inputs"][0]["optional"] is True
    assert client.list_functions("owner").registered_functions == [function_id]
    usage = client.get_function_usage_stats(function_id)
    assert (usage.function_quota, usage.current_usage) == (-1, 0)
    client.update_function(function_id, "echo", "v2", "wamr", True, wasm, **spec)
    assert client.get_function(function_id).description == "v2"
    with pytest.raises(TeaclaveException, match="payload cannot change"):
        client.update_function(function_id, "echo", "v3", "wamr", True, guest(ADD), **spec)
    client.disable_function(function_id)
    with pytest.raises(TeaclaveException, match=r"Failed to create task.*disabled"):
        client.create_task(function_id, {}, "wamr", [OwnerList("in", ["owner"])])
    client.delete_function(function_id)
    with pytest.raises(TeaclaveException, match="Failed to get function"):
        client.get_function(function_id)


def test_what_the_platform_cannot_honour_is_a_clear_error(teaclave):
    with pytest.raises(TeaclaveException, match="give the platform's URL"):
        FrontendService(("localhost", 7777), "ias_root_ca_cert.pem", "enclave_info.toml")
    with pytest.warns(AttestationNotAvailable, match="attestation is not available"):
        FrontendService(teaclave.url, "ias_root_ca_cert.pem", "enclave_info.toml")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FrontendService(teaclave.url)  # no attestation asked for: no warning
    with pytest.raises(TeaclaveException, match="Metadata is None"):
        FrontendService(teaclave.url).list_functions()
    client = teaclave.frontend("owner", "owner-password-1")
    with pytest.raises(TeaclaveException, match=re.escape(str(executor_refusal("mesapy")))):
        client.register_function("py", "", "mesapy", payload=b"def entrypoint(argv): pass")
    function_id = client.register_function("f", "", "wamr", payload=guest(ADD))
    with pytest.raises(TeaclaveException, match="builtin"):
        client.create_task(function_id, {}, "builtin")
    with pytest.raises(TeaclaveException, match="user 'stranger' has not logged in"):
        client.create_task(function_id, {}, "wamr", [OwnerList("in", ["stranger"])])
    with pytest.raises(TeaclaveException, match="a file's URL does not change"):
        client.update_input_file("input-" + "0" * 32, "https://elsewhere.example/f.enc")
    task_id = client.create_task(function_id, {}, "wamr")
    with pytest.raises(TeaclaveException, match="is a task- id, not a function- id"):
        client.get_function(task_id)
    assert client.get_task(task_id.removeprefix("task-").replace("-", ""))["status"] == 0
    client.cancel_task(task_id)
    with pytest.raises(TeaclaveException, match="Task Canceled"):
        client.get_task_result(task_id)
    assert client.get_task(task_id)["status"] == TaskStatus.Canceled
    trapping = client.register_function("trap", "", "wamr", payload=guest("(unreachable)"))
    failing_task = client.create_task(trapping, {}, "wamr")
    client.invoke_task(failing_task)
    with pytest.raises(
        TeaclaveException, match=r"Failed to get task result \(Task Failed, Error: "
    ):
        client.get_task_result(failing_task)
    failed = client.get_task(failing_task)
    assert failed["status"] == TaskStatus.Failed and failed["result"]["Err"]["reason"]


def test_ids_are_teaclaves_shape_of_the_platforms_and_either_is_taken():
    hex_id = "0123456789abcdef0123456789abcdef"
    shown = external_id("task", hex_id)
    assert shown == "task-01234567-89ab-cdef-0123-456789abcdef"
    for given in (
        shown,
        hex_id,
        shown.removeprefix("task-"),
        shown.upper().replace("TASK", "task"),
    ):
        assert platform_id("task", given, "get_task") == hex_id
    for wrong, words in (
        ("input-" + shown.removeprefix("task-"), "is a input- id, not a task- id"),
        ("task-not-a-uuid", "is not the id of a task"),
        ("", "is not the id of a task"),
    ):
        with pytest.raises(TeaclaveException, match=re.escape(words)):
            platform_id("task", wrong, "get_task")
    assert Message(a=1).a == 1
    with pytest.raises(AttributeError):
        _ = Message(a=1).b


def test_plain_http_to_another_host_is_a_warning() -> None:
    with pytest.warns(InsecureConnection, match="plain http"):
        FrontendService("http://platform.example:8000")
    with pytest.warns(InsecureConnection, match="plain http"):
        AuthenticationService("http://127.0.0.1.example")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for url in ["https://platform.example", "http://127.0.0.2:8000", "http://[::1]:80"]:
            FrontendService(url)


def test_pinned_keys_refuse_a_platform_with_other_keys(teaclave):
    with teaclave.auth() as auth:
        pins = auth.client.key_ids()
    other = {**pins, "sealing": "0" * len(pins["sealing"])}
    service = FrontendService(teaclave.url, session=teaclave.session(), pinned_keys=other)
    with pytest.raises(TeaclaveException, match="sealing key"):
        service.connect()
    pinned = FrontendService(teaclave.url, session=teaclave.session(), pinned_keys=pins)
    assert pinned.connect().client.key_ids() == pins


def test_task_statuses_are_the_vocabularys_states_with_teaclaves_numbers():
    assert [s.name for s in TaskStatus] == [state.value for state in TaskState]
    read_in_teaclaves_proto = {"Created": 0, "DataAssigned": 1, "Approved": 2, "Staged": 3}
    read_in_teaclaves_proto |= {"Running": 4, "Finished": 10}
    assert {n: int(TaskStatus[n]) for n in read_in_teaclaves_proto} == read_in_teaclaves_proto
    assert TaskStatus.Failed not in (TaskStatus.Finished, TaskStatus.Canceled)
