#!/usr/bin/env python3
"""End-to-end latency and throughput of MNIST tasks on the service, next to the bare executor.

    python bench/tasks.py [--tasks 100] [--runs 300] [--build-dir build/bench-mnist]

Builds the MNIST function with separate weights (kept in --build-dir and reused while the model
is unchanged), then measures in one run:

- the bare executor: `executor.run()` on the plaintext image and weights, module cached in
  memory, --runs calls after a warm-up (p50/p99): the reference for every ratio;
- latency, 1 worker: `teaclave-infer serve --workers 1` in its own process on a free loopback
  port (fresh data dir, SQLite). One data owner uploads an encrypted image, another the encrypted
  weights (keys wrapped to the platform key); --tasks tasks, one at a time, are created, assigned
  and approved (not timed), then invoked while GET /v1/tasks/{id} is polled every 2 ms. Prints
  the client-observed invoke -> Finished time, the server's invoked_at -> finished_at, and the
  medians of the worker's stages (result.timings);
- throughput, 1 and 2 workers (a fresh service each): --tasks tasks brought to Approved, then
  invoked back to back; tasks/s from the first invoke request to the last finished_at.
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
from teaclave_client.sealing import wrap_key  # noqa: E402

from teaclave_infer.demo import image_tensor, npy_bytes  # noqa: E402
from teaclave_infer.executor import ModuleCache, run  # noqa: E402

MODEL = REPO / "functions" / "mnist" / "mnist.onnx"
SAMPLES = REPO / "functions" / "mnist" / "samples"
PASSWORD = "bench-password"
SLOTS = {"input_img": "input_img", "weights": "weights", "scores": "scores"}  # task arguments
ENDED = {"Finished", "Failed", "Canceled"}
WARMUP = 5  # bare calls, and tasks on each service (the first one compiles the module)


def mnist(build_dir: Path) -> tuple[bytes, bytes, bytes, str]:
    """The wasm, manifest, weights and profile of a separate-weights build, built if missing or
    made from another model."""
    manifest_path = build_dir / "mnist.json"
    if manifest_path.exists() and (build_dir / "mnist.weights").exists():
        manifest = json.loads(manifest_path.read_text())
        fresh = manifest["source"]["sha256"] == hashlib.sha256(MODEL.read_bytes()).hexdigest()
    else:
        fresh = False
    if not fresh:
        from teaclave_infer.builder import BuildOptions, build  # TVM: only to build

        print(f"building {MODEL.relative_to(REPO)} -> {build_dir}", flush=True)
        build(MODEL, build_dir, BuildOptions(weights="separate"))
        manifest = json.loads(manifest_path.read_text())
    return (
        (build_dir / "mnist.wasm").read_bytes(),
        manifest_path.read_bytes(),
        (build_dir / "mnist.weights").read_bytes(),
        manifest["profile"]["name"],
    )


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
        with open(work / "service.log", "wb") as log:  # JSON lines, one per task stage
            server = subprocess.Popen(
                cmd, cwd=REPO, env=os.environ | {"PYTHONPATH": path}, stdout=log, stderr=log
            )
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                if server.poll() is not None:
                    raise RuntimeError((work / "service.log").read_text()[-2000:])
                try:
                    requests.get(f"{base}/v1/health", timeout=1).raise_for_status()
                    break
                except requests.ConnectionError:
                    time.sleep(0.1)
            yield base
        finally:
            server.terminate()
            server.wait(30)


class User:
    """One user's logged-in session."""

    def __init__(self, base: str, username: str) -> None:
        self.base, self.http = base, requests.Session()
        body = self.call(
            "POST", "/v1/auth/login", json={"username": username, "password": PASSWORD}
        )
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

    def __init__(self, base: str, fn: tuple[bytes, bytes, bytes, str], image: bytes, label: int):
        admin = User(base, "admin")
        for name, role in (("fo", "FunctionOwner"), ("do1", "DataOwner"), ("do2", "DataOwner")):
            user = {"username": name, "password": PASSWORD, "role": role}
            admin.call("POST", "/v1/users", json=user)
        self.fo, self.do1, self.do2 = User(base, "fo"), User(base, "do1"), User(base, "do2")
        self.sealing = admin.call("GET", "/v1/platform/keys")["sealing"]["public_key"]
        wasm, manifest, weights, _ = fn
        self.function_id = self.fo.call(
            "POST",
            "/v1/functions",
            files={"wasm": ("mnist.wasm", wasm), "manifest": ("mnist.json", manifest)},
            data={"spec": json.dumps({"name": "mnist", "public": True})},
        )["id"]
        self.img = self.file(self.do1, "inputs", "aes-gcm-128", image)
        self.weights = self.file(self.do2, "inputs", "aes-gcm-256", weights)
        self.label = label

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
        body = {
            "function_id": self.function_id,
            "arguments": SLOTS,
            "inputs_ownership": [
                {"name": "input_img", "owners": [self.do1.id]},
                {"name": "weights", "owners": [self.do2.id]},
            ],
            "outputs_ownership": [{"name": "scores", "owners": [self.do1.id]}],
        }
        task = self.do1.call("POST", "/v1/tasks", json=body)["id"]
        mine = {"inputs": {"input_img": self.img}, "outputs": {"scores": scores}}
        self.do1.call("POST", f"/v1/tasks/{task}/assign", json=mine)
        self.do2.call(
            "POST", f"/v1/tasks/{task}/assign", json={"inputs": {"weights": self.weights}}
        )
        self.do1.call("POST", f"/v1/tasks/{task}/approve")
        assert self.do2.call("POST", f"/v1/tasks/{task}/approve")["state"] == "Approved"
        return str(task)

    def invoke(self, task: str) -> None:
        assert self.do1.call("POST", f"/v1/tasks/{task}/invoke")["state"] == "Staged"

    def wait(self, task: str, poll_s: float) -> dict[str, Any]:
        """The task once it ended; it must have Finished with the right digit."""
        while (t := self.do1.call("GET", f"/v1/tasks/{task}"))["state"] not in ENDED:
            time.sleep(poll_s)
        if t["state"] != "Finished" or t["result"]["return_value"] != self.label:
            raise RuntimeError(f"task {task} ended {t['state']}: {t['result']}")
        return t


def stamp(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=UTC)  # SQLite keeps UTC, without the zone


def server_s(task: dict[str, Any]) -> float:
    return (stamp(task["finished_at"]) - stamp(task["invoked_at"])).total_seconds()


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
    """Medians of the worker's stages (result.timings, ms), and the rest of the server time."""
    timings = [t["result"]["timings"] for t in tasks]
    rest = [
        server_s(t) * 1000 - x["fetch_decrypt_ms"] - x["execute_ms"] - x["seal_ms"]
        for t, x in zip(tasks, timings, strict=True)
    ]
    p50 = {k: float(np.median([x[k] for x in timings])) for k in timings[0]}
    return (
        f"fetch_decrypt {p50['fetch_decrypt_ms']:.1f}, execute {p50['execute_ms']:.1f} "
        f"(compile {p50['compile']:.1f}, instantiate {p50['instantiate']:.1f}, "
        f"run {p50['run']:.1f}), seal {p50['seal_ms']:.1f}, rest {np.median(rest):.1f}"
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.3f} ms"


def row(label: str, values: list[float], bare: float) -> None:
    p50, p99 = np.percentile(values, 50), np.percentile(values, 99)
    print(f"{label:<42} p50 {ms(p50)}  p99 {ms(p99)}  ({p50 / bare:5.2f}x bare p50)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100, help="per measurement")
    parser.add_argument("--runs", type=int, default=300, help="bare executor calls")
    parser.add_argument("--poll-ms", type=float, default=2.0, help="latency: GET task every")
    parser.add_argument("--build-dir", type=Path, default=REPO / "build" / "bench-mnist")
    args = parser.parse_args()
    fn = mnist(args.build_dir)
    wasm, _, weights, profile = fn
    sample = sorted(SAMPLES.glob("*.png"))[0]
    label = json.loads((SAMPLES / "labels.json").read_text())[sample.name]
    image = npy_bytes(image_tensor(sample))

    cache, inputs = ModuleCache(), {"input_img": image, "weights": weights}
    bare, bare_stages = [], []
    for i in range(WARMUP + args.runs):
        start = time.perf_counter()
        result = run(wasm, SLOTS, inputs, ["scores"], profile=profile, cache=cache)
        if i >= WARMUP:
            bare.append(time.perf_counter() - start)
            bare_stages.append(result.timings)
        assert result.ok and result.return_value == label, result.message
    bare_p50 = float(np.percentile(bare, 50))

    rates: dict[int, tuple[float, float, list[dict[str, Any]]]] = {}
    for workers in (1, 2):
        with service(workers) as base:
            p = Platform(base, fn, image, label)
            for _ in range(WARMUP):
                p.invoke(task := p.approved_task())
                p.wait(task, 0.01)
            rates[workers] = throughput(p, args.tasks)
            if workers == 1:
                client, done = latency(p, args.tasks, args.poll_ms / 1000)

    print(f"MNIST function ({len(wasm)} bytes, weights {len(weights)} bytes), {sample.name}")
    row(f"bare executor run(), {args.runs} calls", bare, bare_p50)
    instantiate, entry = (
        np.median([t[k] for t in bare_stages]) * 1000 for k in ("instantiate", "run")
    )
    print(f"  stages (ms, medians): instantiate {instantiate:.1f}, run {entry:.1f}")
    print(
        f"1 worker, {args.tasks} tasks one at a time, GET /v1/tasks/ID every {args.poll_ms:g} ms:"
    )
    row("  client: invoke request -> Finished seen", client, bare_p50)
    row("  server: invoked_at -> finished_at", [server_s(t) for t in done], bare_p50)
    print(f"  stages (ms, medians): {stages(done)}")
    print(
        f"throughput, {args.tasks} tasks invoked back to back (bare: {1 / bare_p50:.1f} calls/s):"
    )
    for workers, (rate, invoking, tasks) in rates.items():
        print(
            f"  {workers} worker{'s' if workers > 1 else ' '} {rate:6.1f} tasks/s "
            f"({rate * bare_p50:.2f}x bare), the invokes took {invoking:.2f} s"
        )
        print(f"    stages (ms, medians): {stages(tasks)}")
    print(f"  2 workers / 1 worker: {rates[2][0] / rates[1][0]:.2f}x")


if __name__ == "__main__":
    main()
