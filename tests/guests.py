"""Hand-written WebAssembly guests (WAT) for the executor's tests.

`guest(body)` wraps instructions into a module importing Teaclave's five functions, with a few
strings in memory and a `$log` helper: each `(call $log X)` records an i32, and `$flush` writes
the record to the output "log", so a test can read what every host call returned. The bodies
below are shared by the executor's tests and the web host's (which compares the two).
"""

from __future__ import annotations

import wasmtime

IMPORTS = """
  (import "env" "teaclave_open_input" (func $open (param i32) (result i32)))
  (import "env" "teaclave_create_output" (func $create (param i32) (result i32)))
  (import "env" "teaclave_read_file" (func $read (param i32 i32 i32) (result i32)))
  (import "env" "teaclave_write_file" (func $write (param i32 i32 i32) (result i32)))
  (import "env" "teaclave_close_file" (func $close (param i32) (result i32)))
"""
# Strings at fixed addresses: the ids a guest names.
IN, OUT, NOPE, LOG = 16, 32, 48, 64
BUF = 4096  # a scratch buffer
LOG_AT = 8192  # where $log keeps its record

HELPERS = f"""
  (data (i32.const {IN}) "in\\00")
  (data (i32.const {OUT}) "out\\00")
  (data (i32.const {NOPE}) "nope\\00")
  (data (i32.const {LOG}) "log\\00")
  (global $n (mut i32) (i32.const 0))
  (func $log (param $v i32)
    (i32.store (i32.add (i32.const {LOG_AT}) (i32.mul (global.get $n) (i32.const 4)))
               (local.get $v))
    (global.set $n (i32.add (global.get $n) (i32.const 1))))
  (func $flush (local $h i32)
    (local.set $h (call $create (i32.const {LOG})))
    (drop (call $write (local.get $h) (i32.const {LOG_AT}) (i32.mul (global.get $n) (i32.const 4))))
    (drop (call $close (local.get $h))))
"""


# Handles count from 1, are never reused; a write handle has bit 30 set.
HANDLES = f"""
  (call $log (call $open (i32.const {IN})))
  (call $log (call $open (i32.const {IN})))
  (call $log (call $create (i32.const {OUT})))
  (call $log (call $close (i32.const 1)))
  (call $log (call $close (i32.const 1)))
  (call $log (call $open (i32.const {IN})))
  (call $flush) (i32.const 0)"""
# Three reads of 4 bytes, then 2 of the buffer written out: returns 7.
READS = f"""
  (local.set $h (call $open (i32.const {IN})))
  (call $log (call $read (local.get $h) (i32.const {BUF}) (i32.const 4)))
  (call $log (call $read (local.get $h) (i32.const {BUF}) (i32.const 4)))
  (call $log (call $read (local.get $h) (i32.const {BUF}) (i32.const 4)))
  (local.set $h (call $create (i32.const {OUT})))
  (call $log (call $write (local.get $h) (i32.const {BUF}) (i32.const 2)))
  (call $log (call $close (local.get $h)))
  (call $flush) (i32.const 7)"""
# Opens "in" until it fails: returns how many handles it got.
OPEN_ALL = f"""
  (block $done (loop $more
    (br_if $done (i32.eq (call $open (i32.const {IN})) (i32.const -1)))
    (local.set $h (i32.add (local.get $h) (i32.const 1)))
    (br $more)))
  (local.get $h)"""
# Logs argc and argv, and writes out everything from argv to the end of memory.
ARGV = f"""
  (call $log (local.get $argc))
  (call $log (local.get $argv))
  (local.set $h (call $create (i32.const {OUT})))
  (drop (call $write (local.get $h) (local.get $argv)
    (i32.sub (i32.mul (memory.size) (i32.const 65536)) (local.get $argv))))
  (drop (call $close (local.get $h)))
  (call $flush) (i32.const 0)"""
DEEP = "(func $deep (param i32) (result i32) (call $deep (i32.add (local.get 0) (i32.const 1))))"

# Copies input "in" to output "out" and returns the byte count.
ECHO = f"""
  (local.set $h (call $open (i32.const {IN})))
  (i32.store (i32.const 0) (call $read (local.get $h) (i32.const {BUF}) (i32.const 4096)))
  (drop (call $close (local.get $h)))
  (local.set $h (call $create (i32.const {OUT})))
  (drop (call $write (local.get $h) (i32.const {BUF}) (i32.load (i32.const 0))))
  (drop (call $close (local.get $h)))
  (i32.load (i32.const 0))
"""


def guest(body: str, extra: str = "", pages: int = 1) -> bytes:
    """A module whose entrypoint runs `body` (which must leave an i32 on the stack)."""
    return bytes(
        wasmtime.wat2wasm(
            f"""(module {IMPORTS}
  (memory (export "memory") {pages}) {HELPERS} {extra}
  (func (export "entrypoint") (param $argc i32) (param $argv i32) (result i32) (local $h i32)
    {body}))"""
        )
    )


def log_values(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 4], "little", signed=True) for i in range(0, len(data), 4)]
