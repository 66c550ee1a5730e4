"""Pooled instances (executor/_engine.py): a call reuses a slot of wasmtime's pooling allocator,
whose memory is reset in place rather than unmapped. A call must still never see what an earlier
call left in memory, its data segments must be as the module declares them, its memory must be
back at its initial size, and more calls at once than the pool has slots must all run. A module
the pool cannot hold runs unpooled, compiled for the pool only once."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

from guests import BUF, IN, guest, log_values

from teaclave_infer.executor import Limits, ModuleCache, ResultKind, Wasm, run
from teaclave_infer.executor._engine import KEEP_RESIDENT, POOL_SLOTS

PAGE = 65536
PAGES = KEEP_RESIDENT // PAGE + 16  # past the part of a slot that stays resident
# in the resident part, at its last word, and past it
ADDRESSES = [BUF, KEEP_RESIDENT - 4, KEEP_RESIDENT + 8 * PAGE]
SECRET = 0x5EC2E7

# Logs what each address holds, the first word of the "in" data segment and the memory's size
# in pages; then leaves a secret at each address and over the data, and grows the memory.
SNOOP = "".join(f"(call $log (i32.load (i32.const {a})))" for a in ADDRESSES) + (
    f"(call $log (i32.load (i32.const {IN})))"
    "(call $log (memory.size))"
    + "".join(f"(i32.store (i32.const {a}) (i32.const {SECRET}))" for a in ADDRESSES)
    + f"(i32.store (i32.const {IN}) (i32.const {SECRET}))"
    "(drop (memory.grow (i32.const 4)))"
    f"(i32.store (i32.const {PAGES * PAGE}) (i32.const {SECRET}))"
    "(call $flush) (i32.const 0)"
)


def test_a_call_never_sees_what_an_earlier_call_left_in_memory():
    wasm = guest(SNOOP, pages=PAGES)
    initial_in = int.from_bytes(b"in\0\0", "little")
    seen = []
    for _ in range(6):  # the same module again: the slot it used is the one it gets back
        result = run(wasm, {}, {}, ["log"])
        assert result.kind is ResultKind.OK, result.message
        seen.append(log_values(result.outputs["log"]))
    # the executor adds a page for argv; the guest's 4 pages never stay
    assert seen == [[0, 0, 0, initial_in, PAGES + 1]] * 6


def test_another_module_in_a_used_slot_sees_zeros():
    snoop = guest(SNOOP, pages=PAGES)
    other = guest("(call $log (i32.load (i32.const 4096))) (call $flush) (i32.const 0)", pages=2)
    for _ in range(3):
        assert run(snoop, {}, {}, ["log"]).ok
        result = run(other, {}, {}, ["log"])
        assert result.kind is ResultKind.OK, result.message
        assert log_values(result.outputs["log"]) == [0]


def test_more_calls_at_once_than_the_pool_has_slots_all_run():
    # Each call spins (wasm runs without the GIL, so the calls overlap), then returns the digit
    # it was given as its argument.
    countdown = "(local.tee $h (i32.sub (local.get $h) (i32.const 1)))"
    spin = f"(local.set $h (i32.const 3000000)) (loop (br_if 0 {countdown}))"
    value = "(i32.load (i32.add (local.get $argv) (i32.const 4)))"  # argv: "n", "<digit>"
    wasm = guest(f"{spin} (i32.sub (i32.load8_u {value}) (i32.const 48))")
    calls = 2 * POOL_SLOTS

    def call(i: int) -> int:
        result = run(wasm, {"n": i % 10}, {}, limits=Limits(deadline_s=60))
        assert result.kind is ResultKind.OK, result.message
        assert result.return_value is not None
        return result.return_value

    with ThreadPoolExecutor(max_workers=calls) as pool:
        assert list(pool.map(call, range(calls))) == [i % 10 for i in range(calls)]


def test_a_module_the_pool_cannot_hold_runs_unpooled_and_is_not_compiled_again():
    """16 tables: more than a pool slot holds (and than the store's limits allow). An attacker
    who registers one must not make every call compile it for the pool again."""
    tables = " ".join(["(table 400 funcref)"] * 16)
    # its own global: no other test's module, so the process has not met it yet
    data = guest("(i32.const 0)", f"{tables} (global i32 (i32.const 3))")
    loads = []
    wasm = Wasm(hashlib.sha256(data).hexdigest(), lambda: loads.append(1) or data)
    cache = ModuleCache()
    for _ in range(3):
        result = run(wasm, {}, {}, limits=Limits(memory_bytes=1 << 20), cache=cache)
        assert result.kind is ResultKind.MEMORY_LIMIT, result.message
    assert len(loads) == 2  # the first call: for the pool (refused), then unpooled; no more
