#!/usr/bin/env python3
"""The executor's overhead around the MNIST function.

    python bench/executor.py [--runs 1000]

Prints the cold compile time (validate + compile + write the cache entry), the cached load time
(a fresh cache reading that entry), instantiate + argv time, and the end-to-end latency of one
invocation (p50/p99: `run()` with the module cached in memory) next to the entrypoint call alone
(the kernels plus reading the input through the file context), as a ratio. Then throughput:
invocations per second with 1 thread and with one thread per core calling `run()` on a shared
cache (wasm runs without the GIL, so it should scale with cores), for --seconds each.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from teaclave_client.images import npy_bytes, prepare_image  # noqa: E402

from teaclave_infer.builder import build  # noqa: E402
from teaclave_infer.executor import EngineKey, Limits, ModuleCache, run  # noqa: E402


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput measurement")
    args = parser.parse_args()
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
