"""The executor against hand-written guests: validation, Teaclave's file context, argv, every
result kind, the module cache and concurrent invocations."""

from __future__ import annotations

import ctypes
import gc
import threading
import weakref

import pytest
import wasmtime
from guests import ARGV, BUF, DEEP, HANDLES, IN, NOPE, OPEN_ALL, OUT, READS, guest, log_values
from teaclave_client.vocabulary import ARGV_AREA, ARGV_AREA_BYTES

from teaclave_infer.errors import LimitError
from teaclave_infer.executor import (
    EngineKey,
    Limits,
    ModuleCache,
    Result,
    ResultKind,
    compile_checked,
    engine_for,
    run,
)

W = 0x4000_0000


def logged(wasm: bytes, inputs: dict[str, bytes], outputs=("out", "log"), **kw) -> list[int]:
    result = run(wasm, {}, inputs, list(outputs), **kw)
    assert result.ok, result.message
    return log_values(result.outputs["log"])


def test_handles_count_from_one_and_are_never_reused():
    wasm = guest(HANDLES)
    assert logged(wasm, {"in": b"abc"}) == [1, 2, W | 3, 0, -1, 4]


def test_every_wrong_use_of_a_handle_or_id_is_minus_one():
    wasm = guest(f"""
      (call $log (call $open (i32.const {NOPE})))          ;; id not granted
      (call $log (call $create (i32.const {IN})))          ;; an input id as an output
      (call $log (call $create (i32.const {NOPE})))        ;; not a declared output
      (call $log (call $open (i32.const 0x7ffffff0)))      ;; id past the memory
      (local.set $h (call $create (i32.const {OUT})))
      (call $log (call $create (i32.const {OUT})))         ;; the same output twice
      (call $log (call $read (local.get $h) (i32.const {BUF}) (i32.const 4)))  ;; wrong direction
      (call $log (call $write (i32.const 1) (i32.const {BUF}) (i32.const 4)))  ;; no such handle
      (call $log (call $open (i32.const {IN})))            ;; handle 2
      (call $log (call $write (i32.const 2) (i32.const {BUF}) (i32.const 4)))  ;; wrong direction
      (call $log (call $read (i32.const 2) (i32.const -16) (i32.const 8)))     ;; buffer past end
      (call $log (call $read (i32.const 2) (i32.const {BUF}) (i32.const -1)))  ;; negative size
      (call $log (call $read (i32.const 99) (i32.const {BUF}) (i32.const 4)))  ;; unknown handle
      (call $log (call $close (i32.const 77)))
      (call $flush) (i32.const 0)""")
    assert logged(wasm, {"in": b"abc"}) == [-1] * 7 + [2] + [-1] * 5


def test_reads_write_and_outputs_only_when_closed():
    wasm = guest(READS)
    result = run(wasm, {}, {"in": b"abcdef"}, ["out", "log"])
    assert result.ok and result.return_value == 7
    assert log_values(result.outputs["log"]) == [4, 2, 0, 2, 0]
    assert result.outputs["out"] == b"ef"  # the last read left "ef" at the buffer's start


def test_handles_run_out_after_the_limit():
    wasm = guest(OPEN_ALL)
    assert run(wasm, {}, {"in": b""}).return_value == 1023
    assert run(wasm, {}, {"in": b""}, limits=Limits(max_handles=5)).return_value == 5


def test_argv_is_sorted_pairs_in_grown_pages():
    wasm = guest(ARGV)
    result = run(wasm, {"zeta": "1", "alpha": "x y", "mid": [1, 2]}, {}, ["out", "log"])
    argc, argv_ptr = log_values(result.outputs["log"])
    assert argc == 6 and argv_ptr >= 65536  # past the module's one page
    region = result.outputs["out"]
    pointers = [int.from_bytes(region[4 * i : 4 * i + 4], "little") for i in range(argc)]
    strings = [region[p - argv_ptr : region.index(b"\0", p - argv_ptr)] for p in pointers]
    assert strings == [b"alpha", b"x y", b"mid", b"[1,2]", b"zeta", b"1"]  # RFC 8785


def argv_area(at: int, mutable: bool = False) -> str:
    value = f"(mut i32) (i32.const {at})" if mutable else f"i32 (i32.const {at})"
    return f'(global (export "{ARGV_AREA}") {value})'


@pytest.mark.parametrize(
    ("extra", "arguments", "placed"),
    [
        (argv_area(1024), {"a": "b"}, 1024),  # the area: no growth
        (argv_area(65536 - 8), {"a": "b"}, 65536),  # runs past the memory: grown
        (argv_area(-4096), {"a": "b"}, 65536),  # past it as unsigned, too
        (argv_area(1024, mutable=True), {"a": "b"}, 65536),  # not what the ABI says: ignored
        (argv_area(1024), {"a": "x" * ARGV_AREA_BYTES}, 65536),  # longer than the area
    ],
)
def test_argv_goes_in_the_modules_argv_area_when_it_fits(extra, arguments, placed):
    body = ARGV.replace("(call $flush)", "(call $log (memory.size)) (call $flush)")
    result = run(guest(body, extra), arguments, {}, ["out", "log"])
    assert result.ok, result.message
    argc, argv_ptr, pages = log_values(result.outputs["log"])
    assert (argc, argv_ptr, pages) == (2, placed, 1 if placed < 65536 else 2)
    region = result.outputs["out"]
    pointers = [int.from_bytes(region[4 * i : 4 * i + 4], "little") for i in range(argc)]
    strings = [region[p - argv_ptr : region.index(b"\0", p - argv_ptr)] for p in pointers]
    assert strings == [a.encode() for pair in arguments.items() for a in pair]


DIV0 = "integer_division_by_zero"


@pytest.mark.parametrize(
    ("body", "extra", "kind", "code"),
    [
        ("(unreachable)", "", ResultKind.TRAP, "unreachable"),
        ("(i32.div_u (i32.const 1) (local.get $h))", "", ResultKind.TRAP, DIV0),
        ("(i32.load (i32.const -4))", "", ResultKind.TRAP, "memory_out_of_bounds"),
        ("(call $deep (i32.const 0))", DEEP, ResultKind.STACK_OVERFLOW, "stack_overflow"),
    ],
    ids=["unreachable", "divide-by-zero", "out-of-bounds", "recursion"],
)
def test_traps_map_to_their_kind(body, extra, kind, code):
    result = run(guest(body, extra), {}, {})
    assert result.kind is kind and result.trap_code == code
    assert result.return_value is None and result.message.startswith(str(kind))


def test_a_failed_call_leaves_no_outputs():
    wasm = guest(f"""
      (local.set $h (call $create (i32.const {OUT})))
      (drop (call $write (local.get $h) (i32.const {BUF}) (i32.const 8)))
      (drop (call $close (local.get $h)))
      (unreachable)""")
    result = run(wasm, {}, {}, ["out"])
    assert result.kind is ResultKind.TRAP and result.outputs == {}


def test_an_endless_loop_stops_at_the_deadline():
    # No bound on the wall time here (a loaded machine would fail it): the result says which
    # deadline stopped the call.
    result = run(guest("(loop (br 0)) (i32.const 0)"), {}, {}, limits=Limits(deadline_s=0.5))
    assert result.kind is ResultKind.TIMEOUT and "0.5 s" in result.message


def test_fuel_bounds_the_instructions():
    result = run(guest("(loop (br 0)) (i32.const 0)"), {}, {}, limits=Limits(fuel=100_000))
    assert result.kind is ResultKind.TIMEOUT and "fuel" in result.message
    counted = run(guest("(i32.const 3)"), {}, {}, limits=Limits(fuel=100_000))
    assert counted.ok and counted.return_value == 3


def test_a_memory_bomb_hits_the_memory_limit():
    bomb = "(loop (br_if 0 (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) (unreachable)"
    result = run(guest(bomb), {}, {}, limits=Limits(memory_bytes=8 << 20))
    assert result.kind is ResultKind.MEMORY_LIMIT


def test_a_module_bigger_than_the_limit_is_refused():
    result = run(guest("(i32.const 0)", pages=200), {}, {}, limits=Limits(memory_bytes=4 << 20))
    assert result.kind is ResultKind.MEMORY_LIMIT


def test_endless_output_hits_the_output_limit():
    wasm = guest(f"""
      (local.set $h (call $create (i32.const {OUT})))
      (loop (br_if 0 (i32.ne (call $write (local.get $h) (i32.const 0) (i32.const 65536))
                             (i32.const -1))))
      (drop (call $close (local.get $h)))
      (i32.const 0)""")
    result = run(wasm, {}, {}, ["out"], Limits(output_bytes=1 << 20))
    assert result.kind is ResultKind.OUTPUT_LIMIT and result.outputs == {}


def test_an_input_over_the_limit_is_refused_before_running():
    with pytest.raises(LimitError, match="input 'in' is 11 bytes"):
        run(guest("(i32.const 0)"), {}, {"in": b"x" * 11}, limits=Limits(max_input_bytes=10))


def test_limits_are_checked():
    with pytest.raises(ValueError, match="deadline_s"):
        Limits(deadline_s=0)


IMPORT_EP = '(func (export "entrypoint") (param i32 i32) (result i32) (i32.const 0))'


@pytest.mark.parametrize(
    ("wat", "kind", "named"),
    [
        (
            f'(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) '
            f'(result i32))) (memory (export "memory") 1) {IMPORT_EP})',
            ResultKind.FORBIDDEN_IMPORT,
            "wasi_snapshot_preview1.fd_write",
        ),
        (
            f'(module (import "env" "teaclave_read_file" (func (param i32 i32) (result i32))) '
            f'(memory (export "memory") 1) {IMPORT_EP})',
            ResultKind.FORBIDDEN_IMPORT,
            "env.teaclave_read_file must be a function (i32, i32, i32)",
        ),
        (
            f'(module (import "env" "memory" (memory 1)) {IMPORT_EP})',
            ResultKind.FORBIDDEN_IMPORT,
            "env.memory",
        ),
        (
            '(module (memory (export "memory") 1) (func (export "entrypoint") (param i32) '
            "(result i32) (i32.const 0)))",
            ResultKind.INVALID_MODULE,
            "must be (i32, i32)",
        ),
        ('(module (memory (export "memory") 1))', ResultKind.INVALID_MODULE, "entrypoint"),
        (f"(module {IMPORT_EP})", ResultKind.INVALID_MODULE, "memory"),
    ],
    ids=[
        "wasi",
        "wrong-signature",
        "imported-memory",
        "entrypoint-type",
        "no-entrypoint",
        "no-memory",
    ],
)
def test_modules_are_validated_before_anything_runs(wat, kind, named):
    result = run(bytes(wasmtime.wat2wasm(wat)), {}, {})
    assert result.kind is kind and named in result.message


# What Teaclave's own binaries export beside the two the ABI needs (wasm-ld's symbols, libc's,
# TVM's runtime's): the validator looks at `entrypoint` and `memory` only.
TEACLAVE_EXTRAS = """
  (global (export "__heap_base") i32 (i32.const 65536))
  (global (export "__data_end") i32 (i32.const 1024))
  (global (export "__tvm_module_ctx") (mut i32) (i32.const 0))
  (table (export "__indirect_function_table") 1 funcref)
  (func (export "strlen") (param i32) (result i32) (i32.const 0))
  (func (export "TVMBackendAllocWorkspace") (param i32 i32 i64 i32 i32) (result i32) (i32.const 0))
"""


@pytest.mark.parametrize("profile", ["teaclave", "fast"])
def test_a_teaclave_binarys_other_exports_are_accepted(profile):
    wasm = guest("(i32.const 7)", TEACLAVE_EXTRAS)
    module = compile_checked(engine_for(EngineKey(profile, False, 512 << 10)), wasm, profile)
    assert {e.name for e in module.exports} >= {"entrypoint", "memory", "strlen", "__heap_base"}
    assert run(wasm, {}, {}, profile=profile).return_value == 7


def test_bytes_that_are_not_wasm_are_refused():
    result = run(b"MZ\x90\x00not wasm", {}, {})
    assert result.kind is ResultKind.INVALID_MODULE and "not a WebAssembly module" in result.message


def test_simd_is_refused_by_the_teaclave_profile():
    wasm = guest("(i32x4.extract_lane 0 (v128.const i32x4 5 0 0 0))")
    assert run(wasm, {}, {}, profile="fast").return_value == 5
    refused = run(wasm, {}, {}, profile="teaclave")
    assert refused.kind is ResultKind.INVALID_MODULE and "SIMD" in refused.message


def test_cache_hits_misses_and_rejects_damaged_entries(tmp_path):
    wasm = guest("(i32.const 42)")
    first = ModuleCache(tmp_path)
    assert run(wasm, {}, {}, cache=first).return_value == 42
    assert first.stats["compiles"] == 1
    (entry,) = tmp_path.glob("*.cwasm")
    second = ModuleCache(tmp_path)
    assert run(wasm, {}, {}, cache=second).return_value == 42
    assert run(wasm, {}, {}, cache=second).return_value == 42
    assert second.stats == {"memory_hits": 1, "disk_hits": 1, "compiles": 0, "rejected": 0}
    for damage in (
        lambda b: b[:-1] + bytes([b[-1] ^ 1]),
        lambda b: b[:20],
        lambda b: b"XXXX" + b[4:],
    ):
        entry.write_bytes(damage(entry.read_bytes()))
        third = ModuleCache(tmp_path)
        assert run(wasm, {}, {}, cache=third).return_value == 42
        assert third.stats["rejected"] == 1 and third.stats["compiles"] == 1
    run(wasm, {}, {}, profile="teaclave", cache=ModuleCache(tmp_path))
    assert len(list(tmp_path.glob("*.cwasm"))) == 2  # the engine config is part of the key


def test_concurrent_invocations_keep_their_own_deadlines():
    endless = guest("(loop (br 0)) (i32.const 0)")
    busy = guest("""
      (loop (local.set $h (i32.add (local.get $h) (i32.const 1)))
            (br_if 0 (i32.lt_u (local.get $h) (i32.const 2000000000))))
      (i32.const 9)""")
    results: dict[str, object] = {}

    def call(name: str, wasm: bytes, limits: Limits) -> None:
        results[name] = run(wasm, {}, {}, limits=limits)

    threads = [
        threading.Thread(target=call, args=("endless", endless, Limits(deadline_s=1))),
        threading.Thread(target=call, args=("busy", busy, Limits(deadline_s=60))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    endless, busy_result = results["endless"], results["busy"]
    # Stopped by its own deadline (the message names it), not by the other call's 60 s.
    assert isinstance(endless, Result) and endless.kind is ResultKind.TIMEOUT
    assert "1 s" in endless.message and "60 s" not in endless.message
    assert isinstance(busy_result, Result) and busy_result.ok and busy_result.return_value == 9


def test_concurrent_invocations_read_and_write_their_own_files():
    copy = guest(
        f"""
      (local.set $h (call $open (i32.const {IN})))
      (global.set $len (call $read (local.get $h) (i32.const {BUF}) (i32.const 64)))
      (local.set $h (call $create (i32.const {OUT})))
      (drop (call $write (local.get $h) (i32.const {BUF}) (global.get $len)))
      (drop (call $close (local.get $h)))
      (i32.const 0)""",
        extra="(global $len (mut i32) (i32.const 0))",
    )
    wrong: list[tuple[bytes, object]] = []

    def call(tag: bytes) -> None:
        for k in range(100):
            data = tag + str(k).encode()
            result = run(copy, {}, {"in": data}, ["out"])
            if not result.ok or result.outputs["out"] != data:
                wrong.append((data, result.outputs.get("out")))

    threads = [threading.Thread(target=call, args=(tag,)) for tag in (b"a-", b"bb-", b"ccc-")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


def test_every_store_is_freed_after_its_invocation(monkeypatch):
    """A host function holding its store would keep it, and its memory, alive for good."""
    stores: list[weakref.ref[wasmtime.Store]] = []

    class TrackedStore(wasmtime.Store):
        def __init__(self, *args: object) -> None:
            super().__init__(*args)
            stores.append(weakref.ref(self))

    monkeypatch.setattr("teaclave_infer.executor._run.wasmtime.Store", TrackedStore)
    echo = guest(f"(drop (call $open (i32.const {IN}))) (i32.const 0)", pages=64)
    trap = guest("(unreachable) (i32.const 0)", pages=64)
    for wasm in (echo, trap, echo):
        run(wasm, {}, {"in": b"x"})
    gc.collect()
    assert len(stores) == 3 and all(ref() is None for ref in stores)


def test_a_host_function_that_raises_is_minus_one_to_the_guest(monkeypatch):
    """Host functions are raw callbacks (executor/_raw.py): an exception must not unwind into
    wasm, and the invocation goes on."""

    def broken(self: object, *args: object) -> int:
        raise RuntimeError("a bug in the host")

    monkeypatch.setattr("teaclave_infer.executor._files.FileContext.read", broken)
    assert logged(guest(READS), {"in": b"abcdef"}) == [-1, -1, -1, 2, 0]


def test_reads_land_in_pages_grown_between_host_calls():
    """A host call past the memory size the host last read (the guest grew it since) reads the
    size again: the pages are there."""
    wasm = guest(f"""
      (local.set $h (call $open (i32.const {IN})))
      (call $log (call $read (local.get $h) (i32.const {BUF}) (i32.const 2)))
      (call $log (memory.grow (i32.const 64)))
      (call $log (call $read (local.get $h) (i32.const 0x200000) (i32.const 2)))
      (call $log (i32.load16_u (i32.const 0x200000)))
      (call $flush) (i32.const 0)""")
    # memory.grow answers 2: run() placed argv in a second page
    assert logged(wasm, {"in": b"abcd"}) == [2, 2, 2, int.from_bytes(b"cd", "little")]


@pytest.mark.parametrize("pooled", [True, False])
def test_no_engine_moves_a_memory_that_grows(pooled):
    """The host functions keep a memory's base for the whole call (_raw.MemoryView): growing it
    to a gigabyte, a page at a time and at once, leaves it where it was."""
    store = wasmtime.Store(engine_for(EngineKey("fast", False, 512 << 10, pooled=pooled)))
    memory = wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(1, None)))
    base = ctypes.addressof(memory.data_ptr(store).contents)
    for _ in range(8):
        memory.grow(store, 1)
    memory.grow(store, (1 << 30) // 65536 - memory.size(store))
    assert memory.data_len(store) == 1 << 30
    assert ctypes.addressof(memory.data_ptr(store).contents) == base


def test_ctrl_c_in_a_host_function_ends_the_call_and_reaches_the_caller(monkeypatch):
    """A KeyboardInterrupt taken inside a host function becomes a trap that unwinds the wasm,
    then is raised from run(), in the call and in a start function; the next call is unharmed."""

    def interrupted(self: object, *args: object) -> int:
        raise KeyboardInterrupt

    wasm = guest(READS)
    start_function = f"(func $s (drop (call $open (i32.const {IN})))) (start $s)"
    start = guest("(i32.const 0)", extra=start_function)
    with monkeypatch.context() as patched:
        patched.setattr("teaclave_infer.executor._files.FileContext.read", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run(wasm, {}, {"in": b"abcdef"}, ["out", "log"])
        patched.setattr("teaclave_infer.executor._files.FileContext.open_input", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run(start, {}, {"in": b"x"})
    assert logged(wasm, {"in": b"abcdef"}) == [4, 2, 0, 2, 0]


def test_a_module_may_not_export_the_table_guards_flag():
    from teaclave_infer.executor._tables import REFUSED

    wasm = guest("(i32.const 0)", extra=f'(global (export "{REFUSED}") i32 (i32.const 1))')
    result = run(wasm, {}, {})
    assert result.kind is ResultKind.INVALID_MODULE and "reserved" in result.message


def test_empty_writes_keep_nothing():
    wasm = guest(f"""
      (local.set $h (call $create (i32.const {OUT})))
      (block $done (loop $more
        (br_if $done (i32.eq (global.get $n) (i32.const 1000)))
        (drop (call $write (local.get $h) (i32.const {BUF}) (i32.const 0)))
        (global.set $n (i32.add (global.get $n) (i32.const 1)))
        (br $more)))
      (global.set $n (i32.const 0))
      (drop (call $close (local.get $h))) (i32.const 0)""")
    assert run(wasm, {}, {}, ["out"]).outputs == {"out": b""}
