"""`teaclave-client`: the local file tools, and every platform command against a real service
on loopback, with --json and the exit statuses scripts rely on."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from c_functions import SIMPLE_ADD
from cli_helpers import Cli, make_users, register_echo
from guests import guest
from paths import MNIST
from service_helpers import refused_port

SAMPLES = MNIST / "samples"


@pytest.fixture
def users(module_service, tmp_path, capsys):
    """admin, a function owner and a data owner, each logged in with their own home."""
    return make_users(module_service, tmp_path, capsys)


def test_keygen_encrypt_decrypt(tmp_path, capsys):
    cli = Cli(capsys, tmp_path / "home", "http://127.0.0.1:9")  # no service needed
    assert len(bytes.fromhex(cli("keygen", "--schema", "aes-gcm-256").strip())) == 32
    assert cli.json("keygen", "--out", str(tmp_path / "k.json"))["key_file"]
    assert (tmp_path / "k.json").stat().st_mode & 0o777 == 0o600
    plain = tmp_path / "plain.bin"
    plain.write_bytes(os.urandom(3000))
    shown = cli.json("encrypt", str(plain), str(tmp_path / "sealed"), "--schema", "aes-gcm-128")
    assert len(bytes.fromhex(shown["key"])) == 16 and len(bytes.fromhex(shown["iv"])) == 12
    sealed = (tmp_path / "sealed").read_bytes()
    assert sealed[-16:].hex() == shown["cmac"] and plain.read_bytes() not in sealed
    args = ["--schema", "aes-gcm-128", "--key", shown["key"], "--iv", shown["iv"]]
    cli("decrypt", str(tmp_path / "sealed"), str(tmp_path / "back"), *args, "--cmac", shown["cmac"])
    assert (tmp_path / "back").read_bytes() == plain.read_bytes()

    key_file = tmp_path / "sealed.key.json"
    cli("encrypt", str(plain), str(tmp_path / "sealed2"), "--key-file", str(key_file))
    assert key_file.stat().st_mode & 0o777 == 0o600
    cli("decrypt", str(tmp_path / "sealed2"), str(tmp_path / "back2"), "--key-file", str(key_file))
    assert (tmp_path / "back2").read_bytes() == plain.read_bytes()

    wrong = ["--schema", "aes-gcm-128", "--key", "00" * 16, "--iv", shown["iv"]]
    cli("decrypt", str(tmp_path / "sealed"), str(tmp_path / "nothing"), *wrong, code=8)
    assert "authentication failed" in cli.err and not (tmp_path / "nothing").exists()
    tampered = bytearray(sealed)
    tampered[100] ^= 1
    (tmp_path / "tampered").write_bytes(bytes(tampered))
    cli("decrypt", str(tmp_path / "tampered"), str(tmp_path / "nothing"), *args, code=8)
    assert not (tmp_path / "nothing").exists()
    cli("decrypt", str(tmp_path / "absent"), str(tmp_path / "nothing"), *args, code=1)
    assert "absent" in cli.err


def test_prepare_image(tmp_path, capsys, mnist_embedded):
    cli = Cli(capsys, tmp_path / "home", "http://127.0.0.1:9")
    out = tmp_path / "x.npy"
    manifest = str(mnist_embedded.manifest_path)
    shown = cli.json(
        "prepare-image", str(SAMPLES / "digit_7_a.png"), str(out), "--model-manifest", manifest
    )
    assert shown["input"] == "input_img" and shown["shape"] == [1, 1, 28, 28]
    tensor = np.load(out)
    assert tensor.dtype == np.float32 and tensor.min() >= 0.0 and tensor.max() == 1.0
    cli(
        "prepare-image",
        str(SAMPLES / "digit_7_a.png"),
        str(out),
        "--model-manifest",
        manifest,
        "--range=-1,1",
    )
    assert np.load(out).min() == -1.0
    (tmp_path / "junk.png").write_bytes(b"not an image")
    cli("prepare-image", str(tmp_path / "junk.png"), str(out), "--model-manifest", manifest, code=1)
    assert "cannot read the image" in cli.err


def test_login_failures_and_a_service_that_is_down(module_service, tmp_path, capsys):
    cli = Cli(capsys, tmp_path / "home", module_service)
    (tmp_path / "bad.txt").write_text("wrong-password")
    cli("login", "admin", "--password-file", str(tmp_path / "bad.txt"), code=4)
    assert "401" in cli.err and not (tmp_path / "home" / "session.json").exists()
    cli("function", "list", code=4)
    assert "not logged in" in cli.err
    with refused_port() as port:
        down = Cli(capsys, tmp_path / "home", f"http://127.0.0.1:{port}")
        err = down.json("login", "admin", "--password-file", str(tmp_path / "bad.txt"), code=3)
    assert err["exit_code"] == 3 and "cannot reach the service" in err["message"]


def test_the_session_is_private_and_logout_revokes_it(users):
    session = users["do"].home / "session.json"
    assert session.stat().st_mode & 0o777 == 0o600
    saved = json.loads(session.read_text())
    assert (
        saved["user"]["id"] == users["do"].id
        and saved["token"]
        and set(saved["key_ids"]) == {"sealing", "signing"}
    )
    password = str(users["do"].home.parent / "do.txt")
    users["do"].home.joinpath("session.json").write_text(
        json.dumps({**saved, "key_ids": {**saved["key_ids"], "signing": "0" * 16}})
    )
    users["do"]("data", "register-output", code=8)  # wrapping to keys that are not the pinned
    assert "pinned" in users["do"].err
    users["do"]("login", saved["user"]["username"], "--password-file", password, code=8)
    users["do"]("login", saved["user"]["username"], "--password-file", password, "--trust-new-keys")
    last = json.loads(session.read_text())
    assert last["key_ids"] == saved["key_ids"]
    assert users["do"]("logout").strip() == "logged out" and not session.exists()
    session.write_text(json.dumps(last))  # the revoked token, restored by hand
    users["do"]("function", "list", code=4)


def test_a_data_owner_may_not_register_functions(users, mnist_embedded):
    users["do"]("function", "register", str(mnist_embedded.wasm), code=5)
    assert "403" in users["do"].err


def test_every_task_command_with_separate_weights(users, mnist_build, tmp_path):
    """The step-by-step flow: the model owner's weights and the data owner's image, each
    encrypted by its owner, both approving; then status, result and fetch."""
    fo, do = users["fo"], users["do"]
    function = fo.json("function", "register", str(mnist_build.wasm), "--allow", do.id)
    assert function["public"] is False and function["allowlist"] == [do.id]
    listed = do.json("function", "list")
    assert function["id"] in [f["id"] for f in listed]
    shown = do.json("function", "show", function["id"], "--manifest")
    assert shown["manifest"]["inputs"][0]["shape"] == [1, 1, 28, 28]

    weights = fo("data", "register-input", str(mnist_build.weights), "--schema", "aes-gcm-256")
    tensor = tmp_path / "x.npy"
    do(
        "prepare-image",
        str(SAMPLES / "digit_5_a.png"),
        str(tensor),
        "--model-manifest",
        str(mnist_build.manifest_path),
    )
    image = do("data", "register-input", str(tensor)).strip()
    scores = do.json("data", "register-output")
    assert scores["kind"] == "output" and scores["cmac"] is None
    task = do("task", "create", function["id"], "--input-owner", f"weights={fo.id}").strip()
    assert (
        do(
            "task",
            "assign",
            task,
            "--input",
            f"input_img={image}",
            "--output",
            f"scores={scores['id']}",
        ).strip()
        == "Created"
    )
    assert (
        fo("task", "assign", task, "--input", f"weights={weights.strip()}").strip()
        == "DataAssigned"
    )
    do("task", "invoke", task, code=6)  # not approved yet: the service says which state
    assert "DataAssigned" in do.err
    do("task", "approve", task)
    assert fo("task", "approve", task).strip() == "Approved"
    assert do("task", "invoke", task).strip() == "Staged"
    assert do("task", "status", task, "--wait").strip() == "Finished (ok)"
    result = do.json("task", "result", task, "--out-dir", str(tmp_path / "out"))
    assert result["return_value"] == 5 and result["receipt_verified"] is True
    scores_npy = np.load(tmp_path / "out" / f"{task}.scores.npy")
    assert int(scores_npy.argmax()) == 5
    assert np.allclose(result["outputs"]["scores"]["npy"], scores_npy)
    do("data", "fetch", scores["id"], str(tmp_path / "scores.npy"))
    assert np.array_equal(np.load(tmp_path / "scores.npy"), scores_npy)
    assert fo.json("task", "result", task)["outputs_without_key"] == ["scores"]

    other = do("task", "create", function["id"], "--input-owner", f"weights={fo.id}").strip()
    assert do("task", "cancel", other).strip() == "Canceled"
    do("task", "invoke", other, code=6)


def test_a_failed_task_exits_7(users, tmp_path):
    fo, do = users["fo"], users["do"]
    (tmp_path / "trap.wasm").write_bytes(guest("(unreachable)"))
    (tmp_path / "trap.json").write_text(json.dumps({"name": "trap"}))
    (tmp_path / "spec.json").write_text(json.dumps({"inputs": [], "outputs": [], "arguments": []}))
    fid = fo.json(
        "function",
        "register",
        str(tmp_path / "trap.wasm"),
        "--public",
        "--spec",
        str(tmp_path / "spec.json"),
    )["id"]
    task = do("task", "create", fid).strip()
    do("task", "assign", task)
    do("task", "invoke", task)
    do("task", "status", task, "--wait")
    failed = do.json("task", "result", task, code=7)
    assert failed["error"] == "TaskFailed" and "trap" in failed["message"]


def test_infer_prints_the_digit(users, mnist_embedded, module_service):
    """What the issue asks of a running service: `teaclave-client infer --function mnist
    some_digit.png` prints the digit (the installed command, in its own process)."""
    users["fo"]("function", "register", str(mnist_embedded.wasm), "--public")
    do = users["do"]
    command = [
        sys.executable,
        "-m",
        "teaclave_client.cli",
        "--home",
        str(do.home),
        "--url",
        module_service,
    ]
    done = subprocess.run(
        [*command, "infer", "--function", "mnist", str(SAMPLES / "digit_7_a.png")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("digit_7_a.png: 7  (receipt verified")
    images = [SAMPLES / n for n in ("digit_0_b.png", "digit_8_a.png")]
    rows = do.json("infer", "--function", "mnist", *map(str, images))
    assert [r["return_value"] for r in rows] == [0, 8] and all(r["receipt_verified"] for r in rows)
    do("infer", "--function", "no-such-function", str(images[0]), code=5)


def test_the_client_imports_no_server_side_package():
    """What a data owner installs stays light: no TVM, wasmtime, onnx or service code."""
    code = (
        "import sys, teaclave_client, teaclave_client.cli, teaclave_examples.mnist.remote\n"
        "heavy = {'tvm', 'tvm_ffi', 'wasmtime', 'onnx', 'teaclave_infer', 'fastapi',"
        " 'sqlalchemy'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_task_create_takes_the_callers_steps_in_one_request(users, tmp_path):
    """`task create --input --output --invoke`: created, assigned, approved and invoked in one
    request when the caller owns every slot; `--approve` and `approve --invoke` likewise."""
    fo, do = users["fo"], users["do"]
    fid = register_echo(fo, tmp_path)
    (tmp_path / "in.bin").write_bytes(b"twelve bytes")
    files = []
    for _ in range(2):
        image = do("data", "register-input", str(tmp_path / "in.bin")).strip()
        out = do("data", "register-output").strip()
        files.append(["--input", f"in={image}", "--output", f"out={out}"])
    task = do.json("task", "create", fid, *files[0], "--invoke")
    assert task["state"] == "Staged" and task["stopped"] is None
    assert do("task", "status", task["id"], "--wait").strip() == "Finished (ok)"
    assert do.json("task", "result", task["id"])["return_value"] == 12

    later = do.json("task", "create", fid, *files[1], "--approve")
    assert later["state"] == "Approved"  # the only participant: assigning approved it
    assert do("task", "approve", later["id"]).strip() == "Approved"  # approved already: harmless
    assert do("task", "approve", later["id"], "--invoke").strip() == "Staged"
    assert do("task", "invoke", later["id"], code=6) == ""  # staged already


def test_a_teaclave_c_function_registers_without_a_manifest_and_runs(users, tmp_path):
    """Teaclave's simple add, built from C (the committed build: tests/runtime checks it is a
    fresh one), registered from flags alone and run: defaults, then a task's own value (its
    negative sum a result, not a failure status, as in Teaclave)."""
    fo, do = users["fo"], users["do"]
    wasm = tmp_path / "simple_add.wasm"
    wasm.write_bytes(SIMPLE_ADD.with_suffix(".wasm").read_bytes())
    flags = ["--public", "--argument", "adder1=3", "--argument", "adder2=4"]
    function = fo.json("function", "register", str(wasm), "--name", "simple_add", *flags)
    assert function["profile"] == "teaclave" and not function["has_manifest"]
    assert function["arguments"][0] == {"name": "adder1", "default": "3", "overwritable": True}
    fid = function["id"]
    tasks = [do.json("task", "create", fid, "--invoke")["id"]]
    tasks.append(do.json("task", "create", fid, "--arg", "adder2=-10", "--invoke")["id"])
    for task, total in zip(tasks, (7, -7), strict=True):  # negative: a value, as in Teaclave
        assert do("task", "status", task, "--wait").strip() == "Finished (ok)"
        assert do.json("task", "result", task)["return_value"] == total
    refused = do.json("infer", str(tmp_path / "x.npy"), "--function", fid, code=1)
    assert "without a builder's manifest" in refused["message"]


def test_function_register_names_what_it_refuses(users, tmp_path):
    fo = users["fo"]
    wasm = tmp_path / "noop.wasm"
    wasm.write_bytes(guest("(i32.const 0)"))
    builtin = fo.json("function", "register", str(wasm), "--executor", "builtin", code=6)
    assert "executor type 'builtin' (Teaclave's built-in" in builtin["message"]
    (tmp_path / "spec.json").write_text(json.dumps({"arguments": []}))
    both = ["--argument", "a", "--spec", str(tmp_path / "spec.json")]
    clash = fo.json("function", "register", str(wasm), *both, code=1)
    assert clash["message"] == "arguments: give them by flags or in --spec, not both"
    twice = fo.json("function", "register", str(wasm), "--input", "x", "--output", "x", code=6)
    assert "'x' is declared twice" in twice["message"]
