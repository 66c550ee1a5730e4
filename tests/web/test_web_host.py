"""The web host (client/web/teaclave-host.js) against the executor: the hand-written guests and
the MNIST function run in both, through Node's test runner (client/web/test/host.test.mjs).

Python writes the fixtures (wasm files, inputs, and the executor's results as the expectation);
Node runs the same calls in the JS host and compares. Node is required: CI installs it.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import wasmtime
from guests import ARGV, BUF, DEEP, HANDLES, IN, NOPE, OPEN_ALL, OUT, READS, guest
from helpers import npy
from node_suites import SuiteRun, listed
from paths import MNIST, REPO
from prebuilt import prebuilt
from teaclave_client.crypto import encrypt, generate_key
from teaclave_client.images import prepare_image
from teaclave_client.vocabulary import FailureKind

from teaclave_infer.abi import WEIGHTS_ID, pack_arguments
from teaclave_infer.executor import Limits, Result, run

NODE_TESTS = REPO / "client" / "web" / "test" / "host.test.mjs"
SEALED = 80  # where the guests below keep the id "sealed"
SEALED_DATA = f'(data (i32.const {SEALED}) "sealed\\00")'


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Case:
    """One call, run by the executor here and by the JS host in Node."""

    name: str
    wasm: bytes
    arguments: dict[str, object] = field(default_factory=dict)
    inputs: dict[str, bytes] = field(default_factory=dict)
    outputs: Sequence[str] = ()
    limits: dict[str, int] = field(default_factory=dict)  # the JS names
    sealed: dict[str, dict[str, str]] = field(default_factory=dict)  # inputs given encrypted
    modes: Sequence[str] = ("worker", "thread")
    expect: dict[str, Any] | None = None  # None: the executor's result

    def python_limits(self) -> Limits:
        given, default = self.limits.get, Limits()
        return Limits(
            deadline_s=given("deadlineMs", round(default.deadline_s * 1000)) / 1000,
            memory_bytes=given("memoryBytes", default.memory_bytes),
            output_bytes=given("outputBytes", default.output_bytes),
            max_handles=given("maxHandles", default.max_handles),
        )

    def fixture(self, out: Path) -> dict[str, Any]:
        (out / f"{self.name}.wasm").write_bytes(self.wasm)
        if self.expect is None:
            got = run(
                self.wasm, self.arguments, self.inputs, list(self.outputs), self.python_limits()
            )
            self.expect = expectation(got)
        return {
            "name": self.name,
            "wasm": f"{self.name}.wasm",
            "arguments": self.arguments,
            "inputs": {
                fid: b64(data) for fid, data in self.inputs.items() if fid not in self.sealed
            },
            "sealed": self.sealed,
            "outputs": list(self.outputs),
            "limits": self.limits,
            "modes": list(self.modes),
            "expect": self.expect,
        }


def expectation(result: Result) -> dict[str, Any]:
    return {
        "kind": str(result.kind),
        "returnValue": result.return_value,
        "outputs": {fid: b64(data) for fid, data in result.outputs.items()},
        "trapCode": result.trap_code,
        "message": result.message,
    }


def seal(plaintext: bytes, schema: str = "aes-gcm-128", *, wrong: str = "") -> dict[str, str]:
    """An input for the JS host, encrypted as a data owner would; `wrong` spoils its key or
    cmac."""
    key = generate_key(schema)
    data, meta = encrypt(schema, key, plaintext)
    cmac = bytes(16) if wrong == "cmac" else meta.cmac
    key = generate_key(schema) if wrong == "key" else key
    return {
        "data": b64(data),
        "schema": schema,
        "key": b64(key),
        "iv": b64(meta.iv),
        "cmac": b64(cmac),
    }


WRONG_USES = f"""
  (call $log (call $open (i32.const {NOPE})))
  (call $log (call $create (i32.const {IN})))
  (call $log (call $create (i32.const {NOPE})))
  (call $log (call $open (i32.const 0x7ffffff0)))
  (local.set $h (call $create (i32.const {OUT})))
  (call $log (call $create (i32.const {OUT})))
  (call $log (call $read (local.get $h) (i32.const {BUF}) (i32.const 4)))
  (call $log (call $write (i32.const 1) (i32.const {BUF}) (i32.const 4)))
  (call $log (call $open (i32.const {IN})))
  (call $log (call $write (i32.const 2) (i32.const {BUF}) (i32.const 4)))
  (call $log (call $read (i32.const 2) (i32.const -16) (i32.const 8)))
  (call $log (call $read (i32.const 2) (i32.const {BUF}) (i32.const -1)))
  (call $log (call $read (i32.const 99) (i32.const {BUF}) (i32.const 4)))
  (call $log (call $close (i32.const 77)))
  (call $log (call $close (local.get $h)))
  (call $log (call $create (i32.const {OUT})))
  (call $flush) (i32.const 0)"""
# An output written, a plain input opened, then the sealed one: the replay must log the same.
SEALED_LATE = f"""
  (local.set $h (call $create (i32.const {OUT})))
  (call $log (local.get $h))
  (call $log (call $write (local.get $h) (i32.const {IN}) (i32.const 2)))
  (call $log (call $open (i32.const {IN})))
  (local.set $h (call $open (i32.const {SEALED})))
  (call $log (local.get $h))
  (call $log (call $read (local.get $h) (i32.const {BUF}) (i32.const 64)))
  (call $log (call $write (i32.const {0x4000_0001}) (i32.const {BUF}) (i32.const 64)))
  (call $log (call $close (i32.const {0x4000_0001})))
  (call $flush) (i32.const 5)"""
COPY = f"""
  (local.set $h (call $open (i32.const {IN})))
  (global.set $len (call $read (local.get $h) (i32.const {BUF}) (i32.const 64)))
  (local.set $h (call $create (i32.const {OUT})))
  (drop (call $write (local.get $h) (i32.const {BUF}) (global.get $len)))
  (drop (call $close (local.get $h)))
  (i32.const 0)"""
COPY_GLOBAL = "(global $len (mut i32) (i32.const 0))"
BOMB = "(loop (br_if 0 (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) (unreachable)"
ENDLESS_OUTPUT = f"""
  (local.set $h (call $create (i32.const {OUT})))
  (loop (br_if 0 (i32.ne (call $write (local.get $h) (i32.const 0) (i32.const 65536))
                         (i32.const -1))))
  (drop (call $close (local.get $h)))
  (i32.const 0)"""
# Loops forever, calling the host: the in-thread mode can stop only this kind of loop.
TABLE = "(table 1 funcref)"
CHATTY_LOOP = "(loop (drop (call $close (i32.const 5))) (br 0)) (i32.const 0)"
EP = '(func (export "entrypoint") (param i32 i32) (result i32) (i32.const 0))'
INVALID = {
    "wasi": f'(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) '
    f'(result i32))) (memory (export "memory") 1) {EP})',
    "wrong-signature": f'(module (import "env" "teaclave_read_file" (func (param i32 i32) '
    f'(result i32))) (memory (export "memory") 1) {EP})',
    "imported-memory": f'(module (import "env" "memory" (memory 1)) {EP})',
    "entrypoint-type": '(module (memory (export "memory") 1) (func (export "entrypoint") '
    "(param i32) (result i32) (i32.const 0)))",
    "no-entrypoint": '(module (memory (export "memory") 1))',
    "no-memory": f"(module {EP})",
}
OUTS = ("out", "log")


def guest_cases() -> list[Case]:
    abc = {"in": b"abc"}
    fail: dict[str, Any] = {
        "kind": FailureKind.INTEGRITY,
        "returnValue": None,
        "outputs": {},
        "trapCode": None,
    }
    cases = [
        Case("handles", guest(HANDLES), inputs=abc, outputs=OUTS),
        Case("wrong-uses", guest(WRONG_USES), inputs=abc, outputs=OUTS),
        Case("reads", guest(READS), inputs={"in": b"abcdef"}, outputs=OUTS),
        Case("handles-run-out", guest(OPEN_ALL), inputs={"in": b""}),
        Case("handles-limit", guest(OPEN_ALL), inputs={"in": b""}, limits={"maxHandles": 5}),
        Case(
            "argv",
            guest(ARGV),
            arguments={"zeta": "1", "alpha": "x y", "mid": [1, 2], "é": {"k": [True, None]}},
            outputs=OUTS,
        ),
        Case(
            "argv-json",
            guest(ARGV),
            arguments={"b": 1.5e-5, "a": 'q"\n\u00fc\U0001f600', "c": -3},
            outputs=OUTS,
        ),
        Case("unreachable", guest("(unreachable)")),
        Case("divide-by-zero", guest("(i32.div_u (i32.const 1) (local.get $h))")),
        Case("out-of-bounds", guest("(i32.load (i32.const -4))")),
        Case("recursion", guest("(call $deep (i32.const 0))", DEEP)),
        Case("start-traps", guest("(i32.const 0)", "(start $s) (func $s (unreachable))")),
        Case(
            "trap-drops-outputs",
            guest(
                f"(local.set $h (call $create (i32.const {OUT}))) "
                f"(drop (call $write (local.get $h) (i32.const {BUF}) (i32.const 8))) "
                "(drop (call $close (local.get $h))) (unreachable)"
            ),
            outputs=["out"],
        ),
        Case(
            "endless-loop",
            guest("(loop (br 0)) (i32.const 0)"),
            limits={"deadlineMs": 500},
            modes=["worker"],
        ),
        Case("chatty-loop", guest(CHATTY_LOOP), limits={"deadlineMs": 500}),
        Case("memory-bomb", guest(BOMB), limits={"memoryBytes": 8 << 20}),
        Case("too-big", guest("(i32.const 0)", pages=200), limits={"memoryBytes": 4 << 20}),
        *(  # tables count against the memory limit in both hosts (security/test_sec_tables.py)
            Case(name, guest(body, tables), limits={"memoryBytes": 1 << 20})
            for name, body, tables in [
                ("table-bomb", "(table.grow 0 (ref.null func) (i32.const 100000000))", TABLE),
                ("table-declared-huge", "(i32.const 0)", "(table 100000000 funcref)"),
                ("many-tables", "(i32.const 0)", " ".join(["(table 400 funcref)"] * 16)),
                ("small-table", "(table.grow 0 (ref.null func) (i32.const 10))", TABLE),
            ]
        ),
        Case(
            "output-limit", guest(ENDLESS_OUTPUT), outputs=["out"], limits={"outputBytes": 1 << 20}
        ),
        Case("not-wasm", b"MZ\x90\x00not wasm"),
        *(Case(name, bytes(wasmtime.wat2wasm(wat))) for name, wat in INVALID.items()),
        Case(
            "plain-copy", guest(COPY, COPY_GLOBAL), inputs={"in": b"secret digits"}, outputs=["out"]
        ),
    ]
    late_inputs = {"in": b"ab", "sealed": b"the sealed input"}
    cases += [
        Case(
            "sealed-128",
            guest(COPY, COPY_GLOBAL),
            inputs={"in": b"secret digits"},
            outputs=["out"],
            sealed={"in": seal(b"secret digits")},
        ),
        Case(
            "sealed-256",
            guest(COPY, COPY_GLOBAL),
            inputs={"in": b"secret digits"},
            outputs=["out"],
            sealed={"in": seal(b"secret digits", "aes-gcm-256")},
        ),
        Case(
            "sealed-late",
            guest(SEALED_LATE, SEALED_DATA),
            inputs=late_inputs,
            outputs=OUTS,
            sealed={"sealed": seal(late_inputs["sealed"])},
        ),
        # Out of handles when it opens the sealed input: never decrypted, its bad key harmless.
        Case(
            "sealed-unopened",
            guest(SEALED_LATE, SEALED_DATA),
            inputs=late_inputs,
            outputs=OUTS,
            limits={"maxHandles": 2},
            sealed={"sealed": seal(b"x", wrong="key")},
        ),
        Case(
            "sealed-wrong-key",
            guest(COPY, COPY_GLOBAL),
            inputs={"in": b"x"},
            outputs=["out"],
            sealed={"in": seal(b"x", wrong="key")},
            expect={**fail, "message": "input in"},
        ),
        Case(
            "sealed-wrong-cmac",
            guest(SEALED_LATE, SEALED_DATA),
            inputs=late_inputs,
            outputs=OUTS,
            sealed={"sealed": seal(b"x", "aes-gcm-256", wrong="cmac")},
            expect={**fail, "message": "input sealed"},
        ),
    ]
    return cases


def argv_cases() -> list[dict[str, Any]]:
    """abi.pack_arguments on values whose canonical JSON (RFC 8785) is easy to get wrong."""
    samples: list[Mapping[str, object]] = [
        {"b": "2", "a": "1", "ä": "x", "Z": "y", "\U0001f600": "e", "\uffff": "f"},
        {"f": [1.5, 0.1, 1e-5, 2.5e-7, 123456.789, -0.0001, 1e-4, 1e21, 2.0], "n": None},
        {"s": {"k": "é\u2028\x7f\t", "nested": {"a": [1, [2, {}]]}, "e": []}, "t": True},
        {"o": {"\uffff": 1, "\U0001f600": 2, "b": -(2**53 - 1), "a": 2**53 - 1}},
    ]
    return [{"arguments": a, "argv": [b64(x) for x in pack_arguments(a)]} for a in samples]


@dataclass(frozen=True)
class MnistMode:
    name: str
    wasm: Path
    weights: Path | None


@pytest.fixture(scope="session")
def mnist_builds() -> list[MnistMode]:
    """MNIST in both weight modes (the committed builds)."""
    modes = []
    for weights in ("embedded", "separate"):
        built = prebuilt(weights)
        assert (built.weights is not None) == (weights == "separate")
        if built.weights is not None:
            assert built.manifest["weights"]["input_id"] == WEIGHTS_ID
        modes.append(MnistMode(weights, built.wasm, built.weights))
    return modes


def mnist_call(mode: MnistMode, image: bytes) -> tuple[dict[str, object], dict[str, bytes]]:
    """Arguments and inputs as the service passes them: each input id names its file, the output
    id names the file to write; separate weights are the input `weights`."""
    inputs = {"img": image}
    if mode.weights is not None:
        inputs[WEIGHTS_ID] = mode.weights.read_bytes()
    return {"input_img": "img", "scores": "out_scores"}, inputs


def mnist_fixture(mode: MnistMode, out: Path) -> dict[str, Any]:
    """The 20 samples run by the executor (each classified as labelled), and for separate weights
    one more call with the image and the weights encrypted, as data owners send them."""
    labels: dict[str, int] = json.loads((MNIST / "samples" / "labels.json").read_text())
    shutil.copy(mode.wasm, out / f"{mode.name}.wasm")
    entry: dict[str, Any] = {"name": mode.name, "wasm": f"{mode.name}.wasm", "samples": []}
    images = {}
    for name, label in sorted(labels.items()):
        images[name] = npy(prepare_image(MNIST / "samples" / name, (1, 1, 28, 28)))
        arguments, inputs = mnist_call(mode, images[name])
        got = run(mode.wasm.read_bytes(), arguments, inputs, ["out_scores"])
        assert got.ok and got.return_value == label, (mode.name, name, got.message)
        assert int(np.argmax(np.load(io.BytesIO(got.outputs["out_scores"])))) == label
        sample = {"name": name, "label": label, "image": b64(images[name])}
        entry["samples"].append(sample | {"expect": expectation(got)})
    if mode.weights is not None:
        shutil.copy(mode.weights, out / f"{mode.name}.weights")
        entry["weights"] = f"{mode.name}.weights"
        first = entry["samples"][0]
        entry["sealed"] = {
            "expect": first["expect"],
            "inputs": {
                "img": seal(images[first["name"]]),
                WEIGHTS_ID: seal(mode.weights.read_bytes(), "aes-gcm-256"),
            },
        }
    return entry


def write_fixtures(out: Path, mnist_builds: list[MnistMode]) -> None:
    """Both fixture groups of host.test.mjs: the guests with the executor's results, and MNIST
    in both weight modes."""
    (out / "guests").mkdir()
    cases = [case.fixture(out / "guests") for case in guest_cases()]
    fixture = {"cases": cases, "argv": argv_cases()}
    (out / "guests" / "cases.json").write_text(json.dumps(fixture, indent=1))
    (out / "mnist").mkdir()
    modes = {"modes": [mnist_fixture(mode, out / "mnist") for mode in mnist_builds]}
    (out / "mnist" / "cases.json").write_text(json.dumps(modes))


def planned_tests() -> list[str]:
    """The suite's test names, listed with a plan of the fixtures: the names and modes its
    tests are named after, nothing run."""
    with tempfile.TemporaryDirectory() as folder:
        plan = Path(folder)
        (plan / "guests").mkdir()
        cases = [{"name": c.name, "modes": list(c.modes)} for c in guest_cases()]
        (plan / "guests" / "cases.json").write_text(json.dumps({"cases": cases, "argv": []}))
        (plan / "mnist").mkdir()
        modes = [{"name": "embedded"}, {"name": "separate", "sealed": {}}]
        (plan / "mnist" / "cases.json").write_text(json.dumps({"modes": modes}))
        return listed(NODE_TESTS, plan)


NODE_NAMES = planned_tests()


@pytest.fixture(scope="session")
def node_suite(tmp_path_factory: pytest.TempPathFactory, mnist_builds: list[MnistMode]) -> SuiteRun:
    out = tmp_path_factory.mktemp("web-fixtures")
    write_fixtures(out, mnist_builds)
    return SuiteRun(NODE_TESTS, out)


def test_node_ran_every_planned_test(node_suite: SuiteRun) -> None:
    node_suite.check_all_listed(NODE_NAMES)


@pytest.mark.parametrize("name", NODE_NAMES)
def test_node(node_suite: SuiteRun, name: str) -> None:
    """Each test of host.test.mjs (the guests and MNIST as the executor runs them), as its own
    case."""
    node_suite.check(name)
