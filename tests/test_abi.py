"""The ABI kept in one place: status codes agree with the C runtime, argv packing, ids, and the
builder's export filter."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import wasmtime

from teaclave_infer.abi import Status, pack_arguments, safe_id
from teaclave_infer.builder.wasmbin import keep_exports

RUNTIME = Path(__file__).resolve().parent.parent / "teaclave_infer" / "runtime"


def test_status_codes_match_the_runtime_header():
    header = (RUNTIME / "ti.h").read_text()
    in_c = {int(v) for v in re.findall(r"TI_ERR_\w+ = (-\d+)", header)}
    assert in_c == {int(s) for s in Status}


def test_arguments_are_sorted_pairs_with_json_for_non_strings():
    argv = pack_arguments({"b": "2", "a": 1, "c": [1, "x"]})
    assert argv == [b"a", b"1", b"b", b"2", b"c", b'[1, "x"]']


@pytest.mark.parametrize(
    ("onnx_name", "ident"),
    [
        ("input_img", "input_img"),
        ("gpu_0/data_0", "gpu_0_data_0"),
        ("input.1", "input_1"),
        ("0", "_0"),
        ("weights", "weights_"),
        ("", "_"),
    ],
)
def test_safe_ids(onnx_name, ident):
    assert safe_id(onnx_name) == ident


def test_keep_exports_drops_the_rest():
    wasm = wasmtime.wat2wasm(
        '(module (memory (export "memory") 1) (func (export "_initialize"))'
        ' (func (export "entrypoint") (param i32 i32) (result i32) i32.const 7))'
    )
    kept = keep_exports(bytes(wasm), ("entrypoint", "memory"))
    engine = wasmtime.Engine()
    module = wasmtime.Module(engine, kept)
    assert sorted(e.name for e in module.exports) == ["entrypoint", "memory"]
    store = wasmtime.Store(engine)
    entry = wasmtime.Instance(store, module, []).exports(store)["entrypoint"]
    assert entry(store, 0, 0) == 7
