"""The Python side of ort_runner.mjs: onnxruntime-web's wasm backend in a long-lived Node process,
spoken to in JSON lines (the protocol is described at the top of ort_runner.mjs)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

WEB = Path(__file__).resolve().parent


class OrtWeb:
    """The long-lived Node process of bench/web/ort_runner.mjs; close() is idempotent."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = subprocess.Popen(
            ["node", str(WEB / "ort_runner.mjs")],
            cwd=WEB,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            self.info = self.request({"op": "info"})
        except RuntimeError:
            self.close()
            raise

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.process and self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:  # Node died: its own error is on stderr
            code = self.process.wait(timeout=10)
            raise RuntimeError(f"ort_runner.mjs exited with {code} on {message['op']!r}")
        reply = json.loads(line)
        if not reply.pop("ok"):
            raise RuntimeError(f"ort_runner.mjs {message['op']}: {reply['error']}")
        return reply

    def close(self) -> None:
        if self.process is not None:
            process, self.process = self.process, None
            with process:
                try:
                    process.communicate('{"op": "quit"}\n', timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()

    def __enter__(self) -> OrtWeb:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_ort_web() -> OrtWeb | None:
    """The Node runner, after `npm install` in bench/web if node_modules is missing; None (with
    a note) where that cannot be had."""
    if shutil.which("node") is None:
        print("note: ort-web skipped: `node` is not on PATH")
        return None
    if not (WEB / "node_modules").is_dir():
        print("bench/web/node_modules missing: npm install --no-audit --no-fund")
        npm = shutil.which("npm")
        done = npm and subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=WEB)
        if not done or done.returncode != 0:
            print("note: ort-web skipped: npm install failed in bench/web")
            return None
    try:
        return OrtWeb()
    except RuntimeError as err:
        print(f"note: ort-web skipped: {err}")
        return None


class OrtWebRunner:
    name = "ort-web"

    def __init__(
        self, web: OrtWeb, key: str, model_path: Path, x: np.ndarray, input_name: str
    ) -> None:
        self.web, self.key = web, key
        raw = model_path.with_suffix(".f32")
        raw.write_bytes(np.ascontiguousarray(x, "<f4").tobytes())
        inputs = {input_name: {"dims": list(x.shape), "path": str(raw)}}
        web.request({"op": "load", "key": key, "model": str(model_path), "inputs": inputs})

    def time(self, calls: int) -> list[float]:
        return self.web.request({"op": "run", "key": self.key, "calls": calls})["times_ms"]

    def output(self) -> np.ndarray:
        (out,) = self.web.request({"op": "output", "key": self.key})["outputs"].values()
        return np.frombuffer(base64.b64decode(out["b64"]), "<f4").reshape(out["dims"])

    def close(self) -> None:
        self.web.request({"op": "close", "key": self.key})
