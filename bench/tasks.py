#!/usr/bin/env python3
"""End-to-end latency and throughput of MNIST tasks on the service, next to the bare executor.

    python bench/tasks.py [--tasks 100] [--runs 300] [--poll-ms 2] [--build-dir build/bench-mnist]

Builds the MNIST function with separate weights (kept in --build-dir, rebuilt only if the model
changed), then measures in one run:

- bare executor: `executor.run()` on the plaintext image and weights, module cached in memory,
  --runs calls after a warm-up (p50/p99): the reference of every ratio;
- the service: `teaclave-infer serve --workers N` in its own process on a free loopback port,
  fresh data dir and SQLite, once with 1 worker and once with 2. The client flow is a user's:
  do1's image and do2's weights are encrypted, their keys wrapped to the platform key, uploaded
  and registered once; each task gets a fresh output, is created, assigned and approved by both
  (not timed). 5 warm-up tasks first (the first one compiles the module);
- throughput (1 and 2 workers): --tasks Approved tasks invoked back to back; tasks/s from the
  first invoke request to the last finished_at;
- latency (1 worker, after its throughput run): --tasks tasks one at a time, each invoked while
  GET /v1/tasks/{id} is polled every --poll-ms: the client-observed invoke -> Finished time and
  the server's invoked_at -> finished_at.
Both print the medians of the worker's stages (the tasks' result.timings).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "client")]

from teaclave_client.crypto import encrypt, generate_key  # noqa: E402
from teaclave_client.images import npy_bytes, prepare_image  # noqa: E402
from teaclave_client.sealing import wrap_key  # noqa: E402

from teaclave_infer.executor import ModuleCache, run  # noqa: E402

MODEL = REPO / "functions" / "mnist" / "mnist.onnx"
SAMPLES = REPO / "functions" / "mnist" / "samples"
PASSWORD = "bench-password"
SLOTS = {"input_img": "input_img", "weights": "weights", "scores": "scores"}  # task arguments
WARMUP = 5  # bare calls, and tasks on each service (the first one compiles the module)
Fn = tuple[bytes, bytes, bytes, str]  # wasm, manifest, weights, profile


def mnist(out: Path) -> Fn:
    """The wasm, manifest, weights and profile of a separate-weights build in `out`."""
    manifest = out / "mnist.json"
    built_from = json.loads(manifest.read_text())["source"]["sha256"] if manifest.exists() else ""
    source = hashlib.sha256(MODEL.read_bytes()).hexdigest()
    if built_from != source or not (out / "mnist.weights").exists():
        from teaclave_infer.builder import BuildOptions, build  # TVM: only to build

        print(f"building {MODEL.relative_to(REPO)} -> {out}", flush=True)
        build(MODEL, out, BuildOptions(weights="separate"))
    profile = json.loads(manifest.read_text())["profile"]["name"]
    wasm, weights = (out / "mnist.wasm").read_bytes(), (out / "mnist.weights").read_bytes()
    return wasm, manifest.read_bytes(), weights, profile


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def service(workers: int) -> Iterator[str]:
    """`teaclave-infer serve --workers N` in its own process (its own GIL) on a fresh data dir;
    yields its base URL."""
    with tempfile.TemporaryDirectory() as tmp:
        work, port = Path(tmp), free_port()
        (work / "admin.txt").write_text(PASSWORD)
        cmd = [sys.executable, "-m", "teaclave_infer.cli", "serve", "--port", str(port)]
        cmd += ["--data-dir", str(work / "data"), "--workers", str(workers)]
        cmd += ["--admin-password-file", str(work / "admin.txt")]
        path = os.pathsep.join([str(REPO), str(REPO / "client"), os.environ.get("PYTHONPATH", "")])
        with open(work / "service.log", "wb") as log:  # its JSON log lines
            env = os.environ | {"PYTHONPATH": path}
            server = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=log)
        try:
            for _ in range(300):
                if server.poll() is not None:
                    raise RuntimeError((work / "service.log").read_text()[-2000:])
                try:
                    requests.get(f"http://127.0.0.1:{port}/v1/health", timeout=1)
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)
            else:
                raise RuntimeError("the service did not start")
            yield f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait(30)


class User:
    """One user's logged-in session."""

    def __init__(self, base: str, username: str) -> None:
        self.base, self.http = base, requests.Session()
        login = {"username": username, "password": PASSWORD}
        body = self.call("POST", "/v1/auth/login", json=login)
        self.http.headers["Authorization"] = f"Bearer {body['token']}"
        self.id = body["user"]["id"]

    def call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        r = self.http.request(method, f"{self.base}{path}", **kw)
        if r.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text}")
        return dict(r.json())


class Platform:
    """The client flow: a function owner registers MNIST (public); do1 owns the image and the
    scores, do2 the weights; both inputs are encrypted, uploaded and registered once."""

    def __init__(self, base: str, fn: Fn, image: bytes, label: int) -> None:
        admin = User(base, "admin")
        for name, role in (("fo", "FunctionOwner"), ("do1", "DataOwner"), ("do2", "DataOwner")):
            user = {"username": name, "password": PASSWORD, "role": role}
            admin.call("POST", "/v1/users", json=user)
        self.do1, self.do2, self.label = User(base, "do1"), User(base, "do2"), label
        self.sealing = admin.call("GET", "/v1/platform/keys")["sealing"]["public_key"]
        wasm, manifest, weights, _ = fn
        self.function_id = User(base, "fo").call(
            "POST",
            "/v1/functions",
            files={"wasm": ("mnist.wasm", wasm), "manifest": ("mnist.json", manifest)},
            data={"spec": json.dumps({"name": "mnist", "public": True})},
        )["id"]
        self.img = self.file(self.do1, "inputs", "aes-gcm-128", image)
        self.weights = self.file(self.do2, "inputs", "aes-gcm-256", weights)

    def file(self, owner: User, kind: str, schema: str, plaintext: bytes | None = None) -> str:
        """Registers an input (encrypted and uploaded) or an output; returns its id."""
        file_id, key = uuid.uuid4().hex, generate_key(schema)
        body = {"id": file_id, "schema": schema, "url": "blob:"}
        body["wrapped_key"] = wrap_key(key, self.sealing, file_id, schema)
        if plaintext is not None:
            sealed, meta = encrypt(schema, key, plaintext)
            octets = {"Content-Type": "application/octet-stream"}
            body["url"] = owner.call("POST", "/v1/blobs", data=sealed, headers=octets)["url"]
            body |= {"iv": meta.iv.hex(), "cmac": meta.cmac.hex()}
        return owner.call("POST", f"/v1/files/{kind}", json=body)["id"]

    def approved_task(self) -> str:
        """A task in Approved, with a fresh output (an output is written once)."""
        scores = self.file(self.do1, "outputs", "aes-gcm-128")
        owners = {"input_img": [self.do1.id], "weights": [self.do2.id]}
        body = {
            "function_id": self.function_id,
            "arguments": SLOTS,
            "inputs_ownership": [{"name": n, "owners": o} for n, o in owners.items()],
            "outputs_ownership": [{"name": "scores", "owners": [self.do1.id]}],
        }
        task = self.do1.call("POST", "/v1/tasks", json=body)["id"]
        mine = {"inputs": {"input_img": self.img}, "outputs": {"scores": scores}}
        self.do1.call("POST", f"/v1/tasks/{task}/assign", json=mine)
        theirs = {"inputs": {"weights": self.weights}}
        self.do2.call("POST", f"/v1/tasks/{task}/assign", json=theirs)
        self.do1.call("POST", f"/v1/tasks/{task}/approve")
        assert self.do2.call("POST", f"/v1/tasks/{task}/approve")["state"] == "Approved"
        return str(task)

    def invoke(self, task: str) -> None:
        assert self.do1.call("POST", f"/v1/tasks/{task}/invoke")["state"] == "Staged"

    def wait(self, task: str, poll_s: float) -> dict[str, Any]:
        """The task once it ended; it must have Finished with the right digit."""
        while (t := self.do1.call("GET", f"/v1/tasks/{task}"))["state"] in ("Staged", "Running"):
            time.sleep(poll_s)
        if t["state"] != "Finished" or t["result"]["return_value"] != self.label:
            raise RuntimeError(f"task {task} ended {t['state']}: {t['result']}")
        return t


def stamp(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=UTC)  # SQLite keeps UTC, without the zone


def server_s(task: dict[str, Any]) -> float:
    return (stamp(task["finished_at"]) - stamp(task["invoked_at"])).total_seconds()


def bare_executor(fn: Fn, image: bytes, label: int, runs: int) -> tuple[list[float], list[Any]]:
    """Seconds per `run()` call (module cached in memory), and each call's stage timings."""
    wasm, _, weights, profile = fn
    cache, inputs, times, timings = ModuleCache(), {"input_img": image, "weights": weights}, [], []
    for i in range(WARMUP + runs):
        start = time.perf_counter()
        result = run(wasm, SLOTS, inputs, ["scores"], profile=profile, cache=cache)
        if i >= WARMUP:
            times.append(time.perf_counter() - start)
            timings.append(result.timings)
        assert result.ok and result.return_value == label, result.message
    return times, timings


def latency(p: Platform, count: int, poll_s: float) -> tuple[list[float], list[dict[str, Any]]]:
    """One task at a time: client seconds from the invoke request to seeing Finished, and the
    ended tasks."""
    client, done = [], []
    for _ in range(count):
        task = p.approved_task()
        start = time.perf_counter()
        p.invoke(task)
        done.append(p.wait(task, poll_s))
        client.append(time.perf_counter() - start)
    return client, done


def throughput(p: Platform, count: int) -> tuple[float, float, list[dict[str, Any]]]:
    """Tasks/s with `count` tasks invoked back to back (first invoke request to the last
    finished_at), the seconds the invokes took, and the ended tasks."""
    tasks = [p.approved_task() for _ in range(count)]
    start = datetime.now(UTC)
    for task in tasks:
        p.invoke(task)
    invoking = (datetime.now(UTC) - start).total_seconds()
    p.wait(tasks[-1], 0.02)  # claimed last; then the others have ended or are about to
    done = [p.wait(t, 0.02) for t in tasks]
    end = max(stamp(t["finished_at"]) for t in done)
    return count / (end - start).total_seconds(), invoking, done


def stages(tasks: list[dict[str, Any]]) -> str:
    """Medians (ms) of the worker's stages (result.timings; execute holds the executor's own),
    and of the rest of invoked_at -> finished_at."""
    timings = [t["result"]["timings"] for t in tasks]
    p50 = {k: np.median([t[k] for t in timings]) for k in timings[0]}
    staged = [sum(v for k, v in t.items() if k.endswith("_ms")) for t in timings]
    rest = np.median([server_s(t) * 1000 - s for t, s in zip(tasks, staged, strict=True)])
    return (
        f"fetch_decrypt {p50['fetch_decrypt_ms']:.1f}, execute {p50['execute_ms']:.1f} "
        f"(compile {p50['compile']:.1f} + instantiate {p50['instantiate']:.1f} "
        f"+ run {p50['run']:.1f}), seal {p50['seal_ms']:.1f}; rest {rest:.1f}"
    )


def row(label: str, seconds: list[float], bare_ms: float) -> None:
    p50, p99 = np.percentile(seconds, 50) * 1000, np.percentile(seconds, 99) * 1000
    print(f"{label:<42} p50 {p50:8.3f} ms  p99 {p99:8.3f} ms  ({p50 / bare_ms:5.2f}x bare p50)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100, help="per measurement")
    parser.add_argument("--runs", type=int, default=300, help="bare executor calls")
    parser.add_argument("--poll-ms", type=float, default=2.0, help="latency: GET the task every")
    parser.add_argument("--build-dir", type=Path, default=REPO / "build" / "bench-mnist")
    args = parser.parse_args()
    fn = mnist(args.build_dir)
    sample = sorted(SAMPLES.glob("*.png"))[0]
    label = json.loads((SAMPLES / "labels.json").read_text())[sample.name]
    image = npy_bytes(prepare_image(sample, (1, 1, 28, 28)))

    bare, bare_timings = bare_executor(fn, image, label, args.runs)
    rates = {}
    for workers in (1, 2):
        with service(workers) as base:
            p = Platform(base, fn, image, label)
            for _ in range(WARMUP):
                p.invoke(task := p.approved_task())
                p.wait(task, 0.01)
            rates[workers] = throughput(p, args.tasks)
            if workers == 1:
                client, done = latency(p, args.tasks, args.poll_ms / 1000)

    bare_ms = float(np.percentile(bare, 50)) * 1000
    print(f"MNIST function ({len(fn[0])} bytes, weights {len(fn[2])} bytes), {sample.name}")
    row(f"bare executor run(), {args.runs} calls", bare, bare_ms)
    instantiate, entry = (
        np.median([t[k] for t in bare_timings]) * 1000 for k in ("instantiate", "run")
    )
    print(f"  stages (ms, medians): instantiate {instantiate:.1f}, run {entry:.1f}")
    print(f"1 worker, {args.tasks} tasks one at a time, GET the task every {args.poll_ms:g} ms:")
    row("  client: invoke request -> Finished seen", client, bare_ms)
    row("  server: invoked_at -> finished_at", [server_s(t) for t in done], bare_ms)
    print(f"  stages (ms, medians): {stages(done)}")
    print(
        f"throughput, {args.tasks} tasks invoked back to back (bare {1000 / bare_ms:.1f} calls/s):"
    )
    for workers, (rate, invoking, tasks) in rates.items():
        name, ratio = f"{workers} worker{'s' if workers > 1 else ''}", rate * bare_ms / 1000
        print(f"  {name:<9} {rate:6.1f} tasks/s ({ratio:.2f}x bare), invokes took {invoking:.2f} s")
        print(f"    stages (ms, medians): {stages(tasks)}")
    print(f"  2 workers / 1 worker: {rates[2][0] / rates[1][0]:.2f}x")
    print(
        "rest: invoked_at -> finished_at minus the stages (queue wait, claim, DB writes, receipt)"
    )


if __name__ == "__main__":
    main()
