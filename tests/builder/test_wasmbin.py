"""The builder's two post-link edits (wasmbin.py) on hand-written modules."""

from __future__ import annotations

import pytest
import wasmtime

from teaclave_infer.builder.wasmbin import embed_data, keep_exports


def test_keep_exports_drops_the_rest():
    wasm = wasmtime.wat2wasm(
        '(module (memory (export "memory") 1) (func (export "_initialize"))'
        ' (func (export "entrypoint") (param i32 i32) (result i32) i32.const 7)'
        ' (data (i32.const 16) "weights"))'
    )
    kept = keep_exports(bytes(wasm), ("entrypoint", "memory"))
    engine = wasmtime.Engine()
    module = wasmtime.Module(engine, kept)
    assert sorted(e.name for e in module.exports) == ["entrypoint", "memory"]
    store = wasmtime.Store(engine)
    exports = wasmtime.Instance(store, module, []).exports(store)
    assert exports["entrypoint"](store, 0, 0) == 7
    assert exports["memory"].read(store, 16, 23) == b"weights"  # later sections are intact


def test_keep_exports_of_a_module_without_exports_is_the_module():
    wasm = bytes(wasmtime.wat2wasm("(module (memory 1))"))
    assert keep_exports(wasm, ("entrypoint",)) == wasm


def _blob_module(address: int, pages: int) -> bytes:
    """As wasm-ld links a model: an imported global before the module's own, the array's address
    exported as a global, a data section and (bulk memory) a data count section."""
    return bytes(
        wasmtime.wat2wasm(
            f"""(module
              (import "env" "g" (global i32))
              (memory (export "memory") {pages})
              (global $stack (mut i32) (i32.const 65536))
              (global $blob i32 (i32.const {address}))
              (export "ti_blob" (global $blob))
              (data (i32.const 16) "tables")
              (data $passive "x")
              (func (export "entrypoint") (param i32 i32) (result i32)
                data.drop $passive i32.const 0))"""
        )
    )


@pytest.mark.parametrize(("address", "pages"), [(1024, 1), (0x80000010, 32769)])
def test_embed_data_writes_the_array_and_keeps_the_rest(address, pages):
    """The second case's address is negative as an i32 constant (a module over 2 GiB)."""
    wasm = _blob_module(address, pages)
    assert b"\x0c\x01\x02" in wasm  # the data count section, 2 segments
    blob = bytes(range(256)) * 3
    linked = embed_data(wasm, "ti_blob", blob)
    engine = wasmtime.Engine()
    module = wasmtime.Module(engine, linked)  # validates: counts and sizes agree
    assert sorted(e.name for e in module.exports) == ["entrypoint", "memory"]
    store = wasmtime.Store(engine)
    imported = wasmtime.Global(store, wasmtime.GlobalType(wasmtime.ValType.i32(), False), 0)
    instance = wasmtime.Instance(store, module, [imported])
    memory = instance.exports(store)["memory"]
    assert memory.read(store, address, address + len(blob)) == blob
    assert memory.read(store, 16, 22) == b"tables"
    assert instance.exports(store)["entrypoint"](store, 0, 0) == 0


def test_embed_data_names_a_missing_symbol():
    with pytest.raises(ValueError, match="exports no global 'weights'"):
        embed_data(_blob_module(1024, 1), "weights", b"x")


def test_embed_data_names_a_module_without_a_data_section():
    wasm = bytes(
        wasmtime.wat2wasm('(module (memory 1) (global (export "ti_blob") i32 (i32.const 64)))')
    )
    with pytest.raises(ValueError, match="no data section"):
        embed_data(wasm, "ti_blob", b"x")
