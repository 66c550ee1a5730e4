"""Invoked tasks, run by workers end to end on loopback: MNIST on encrypted inputs, every way a
task fails, keys and plaintext kept out of the database and the logs, receipts, http(s) and
file:// data, and the platform's keys, health and metrics."""

from __future__ import annotations

import base64
import http.server
import json
import logging
import os
import stat
import threading
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from fastapi.testclient import TestClient
from guests import ECHO, guest
from held_store import ALLOW, HANG_GUARD_S, held_store
from paths import MNIST, VECTORS
from platform_helpers import Platform, app_with_workers
from service_helpers import HttpClient
from sqlalchemy import MetaData, select
from teaclave_client import protected_fs
from teaclave_client.images import npy_bytes, prepare_image
from teaclave_client.sealing import ReceiptError, verify_receipt
from teaclave_client.vocabulary import FailureKind, ResultKind

from teaclave_infer.api import create_app
from teaclave_infer.domain.db import make_engine
from teaclave_infer.errors import TeaclaveInferError
from teaclave_infer.logs import JsonFormatter

SAMPLES = MNIST / "samples"


def slow(body: str, iterations: int) -> str:
    """`body` after a busy loop (the only local, $h, counts)."""
    return f"""
  (local.set $h (i32.const 0))
  (loop $spin
    (local.set $h (i32.add (local.get $h) (i32.const 1)))
    (br_if $spin (i32.lt_u (local.get $h) (i32.const {iterations}))))
  {body}"""


@pytest.fixture
def platform(settings):
    """The service and two workers beside it."""
    with app_with_workers(settings, workers=2) as client:
        yield Platform(client)


def mnist_inputs(p: Platform, weights: Path, function_id: str, image: Path) -> str:
    img = p.input("do1", npy_bytes(prepare_image(image, (1, 1, 28, 28))))
    w = p.input("do2", weights.read_bytes(), schema="aes-gcm-256")
    scores = p.output("do1")
    inputs = {"input_img": ("do1", img), "weights": ("do2", w)}
    return p.submit(function_id, inputs, {"scores": ("do1", scores)})


def test_mnist_on_encrypted_inputs_gives_the_right_digits_and_signed_receipts(
    platform, mnist_build, settings, caplog
):
    caplog.set_level(logging.INFO, logger="teaclave_infer")
    p = platform
    wasm, manifest = mnist_build.wasm.read_bytes(), mnist_build.manifest_path.read_bytes()
    fid = p.register(wasm, manifest)
    labels = json.loads((SAMPLES / "labels.json").read_text())
    tasks = {mnist_inputs(p, mnist_build.weights, fid, SAMPLES / n): d for n, d in labels.items()}
    for task_id, label in tasks.items():
        task = p.wait(task_id)
        assert task["state"] == "Finished", task["result"]
        assert task["result_kind"] == ResultKind.OK and task["result"]["return_value"] == label
        out = task["result"]["outputs"]["scores"]
        scores = np.load(__import__("io").BytesIO(p.fetch_output("do1", out["file_id"])))
        assert scores.shape == (1, 10) and int(scores.argmax()) == label
        payload = p.verified_receipt(task)
        assert set(payload["inputs"]) == {"input_img", "weights"}
        assert payload["result_kind"] == ResultKind.OK and "wasmtime" in payload["executor"]
        assert task["attempts"] == 1 and task["finished_at"] >= task["invoked_at"]
        # the weights' owner may not read do1's result
        assert (
            p.client.get(f"/v1/files/{out['file_id']}/content", headers=p.auth["do2"]).status_code
            == 404
        )

    assert_nothing_secret_kept(settings, p, caplog)


def test_mnist_through_a_live_service_over_http(live_service_with_workers, mnist_build, tmp_path):
    """The same flow with requests against `teaclave-infer serve --workers 2` on loopback; the
    service's own log (JSON lines) holds task events and no key or plaintext."""
    p = Platform(HttpClient(live_service_with_workers))
    fid = p.register(mnist_build.wasm.read_bytes(), mnist_build.manifest_path.read_bytes())
    labels = json.loads((SAMPLES / "labels.json").read_text())
    names = sorted(labels)[::5]
    tasks = {mnist_inputs(p, mnist_build.weights, fid, SAMPLES / n): labels[n] for n in names}
    for task_id, label in tasks.items():
        task = p.wait(task_id)
        assert task["state"] == "Finished" and task["result"]["return_value"] == label
        p.verified_receipt(task)
    log = (tmp_path / "live" / "serve.log").read_bytes()
    for task_id in tasks:
        assert f'"task_id": "{task_id}"'.encode() in log
    for needle in secrets_of(p):
        assert needle not in log


def secrets_of(p: Platform) -> list[bytes]:
    needles = []
    for key in p.secrets.keys:
        needles += [key, key.hex().encode(), base64.b64encode(key)]
    for text in p.secrets.plaintexts:
        middle = len(text) // 2
        needles.append(text[middle : middle + 48])  # any 48 bytes of it would do
    return needles


def assert_nothing_secret_kept(settings, p: Platform, caplog) -> None:
    """No file key (raw, hex or base64) and no plaintext in the database, the data dir's
    files (blobs, module cache, SQLite) or the log records."""
    engine = make_engine(settings.database_url)
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        rows = [repr(row) for table in meta.sorted_tables for row in conn.execute(select(table))]
    engine.dispose()
    haystacks = {"database rows": "\n".join(rows).encode()}
    for path in settings.data_dir.rglob("*"):
        if path.is_file() and path.parent.name != "keys":
            haystacks[str(path.relative_to(settings.data_dir))] = path.read_bytes()
    formatter = JsonFormatter()
    haystacks["logs"] = "\n".join(formatter.format(r) for r in caplog.records).encode()
    assert b'"event": "finished"' in haystacks["logs"]  # the logs are there
    for name, haystack in haystacks.items():
        for needle in secrets_of(p):
            assert needle not in haystack, f"a key or plaintext is in {name}"


def run_guest(p: Platform, body: str, payload: bytes = b"hello", **spec) -> dict:
    fid = p.register_guest(body, **spec)
    task_id = p.submit(
        fid, {"in": ("do1", p.input("do1", payload))}, {"out": ("do1", p.output("do1"))}
    )
    return p.wait(task_id)


def test_the_echo_guest_round_trips_a_raw_and_an_encrypted_input(platform):
    p = platform
    for schema in ("raw", "aes-gcm-256"):
        fid = p.register_guest(ECHO)
        payload = f"confidential {schema}".encode()
        out = p.output("do1")
        task = p.wait(
            p.submit(fid, {"in": ("do1", p.input("do1", payload, schema))}, {"out": ("do1", out)})
        )
        assert task["state"] == "Finished" and task["result"]["return_value"] == len(payload)
        assert p.fetch_output("do1", out) == payload


def test_teaclave_file_128_inputs_and_outputs_teaclaves_own_file_among_them(
    platform, settings, tmp_path
):
    """Teaclave's vector as an input, one of ours past the metadata node (a Merkle tree), and
    the output in the schema its owner registered, storing the file's id as its name; a
    tampered protected file fails the task with integrity."""
    p, schema = platform, "teaclave-file-128"
    fid = p.register_guest(ECHO)
    vector = VECTORS / "teaclave-file-128"
    owner = p.sdk("do1")
    teaclaves = owner.register_input_file(
        owner.upload((vector / "psi0.txt.enc").read_bytes()),
        schema,
        bytes(16),
        b"",
        bytes.fromhex("fd9b319ae0fc595a98ee4135667ac0ac"),
    ).id
    mine = os.urandom(4000)
    ours = p.input("do1", mine, schema)
    for file_id, expected in ((teaclaves, (vector / "psi0.txt").read_bytes()), (ours, mine)):
        out = p.output("do1", schema)
        task = p.wait(p.submit(fid, {"in": ("do1", file_id)}, {"out": ("do1", out)}))
        assert task["state"] == "Finished", task["result"]
        assert p.fetch_output("do1", out) == expected
        sealed = owner.download(out)
        assert task["result"]["outputs"]["out"]["iv"] == ""
        assert sealed[80:96].hex() == task["result"]["outputs"]["out"]["cmac"]
        (tmp_path / "sealed").write_bytes(sealed)
        plain = tmp_path / "plain"
        assert protected_fs.decrypt_file(p.file_keys[out][1], tmp_path / "sealed", plain) == out
        assert plain.read_bytes() == expected
    meta = p.client.get(f"/v1/files/{ours}", headers=p.auth["do1"]).json()
    tamper_blob(settings, meta["url"])
    task = p.wait(p.submit(fid, {"in": ("do1", ours)}, {"out": ("do1", p.output("do1", schema))}))
    assert task["result_kind"] == FailureKind.INTEGRITY, task["result"]
    assert "SGX_FILE" in task["result"]["message"]


@pytest.mark.parametrize(
    ("body", "spec", "kind", "words"),
    [
        ("unreachable", {}, ResultKind.TRAP, "unreachable"),
        (
            "(loop $l (br $l)) (i32.const 0)",
            {"limits": {"deadline_s": 0.3}},
            ResultKind.TIMEOUT,
            "0.3",
        ),
        ("(i32.const -5)", {}, FailureKind.FUNCTION_ERROR, "returned -5: an input is not .npy"),
        ("(i32.const 1)", {}, FailureKind.MISSING_OUTPUT, "did not write outputs ['out']"),
        (ECHO, {"limits": {"output_bytes": 2}}, ResultKind.OUTPUT_LIMIT, "2 bytes"),
    ],
)
def test_a_failing_function_ends_failed_with_its_kind(platform, body, spec, kind, words):
    task = run_guest(platform, body, **spec)
    assert task["state"] == "Failed" and task["result_kind"] == kind, task["result"]
    assert words in task["result"]["message"]
    assert "receipt" not in task["result"] and "return_value" not in task["result"]


def test_a_negative_return_is_a_value_without_a_manifest(platform):
    """As in Teaclave's WAMR executor: a function registered without a builder's manifest has
    no failure statuses, so its -5 is its result (with one, the same -5 fails: above)."""
    p = platform
    fid = p.post_function({"public": True}, guest("(i32.const -5)")).json()["id"]
    staged = p.sdk("do1").submit_task(fid)
    assert staged.state == "Staged", staged.stopped
    task = p.wait(staged.id)
    assert task["state"] == "Finished" and task["result"]["return_value"] == -5, task["result"]
    p.verified_receipt(task)


def tamper_blob(settings, url: str) -> None:
    path = settings.data_dir / "blobs" / url[5:]
    data = bytearray(path.read_bytes())
    data[3] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_tampered_or_misbound_input_ends_failed_with_integrity(platform, settings):
    p = platform
    fid = p.register_guest(ECHO)
    # a flipped bit in the stored ciphertext
    tampered = p.input("do1", b"secret payload")
    meta = p.client.get(f"/v1/files/{tampered}", headers=p.auth["do1"]).json()
    tamper_blob(settings, meta["url"])
    # a key wrapped for another file id: it does not open for this one
    key_file = p.input("do1", b"another payload")
    other = p.input("do1", b"a third payload")
    with p.client.app.state.platform.sessions() as session:  # type: ignore[attr-defined]
        from teaclave_infer.domain.models import DataFile

        session.get(DataFile, other).wrapped_key = session.get(DataFile, key_file).wrapped_key
        session.commit()
    for file_id, words in ((tampered, "authentication failed"), (other, "does not open")):
        task = p.wait(p.submit(fid, {"in": ("do1", file_id)}, {"out": ("do1", p.output("do1"))}))
        assert task["state"] == "Failed" and task["result_kind"] == FailureKind.INTEGRITY, task[
            "result"
        ]
        assert words in task["result"]["message"] and "input in" in task["result"]["message"]


def test_an_output_is_written_once(platform):
    p = platform
    fid = p.register_guest(ECHO)
    out = p.output("do1")
    p.wait(p.submit(fid, {"in": ("do1", p.input("do1", b"first"))}, {"out": ("do1", out)}))
    body = {
        "function_id": fid,
        "arguments": {"in": "in", "out": "out"},
        "inputs_ownership": [{"name": "in", "owners": [p.ids["do1"]]}],
        "outputs_ownership": [{"name": "out", "owners": [p.ids["do1"]]}],
    }
    tid = p.client.post("/v1/tasks", headers=p.auth["do1"], json=body).json()["id"]
    r = p.client.post(
        f"/v1/tasks/{tid}/assign", headers=p.auth["do1"], json={"outputs": {"out": out}}
    )
    assert r.status_code == 409 and "holds a task's result" in r.json()["detail"]
    assert p.fetch_output("do1", out) == b"first"


def test_a_receipt_that_was_altered_or_signed_by_another_key_is_refused(platform):
    p = platform
    task = run_guest(p, ECHO)
    receipt, key = task["result"]["receipt"], p.keys["signing"]["public_key"]
    assert verify_receipt(receipt, key)["return_value"] == 5
    altered = {**receipt, "payload": {**receipt["payload"], "return_value": 6}}
    with pytest.raises(ReceiptError, match="does not match"):
        verify_receipt(altered, key)
    with pytest.raises(ReceiptError, match="names key"):
        verify_receipt(receipt, p.keys["sealing"]["public_key"])
    with pytest.raises(ReceiptError, match="malformed"):
        verify_receipt({"payload": {}}, key)


class _Store(http.server.BaseHTTPRequestHandler):
    """A tiny object store: GET and PUT of whole bodies by path."""

    files: ClassVar[dict[str, bytes]] = {}

    def do_GET(self):
        data = self.files.get(self.path)
        self.send_response(200 if data is not None else 404)
        self.send_header("Content-Length", str(len(data or b"")))
        self.end_headers()
        self.wfile.write(data or b"")

    def do_PUT(self):
        self.files[self.path] = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_inputs_and_outputs_at_http_and_allowed_file_urls(settings, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Store)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    root = tmp_path / "shared"
    root.mkdir()
    settings = settings.model_copy(update={"file_roots": (root,), "fetch_allow": ("127.0.0.1/32",)})
    try:
        with app_with_workers(settings, workers=1) as client:
            p = Platform(client)
            fid = p.register_guest(ECHO)
            # over http: the owner PUTs the ciphertext, the worker GETs it and PUTs the output
            img = p.input("do1", b"over http", url=f"{base}/in.bin")
            _Store.files["/in.bin"] = p.last_sealed
            out = p.output("do1", url=f"{base}/out.bin")
            task = p.wait(p.submit(fid, {"in": ("do1", img)}, {"out": ("do1", out)}))
            assert task["state"] == "Finished", task["result"]
            assert _Store.files["/out.bin"][-16:].hex() == task["result"]["outputs"]["out"]["cmac"]
            # file:// under an allowed root works; outside it, the input is refused
            inside = p.input("do1", b"on disk", url=(root / "in.bin").as_uri())
            (root / "in.bin").write_bytes(p.last_sealed)
            out = p.output("do1", url=(root / "out.bin").as_uri())
            task = p.wait(p.submit(fid, {"in": ("do1", inside)}, {"out": ("do1", out)}))
            assert task["state"] == "Finished" and (root / "out.bin").exists()
            outside = p.input("do1", b"secret", url=(tmp_path / "elsewhere.bin").as_uri())
            task = p.wait(
                p.submit(fid, {"in": ("do1", outside)}, {"out": ("do1", p.output("do1"))})
            )
            assert task["result_kind"] == FailureKind.FETCH, task["result"]
            assert task["result"]["message"] == "input in: cannot fetch it"
            # an http input that is not there
            missing = p.input("do1", b"x", url=f"{base}/missing.bin")
            task = p.wait(
                p.submit(fid, {"in": ("do1", missing)}, {"out": ("do1", p.output("do1"))})
            )
            assert task["result_kind"] == FailureKind.FETCH, task["result"]
            assert task["result"]["message"] == "input in: cannot fetch it"
    finally:
        server.shutdown()


def test_platform_keys_health_and_metrics(platform, settings):
    p = platform
    keys_dir = settings.data_dir / "keys"
    for pem in keys_dir.iterdir():
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    keys = p.client.get("/v1/platform/keys").json()
    assert len(base64.b64decode(keys["sealing"]["public_key"])) == 32
    assert keys == TestClient(create_app(settings)).get("/v1/platform/keys").json()  # kept
    health = p.client.get("/v1/health").json()
    assert health["status"] == "ok" and health["database"] == "ok" and health["workers"] == 2
    run_guest(p, ECHO)
    run_guest(p, "unreachable")
    metrics = p.client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    lines = metrics.text.splitlines()
    assert 'teaclave_tasks{result_kind="ok",state="Finished"} 1.0' in lines
    assert 'teaclave_tasks{result_kind="trap",state="Failed"} 1.0' in lines
    assert 'teaclave_tasks{result_kind="",state="Running"} 0.0' in lines


def test_keys_readable_by_others_are_refused(settings):
    create_app(settings)
    pem = settings.data_dir / "keys" / "ed25519.pem"
    os.chmod(pem, 0o644)
    with pytest.raises(TeaclaveInferError, match="readable by others"):
        create_app(settings)


def test_an_output_feeds_a_later_task_with_the_key_bound_to_it(platform):
    """Task 1's output becomes task 2's input (from-output): the key was wrapped for the output's
    id, and the worker unwraps it with that binding."""
    p = platform
    fid = p.register_guest(ECHO)
    first_out = p.output("do1", schema="aes-gcm-256")
    p.wait(p.submit(fid, {"in": ("do1", p.input("do1", b"chained"))}, {"out": ("do1", first_out)}))
    made = p.client.post(
        "/v1/files/inputs/from-output", headers=p.auth["do1"], json={"output_id": first_out}
    )
    assert made.status_code == 201, made.text
    second_out = p.output("do1")
    task = p.wait(p.submit(fid, {"in": ("do1", made.json()["id"])}, {"out": ("do1", second_out)}))
    assert task["state"] == "Finished", task["result"]
    assert p.fetch_output("do1", second_out) == b"chained"


def test_a_task_canceled_while_running_stays_canceled(settings, caplog):
    """Canceled while its worker stores the output (Running; the store holds its answer), the
    task stays Canceled: the worker's end finds it no longer its own and lets it go."""
    caplog.set_level(logging.INFO, logger="teaclave_infer")
    allowed = {"fetch_allow": (ALLOW,), "fetch_timeout_s": HANG_GUARD_S}
    with (
        app_with_workers(settings.model_copy(update=allowed), workers=1) as client,
        held_store() as store,  # inside: a failing test releases its PUT before the join
    ):
        p = Platform(client)
        fid = p.register_guest(ECHO)
        out = p.output("do1", url=store.url("/out.bin"))
        task_id = p.submit(fid, {"in": ("do1", p.input("do1", b"never"))}, {"out": ("do1", out)})
        store.wait_for_a_put()  # the run is over; the task stays Running until answered
        assert p.task(task_id)["state"] == "Running"
        canceled = p.client.post(f"/v1/tasks/{task_id}/cancel", headers=p.auth["do1"])
        assert canceled.status_code == 200 and canceled.json()["state"] == "Canceled"
        store.release()
        deadline = time.monotonic() + HANG_GUARD_S
        while not any(
            r.getMessage() == "discarded" and getattr(r, "task_id", None) == task_id
            for r in caplog.records
        ):
            assert time.monotonic() < deadline, "the worker never let the task go"
            time.sleep(0.05)
        task = p.task(task_id)
        assert task["state"] == "Canceled" and task["result"] is None
        assert p.client.get(f"/v1/files/{out}", headers=p.auth["do1"]).json()["cmac"] is None
