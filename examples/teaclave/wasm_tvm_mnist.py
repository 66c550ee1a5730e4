#!/usr/bin/env python3
"""Teaclave's wasm_tvm_mnist.py on this platform, through the Teaclave-compatible facade: a
user registers an MNIST function, encrypts a handwritten digit in teaclave-file-128, puts it on
the file server, registers and assigns it, approves and invokes the task, and prints the
predicted digit, the function's return value (b'3' for a 3, as Teaclave's img_10.jpg gave).

The function is our builder's MNIST (functions/mnist/mnist.onnx built with `build_model.py`,
weights embedded; by default the committed build in tests/data/prebuilt), where Teaclave's was
built with TVM's Rust runtime. Both take the input named by the argument `input_img` and return
the digit; Teaclave's decoded a JPEG inside the function, ours takes the image as a 1x1x28x28
float tensor (.npy), prepared here on the data owner's machine. The builder's manifest
(NAME.json beside the wasm) is registered with it, as this platform's one addition to
Teaclave's `register_function`: it names the function's profile (the prebuilt uses SIMD, which
a function without a manifest may not: those run on WAMR's features, the `teaclave` profile).

    python wasm_tvm_mnist.py [IMAGE [FUNCTION.wasm]]
"""

from __future__ import annotations

import sys
from pathlib import Path

from teaclave_client.images import npy_bytes, prepare_image
from teaclave_client.teaclave import DataMap, FunctionArgument, FunctionInput, OwnerList
from utils import HERE, Platform, PlatformAdmin, login, main, owned_file

REPO = HERE.parents[1]
PAYLOAD_FILE = REPO / "tests" / "data" / "prebuilt" / "mnist-embedded" / "mnist.wasm"
IMAGE = REPO / "functions" / "mnist" / "samples" / "digit_3_a.png"
USER_ID = "user_mnist"
SCHEMA = "teaclave-file-128"


def run(platform: Platform, image: Path = IMAGE, payload_file: Path = PAYLOAD_FILE) -> bytes:
    admin = PlatformAdmin(platform)
    password = admin.register_user(USER_ID, "FunctionOwner")
    admin.close()
    client = login(platform, USER_ID, password)
    manifest = payload_file.with_suffix(".json")  # the builder's, beside its build
    print(f"[+] {USER_ID} registering function")
    function_id = client.register_function(
        name="wasm-tvm-mnist",
        description="WAMR TVM MNIST Prediction",
        payload=list(payload_file.read_bytes()),
        executor_type="wamr",
        arguments=[FunctionArgument("input_img")],
        inputs=[FunctionInput("input_img", "Input image for handwriting number perdiction")],
        outputs=[],
        manifest=manifest if manifest.exists() else None,
    )
    print(f"[+] {USER_ID} creating task")
    task_id = client.create_task(
        function_id=function_id,
        function_arguments={"input_img": "input_img"},
        executor="wamr",
        inputs_ownership=[OwnerList("input_img", [USER_ID])],
        outputs_ownership=[],
    )
    print(f"[+] {USER_ID} registering input file")
    tensor = npy_bytes(prepare_image(image, (1, 1, 28, 28)))
    f = owned_file(platform.files, "img.npy.enc", SCHEMA, tensor)
    input_id = client.register_input_file(f.url, f.schema, list(f.key), list(f.iv), list(f.cmac))
    print(f"[+] {USER_ID} assigning data to task")
    client.assign_data_to_task(task_id, [DataMap("input_img", input_id)], [])
    print(f"[+] {USER_ID} approving task")
    client.approve_task(task_id)
    print(f"[+] {USER_ID} invoking task")
    client.invoke_task(task_id)
    print(f"[+] {USER_ID} getting task result")
    result = client.get_task_result(task_id)
    client.close()
    print("[+] User result: " + bytes(result).decode("utf-8"))
    return bytes(result)


if __name__ == "__main__":
    main(lambda platform: run(platform, *map(Path, sys.argv[1:3])))
