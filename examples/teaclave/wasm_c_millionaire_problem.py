#!/usr/bin/env python3
"""Teaclave's WebAssembly millionaire problem on this platform, through the Teaclave-compatible
facade. Two millionaires learn which of them is richer and nothing else: each encrypts their
wealth with a key of their own (A in teaclave-file-128, B in aes-gcm-128), puts it on their file
server and registers it; A registers the C function (functions/millionaire_problem.c) and an
output, creates the task, both approve, A invokes. The function writes the file id of the richer
input to the output, encrypted by the platform with A's key, and returns how many bytes it
wrote: with Teaclave's wealths (4211037 and 1008611), b'7' and the output "pf_in_a".

    python wasm_c_millionaire_problem.py
"""

from __future__ import annotations

from dataclasses import dataclass

from teaclave_client.crypto import decrypt, generate_key
from teaclave_client.teaclave import (
    DataMap,
    FrontendService,
    FunctionArgument,
    FunctionInput,
    FunctionOutput,
    OwnerList,
)
from utils import Platform, PlatformAdmin, login, main, owned_file, payload

OUTPUT_SCHEMA = "teaclave-file-128"


@dataclass(frozen=True)
class Millionaire:
    user_id: str
    wealth: str
    slot: str  # the task's input that holds this millionaire's wealth
    schema: str  # how this millionaire encrypts it


A = Millionaire("millionaire_a", "4211037", "pf_in_a", "teaclave-file-128")
B = Millionaire("millionaire_b", "1008611", "pf_in_b", "aes-gcm-128")


def register_function(client: FrontendService, wasm: bytes) -> str:
    print("[+] millionaire_a registering function")
    return client.register_function(
        name="wasm-c-millionaire-problem",
        description="Which of two inputs holds the larger number",
        executor_type="wamr",
        public=True,
        payload=list(wasm),
        arguments=[
            FunctionArgument("input_file_id1"),
            FunctionArgument("input_file_id2"),
            FunctionArgument("output_file_id"),
        ],
        inputs=[
            FunctionInput(A.slot, "Wealth of millionaire A"),
            FunctionInput(B.slot, "Wealth of millionaire B"),
        ],
        outputs=[FunctionOutput("pf_out", "Which input is the richer")],
    )


def give_wealth(platform: Platform, client: FrontendService, task_id: str, m: Millionaire) -> None:
    print(f"[+] {m.user_id} registering input file")
    f = owned_file(platform.files, f"{m.slot}.enc", m.schema, m.wealth.encode())
    input_id = client.register_input_file(f.url, f.schema, f.key, f.iv, f.cmac)
    print(f"[+] {m.user_id} assigning data to task")
    client.assign_data_to_task(task_id, [DataMap(m.slot, input_id)], [])


def run(platform: Platform) -> tuple[bytes, bytes]:
    """The return value and the output's plaintext, as millionaire A reads them."""
    admin = PlatformAdmin(platform)
    a_password = admin.register_user(A.user_id, "FunctionOwner")
    b_password = admin.register_user(B.user_id)
    admin.close()
    a, b = login(platform, A.user_id, a_password), login(platform, B.user_id, b_password)
    function_id = register_function(a, payload("millionaire_problem"))
    print("[+] millionaire_a creating task")
    task_id = a.create_task(
        function_id=function_id,
        function_arguments={
            "input_file_id1": A.slot,
            "input_file_id2": B.slot,
            "output_file_id": "pf_out",
        },
        executor="wamr",
        inputs_ownership=[OwnerList(A.slot, [A.user_id]), OwnerList(B.slot, [B.user_id])],
        outputs_ownership=[OwnerList("pf_out", [A.user_id])],
    )
    give_wealth(platform, a, task_id, A)
    give_wealth(platform, b, task_id, B)
    print("[+] millionaire_a registering output file")
    key = generate_key(OUTPUT_SCHEMA)
    output_id = a.register_output_file(platform.files.url("pf_out.enc"), OUTPUT_SCHEMA, key, [])
    a.assign_data_to_task(task_id, [], [DataMap("pf_out", output_id)])
    for who, client in ((A, a), (B, b)):
        print(f"[+] {who.user_id} approving task")
        client.approve_task(task_id)
    print("[+] millionaire_a invoking task")
    a.invoke_task(task_id)
    result = a.get_task_result(task_id)
    cmac = a.get_output_cmac_by_tag(task_id, "pf_out")
    richer = decrypt(OUTPUT_SCHEMA, key, b"", platform.files.read("pf_out.enc"), cmac)
    print(f"[+] function return: {result!r}; the richer is {richer.decode()}")
    a.close()
    b.close()
    return result, richer


if __name__ == "__main__":
    main(run)
