#!/usr/bin/env python3
"""Teaclave's wasm_rust_psi.py on this platform, through the Teaclave-compatible facade, with
the private set intersection function written in C (functions/psi.c: the same ABI,
arguments and file format as Teaclave's Rust one; no Rust toolchain for wasm32 is needed). Two
users each hold a list, one entry a line, encrypted in teaclave-file-128 with a key of their
own; user0 registers the function and creates the task, both register their input and an
output, assign, approve; user0 invokes. Each output gets the entries both lists share, then
"done"; both users get the number of shared entries as the return value.

    python wasm_c_psi.py
"""

from __future__ import annotations

from dataclasses import dataclass

from teaclave_client.crypto import decrypt, generate_key
from teaclave_client.teaclave import (
    FrontendService,
    FunctionArgument,
    FunctionInput,
    FunctionOutput,
    OwnerList,
)
from utils import OwnedFile, Platform, PlatformAdmin, login, main, owned_file, payload

SCHEMA = "teaclave-file-128"

# Two shops' customers (made up): which do they share, without showing each other the rest?
CUSTOMERS_0 = """ada@example.org
brian@example.net
chidi@example.com
dana@example.org
emeka@example.com
farah@example.net
gwen@example.org
hiro@example.com
ines@example.net
jonas@example.org
"""
CUSTOMERS_1 = """zoe@example.com
farah@example.net
ada@example.org
yusuf@example.org
hiro@example.com
xena@example.net
jonas@example.org
"""


@dataclass(frozen=True)
class UserData:
    user_id: str
    input_label: str  # the task's input this user's list goes to
    output_label: str  # the task's output this user reads
    entries: bytes


USER_DATA_0 = UserData("user0", "input_data1", "output_result1", CUSTOMERS_0.encode())
USER_DATA_1 = UserData("user1", "input_data2", "output_result2", CUSTOMERS_1.encode())


class DataList:
    """Teaclave's script assigned its files with a class of its own: the facade takes it."""

    def __init__(self, data_name: str, data_id: str) -> None:
        self.data_name, self.data_id = data_name, data_id


def set_task(client: FrontendService, wasm: bytes) -> str:
    print("[+] user0 registering function")
    function_id = client.register_function(
        name="wasm-c-private-set-intersection",
        description="WAMR C Private Set Intersection",
        payload=list(wasm),
        executor_type="wamr",
        arguments=[
            FunctionArgument("input1_fid"),
            FunctionArgument("input2_fid"),
            FunctionArgument("output1_fid"),
            FunctionArgument("output2_fid"),
        ],
        inputs=[
            FunctionInput(USER_DATA_0.input_label, "Client 0 data."),
            FunctionInput(USER_DATA_1.input_label, "Client 1 data."),
        ],
        outputs=[
            FunctionOutput(USER_DATA_0.output_label, "Output data."),
            FunctionOutput(USER_DATA_1.output_label, "Output data."),
        ],
    )
    print("[+] user0 creating task")
    return client.create_task(
        function_id=function_id,
        function_arguments={
            "input1_fid": USER_DATA_0.input_label,
            "input2_fid": USER_DATA_1.input_label,
            "output1_fid": USER_DATA_0.output_label,
            "output2_fid": USER_DATA_1.output_label,
        },
        executor="wamr",
        inputs_ownership=[
            OwnerList(USER_DATA_0.input_label, [USER_DATA_0.user_id]),
            OwnerList(USER_DATA_1.input_label, [USER_DATA_1.user_id]),
        ],
        outputs_ownership=[
            OwnerList(USER_DATA_0.output_label, [USER_DATA_0.user_id]),
            OwnerList(USER_DATA_1.output_label, [USER_DATA_1.user_id]),
        ],
    )


def register_data(
    platform: Platform, client: FrontendService, task_id: str, user: UserData, given: OwnedFile
) -> bytes:
    """Registers the user's input and an output, assigns both; the output's key."""
    print(f"[+] {user.user_id} registering input file")
    input_id = client.register_input_file(given.url, given.schema, given.key, given.iv, given.cmac)
    print(f"[+] {user.user_id} registering output file")
    key = generate_key(SCHEMA)
    output_url = platform.files.url(f"output_{user.user_id}.enc")
    output_id = client.register_output_file(output_url, SCHEMA, list(key), [])
    print(f"[+] {user.user_id} assigning data to task")
    client.assign_data_to_task(
        task_id, [DataList(user.input_label, input_id)], [DataList(user.output_label, output_id)]
    )
    return key


def run(
    platform: Platform, user0_file: OwnedFile | None = None, user1_entries: bytes | None = None
) -> dict[str, tuple[bytes, bytes]]:
    """Each user's return value and output plaintext. `user0_file`: user0's input as a file
    already encrypted and on the file server (else user0's list above, encrypted here);
    `user1_entries`: user1's list (else the one above)."""
    admin = PlatformAdmin(platform)
    passwords = [
        admin.register_user(USER_DATA_0.user_id, "FunctionOwner"),
        admin.register_user(USER_DATA_1.user_id),
    ]
    admin.close()
    users = [USER_DATA_0, USER_DATA_1]
    clients = [login(platform, u.user_id, p) for u, p in zip(users, passwords, strict=True)]
    task_id = set_task(clients[0], payload("psi"))
    files = [
        user0_file or owned_file(platform.files, "psi0.txt.enc", SCHEMA, USER_DATA_0.entries),
        owned_file(platform.files, "psi1.txt.enc", SCHEMA, user1_entries or USER_DATA_1.entries),
    ]
    keys = [
        register_data(platform, c, task_id, u, f)
        for c, u, f in zip(clients, users, files, strict=True)
    ]
    for user, client in zip(users, clients, strict=True):
        print(f"[+] {user.user_id} approving task")
        client.approve_task(task_id)
    print("[+] user0 invoking task")
    clients[0].invoke_task(task_id)
    results = {}
    for user, client, key in zip(users, clients, keys, strict=True):
        print(f"[+] {user.user_id} getting task result")
        result = bytes(client.get_task_result(task_id))
        cmac = client.get_output_cmac_by_tag(task_id, user.output_label)
        sealed = platform.files.read(f"output_{user.user_id}.enc")
        results[user.user_id] = result, decrypt(SCHEMA, key, b"", sealed, cmac)
        print(f"[+] {user.user_id} result: {result.decode()}")
        client.close()
    return results


if __name__ == "__main__":
    main(run)
