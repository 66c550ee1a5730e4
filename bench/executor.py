#!/usr/bin/env python3
"""The executor's per-call floor against bare wasmtime-py, and its overhead around MNIST.

    python bench/executor.py [--runs 1000] [--floor-only]

First the floor, each figure a median over --runs calls, interleaved in rounds: `run()` of
Teaclave's `simple_add` (no file I/O: examples/teaclave/functions) next to the bare wasmtime-py
equivalent (a Store, InstancePre.instantiate, argv written into a grown page, the entrypoint
called through `Func.__call__`, on the same engine); then one `teaclave_read_file` of 4 bytes
next to one bare wasmtime-py host call (`Linker.define_func`, a function returning its third
argument), each from a wasm loop of 10000 calls, less the same loop making no call. Targets
(issue 19): run() <= 2x the bare call, a file call <= 1.5x a bare host call.

Then MNIST: prints the cold compile time (validate + compile + write the cache entry), the
cached load time (a fresh cache reading that entry), instantiate + argv time, and the end-to-end
latency of one invocation (p50/p99: `run()` with the module cached in memory) next to the
entrypoint call alone (the kernels plus reading the input through the file context), as a ratio.
Then throughput: invocations per second with 1 thread and with one thread per core calling
`run()` on a shared cache (wasm runs without the GIL, so it should scale with cores), for
--seconds each.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import wasmtime

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from teaclave_client.images import npy_bytes, prepare_image  # noqa: E402

from teaclave_infer.abi import ENTRYPOINT, IMPORT_MODULE, TEACLAVE_IMPORTS, pack_arguments  # noqa: E402
from teaclave_infer.builder import build  # noqa: E402
from teaclave_infer.executor import EngineKey, Limits, ModuleCache, run  # noqa: E402
from teaclave_infer.executor._engine import engine_for  # noqa: E402


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.3f} ms"


def throughput(call: Callable[[], object], threads: int, seconds: float) -> float:
    """Invocations per second with `threads` threads calling `call` back to back."""
    done = [0] * threads
    stop = time.perf_counter() + seconds

    def loop(i: int) -> None:
        while time.perf_counter() < stop:
            call()
            done[i] += 1

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(done) / (time.perf_counter() - start)


SIMPLE_ADD = REPO / "examples" / "teaclave" / "functions" / "simple_add.wasm"
HOST_CALLS = 10000


def reads(calls: int) -> bytes:
    """A guest opening input "in" and reading 4 bytes from it `calls` times in a loop."""
    return wasmtime.wat2wasm(f"""(module
      (import "env" "teaclave_open_input" (func $open (param i32) (result i32)))
      (import "env" "teaclave_read_file" (func $read (param i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "in\\00")
      (func (export "entrypoint") (param i32 i32) (result i32) (local $h i32) (local $i i32)
        (local.set $h (call $open (i32.const 16)))
        (block $done (loop $more
          (br_if $done (i32.ge_u (local.get $i) (i32.const {calls})))
          (drop (call $read (local.get $h) (i32.const 64) (i32.const 4)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $more)))
        (i32.const 0)))""")


class Bare:
    """The bare wasmtime-py way to run a module on an engine: no limits, no file context."""

    def __init__(self, engine: wasmtime.Engine, wasm: bytes) -> None:
        self.engine = engine
        linker = wasmtime.Linker(engine)
        i32 = wasmtime.ValType.i32()
        for name, arity in TEACLAVE_IMPORTS.items():
            ty = wasmtime.FuncType([i32] * arity, [i32])
            linker.define_func(IMPORT_MODULE, name, ty, lambda *args: args[-1])
        self.pre = linker.instantiate_pre(wasmtime.Module(engine, wasm))

    def __call__(self, argv: list[bytes]) -> int:
        store = wasmtime.Store(self.engine)
        store.set_epoch_deadline(1 << 30)  # the engine interrupts by epochs: a deadline is due
        exports = self.pre.instantiate(store).exports(store)
        memory, entry = exports["memory"], exports[ENTRYPOINT]
        assert isinstance(memory, wasmtime.Memory) and isinstance(entry, wasmtime.Func)
        base = memory.grow(store, 1) * 65536
        table, cursor = b"", base + 4 * len(argv)
        for a in argv:
            table += cursor.to_bytes(4, "little")
            cursor += len(a) + 1
        memory.write(store, table + b"".join(a + b"\0" for a in argv), base)
        return int(entry(store, len(argv), base))


def medians(calls: dict[str, Callable[[], object]], rounds: int, per_round: int) -> dict:
    """Median seconds per call of each callable, timed in interleaved rounds."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            for _ in range(per_round):
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def floor(runs: int) -> None:
    """run() against bare wasmtime-py: the call with no I/O, then one host call."""
    key = EngineKey("teaclave", fuel=False, wasm_stack_bytes=Limits().wasm_stack_bytes)
    add, argv = SIMPLE_ADD.read_bytes(), pack_arguments({"adder1": 3, "adder2": 4})
    bare = Bare(engine_for(key), add)
    assert bare(argv) == run(add, {"adder1": 3, "adder2": 4}, {}, profile="teaclave").return_value
    no_io = medians(
        {
            "bare": lambda: bare(argv),
            "run": lambda: run(add, {"adder1": 3, "adder2": 4}, {}, profile="teaclave"),
        },
        rounds=10,
        per_round=max(1, runs // 10),
    )
    fast = EngineKey("fast", fuel=False, wasm_stack_bytes=Limits().wasm_stack_bytes)
    data = {"in": bytes(4 * HOST_CALLS)}
    loops = {n: reads(n) for n in (0, HOST_CALLS)}
    bares = {n: Bare(engine_for(fast), wasm) for n, wasm in loops.items()}
    loop_times = medians(
        {
            **{f"run{n}": functools.partial(run, w, {}, data) for n, w in loops.items()},
            **{f"bare{n}": functools.partial(b, []) for n, b in bares.items()},
        },
        rounds=10,
        per_round=max(1, runs // 200),
    )
    ours = (loop_times[f"run{HOST_CALLS}"] - loop_times["run0"]) / HOST_CALLS
    theirs = (loop_times[f"bare{HOST_CALLS}"] - loop_times["bare0"]) / HOST_CALLS
    print("per-call floor (medians, interleaved)")
    print(f"bare wasmtime-py: store + instantiate + argv + call  {us(no_io['bare'])}")
    print(
        f"run() of simple_add (no I/O)                        {us(no_io['run'])}  "
        f"({no_io['run'] / no_io['bare']:.2f}x, target <= 2x)"
    )
    print(f"bare wasmtime-py host call                          {us(theirs)}")
    print(
        f"file call: teaclave_read_file of 4 bytes            {us(ours)}  "
        f"({ours / theirs:.2f}x, target <= 1.5x)"
    )


def us(seconds: float) -> str:
    return f"{seconds * 1e6:8.2f} us"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput measurement")
    parser.add_argument("--floor-only", action="store_true", help="skip the MNIST part")
    args = parser.parse_args()
    floor(args.runs)
    if args.floor_only:
        return
    print()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wasm = build(REPO / "functions" / "mnist" / "mnist.onnx", work / "mnist").wasm.read_bytes()
        key = EngineKey("fast", fuel=False, wasm_stack_bytes=Limits().wasm_stack_bytes)

        start = time.perf_counter()
        ModuleCache(work / "cache").get(wasm, key)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        cache = ModuleCache(work / "cache")
        cache.get(wasm, key)
        cached = time.perf_counter() - start
        assert cache.stats["disk_hits"] == 1

        sample = sorted((REPO / "functions" / "mnist" / "samples").glob("*.png"))[0]
        files = {"img": npy_bytes(prepare_image(sample, (1, 1, 28, 28)))}
        total, instantiate, entry = [], [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            result = run(wasm, {"input_img": "img"}, files, cache=cache)
            total.append(time.perf_counter() - start)
            assert result.ok, result.message
            instantiate.append(result.timings["instantiate"])
            entry.append(result.timings["run"])
        cores = os.cpu_count() or 1
        per_s = {
            n: throughput(
                lambda: run(wasm, {"input_img": "img"}, files, cache=cache), n, args.seconds
            )
            for n in sorted({1, cores})
        }

    p50, p99 = np.percentile(total, 50), np.percentile(total, 99)
    bare = statistics.median(entry)
    print(f"MNIST function ({len(wasm)} bytes), {args.runs} invocations")
    print(f"cold compile (validate + compile + cache write) {ms(cold)}")
    print(f"cached load (fresh cache, from disk)            {ms(cached)}")
    print(f"instantiate + argv (p50)                        {ms(statistics.median(instantiate))}")
    print(f"entrypoint alone: kernels + input I/O (p50)     {ms(bare)}")
    print(f"end-to-end invocation p50                       {ms(p50)}  ({p50 / bare:.2f}x)")
    print(f"end-to-end invocation p99                       {ms(p99)}  ({p99 / bare:.2f}x)")
    for n, rate in per_s.items():
        print(
            f"throughput, {n} thread(s)                        {rate:8.1f} /s  "
            f"({rate / per_s[1]:.2f}x of 1 thread)"
        )


if __name__ == "__main__":
    main()
