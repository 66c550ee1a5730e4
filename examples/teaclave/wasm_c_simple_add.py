#!/usr/bin/env python3
"""Teaclave's wasm_c_simple_add.py on this platform, through the Teaclave-compatible facade: the
admin registers a C function that adds its two arguments (functions/simple_add.c), creates a
task with adder1=3 and adder2=4, invokes it and prints its return value, b'7' as in Teaclave.

    python wasm_c_simple_add.py [ADDER1 [ADDER2]]
"""

from __future__ import annotations

import sys

from teaclave_client.teaclave import FunctionArgument
from utils import ADMIN_ID, Platform, login, main, payload


class WASMAddExample:
    def __init__(self, platform: Platform, user_id: str, user_password: str) -> None:
        self.platform, self.user_id, self.user_password = platform, user_id, user_password

    def add(self, wasm: bytes, adder1: str = "3", adder2: str = "4") -> bytes:
        client = login(self.platform, self.user_id, self.user_password)
        print("[+] registering function")
        function_id = client.register_function(
            name="entrypoint",
            description="test of wasm",
            executor_type="wamr",
            payload=list(wasm),
            arguments=[FunctionArgument("adder1"), FunctionArgument("adder2")],
        )
        print("[+] creating task")
        task_id = client.create_task(
            function_id=function_id,
            function_arguments={"adder1": adder1, "adder2": adder2},
            executor="wamr",
        )
        print("[+] invoking task")
        client.invoke_task(task_id)
        print("[+] getting result")
        result = client.get_task_result(task_id)
        print("[+] done")
        client.close()
        return bytes(result)


def run(platform: Platform, adder1: str = "3", adder2: str = "4") -> bytes:
    example = WASMAddExample(platform, ADMIN_ID, platform.admin_password)
    result = example.add(payload("simple_add"), adder1, adder2)
    print("[+] function return: ", result)
    return result


if __name__ == "__main__":
    main(lambda platform: run(platform, *sys.argv[1:3]))
