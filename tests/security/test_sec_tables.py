"""Tables count against the memory limit (issue 15 item 7): a table bomb ends as `memory_limit`
and the process does not grow, whether the guest grows a table once by 100M elements, grows it
in a loop, declares it huge, or declares many tables."""

from __future__ import annotations

import pytest
from guests import guest, log_values

from teaclave_infer.executor import Limits, ResultKind, run
from teaclave_infer.executor._tables import guard_table_growth

ONE_MIB = Limits(memory_bytes=1 << 20)
TABLE = "(table $t 1 funcref)"
GROW_100M = "(table.grow $t (ref.null func) (i32.const 100000000))"
BOMBS = {
    # the guest checks the -1 and traps, returns it, or ignores it: each ends the call
    "grow-then-trap": (
        f"(if (i32.eq {GROW_100M} (i32.const -1)) (then unreachable)) (i32.const 0)",
        TABLE,
    ),
    "grow-returns": (GROW_100M, TABLE),
    "grow-ignored": (f"(drop {GROW_100M}) (i32.const 0)", TABLE),
    "externref": (
        "(table.grow $t (ref.null extern) (i32.const 100000000))",
        "(table $t 0 externref)",
    ),
    "grow-in-a-loop": (
        "(loop (br_if 0 (i32.ne (table.grow $t (ref.null func) (i32.const 1000)) (i32.const -1))))"
        " (i32.const 0)",
        TABLE,
    ),
    "declared-huge": ("(i32.const 0)", "(table 100000000 funcref)"),
    "declared-huge-with-max": ("(i32.const 0)", "(table 100000000 100000000 funcref)"),
    "several-tables": ("(i32.const 0)", " ".join(["(table 400 funcref)"] * 16)),
}


def vm_rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.parametrize("name", BOMBS)
def test_a_table_bomb_hits_the_memory_limit(name: str) -> None:
    body, tables = BOMBS[name]
    result = run(guest(body, tables), {}, {}, limits=ONE_MIB)
    assert result.kind is ResultKind.MEMORY_LIMIT, result.message
    assert result.message.startswith("memory_limit: 1048576 bytes"), result.message


@pytest.mark.parametrize("name", ["grow-ignored", "grow-in-a-loop"])
def test_a_table_bomb_does_not_grow_the_process(name: str) -> None:
    """Unlimited, 100M funcref elements grew the service by 712 MiB."""
    wasm = guest(*BOMBS[name])
    run(wasm, {}, {}, limits=ONE_MIB)  # compiled and cached: what remains is the call
    before = vm_rss()
    for _ in range(3):
        assert run(wasm, {}, {}, limits=ONE_MIB).kind is ResultKind.MEMORY_LIMIT
    assert vm_rss() - before < 4 << 20


def test_the_budget_splits_memory_bytes() -> None:
    assert ONE_MIB.linear_memory_bytes == 15 * 65536  # whole pages; tables keep >= 1/256
    assert ONE_MIB.table_elements == 512  # 64 KiB / (4 tables * 32 B)
    assert Limits().table_elements == 8192


def test_a_small_table_still_runs() -> None:
    grow = "(call $log (table.grow $t (ref.null func) (i32.const 10))) (call $log (table.size $t))"
    call = "(call $log (call_indirect (result i32) (i32.const 0)))"
    tables = f"{TABLE} (elem (i32.const 0) $seven) (func $seven (result i32) (i32.const 7))"
    wasm = guest(f"{grow} {call} (call $flush) (i32.const 3)", tables)
    result = run(wasm, {}, {}, ["log"], ONE_MIB)
    assert result.kind is ResultKind.OK, result.message
    assert log_values(result.outputs["log"]) == [1, 11, 7]
    assert result.return_value == 3


def test_growth_up_to_the_share_succeeds_and_past_it_ends_the_call() -> None:
    share = ONE_MIB.table_elements
    fits = f"(table.grow $t (ref.null func) (i32.const {share - 1}))"
    assert run(guest(fits, TABLE), {}, {}, limits=ONE_MIB).return_value == 1
    over = f"(table.grow $t (ref.null func) (i32.const {share}))"
    assert run(guest(over, TABLE), {}, {}, limits=ONE_MIB).kind is ResultKind.MEMORY_LIMIT


def test_a_table_at_its_own_maximum_is_minus_one_to_the_guest() -> None:
    """Only the store's limit ends the call: the table's own maximum is the spec's -1."""
    body = "(table.grow $t (ref.null func) (i32.const 100))"
    result = run(guest(body, "(table $t 1 10 funcref)"), {}, {})
    assert result.kind is ResultKind.OK and result.return_value == -1


def test_the_guard_leaves_other_modules_alone_and_keeps_every_instruction() -> None:
    assert guard_table_growth(guest("(i32.const 0)", TABLE)) is None
    # a body with each kind of immediate the guard must step over (SIMD, bulk memory, tables)
    body = """
      (drop (i64.const -9223372036854775808)) (drop (f32.const 1.5)) (drop (f64.const -2.25))
      (block $a (block $b (br_table $a $b $a (i32.const 1))))
      (drop (select (result i32) (i32.const 1) (i32.const 2) (i32.const 0)))
      (drop (call_indirect $f (result i32) (i32.const 0)))
      (drop (i8x16.extract_lane_u 3 (i8x16.shuffle 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15
         (v128.const i32x4 1 2 3 4) (v128.load offset=8 align=4 (i32.const 0)))))
      (v128.store64_lane offset=16 1 (i32.const 0) (v128.load32_zero (i32.const 4)))
      (memory.fill (i32.const 100) (i32.const 0) (i32.const 4))
      (memory.copy (i32.const 200) (i32.const 100) (i32.const 4))
      (table.set $e (i32.const 0) (ref.null extern))
      (drop (ref.is_null (ref.func $k)))
      (drop (i32.trunc_sat_f32_s (f32.const 3.7)))
      (global.set $g (i32.add (global.get $g) (i32.const 1)))
      (call $log (table.grow $e (ref.null extern) (i32.const 3)))
      (call $log (table.grow $f (ref.func $k) (i32.const 2)))
      (call $log (call_indirect $f (result i32) (i32.const 2)))
      (call $flush) (i32.add (global.get $g) (table.size $e))"""
    tables = """(table $f 1 funcref) (table $e 1 10 externref) (global $g (mut i32) (i32.const 40))
      (elem (table $f) (i32.const 0) func $k) (func $k (result i32) (i32.const 7))"""
    result = run(guest(body, tables), {}, {}, ["log"])
    assert result.kind is ResultKind.OK, result.message
    assert log_values(result.outputs["log"]) == [1, 1, 7]
    assert result.return_value == 45


def test_the_byte_pair_of_table_grow_in_a_constant_is_not_a_grow() -> None:
    """`i32.const 2044` is 0x41 0xfc 0x0f: the guard's byte search finds the pair, and the walk of
    that body (only that body) finds no `table.grow`; a grow in a later body is still guarded."""
    assert b"\xfc\x0f" in guest("(i32.const 2044)", TABLE)
    assert guard_table_growth(guest("(i32.const 2044)", TABLE)) is None
    pair_first = f"{TABLE} (func $pair (result i32) (i32.const 2044))"
    result = run(guest(f"(drop (call $pair)) {GROW_100M}", pair_first), {}, {}, limits=ONE_MIB)
    assert result.kind is ResultKind.MEMORY_LIMIT, result.message
