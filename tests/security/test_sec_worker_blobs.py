"""The API's blob endpoints for remote workers, attacked: only a request signed with the
platform's signing key, for this method, path, blob and body, within the window, once, passes;
a user's token, another key, a moved or replayed signature, a body over the limit do not. Then
the worker's API-backed blob store against a live service, a task run through it included."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from guests import ECHO
from platform_helpers import Platform
from service_helpers import HttpClient, assert_problem, serving

from teaclave_infer.api import create_app
from teaclave_infer.api.routes.worker_blobs import wall_clock
from teaclave_infer.domain.blobs import BlobMissing, LocalBlobStore
from teaclave_infer.domain.db import make_engine, session_factory
from teaclave_infer.domain.keys import PlatformKeys
from teaclave_infer.domain.queue import claim_next
from teaclave_infer.domain.worker_access import EMPTY_SHA256, WINDOW_S, sign_request
from teaclave_infer.worker import context_for, execute
from teaclave_infer.worker.remote_blobs import RemoteBlobError, RemoteBlobStore, blob_store_for

NOW = 1_900_000_000.0
BLOBS = "/v1/worker/blobs"
HANG_GUARD_S = 30  # a bound on a hang, never a figure the test measures


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def small(settings):
    return settings.model_copy(update={"max_upload_bytes": 4096})


@pytest.fixture
def api(small, clock) -> TestClient:
    app = create_app(small)
    app.dependency_overrides[wall_clock] = lambda: clock
    return TestClient(app)


@pytest.fixture
def keys(small) -> PlatformKeys:
    return PlatformKeys.load_or_create(small.keys_dir, create=False)


def signed(
    key: Ed25519PrivateKey, method: str, target: str, body: bytes = b"", at: float = NOW
) -> dict[str, str]:
    digest = hashlib.sha256(body).hexdigest()
    return {
        "Authorization": sign_request(key, method, target, digest, at),
        "Content-Type": "application/octet-stream",
    }


def put(api: TestClient, key: Ed25519PrivateKey, body: bytes, **kw) -> object:
    return api.post(BLOBS, headers=signed(key, "POST", BLOBS, body, **kw), content=body)


def test_a_signed_worker_stores_reads_and_deletes_a_blob(api, keys, small):
    r = put(api, keys.signing, b"ciphertext")
    assert r.status_code == 201, r.text
    stored = r.json()
    assert stored["sha256"] == hashlib.sha256(b"ciphertext").hexdigest() and stored["bytes"] == 10
    target = f"{BLOBS}/{stored['id']}"
    r = api.get(target, headers=signed(keys.signing, "GET", target))
    assert r.status_code == 200 and r.content == b"ciphertext"
    assert api.delete(target, headers=signed(keys.signing, "DELETE", target)).status_code == 204
    assert not (small.blob_dir / stored["id"]).exists()
    r = api.get(target, headers=signed(keys.signing, "GET", target))
    assert_problem(r, 404, "no blob")


def stored_blob(api: TestClient, keys: PlatformKeys, data: bytes = b"secret") -> str:
    r = put(api, keys.signing, data)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_no_credential_or_a_users_token_is_refused(api, keys):
    blob = stored_blob(api, keys)
    p = Platform(api)
    for headers in ({}, p.auth["fo"], p.admin, {"Authorization": "TeaclaveWorker"}):
        r = api.get(f"{BLOBS}/{blob}", headers=headers)
        assert_problem(r, 401, "worker credential")
        assert r.headers["www-authenticate"] == "TeaclaveWorker"
    assert_problem(api.post(BLOBS, headers=p.admin, content=b"x"), 401, "worker credential")
    assert_problem(api.delete(f"{BLOBS}/{blob}", headers=p.admin), 401, "worker credential")


def test_a_signature_by_another_key_is_refused(api, keys):
    blob = stored_blob(api, keys)
    other = Ed25519PrivateKey.generate()
    target = f"{BLOBS}/{blob}"
    assert_problem(api.get(target, headers=signed(other, "GET", target)), 401, "signature")
    assert_problem(put(api, other, b"x"), 401, "signature")
    # the sealing key's owner is no worker either: only the signing key signs requests
    receipt_like = keys.sign({"task_id": "x"})["signature"]
    forged = signed(keys.signing, "GET", target)
    header = forged["Authorization"].rsplit("signature=", 1)[0] + "signature=" + receipt_like
    assert_problem(api.get(target, headers={"Authorization": header}), 401, "credential")


def test_a_signature_moved_to_another_blob_method_or_body_is_refused(api, keys, small):
    mine, other = stored_blob(api, keys, b"mine"), stored_blob(api, keys, b"other")
    for_mine = signed(keys.signing, "GET", f"{BLOBS}/{mine}")
    assert_problem(api.get(f"{BLOBS}/{other}", headers=for_mine), 401, "signature")
    read = signed(keys.signing, "GET", f"{BLOBS}/{other}")
    assert_problem(api.delete(f"{BLOBS}/{other}", headers=read), 401, "signature")
    assert (small.blob_dir / other).exists()
    # a signed upload whose body is swapped: refused, nothing stored
    before = set(small.blob_dir.iterdir())
    headers = signed(keys.signing, "POST", BLOBS, b"the signed body")
    r = api.post(BLOBS, headers=headers, content=b"another body!!!")
    assert_problem(r, 401, "not the one the credential signed")
    assert set(small.blob_dir.iterdir()) == before
    # a read signed with a body hash (e.g. an upload's) is no read credential
    r = api.get(f"{BLOBS}/{mine}", headers=signed(keys.signing, "GET", f"{BLOBS}/{mine}", b"body"))
    assert_problem(r, 401, "signed for a body")


@pytest.mark.parametrize("skew", [-WINDOW_S - 1, WINDOW_S + 1, -86400, 10**9])
def test_a_credential_outside_the_window_is_refused(api, keys, skew):
    blob = stored_blob(api, keys)
    target = f"{BLOBS}/{blob}"
    r = api.get(target, headers=signed(keys.signing, "GET", target, at=NOW + skew))
    assert_problem(r, 401, "within 60 s")


def test_a_credential_at_the_edge_of_the_window_passes_once(api, keys, clock):
    blob = stored_blob(api, keys)
    target = f"{BLOBS}/{blob}"
    headers = signed(keys.signing, "GET", target, at=NOW - WINDOW_S + 1)
    assert api.get(target, headers=headers).status_code == 200
    clock.now += 1  # still within the window: a replay is refused by its nonce
    assert_problem(api.get(target, headers=headers), 401, "used already")
    clock.now += 2  # and outside it, by its time
    assert_problem(api.get(target, headers=headers), 401, "within 60 s")


def test_a_replayed_upload_is_refused(api, keys, small):
    body = b"once"
    headers = signed(keys.signing, "POST", BLOBS, body)
    assert api.post(BLOBS, headers=headers, content=body).status_code == 201
    count = len(list(small.blob_dir.iterdir()))
    assert_problem(api.post(BLOBS, headers=headers, content=body), 401, "used already")
    assert len(list(small.blob_dir.iterdir())) == count


@pytest.mark.parametrize(
    "header",
    [
        "TeaclaveWorker garbage",
        "TeaclaveWorker time=1, nonce=00, body-sha256=00, signature=00",
        "TeaclaveWorker time=99999999999999999999, nonce=" + "0" * 32,
        f"TeaclaveWorker time={int(NOW)}, nonce={'0' * 32}, body-sha256={EMPTY_SHA256}, "
        f"signature={'A' * 86}",
        f"TeaclaveWorker time={int(NOW)}, nonce={'0' * 32}, body-sha256={EMPTY_SHA256}, "
        f"signature={'A' * 87}",
        "TeaclaveWorker " + "x" * 10000,
        "Bearer TeaclaveWorker",
    ],
)
def test_a_malformed_credential_is_a_401_never_a_500(api, keys, header):
    blob = stored_blob(api, keys)
    r = api.get(f"{BLOBS}/{blob}", headers={"Authorization": header})
    assert_problem(r, 401, "")
    assert "credential" in r.json()["detail"] or "signature" in r.json()["detail"]


def test_an_oversized_upload_is_refused_and_an_unsigned_one_before_its_body(api, keys, small):
    body = b"x" * (small.max_upload_bytes + 1)
    before = set(small.blob_dir.iterdir())
    assert_problem(put(api, keys.signing, body), 413, "over 4096 bytes")
    r = api.post(BLOBS, headers={"Content-Type": "application/octet-stream"}, content=body)
    assert r.status_code in (401, 413)
    assert set(small.blob_dir.iterdir()) == before


def test_ids_that_are_no_blob_ids_name_nothing(api, keys):
    for blob in ("..", "a.b", "-", "_x", "%2e%2e"):
        target = f"{BLOBS}/{blob}"
        r = api.get(target, headers=signed(keys.signing, "GET", target))
        assert r.status_code in (404, 422), (blob, r.status_code)


def test_a_blob_that_a_function_a_file_or_an_upload_holds_cannot_be_deleted(api, keys, small):
    p = Platform(api)
    fid = p.register_guest(ECHO)  # its wasm is blob `fid`
    file_id = p.input("do1", b"held")
    held_file = p.client.get(f"/v1/files/{file_id}", headers=p.auth["do1"]).json()["url"][5:]
    upload = p.upload("do1", b"uploaded, not registered")[5:]
    for blob in (fid, held_file, upload):
        target = f"{BLOBS}/{blob}"
        r = api.delete(target, headers=signed(keys.signing, "DELETE", target))
        assert_problem(r, 409, "held by")
        assert (small.blob_dir / blob).exists()


@pytest.fixture
def live(settings) -> Iterator[str]:
    with serving(create_app(settings)) as base:
        yield base


def test_the_remote_blob_store_against_a_live_service(live, settings):
    keys = PlatformKeys.load_or_create(settings.keys_dir, create=False)
    store = RemoteBlobStore(live, keys)
    blob, sha256 = store.put(b"sealed output")
    assert sha256 == hashlib.sha256(b"sealed output").hexdigest()
    assert store.get(blob) == b"sealed output"
    with store.open(blob) as f:
        assert f.read() == b"sealed output"
    with pytest.raises(ValueError, match="over the 4-byte limit"):
        store.get(blob, max_bytes=4)
    store.delete(blob)
    with pytest.raises(BlobMissing):
        store.get(blob)
    stranger = replace(keys, signing=Ed25519PrivateKey.generate())
    with pytest.raises(RemoteBlobError, match="401") as caught:
        RemoteBlobStore(live, stranger).put(b"x")
    assert isinstance(caught.value, OSError)  # what Storage reports as "cannot store it"


def test_blob_store_for_uses_the_api_only_without_a_shared_directory(settings, tmp_path):
    create_app(settings)  # makes the keys
    assert isinstance(blob_store_for(settings), LocalBlobStore)
    remote = settings.model_copy(update={"platform_url": "http://platform.invalid"})
    assert isinstance(blob_store_for(remote), RemoteBlobStore)
    shared = remote.model_copy(update={"blob_path": tmp_path / "shared"})
    store = blob_store_for(shared)
    assert isinstance(store, LocalBlobStore) and store.root == tmp_path / "shared"


def test_a_task_runs_on_a_worker_that_reaches_blobs_only_through_the_api(live, settings, tmp_path):
    p = Platform(HttpClient(live))
    fid = p.register_guest(ECHO)
    out = p.output("do1")
    task_id = p.submit(fid, {"in": ("do1", p.input("do1", b"remote"))}, {"out": ("do1", out)})
    # the worker's data dir has no blobs; it has the platform's keys, and the database
    remote = settings.model_copy(
        update={
            "data_dir": tmp_path / "elsewhere",
            "platform_url": live,
            "keys_path": settings.keys_dir,
        }
    )
    engine = make_engine(settings.database_url)
    try:
        ctx = context_for(remote, session_factory(engine), create_keys=False)
        assert isinstance(ctx.storage.blobs, RemoteBlobStore)
        claim = claim_next(ctx.sessions, "remote", 30.0, 3)
        assert claim is not None and claim.task_id == task_id
        assert execute(ctx, claim) == "Finished", p.task(task_id)["result"]
    finally:
        engine.dispose()
    assert p.fetch_output("do1", out) == b"remote"
    p.verified_receipt(p.task(task_id))
