"""`teaclave-client` on a newcomer's mistakes: one line on stderr naming what was wrong, the
exit status scripts rely on, and nothing written or left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from cli_helpers import Cli, make_users, register_echo
from guests import ECHO, guest
from PIL import Image


@pytest.fixture
def users(module_service, tmp_path, capsys):
    return make_users(module_service, tmp_path, capsys)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("teaclave-client: error: "), err
    return lines[0]


def test_login_without_a_terminal_or_a_password_file(tmp_path):
    """No prompt nobody can answer, no traceback: one line naming the ways to give it."""
    env = {k: v for k, v in os.environ.items() if k != "TEACLAVE_PASSWORD"}
    home = tmp_path / "home"
    command = ["-m", "teaclave_client.cli", "--home", str(home), "--url", "http://127.0.0.1:9"]
    done = subprocess.run(
        [sys.executable, *command, "login", "alice"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        start_new_session=True,  # no controlling terminal, as under cron or CI
        timeout=60,
    )
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "alice" in line and "--password-file" in line and "terminal" in line
    assert not home.exists()


def test_encrypt_uses_the_key_keygen_made_and_never_replaces_a_key(tmp_path, capsys):
    cli = Cli(capsys, tmp_path / "home", "http://127.0.0.1:9")
    key_file, plain = tmp_path / "k.json", tmp_path / "plain.bin"
    plain.write_bytes(os.urandom(1000))
    cli("keygen", "--schema", "aes-gcm-256", "--out", str(key_file))
    made = json.loads(key_file.read_text())
    shown = cli.json("encrypt", str(plain), str(tmp_path / "sealed"), "--key-file", str(key_file))
    completed = json.loads(key_file.read_text())
    assert completed["key"] == made["key"] and completed["schema"] == "aes-gcm-256"
    assert completed["iv"] == shown["iv"] and completed["cmac"] == shown["cmac"]
    assert key_file.stat().st_mode & 0o777 == 0o600
    cli("decrypt", str(tmp_path / "sealed"), str(tmp_path / "back"), "--key-file", str(key_file))
    assert (tmp_path / "back").read_bytes() == plain.read_bytes()

    # The key file now belongs to `sealed`: another encryption may not take it over.
    cli("encrypt", str(plain), str(tmp_path / "sealed2"), "--key-file", str(key_file), code=1)
    assert "already holds" in one_line(cli.err) and str(key_file) in cli.err
    assert not (tmp_path / "sealed2").exists()
    assert json.loads(key_file.read_text()) == completed
    other = ["--key-file", str(tmp_path / "k2.json"), "--key", "00" * 16]
    cli("keygen", "--out", str(tmp_path / "k2.json"))
    cli("encrypt", str(plain), str(tmp_path / "sealed3"), *other, code=1)
    assert "--key is not the key in" in one_line(cli.err)
    assert not (tmp_path / "sealed3").exists()


def test_decrypt_with_a_key_only_file_names_the_key_file(tmp_path, capsys):
    cli = Cli(capsys, tmp_path / "home", "http://127.0.0.1:9")
    plain, sealed = tmp_path / "plain.bin", tmp_path / "sealed"
    plain.write_bytes(b"secret" * 100)
    shown = cli.json("encrypt", str(plain), str(sealed))
    (tmp_path / "k.json").write_text(json.dumps({"schema": "aes-gcm-128", "key": shown["key"]}))
    cli(
        "decrypt",
        str(sealed),
        str(tmp_path / "out"),
        "--key-file",
        str(tmp_path / "k.json"),
        code=1,
    )
    line = one_line(cli.err)
    assert f"key file {tmp_path / 'k.json'} has no iv" in line and "sealed" not in line
    assert not (tmp_path / "out").exists()
    # the iv given beside the key file completes it
    args = ["--key-file", str(tmp_path / "k.json"), "--iv", shown["iv"]]
    cli("decrypt", str(sealed), str(tmp_path / "out"), *args)
    assert (tmp_path / "out").read_bytes() == plain.read_bytes()


def test_prepare_image_warns_of_a_blank_image(tmp_path, capsys):
    cli = Cli(capsys, tmp_path / "home", "http://127.0.0.1:9")
    manifest = tmp_path / "m.json"
    spec = {"id": "input_img", "shape": [1, 1, 28, 28], "dtype": "float32"}
    manifest.write_text(json.dumps({"inputs": [spec]}))
    for name, pixels in (("blank.png", np.full((40, 40), 255, np.uint8)), ("ink.png", None)):
        if pixels is None:
            pixels = np.zeros((40, 40), np.uint8)
            pixels[10:30, 18:22] = 255  # a stroke
        Image.fromarray(pixels).save(tmp_path / name)
        cli(
            "prepare-image",
            str(tmp_path / name),
            str(tmp_path / "x.npy"),
            "--model-manifest",
            str(manifest),
        )
        assert ("warning: " in cli.err and "blank" in cli.err) == (name == "blank.png"), cli.err
    assert cli.err == ""


ONE_BY_FOUR = {"id": "in", "shape": [1, 4], "dtype": "float32"}


def test_infer_checks_the_tensor_against_the_manifest_before_uploading(users, tmp_path):
    fo, do = users["fo"], users["do"]
    manifest = {"name": "echo4", "inputs": [ONE_BY_FOUR], "outputs": [{"id": "out"}]}
    register_echo(fo, tmp_path, manifest)
    np.save(tmp_path / "wrong.npy", np.zeros((2, 2), np.float32))
    np.save(tmp_path / "ints.npy", np.zeros((1, 4), np.int32))
    np.save(tmp_path / "right.npy", np.arange(4, dtype=np.float32).reshape(1, 4))

    do(
        "infer",
        "--function",
        "echo4",
        str(tmp_path / "right.npy"),
        str(tmp_path / "wrong.npy"),
        code=1,
    )
    assert "input 'in' takes shape [1, 4], not [2, 2]" in one_line(do.err)
    do("infer", "--function", "echo4", str(tmp_path / "ints.npy"), code=1)
    assert "input 'in' takes float32, not int32" in one_line(do.err)
    assert not list((do.home / "keys").glob("*.json"))  # nothing was registered, not even `right`
    rows = do.json("infer", "--function", "echo4", str(tmp_path / "right.npy"))
    assert rows["receipt_verified"] and rows["outputs"]["out"]["bytes"] > 0


def test_function_register_takes_only_the_builders_manifest(users, tmp_path, capsys):
    """A NAME.json beside the wasm that is not the builder's is not taken (a note says so); a
    --manifest that is not the builder's, or not an object, is one line; --manifest with
    --no-manifest is a usage error."""
    fo = users["fo"]
    wasm = tmp_path / "echo.wasm"
    wasm.write_bytes(guest(ECHO))
    flags = ("--input", "in", "--output", "out", "--argument", "in", "--argument", "out")
    (tmp_path / "echo.json").write_text(json.dumps({"name": "not-the-builders"}))
    registered = fo.json("function", "register", str(wasm), *flags)
    assert not registered["has_manifest"] and registered["name"] == "echo"
    assert "echo.json: not a builder's manifest" in fo.err and "without a manifest" in fo.err
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "other.json").write_text(json.dumps({"name": "x"}))
    (tmp_path / "broken.json").write_text("{")
    for manifest, words in [
        ("list.json", "not a JSON object"),
        ("other.json", "not a builder's manifest"),
        ("broken.json", "not JSON"),
    ]:
        fo("function", "register", str(wasm), "--manifest", str(tmp_path / manifest), code=1)
        assert words in one_line(fo.err), fo.err
    with pytest.raises(SystemExit) as usage:
        fo("function", "register", str(wasm), "--manifest", str(tmp_path / "x"), "--no-manifest")
    assert usage.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
