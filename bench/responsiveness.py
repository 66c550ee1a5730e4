#!/usr/bin/env python3
"""Does heavy work stall the API? `/v1/health` latency while a large module is registered and
while 100 logins arrive at once, against its latency on an idle service, in one run.

    python bench/responsiveness.py [--functions 20000] [--logins 100]

Starts `teaclave-infer serve` (its own process, no workers) on a free loopback port with a fresh
data dir. Measures: health on the idle service; health polled during the registration of a
generated module of N functions (compiled by the executor's validator); 100 concurrent logins
(a third with a wrong password), each one's status and latency, and health polled meanwhile.
Prints medians and maxima, and each loaded maximum as a ratio of the idle median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import wasmtime

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from teaclave_infer.local import local_service  # noqa: E402

ADMIN_PASSWORD = "bench-admin-password"


def big_module(functions: int) -> bytes:
    """A valid Teaclave-ABI module with many small exported-unreachable functions: seconds of
    compiling for the validator."""
    body = "(local.get 0) (i32.const 7) (i32.mul) (i32.const 3) (i32.add) (i32.const 5) (i32.xor)"
    funcs = "\n".join(f"(func $f{i} (param i32) (result i32) {body})" for i in range(functions))
    wat = f"""(module
  (memory (export "memory") 1)
  {funcs}
  (func (export "entrypoint") (param i32 i32) (result i32) (call $f0 (i32.const 1))))"""
    return wasmtime.wat2wasm(wat)


def _health_while(base: str, busy: threading.Event) -> list[float]:
    times = []
    while not busy.is_set():
        start = time.perf_counter()
        requests.get(f"{base}/v1/health", timeout=60).raise_for_status()
        times.append((time.perf_counter() - start) * 1000)
    return times


def _idle(base: str, n: int = 50) -> list[float]:
    times: list[float] = []
    for _ in range(n):
        start = time.perf_counter()
        requests.get(f"{base}/v1/health", timeout=60).raise_for_status()
        times.append((time.perf_counter() - start) * 1000)
    return times


def _during(base: str, work) -> tuple[object, list[float]]:
    done = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        polled = pool.submit(_health_while, base, done)
        try:
            result = work()
        finally:
            done.set()
        return result, polled.result()


def _login(base: str, username: str, password: str) -> tuple[int, float]:
    start = time.perf_counter()
    r = requests.post(
        f"{base}/v1/auth/login", json={"username": username, "password": password}, timeout=120
    )
    return r.status_code, (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--functions", type=int, default=20000)
    parser.add_argument("--logins", type=int, default=100)
    args = parser.parse_args()
    wasm = big_module(args.functions)
    with tempfile.TemporaryDirectory() as tmp:
        admin_file = Path(tmp) / "admin.txt"
        admin_file.write_text(ADMIN_PASSWORD)
        with local_service(Path(tmp) / "data", admin_file, workers=0) as base:
            admin = requests.post(
                f"{base}/v1/auth/login",
                json={"username": "admin", "password": ADMIN_PASSWORD},
                timeout=60,
            ).json()["token"]
            owner = {"username": "bench-owner", "password": "a-long-bench-secret"}
            requests.post(
                f"{base}/v1/users",
                headers={"Authorization": f"Bearer {admin}"},
                json=owner | {"role": "FunctionOwner"},
                timeout=60,
            ).raise_for_status()
            token = requests.post(f"{base}/v1/auth/login", json=owner, timeout=60).json()["token"]
            idle = _idle(base)

            def register() -> float:
                start = time.perf_counter()
                r = requests.post(
                    f"{base}/v1/functions",
                    headers={"Authorization": f"Bearer {token}"},
                    files={"wasm": ("big.wasm", wasm), "manifest": ("f.json", b"{}")},
                    data={"spec": json.dumps({"name": "big", "inputs": [], "outputs": []})},
                    timeout=600,
                )
                r.raise_for_status()
                return (time.perf_counter() - start) * 1000

            register_ms, during_register = _during(base, register)

            def logins() -> list[tuple[int, float]]:
                wrong = {i for i in range(args.logins) if i % 3 == 0}
                with ThreadPoolExecutor(args.logins) as pool:
                    futures = [
                        pool.submit(
                            _login,
                            base,
                            owner["username"],
                            "wrong-password" if i in wrong else owner["password"],
                        )
                        for i in range(args.logins)
                    ]
                    return [f.result() for f in futures]

            answers, during_logins = _during(base, logins)
    base_ms = statistics.median(idle)
    print(f"module: {len(wasm) / 1e6:.1f} MB, {args.functions} functions")
    print(f"health idle:                  median {base_ms:.1f} ms, max {max(idle):.1f} ms")
    for name, times in (("registering", during_register), ("100 logins", during_logins)):
        print(
            f"health while {name:<16} median {statistics.median(times):.1f} ms, "
            f"max {max(times):.1f} ms ({max(times) / base_ms:.1f}x the idle median, "
            f"{len(times)} polls)"
        )
    print(f"registration: {register_ms:.0f} ms")
    statuses = Counter(status for status, _ in answers)  # type: ignore[union-attr]
    latencies = [ms for _, ms in answers]  # type: ignore[union-attr]
    print(
        f"logins: {dict(statuses)}; latency median {statistics.median(latencies):.0f} ms, "
        f"max {max(latencies):.0f} ms"
    )


if __name__ == "__main__":
    main()
