#!/usr/bin/env python3
"""What users of the platform see, next to the bare executor, all in one run.

    python bench/tasks.py [--tasks 100] [--runs 300] [--clients 4] [--postgres URL]

Builds the MNIST function with separate weights (kept in --build-dir, rebuilt only if the model
changed), then measures:

- references: `executor.run()` alone (module cached in memory, p50/p99 over --runs calls),
  two bare executors in two processes calling `run()` back to back (calls/s): what two cores
  can do with no platform at all; and one HTTP request to a trivial app in another process
  (p50): what a round trip costs on this machine before the platform does anything;
- for each database (SQLite in a fresh data dir; PostgreSQL in a fresh database when --postgres
  or TEACLAVE_BENCH_POSTGRES_URL names a server we may create databases on), a fresh
  `teaclave-infer serve --workers N` on a free loopback port, N = 1 then 2 worker processes:
  - server latency (N = 1): --tasks tasks one at a time, invoked when Approved; the server's
    invoked_at -> finished_at (the client waits with the long-poll);
  - client latency (N = 1): one image's whole flow as the demo runs it (the data owner's
    upload, one-request submission, invoke, long-poll and verified, decrypted scores, and the
    model owner's one request for the weights), first request to decrypted scores;
  - server throughput: --tasks Approved tasks invoked back to back by --clients threads;
    tasks/s from the first invoke request to the last finished_at;
  - client throughput: --clients threads, each invoking an Approved task, waiting for it,
    fetching and verifying its result (receipt, tag, decryption); tasks/s over the whole batch.
The multi-party set-up of the throughput tasks (a data owner's image and outputs, the model
owner's separate weights, both approvals) is done before the clock starts.
Targets (issue 16) are printed next to each ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "client")]

from teaclave_client import Client  # noqa: E402
from teaclave_client.images import npy_bytes, prepare_image  # noqa: E402
from teaclave_client.vocabulary import Schema  # noqa: E402

from teaclave_infer.executor import ModuleCache, run  # noqa: E402
from teaclave_infer.local import free_port  # noqa: E402

MODEL = REPO / "functions" / "mnist" / "mnist.onnx"
SAMPLES = REPO / "functions" / "mnist" / "samples"
PASSWORD = "bench-password-d7f3"
SLOTS = {"input_img": "input_img", "weights": "weights", "scores": "scores"}  # task arguments
WARMUP = 5  # bare calls, and tasks on each service (the first one compiles the module)
WAIT_S = 60  # one long-poll
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


# --- the references -----------------------------------------------------------------------


def _bare_calls(
    fn: Fn, image: bytes, label: int, count: int, ready: Callable[[], None] = lambda: None
) -> tuple[list[float], float]:
    """Seconds of each of `count` `run()` calls after a warm-up (then `ready()` is called), and
    the wall time of them all."""
    wasm, _, weights, profile = fn
    cache, inputs, times = ModuleCache(), {"input_img": image, "weights": weights}, []
    for _ in range(WARMUP):
        run(wasm, SLOTS, inputs, ["scores"], profile=profile, cache=cache)
    ready()
    began = time.perf_counter()
    for _ in range(count):
        start = time.perf_counter()
        result = run(wasm, SLOTS, inputs, ["scores"], profile=profile, cache=cache)
        times.append(time.perf_counter() - start)
        assert result.ok and result.return_value == label, result.message
    return times, time.perf_counter() - began


def _bare_process(
    fn: Fn, image: bytes, label: int, count: int, ready: Any, go: Any, out: Any
) -> None:
    out.put(_bare_calls(fn, image, label, count, lambda: (ready.release(), go.wait()))[1])


def two_bare_executors(fn: Fn, image: bytes, label: int, count: int) -> float:
    """Calls/s of two processes, each running `count` calls of `run()` back to back."""
    ctx = multiprocessing.get_context("spawn")
    ready, go, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    args = (fn, image, label, count, ready, go, out)
    procs = [ctx.Process(target=_bare_process, args=args) for _ in "ab"]
    for p in procs:
        p.start()
    for _ in procs:  # both warmed up: they start together
        ready.acquire(timeout=600)
    go.set()
    walls = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    return 2 * count / max(walls)


_TRIVIAL_APP = """
async def app(scope, receive, send):  # answers every request with 2 bytes, nothing else
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
"""


def loopback_round_trip(count: int) -> list[float]:
    """Seconds of one request to a trivial ASGI app under uvicorn in another process, over a
    kept connection: what any request costs on this machine before the platform does
    anything (on a VM, mostly waking the other process)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "trivial.py").write_text(_TRIVIAL_APP)
        port = free_port()
        cmd = [sys.executable, "-m", "uvicorn", "--app-dir", tmp, "trivial:app"]
        server = subprocess.Popen([*cmd, "--port", str(port), "--log-level", "error"])
        try:
            with requests.Session() as http:
                url = f"http://127.0.0.1:{port}/"
                for _ in range(600):
                    try:
                        http.get(url, timeout=1)
                        break
                    except requests.ConnectionError:
                        time.sleep(0.05)
                times = []
                for _ in range(count):
                    begin = time.perf_counter()
                    http.get(url, timeout=10).raise_for_status()
                    times.append(time.perf_counter() - begin)
                return times
        finally:
            server.terminate()
            server.wait(30)


# --- the service --------------------------------------------------------------------------


@contextmanager
def fresh_postgres(server_url: str) -> Iterator[str]:
    """A new database on the server at `server_url`, dropped afterwards."""
    import psycopg

    name = f"teaclave_bench_{uuid.uuid4().hex[:8]}"
    admin = server_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def service(workers: int, db: str | None) -> Iterator[str]:
    """`teaclave-infer serve --workers N` in its own process group on a fresh data dir; yields
    its base URL."""
    with tempfile.TemporaryDirectory() as tmp:
        work, port = Path(tmp), free_port()
        (work / "admin.txt").write_text(PASSWORD)
        cmd = [sys.executable, "-m", "teaclave_infer.cli", "serve", "--port", str(port)]
        cmd += ["--data-dir", str(work / "data"), "--workers", str(workers)]
        cmd += ["--admin-password-file", str(work / "admin.txt")]
        path = os.pathsep.join([str(REPO), str(REPO / "client"), os.environ.get("PYTHONPATH", "")])
        with open(work / "service.log", "wb") as log:  # its JSON log lines
            env = os.environ | {"PYTHONPATH": path} | ({"TEACLAVE_DB": db} if db else {})
            server = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=log)
        try:
            for _ in range(600):
                if server.poll() is not None:
                    raise RuntimeError((work / "service.log").read_text()[-2000:])
                try:
                    if requests.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).ok:
                        break
                except requests.ConnectionError:
                    pass
                time.sleep(0.1)
            else:
                raise RuntimeError("the service did not start")
            yield f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            server.wait(60)


def login(base: str, name: str) -> Client:
    client = Client(base)
    client.login(name, PASSWORD)
    return client


class Platform:
    """A model owner `fo` registers MNIST (public) and uploads its weights once; a data owner
    `do1` uploads an image once; each task gets a fresh output of do1's."""

    def __init__(self, base: str, fn: Fn, image: bytes, label: int) -> None:
        self.base, self.label, self.image = base, label, image
        admin = login(base, "admin")
        for name, role in (("fo", "FunctionOwner"), ("do1", "DataOwner")):
            admin.register_user(name, PASSWORD, role)
        self.fo, self.do1 = login(base, "fo"), login(base, "do1")
        wasm, manifest, weights, _ = fn
        with tempfile.TemporaryDirectory() as tmp:
            (w := Path(tmp) / "mnist.wasm").write_bytes(wasm)
            (m := Path(tmp) / "mnist.json").write_bytes(manifest)
            self.function = self.fo.register_function(w, m, public=True)
        self.weights = self.fo.put_input(weights, Schema.AES_GCM_256).id
        self.img = self.do1.put_input(image).id

    def approved_task(self, client: Client | None = None) -> str:
        """A task in Approved, with a fresh output (an output is written once)."""
        do1 = client or self.do1
        scores = do1.register_output_file().id
        task = do1.create_task(
            self.function.id,
            SLOTS,
            {"input_img": [self.do1.user.id], "weights": [self.fo.user.id]},  # type: ignore[union-attr]
            {"scores": [self.do1.user.id]},  # type: ignore[union-attr]
        ).id
        do1.assign_data(task, {"input_img": self.img}, {"scores": scores})
        self.fo.assign_data(task, {"weights": self.weights})
        do1.approve_task(task)
        assert self.fo.approve_task(task).state == "Approved"
        return task

    def invoke(self, task: str, client: Client | None = None) -> None:
        # A worker may claim it before the answer is made: Running (or ended) is fine too.
        assert (client or self.do1).invoke_task(task).state not in ("Approved", "Failed")

    def ended(self, task: str, client: Client | None = None) -> dict[str, Any]:
        """The task once it ended (long-poll); it must have Finished with the right digit."""
        http = (client or self.do1)._http
        headers = {"Authorization": f"Bearer {(client or self.do1).token}"}
        while True:
            r = http.get(
                f"{self.base}/v1/tasks/{task}", params={"wait": WAIT_S}, headers=headers, timeout=90
            )
            r.raise_for_status()
            t = r.json()
            if t["state"] not in ("Staged", "Running"):
                break
        if t["state"] != "Finished" or t["result"]["return_value"] != self.label:
            raise RuntimeError(f"task {task} ended {t['state']}: {t['result']}")
        return dict(t)


def stamp(text: str) -> datetime:
    at = datetime.fromisoformat(text)
    return at if at.tzinfo else at.replace(tzinfo=UTC)  # SQLite keeps UTC, without the zone


def server_s(task: dict[str, Any]) -> float:
    return (stamp(task["finished_at"]) - stamp(task["invoked_at"])).total_seconds()


def server_latency(p: Platform, count: int) -> list[dict[str, Any]]:
    """One task at a time, each invoked when Approved: the ended tasks."""
    done = []
    for _ in range(count):
        task = p.approved_task()
        p.invoke(task)
        done.append(p.ended(task))
    return done


FLOW_REQUESTS = 8  # client_latency's requests: 2 uploads, output, submit, fo's, invoke, wait, get


def client_latency(p: Platform, count: int) -> list[float]:
    """Seconds of one image's whole flow, as the demo runs it (examples/.../mnist/remote.py):
    do1 encrypts and uploads the image, registers the output and submits the task (created,
    assigned, approved) in one request; fo adds the weights and approves in one; do1 approves
    and invokes, long-polls, and fetches, verifies and decrypts the scores."""
    fo_id, do1_id = p.fo.user.id, p.do1.user.id  # type: ignore[union-attr]
    times = []
    for _ in range(count):
        start = time.perf_counter()
        image = p.do1.put_input(p.image).id
        scores = p.do1.register_output_file().id
        task = p.do1.submit_task(
            p.function.id,
            {"input_img": image},
            {"scores": scores},
            arguments=SLOTS,
            inputs_ownership={"weights": [fo_id], "input_img": [do1_id]},
        )
        p.fo.assign_data(task.id, {"weights": p.weights}, approve=True)
        p.do1.approve_task(task.id, invoke=True)
        result = p.do1.get_task_result(p.do1.wait(task.id, 90))
        times.append(time.perf_counter() - start)
        assert result.return_value == p.label and "scores" in result.outputs, result
    return times


def server_throughput(p: Platform, count: int, clients: int) -> tuple[float, list[dict[str, Any]]]:
    """Tasks/s with `count` Approved tasks invoked back to back by `clients` threads (one
    thread's invokes, a round trip each, would measure the client rather than the platform),
    from the first invoke request to the last finished_at; and the ended tasks."""
    sessions = [login(p.base, "do1") for _ in range(clients)]
    queues = [[p.approved_task(s) for _ in range(count // clients)] for s in sessions]

    def invoke_all(client: Client, tasks: list[str]) -> None:
        for task in tasks:
            p.invoke(task, client)

    with ThreadPoolExecutor(clients) as pool:
        start = datetime.now(UTC)
        for run in [pool.submit(invoke_all, *a) for a in zip(sessions, queues, strict=True)]:
            run.result()
    done = [p.ended(t) for q in queues for t in q]
    end = max(stamp(t["finished_at"]) for t in done)
    return len(done) / (end - start).total_seconds(), done


def client_throughput(p: Platform, count: int, clients: int) -> float:
    """Tasks/s with `clients` threads, each with its own session, invoking Approved tasks,
    waiting for them and fetching and verifying their results."""
    sessions = [login(p.base, "do1") for _ in range(clients)]
    queues = [[p.approved_task(s) for _ in range(count // clients)] for s in sessions]
    for s in sessions:
        s.platform_keys()  # the platform's public keys, fetched once per session as a client would

    def work(client: Client, tasks: list[str]) -> None:
        for task in tasks:
            p.invoke(task, client)
            p.ended(task, client)
            result = client.get_task_result(task)
            assert result.return_value == p.label and "scores" in result.outputs

    with ThreadPoolExecutor(clients) as pool:
        start = time.perf_counter()
        runs = [pool.submit(work, *a) for a in zip(sessions, queues, strict=True)]
        for run in runs:
            run.result()  # a client's failure fails the benchmark, not just its thread
        return sum(map(len, queues)) / (time.perf_counter() - start)


# --- the report ---------------------------------------------------------------------------


def p50_ms(seconds: list[float]) -> float:
    return float(np.percentile(seconds, 50)) * 1000


def p99_ms(seconds: list[float]) -> float:
    return float(np.percentile(seconds, 99)) * 1000


def stages(tasks: list[dict[str, Any]]) -> str:
    """Medians (ms) of the worker's stages, and of the rest of invoked_at -> finished_at."""
    timings = [t["result"]["timings"] for t in tasks]
    keys = [k for k in timings[0] if k.endswith("_ms")]
    p50 = {k: float(np.median([t.get(k, 0.0) for t in timings])) for k in keys}
    staged = [sum(v for k, v in t.items() if k.endswith("_ms")) for t in timings]
    rest = np.median([server_s(t) * 1000 - s for t, s in zip(tasks, staged, strict=True)])
    return ", ".join(f"{k.removesuffix('_ms')} {v:.1f}" for k, v in p50.items()) + (
        f"; rest {rest:.1f}"
    )


def check(ok: bool) -> str:
    return "met" if ok else "NOT met"


def measure(
    label: str, postgres: str | None, fn: Fn, image: bytes, lbl: int, args: Any
) -> dict[str, Any]:
    """Every figure of one database kind: SQLite, or (given a server's URL) PostgreSQL; a
    fresh database for each service."""
    out: dict[str, Any] = {}
    for workers in (1, 2):
        database = fresh_postgres(postgres) if postgres else contextlib.nullcontext(None)
        with database as db, service(workers, db) as base:
            p = Platform(base, fn, image, lbl)
            for _ in range(WARMUP):  # every worker compiles the module and decrypts the weights
                p.invoke(task := p.approved_task())
                p.ended(task)
            if workers == 1:
                out["server"] = server_latency(p, args.tasks)
                out["client"] = client_latency(p, args.tasks)
            out[f"rate{workers}"], out[f"done{workers}"] = server_throughput(
                p, args.tasks, args.clients
            )
            out[f"clients{workers}"] = client_throughput(p, args.tasks, args.clients)
        print(f"  measured {label}, {workers} worker process(es)", flush=True)
    return out


def report(
    label: str, m: dict[str, Any], bare: list[float], two_bare: float, rtt_ms: float
) -> None:
    bare_p50 = p50_ms(bare)
    server = [server_s(t) for t in m["server"]]
    s50, c50 = p50_ms(server), p50_ms(m["client"])
    print(f"\n{label}:")
    print(f"  server invoke -> finished   p50 {s50:7.2f} ms  p99 {p99_ms(server):7.2f} ms")
    print(f"    = bare + {s50 - bare_p50:.2f} ms (target <= +3 ms: {check(s50 - bare_p50 <= 3)})")
    print(f"    stages (ms, medians): {stages(m['server'])}")
    print(f"  client infer of one image   p50 {c50:7.2f} ms  p99 {p99_ms(m['client']):7.2f} ms")
    print(f"    = bare + {c50 - bare_p50:.2f} ms (target <= +10 ms: {check(c50 - bare_p50 <= 10)})")
    own = c50 - bare_p50 - FLOW_REQUESTS * rtt_ms
    print(
        f"    = bare + {FLOW_REQUESTS} trivial round trips ({FLOW_REQUESTS * rtt_ms:.1f} ms) "
        f"+ {own:.1f} ms of the platform's and the client's own work"
    )
    r1, r2 = m["rate1"], m["rate2"]
    print(f"  server throughput   1 worker {r1:6.1f} tasks/s, 2 workers {r2:6.1f} tasks/s")
    print(f"    2 / 1 = {r2 / r1:.2f}x (target >= 1.7x: {check(r2 / r1 >= 1.7)})")
    print(
        f"    2 workers / two bare executors = {r2 / two_bare:.2f}x "
        f"(target >= 0.5x: {check(r2 / two_bare >= 0.5)})"
    )
    c1, c2 = m["clients1"], m["clients2"]
    print(f"  client throughput   1 worker {c1:6.1f} tasks/s, 2 workers {c2:6.1f} tasks/s")
    print(
        f"    2 workers / two bare executors = {c2 / two_bare:.2f}x "
        f"(target >= 0.2x: {check(c2 / two_bare >= 0.2)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100, help="per measurement")
    parser.add_argument("--runs", type=int, default=300, help="bare executor calls")
    parser.add_argument("--clients", type=int, default=4, help="client threads for throughput")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("TEACLAVE_BENCH_POSTGRES_URL"),
        help="a PostgreSQL database URL on a server where we may create databases",
    )
    parser.add_argument("--build-dir", type=Path, default=REPO / "build" / "bench-mnist")
    args = parser.parse_args()
    fn = mnist(args.build_dir)
    sample = sorted(SAMPLES.glob("*.png"))[0]
    label = json.loads((SAMPLES / "labels.json").read_text())[sample.name]
    image = npy_bytes(prepare_image(sample, (1, 1, 28, 28)))

    bare, _ = _bare_calls(fn, image, label, args.runs)
    two_bare = two_bare_executors(fn, image, label, args.runs)
    rtt = p50_ms(loopback_round_trip(args.runs))
    results = {"SQLite": measure("SQLite", None, fn, image, label, args)}
    if args.postgres:
        results["PostgreSQL"] = measure("PostgreSQL", args.postgres, fn, image, label, args)

    print(f"\nMNIST function ({len(fn[0])} bytes, weights {len(fn[2])} bytes), {sample.name}")
    print(f"bare executor run(): p50 {p50_ms(bare):.3f} ms, p99 {p99_ms(bare):.3f} ms")
    print(f"two bare executors in two processes: {two_bare:.1f} calls/s")
    print(f"a trivial HTTP round trip to another process (uvicorn): p50 {rtt:.2f} ms")
    for label_, m in results.items():
        report(label_, m, bare, two_bare, rtt)
    if "PostgreSQL" in results:
        pg, lite = results["PostgreSQL"], results["SQLite"]
        ratios: dict[str, float] = {
            "server p50": p50_ms([server_s(t) for t in pg["server"]])
            / p50_ms([server_s(t) for t in lite["server"]]),
            "client p50": p50_ms(pg["client"]) / p50_ms(lite["client"]),
            "1/throughput, 2 workers": lite["rate2"] / pg["rate2"],
        }
        print("\nPostgreSQL / SQLite (target <= 1.5x):")
        for name, ratio in ratios.items():
            print(f"  {name:<24} {ratio:5.2f}x ({check(ratio <= 1.5)})")


if __name__ == "__main__":
    main()
