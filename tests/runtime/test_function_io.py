"""The function I/O contract: .npy and raw inputs, .npy outputs, argv, and a distinct negative
return value (never a trap) for every kind of bad input."""

from __future__ import annotations

import io

import numpy as np
import pytest
from helpers import build_model, init, make_model, npy, vi
from onnx import TensorProto as TP
from onnx import helper
from prebuilt import prebuilt
from teaclave_client.vocabulary import ARGV_AREA

from teaclave_infer.abi import Status
from teaclave_infer.builder import BuildResult
from teaclave_infer.executor import run
from teaclave_infer.executor._files import FileContext
from teaclave_infer.executor._run import _Invocation

X = np.random.default_rng(3).standard_normal((1, 2, 4, 4)).astype(np.float32)


@pytest.fixture(scope="module")
def functions(tmp_path_factory) -> dict[str, BuildResult]:
    """One small classifier, built with embedded and with separate weights."""
    w = np.random.default_rng(4).standard_normal((32, 5)).astype(np.float32)
    model = make_model(
        [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["y"])],
        [vi("x", TP.FLOAT, [1, 2, 4, 4])],
        [vi("y", TP.FLOAT, [1, 5])],
        [init("w", w)],
    )
    out = {}
    for weights in ("embedded", "separate"):
        out[weights] = build_model(tmp_path_factory.mktemp(weights), model, "io", weights=weights)
    return out


def call(
    fn: BuildResult,
    arguments: dict[str, str],
    files: dict[str, bytes],
    outputs: tuple[str, ...] = (),
) -> tuple[int, dict[str, bytes]]:
    if fn.weights is not None and "weights" not in files:
        files = {**files, "weights": fn.weights.read_bytes()}
    result = run(fn.wasm.read_bytes(), arguments, files, outputs)
    assert result.ok and result.return_value is not None, result.message
    return result.return_value, result.outputs


def expected() -> np.ndarray:
    w = np.random.default_rng(4).standard_normal((32, 5)).astype(np.float32)
    return X.reshape(1, 32) @ w


@pytest.mark.parametrize("weights", ["embedded", "separate"])
def test_npy_in_npy_out_and_argmax(functions, weights):
    rv, out = call(functions[weights], {"x": "img", "y": "scores"}, {"img": npy(X)}, ("scores",))
    scores = np.load(io.BytesIO(out["scores"]))
    np.testing.assert_allclose(scores, expected(), rtol=1e-5, atol=1e-5)
    assert rv == int(np.argmax(scores))


def test_both_weight_modes_give_identical_bytes(functions):
    outs = [
        call(fn, {"x": "img", "y": "scores"}, {"img": npy(X)}, ("scores",))
        for fn in functions.values()
    ]
    assert outs[0] == outs[1]


def test_raw_bytes_input_gives_the_same_result(functions):
    fn = functions["embedded"]
    rv_npy, _ = call(fn, {"x": "img"}, {"img": npy(X)})
    rv_raw, _ = call(fn, {"x": "img"}, {"img": X.tobytes()})
    assert rv_raw == rv_npy == int(np.argmax(expected()))


def test_output_written_only_when_asked(functions):
    _, out = call(functions["embedded"], {"x": "img"}, {"img": npy(X)}, ("scores",))
    assert out == {}


def test_npy_written_by_other_writers_is_accepted(functions):
    """A version 2.0 header and a shape written without spaces."""
    header = b"{'descr':'<f4','fortran_order':False,'shape':(1,2,4,4)}"
    header += b" " * (-(len(header) + 13) % 64) + b"\n"
    v2 = b"\x93NUMPY\x02\x00" + len(header).to_bytes(4, "little") + header + X.tobytes()
    rv, _ = call(functions["embedded"], {"x": "img"}, {"img": v2})
    assert rv == int(np.argmax(expected()))


@pytest.mark.parametrize(
    ("arguments", "files", "status"),
    [
        ({}, {"img": npy(X)}, Status.MISSING_ARGUMENT),
        ({"x": "other"}, {"img": npy(X)}, Status.OPEN_INPUT_FAILED),
        ({"x": "img"}, {"img": npy(X.astype(np.float64))}, Status.BAD_INPUT_FORMAT),
        ({"x": "img"}, {"img": npy(X.reshape(1, 2, 16))}, Status.BAD_INPUT_FORMAT),
        ({"x": "img"}, {"img": npy(X.reshape(1, 32))}, Status.BAD_INPUT_FORMAT),
        ({"x": "img"}, {"img": b"garbage!"}, Status.BAD_INPUT_FORMAT),
        ({"x": "img"}, {"img": npy(X)[:-1]}, Status.BAD_INPUT_FORMAT),
        ({"x": "img"}, {"img": npy(X) + b"\0"}, Status.BAD_INPUT_FORMAT),
        ({"x": "img"}, {"img": X.tobytes()[:-4]}, Status.BAD_INPUT_FORMAT),
        ({"x": "img"}, {"img": X.tobytes() + b"1234"}, Status.BAD_INPUT_FORMAT),
        ({"x": "img"}, {"img": b"\x93NUMPY\x01\x00\xff\xff"}, Status.BAD_INPUT_FORMAT),
        ({"x": "img"}, {"img": b""}, Status.BAD_INPUT_FORMAT),
        ({"x": "img", "y": "not_granted"}, {"img": npy(X)}, Status.WRITE_OUTPUT_FAILED),
    ],
    ids=[
        "missing-argument",
        "not-granted",
        "wrong-dtype",
        "wrong-rank",
        "wrong-shape",
        "garbage",
        "truncated-npy",
        "trailing-byte",
        "short-raw",
        "long-raw",
        "bad-header",
        "empty",
        "output-not-granted",
    ],
)
def test_bad_input_returns_its_status(functions, arguments, files, status):
    rv, out = call(functions["embedded"], arguments, files, ("scores",))
    assert rv == status
    assert out == {}


def test_fortran_order_is_refused(functions):
    header = b"{'descr': '<f4', 'fortran_order': True, 'shape': (1, 2, 4, 4), }"
    header += b" " * (-(len(header) + 11) % 64) + b"\n"
    data = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + X.tobytes()
    rv, _ = call(functions["embedded"], {"x": "img"}, {"img": data})
    assert rv == Status.BAD_INPUT_FORMAT


def test_separate_weights_are_read_from_the_weights_input(functions):
    fn = functions["separate"]
    blob = fn.weights.read_bytes()
    assert call(fn, {"x": "img"}, {"img": npy(X), "weights": blob})[0] >= 0
    renamed = call(fn, {"x": "img", "weights": "w2"}, {"img": npy(X), "w2": blob, "weights": b""})
    assert renamed[0] == int(np.argmax(expected()))


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b"",  # missing
        lambda b: b[:-1],  # truncated
        lambda b: b[:5],  # shorter than its header: no size is read, none is passed on
        lambda b: b + b"\0",  # trailing
        lambda b: b"XXXX" + b[4:],  # magic
        lambda b: b[:8] + bytes([b[8] ^ 1]) + b[9:],  # model id of another model
        lambda b: b[:72] + b"\xff" * 8 + b[80:],  # first tensor record
    ],
    ids=["missing", "truncated", "short-header", "trailing", "magic", "model-id", "tensor-record"],
)
def test_bad_weights_are_refused(functions, damage):
    fn = functions["separate"]
    files = {"img": npy(X), "weights": damage(fn.weights.read_bytes())}
    rv, _ = call(fn, {"x": "img"}, files)
    assert rv == Status.BAD_WEIGHTS


def test_weights_absent_from_the_grant(functions):
    fn = functions["separate"]
    rv = run(fn.wasm.read_bytes(), {"x": "img"}, {"img": npy(X)}).return_value
    assert rv == Status.BAD_WEIGHTS


def test_imports_are_only_teaclave_file_functions(functions):
    import wasmtime

    from teaclave_infer.abi import TEACLAVE_IMPORTS

    for fn in functions.values():
        module = wasmtime.Module(wasmtime.Engine(), fn.wasm.read_bytes())
        assert {(i.module, i.name) for i in module.imports} <= {
            ("env", n) for n in TEACLAVE_IMPORTS
        }
        exports = {e.name: e.type for e in module.exports}
        assert sorted(exports) == ["entrypoint", "memory", ARGV_AREA]
        area = exports[ARGV_AREA]
        assert isinstance(area, wasmtime.GlobalType) and not area.mutable


def add_one(tmp_path_factory: pytest.TempPathFactory, name: str, n: int) -> BuildResult:
    """A function y = x + 1 on a vector of n float32s."""
    model = make_model(
        [helper.make_node("Add", ["x", "one"], ["y"])],
        [vi("x", TP.FLOAT, [n])],
        [vi("y", TP.FLOAT, [n])],
        [init("one", np.ones(n, dtype=np.float32))],
    )
    return build_model(tmp_path_factory.mktemp(name), model, name)


@pytest.fixture(scope="module")
def tiny_tensor(tmp_path_factory) -> BuildResult:
    """A function whose input is 2 float32s: 8 bytes, fewer than a .npy file's 10-byte preamble."""
    return add_one(tmp_path_factory, "tiny", 2)


def test_a_tensor_under_10_bytes_is_read_from_npy_and_raw(tiny_tensor):
    x = np.array([0.5, -2.0], dtype=np.float32)
    for given in (npy(x), x.tobytes()):
        _, out = call(tiny_tensor, {"x": "in", "y": "out"}, {"in": given}, ("out",))
        np.testing.assert_array_equal(np.load(io.BytesIO(out["out"])), x + 1)


@pytest.mark.parametrize(
    "given",
    [b"", b"\0" * 7, b"\0" * 9, npy(np.zeros(2, np.float32))[:-1]],
    ids=["empty", "7-bytes", "9-bytes", "truncated-npy"],
)
def test_a_tensor_under_10_bytes_takes_exactly_its_bytes(tiny_tensor, given):
    rv, out = call(tiny_tensor, {"x": "in", "y": "out"}, {"in": given}, ("out",))
    assert rv == Status.BAD_INPUT_FORMAT and out == {}


def grown_pages(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """For each call, how many pages its memory grew past the module's initial memory (read as
    its store closes)."""
    grown: list[int] = []
    close = _Invocation.__exit__

    def closing(self: _Invocation, *exc: object) -> None:
        (memory,) = [e.type for e in self.module.exports if e.name == "memory"]
        assert self.memory is not None
        grown.append(self.memory.size(self.store) - memory.limits.min)
        close(self, *exc)

    monkeypatch.setattr(_Invocation, "__exit__", closing)
    return grown


@pytest.mark.parametrize("weights", ["embedded", "separate"])
def test_a_call_grows_no_memory(functions, weights, monkeypatch):
    """The runtime allocates from the heap the builder sized into the initial memory (weights
    read in, arena, tables, I/O stage, workspaces), and the host puts argv in the runtime's argv
    area: a call grows no page."""
    grown = grown_pages(monkeypatch)
    small = functions[weights]
    call(small, {"x": "img", "y": "out"}, {"img": npy(X)}, ("out",))
    mnist = prebuilt(weights)  # Winograd kernels: the largest workspaces of the tests' models
    files = {"img": npy(np.zeros((1, 1, 28, 28), np.float32))}
    if mnist.weights is not None:
        files["weights"] = mnist.weights.read_bytes()
    result = run(mnist.wasm.read_bytes(), {"input_img": "img", "scores": "out"}, files)
    assert result.ok, result.message
    assert grown == [0, 0]


def counted(monkeypatch: pytest.MonkeyPatch, most: int | None = None) -> dict[str, int]:
    """Counts the host's file calls by name; with `most`, every read gives at most that many
    bytes (as a host may: a read is not bound to fill its buffer)."""
    calls: dict[str, int] = {}
    for name in ("open_input", "create_output", "read", "write", "close"):
        method = getattr(FileContext, name)

        def wrapper(self, *args, _name=name, _method=method):
            calls[_name] = calls.get(_name, 0) + 1
            if _name == "read" and most is not None:
                handle, dst, size = args
                return _method(self, handle, dst, min(size, most))
            return _method(self, *args)

        monkeypatch.setattr(FileContext, name, wrapper)
    return calls


def test_a_small_input_and_output_take_one_read_and_one_write(functions, monkeypatch):
    """The whole .npy in one read (and one that finds its end), the whole output in one write."""
    calls = counted(monkeypatch)
    rv, out = call(functions["embedded"], {"x": "img", "y": "out"}, {"img": npy(X)}, ("out",))
    assert rv == int(np.argmax(expected())) and "out" in out
    assert calls == {"open_input": 1, "read": 2, "create_output": 1, "write": 1, "close": 2}


@pytest.mark.parametrize("most", [1, 7, 100])
def test_a_host_giving_short_reads_gets_the_same_results(functions, monkeypatch, most):
    counted(monkeypatch, most)
    for given in (npy(X), X.tobytes()):
        assert call(functions["separate"], {"x": "img"}, {"img": given})[0] == int(
            np.argmax(expected())
        )
    assert call(functions["embedded"], {"x": "img"}, {"img": npy(X) + b"\0"})[0] == (
        Status.BAD_INPUT_FORMAT
    )


@pytest.fixture(scope="module")
def big_tensor(tmp_path_factory) -> BuildResult:
    """A function with an input and an output of 80,000 bytes: over what moves in one call."""
    return add_one(tmp_path_factory, "big", 20000)


def test_an_input_over_64_kib_is_read_on_in_place(big_tensor, monkeypatch):
    x = np.random.default_rng(5).standard_normal(20000).astype(np.float32)
    calls = counted(monkeypatch)
    for given in (npy(x), x.tobytes()):
        _, out = call(big_tensor, {"x": "in", "y": "out"}, {"in": given}, ("out",))
        np.testing.assert_array_equal(np.load(io.BytesIO(out["out"])), x + 1)
    assert calls["write"] == 2 * 2  # header and data: too big to join
    for bad in (npy(x)[:-1], npy(x) + b"\0", x.tobytes()[:-1], x.tobytes() + b"\0"):
        rv, out = call(big_tensor, {"x": "in", "y": "out"}, {"in": bad}, ("out",))
        assert rv == Status.BAD_INPUT_FORMAT and out == {}


def bad_header(total: int) -> bytes:
    """A .npy whose header names another dtype, order and shape, zero-padded to `total` bytes."""
    header = b"{'descr': '<f8', 'fortran_order': True, 'shape': (7, 7), }"
    npy_file = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
    return npy_file + bytes(total - len(npy_file))


@pytest.mark.parametrize("total", [127, 128, 129, 1165, 5000, 200_000])
def test_a_refused_header_is_refused_whatever_the_files_length(functions, total):
    """Around the tensor's 128 bytes, and past all that the first read asks for (a refused
    header once read as a huge prefix: the data copied from before the buffer, past the tensor)."""
    rv, out = call(functions["embedded"], {"x": "img", "y": "out"}, {"img": bad_header(total)})
    assert rv == Status.BAD_INPUT_FORMAT and out == {}


@pytest.mark.parametrize("total", [79_999, 80_000, 200_000])
def test_a_refused_header_of_a_big_input_is_refused(big_tensor, total):
    rv, out = call(big_tensor, {"x": "in", "y": "out"}, {"in": bad_header(total)}, ("out",))
    assert rv == Status.BAD_INPUT_FORMAT and out == {}
