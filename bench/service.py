#!/usr/bin/env python3
"""Task lifecycle throughput of the service on SQLite, over HTTP on loopback.

    python bench/service.py [--clients 4] [--cycles 50]

Starts the service (`teaclave-infer serve`, its own process) on a free loopback port with a fresh
data dir, creates a function owner and one data owner per client, registers the MNIST function
privately, then each client runs a bounded loop of cycles: create a task, assign its input and
output, approve it (data owner, then function owner), invoke it: 5 requests a cycle. Prints
cycles/s and requests/s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from teaclave_client.vocabulary import DEFAULT_SCHEMA  # noqa: E402

from teaclave_infer.builder import build  # noqa: E402
from teaclave_infer.local import free_port  # noqa: E402

PASSWORD = "bench-password"


def serve(work: Path, port: int) -> subprocess.Popen[bytes]:
    """`teaclave-infer serve` in its own process, so the clients do not share its GIL."""
    (work / "admin.txt").write_text(PASSWORD)
    cmd = [
        sys.executable,
        "-m",
        "teaclave_infer.cli",
        "serve",
        "--data-dir",
        str(work / "data"),
        "--port",
        str(port),
        "--admin-password-file",
        str(work / "admin.txt"),
    ]
    server = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            requests.get(f"http://127.0.0.1:{port}/openapi.json", timeout=1)
            return server
        except requests.ConnectionError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("the service did not start")


class Api:
    def __init__(self, base: str, username: str) -> None:
        self.base, self.http = base, requests.Session()
        r = self.http.post(
            f"{base}/v1/auth/login", json={"username": username, "password": PASSWORD}
        )
        r.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {r.json()['token']}"
        self.id = r.json()["user"]["id"]

    def post(self, path: str, **kw: object) -> dict:
        r = self.http.post(f"{self.base}{path}", **kw)  # type: ignore[arg-type]
        if r.status_code >= 300:
            raise RuntimeError(f"{path}: {r.status_code} {r.text}")
        return r.json() if r.content else {}


def setup(base: str, clients: int, work: Path) -> tuple[list[Api], list[Api], str]:
    admin = Api(base, "admin")
    for name, role in [("fo", "FunctionOwner")] + [(f"do{i}", "DataOwner") for i in range(clients)]:
        admin.post("/v1/users", json={"username": name, "password": PASSWORD, "role": role})
    fos = [Api(base, "fo") for _ in range(clients)]  # one session per client thread
    owners = [Api(base, f"do{i}") for i in range(clients)]
    fn = build(REPO / "functions" / "mnist" / "mnist.onnx", work / "fn")
    spec = {"name": "mnist", "allowlist": [o.id for o in owners]}
    function = fos[0].post(
        "/v1/functions",
        files={"wasm": fn.wasm.read_bytes(), "manifest": fn.manifest_path.read_bytes()},
        data={"spec": json.dumps(spec)},
    )
    return fos, owners, function["id"]


def cycles(fo: Api, owner: Api, function_id: str, count: int) -> None:
    blob = owner.post(
        "/v1/blobs", data=b"ciphertext", headers={"Content-Type": "application/octet-stream"}
    )
    img = owner.post(
        "/v1/files/inputs",
        json={
            "url": blob["url"],
            "schema": DEFAULT_SCHEMA,
            "wrapped_key": "eA==",
            "iv": "00" * 12,
            "cmac": "00" * 16,
        },
    )["id"]
    scores = owner.post(
        "/v1/files/outputs", json={"schema": DEFAULT_SCHEMA, "wrapped_key": "eA=="}
    )["id"]
    body = {
        "function_id": function_id,
        "arguments": {"input_img": "input_img", "scores": "scores"},
        "inputs_ownership": [{"name": "input_img", "owners": [owner.id]}],
        "outputs_ownership": [{"name": "scores", "owners": [owner.id]}],
    }
    for _ in range(count):
        task = owner.post("/v1/tasks", json=body)["id"]
        owner.post(
            f"/v1/tasks/{task}/assign",
            json={"inputs": {"input_img": img}, "outputs": {"scores": scores}},
        )
        owner.post(f"/v1/tasks/{task}/approve")
        fo.post(f"/v1/tasks/{task}/approve")
        assert owner.post(f"/v1/tasks/{task}/invoke")["state"] == "Staged"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--cycles", type=int, default=50, help="per client")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port = free_port()
        server = serve(work, port)
        base = f"http://127.0.0.1:{port}"
        fos, owners, function_id = setup(base, args.clients, work)
        threads = [
            threading.Thread(target=cycles, args=(fo, o, function_id, args.cycles))
            for fo, o in zip(fos, owners, strict=True)
        ]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        server.terminate()
        server.wait()
    done = args.clients * args.cycles
    print(
        f"{args.clients} clients x {args.cycles} cycles (create, assign, approve x2, invoke) "
        f"on SQLite in {elapsed:.2f} s"
    )
    print(f"{done / elapsed:.1f} cycles/s, {5 * done / elapsed:.1f} requests/s")


if __name__ == "__main__":
    main()
