"""Teaclave's WebAssembly examples (examples/teaclave/) end to end, each flow once, on one
local platform (`teaclave-infer serve`, one worker, fetches from the file server's 127.0.0.2
allowed) through the Teaclave-compatible facade: inputs in teaclave-file-128 and aes-gcm-128
on the data owners' file server, outputs written there in the schema their owner registered,
and Teaclave's documented results. No build (the functions' builds are committed; TVM is not
imported): about 7 s, most of it the platform starting."""

from __future__ import annotations

import http.client
import sys
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from cheap_kdf import ENTRY
from paths import REPO, VECTORS
from teaclave_client.teaclave import TeaclaveException

from teaclave_infer.executor import run

sys.path.insert(0, str(REPO / "examples" / "teaclave"))  # the scripts import their utils.py

import utils
import wasm_c_millionaire_problem
import wasm_c_psi
import wasm_c_simple_add
import wasm_tvm_mnist
from file_server import FileServer


@pytest.fixture(scope="module")
def platform() -> Iterator[utils.Platform]:
    with utils.local_platform(workers=1, entry=ENTRY) as platform:
        yield platform


def test_simple_add_returns_the_sum_as_teaclave_does(platform):
    assert wasm_c_simple_add.run(platform) == b"7"  # Teaclave's defaults, 3 + 4
    assert wasm_c_simple_add.run(platform, "40", "-2") == b"38"


def test_the_millionaire_problem_names_the_richer_input(platform):
    result, richer = wasm_c_millionaire_problem.run(platform)
    assert (result, richer) == (b"7", b"pf_in_a")  # Teaclave's documented result and output


def test_psi_gives_both_users_the_shared_lines_of_a_file_teaclave_encrypted(platform):
    """user0's input is Teaclave's own encrypted fixture, registered with Teaclave's key and
    cmac as its script does: a file encrypted by Teaclave moves here unchanged."""
    vector = VECTORS / "teaclave-file-128"
    teaclave_file = utils.OwnedFile(
        platform.files.put("psi0.txt.enc", (vector / "psi0.txt.enc").read_bytes()),
        "teaclave-file-128",
        bytes(16),  # Teaclave's example key
        b"",
        bytes.fromhex("fd9b319ae0fc595a98ee4135667ac0ac"),  # its cmac, as Teaclave's script has it
    )
    user0 = (vector / "psi0.txt").read_bytes().splitlines()
    user1 = [*user0[3:9:2], *wasm_c_psi.USER_DATA_1.entries.splitlines(), user0[3]]
    results = wasm_c_psi.run(platform, teaclave_file, b"\r\n".join(user1))
    shared = list(dict.fromkeys(line for line in user1 if line in user0))
    assert len(shared) == 3
    for result, output in results.values():
        assert result == str(len(shared)).encode()
        assert output == b"".join(line + b"\n" for line in shared) + b"done\n"


def test_mnist_predicts_the_digit(platform):
    assert wasm_tvm_mnist.run(platform) == b"3"


PSI_ARGUMENTS = {"input1_fid": "a", "input2_fid": "b", "output1_fid": "o1", "output2_fid": "o2"}


def test_the_psi_function_reads_lines_as_teaclave_rust_one_and_refuses_what_it_cannot_hold():
    wasm = utils.payload("psi")
    first = b"x\r\nshared\n\nalso\nshared\nlast-without-newline"
    second = b"also\nnone\nlast-without-newline\nalso\r\nshared"
    result = run(wasm, PSI_ARGUMENTS, {"a": first, "b": second}, ["o1", "o2"], profile="teaclave")
    expected = b"also\nlast-without-newline\nshared\ndone\n"  # second's order, each once
    assert result.return_value == 3 and result.outputs == {"o1": expected, "o2": expected}
    too_large = {"a": b"x" * (1 << 20), "b": b"x"}
    assert run(wasm, PSI_ARGUMENTS, too_large, ["o1", "o2"]).return_value == -3
    assert run(wasm, PSI_ARGUMENTS, {"a": b"x"}, ["o1", "o2"]).return_value == -2  # no input b
    assert run(wasm, {"input1_fid": "a"}, {"a": b"x"}).return_value == -1


def test_the_millionaire_function_names_the_second_input_on_a_tie():
    wasm = utils.payload("millionaire_problem")
    arguments = {"input_file_id1": "a", "input_file_id2": "b", "output_file_id": "out"}
    tie = run(wasm, arguments, {"a": b"100", "b": b"100"}, ["out"], profile="teaclave")
    assert (tie.return_value, tie.outputs) == (1, {"out": b"b"})
    assert run(wasm, arguments, {"a": b"1"}, ["out"]).return_value == -1


def _raw(files: FileServer, method: str, target: str) -> int:
    """The status of a request for `target` exactly as written (requests would normalise it)."""
    host, port = urlsplit(files.url("")).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request(method, target, body=b"x" if method == "PUT" else None)
        return conn.getresponse().status
    finally:
        conn.close()


def test_the_file_server_serves_and_takes_only_names_inside_its_folder(tmp_path):
    (tmp_path / "inside").mkdir()
    (tmp_path / "secret.txt").write_text("outside the folder")
    with FileServer(tmp_path / "inside") as files:
        url = files.put("a.enc", b"sealed")
        assert requests.get(url, timeout=5).content == b"sealed"
        assert requests.put(files.url("out.enc"), data=b"written", timeout=5).status_code == 201
        assert files.read("out.enc") == b"written"
        for target in ("/../secret.txt", "/%2e%2e/secret.txt", "/.hidden", "/a/b", "//etc/passwd"):
            assert _raw(files, "GET", target) == 404, target
            assert _raw(files, "PUT", target) == 400, target
    assert sorted(p.name for p in (tmp_path / "inside").iterdir()) == ["a.enc", "out.enc"]
    assert (tmp_path / "secret.txt").read_text() == "outside the folder"


def _put_with_length(files: FileServer, name: str, length: str) -> int:
    """The status of a PUT whose Content-Length header is `length` as written."""
    host, port = urlsplit(files.url("")).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.putrequest("PUT", f"/{name}")
        conn.putheader("Content-Length", length)
        conn.endheaders(b"x")
        return conn.getresponse().status
    finally:
        conn.close()


def test_the_file_server_refuses_a_bad_length_or_a_directory_and_leaves_nothing(tmp_path):
    (tmp_path / "folder").mkdir()
    with FileServer(tmp_path) as files:
        for length in ("abc", "1x", "-1", "²"):
            assert _put_with_length(files, "a.enc", length) == 400, length
        assert requests.put(files.url("folder"), data=b"x", timeout=5).status_code == 400
        assert requests.put(files.url("b.enc"), data=b"ok", timeout=5).status_code == 201
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.enc", "folder"]
    assert list((tmp_path / "folder").iterdir()) == []


def test_the_examples_users_get_fresh_random_passwords_also_on_a_rerun(platform):
    """On a platform that outlives a run, a published password would let anyone in: every
    registration, and every rerun's, gives the user a new random one, which logs them in."""
    admin = utils.PlatformAdmin(platform)
    try:
        first = admin.register_user("rerun_user")
        again = admin.register_user("rerun_user")  # the user is there: a rerun
    finally:
        admin.close()
    assert first != again and len(again) >= 16
    utils.login(platform, "rerun_user", again).close()
    with pytest.raises(TeaclaveException, match="login"):
        utils.login(platform, "rerun_user", first)
