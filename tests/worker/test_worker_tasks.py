"""One task as a worker runs it, counted: three transactions at most, nothing re-read that tasks
share (the wasm, its compiled module, a function owner's weights), and Channel.ENDED published
once the end is committed. Tasks are set up through the API and run by calling the worker's
`execute` directly, with counting fakes around its blob store and signals."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from guests import ECHO, IN, guest
from platform_helpers import Platform
from service_helpers import builder_manifest
from sqlalchemy import event, select, update
from teaclave_client.crypto import encrypt
from teaclave_client.vocabulary import FailureKind

from teaclave_infer.api import create_app
from teaclave_infer.domain.blobs import LocalBlobStore
from teaclave_infer.domain.db import make_engine, session_factory
from teaclave_infer.domain.leases import Renewals, Renewing
from teaclave_infer.domain.lifecycle import State
from teaclave_infer.domain.models import DataFile, Task, User
from teaclave_infer.domain.queue import claim_next
from teaclave_infer.domain.signals import Channel
from teaclave_infer.domain.work import WEIGHTS_SLOT
from teaclave_infer.executor import ModuleCache
from teaclave_infer.worker import context_for, execute
from teaclave_infer.worker.caches import BytesCache, Caches
from teaclave_infer.worker.loop import Worker
from teaclave_infer.worker.task import Context

HANG_GUARD_S = 30  # a bound on a hang, never a figure the test measures
WEIGHTS_AT = 96  # where the guest below keeps the string "weights"
# Copies its input "weights" to its output "out" (ECHO, reading another input).
ECHO_WEIGHTS = ECHO.replace(
    f"(call $open (i32.const {IN}))", f"(call $open (i32.const {WEIGHTS_AT}))"
)
WEIGHTS_DATA = f'(data (i32.const {WEIGHTS_AT}) "weights\\00")'


class CountingBlobs(LocalBlobStore):
    def __init__(self, inner: LocalBlobStore) -> None:
        super().__init__(inner.root)
        self.reads: list[str] = []

    def get(self, blob_id: str, max_bytes: int | None = None) -> bytes:
        self.reads.append(blob_id)
        return super().get(blob_id, max_bytes)


@dataclass
class Ended:
    """Signals that record each ENDED publish with the task's state at that moment."""

    ctx_sessions: object = None
    published: list[tuple[str, str]] = field(default_factory=list)

    def publish(self, channel: Channel, payload: str = "") -> None:
        with self.ctx_sessions() as session:  # type: ignore[misc, operator]
            task = session.get(Task, payload)
            self.published.append((channel.value, task.state if task else "?"))

    def listen(self, channel: Channel):  # pragma: no cover - the worker never listens here
        raise NotImplementedError


@dataclass
class World:
    p: Platform
    ctx: Context
    blobs: CountingBlobs
    signals: Ended
    transactions: list[str]

    def run(self, task_id: str) -> str:
        """Claims the task and runs it; the task's end state."""
        claim = claim_next(self.ctx.sessions, "w", 30.0, 3)
        assert claim is not None and claim.task_id == task_id
        state = execute(self.ctx, claim)
        assert state is not None
        return state


@pytest.fixture
def world(settings) -> Iterator[World]:
    p = Platform(TestClient(create_app(settings)))
    engine = make_engine(settings.database_url)
    transactions: list[str] = []
    event.listen(engine, "begin", lambda conn: transactions.append("begin"))
    sessions = session_factory(engine)
    base = context_for(settings, sessions, create_keys=False)
    blobs = CountingBlobs(LocalBlobStore(settings.blob_dir))
    signals = Ended(p.client.app.state.platform.sessions)  # the API's engine: not counted
    ctx = replace(
        base,
        storage=replace(base.storage, blobs=blobs),
        cache=ModuleCache(settings.module_cache_dir),
        signals=signals,
        caches=Caches(BytesCache(1 << 20), BytesCache(1 << 20)),
    )
    yield World(p, ctx, blobs, signals, transactions)
    engine.dispose()


def echo_task(p: Platform, fid: str, payload: bytes = b"hello") -> str:
    inputs = {"in": ("do1", p.input("do1", payload))}
    return p.submit(fid, inputs, {"out": ("do1", p.output("do1"))})


@pytest.mark.parametrize(("body", "state"), [(ECHO, "Finished"), ("unreachable", "Failed")])
def test_a_task_costs_at_most_three_transactions_and_its_end_is_signalled(world, body, state):
    task_id = echo_task(world.p, world.p.register_guest(body))
    world.transactions.clear()
    assert world.run(task_id) == state
    assert len(world.transactions) <= 3, world.transactions  # claim + load, start, end
    # published once, after the end was committed (the state read then is the end state)
    assert world.signals.published == [(Channel.ENDED.value, state)]


def test_a_task_whose_function_is_gone_fails_in_two_transactions(world):
    fid = world.p.register_guest(ECHO)
    task_id = echo_task(world.p, fid)
    r = world.p.client.patch(
        f"/v1/functions/{fid}", headers=world.p.auth["fo"], json={"disabled": True}
    )
    assert r.status_code == 200, r.text
    world.transactions.clear()
    assert world.run(task_id) == "Failed"
    assert len(world.transactions) == 2  # claim + load, end
    task = world.p.task(task_id)
    assert task["result_kind"] == FailureKind.FUNCTION_UNAVAILABLE, task["result"]


def test_a_second_task_of_a_function_reads_no_wasm_and_compiles_nothing(world):
    fid = world.p.register_guest(ECHO)
    first, second = echo_task(world.p, fid, b"one"), echo_task(world.p, fid, b"two")
    assert world.run(first) == "Finished"
    assert world.blobs.reads.count(fid) == 1
    assert world.ctx.cache.stats["compiles"] == 1
    world.blobs.reads.clear()
    assert world.run(second) == "Finished"
    assert fid not in world.blobs.reads  # only the input's blob was read
    stats = world.ctx.cache.stats
    assert stats["compiles"] == 1 and stats["disk_hits"] == 0 and stats["memory_hits"] >= 1
    assert world.ctx.caches.wasm.stats["hits"] == 0  # not even asked: the module was there
    assert world.p.task(second)["result"]["return_value"] == 3


def test_the_wasm_bytes_are_read_once_for_every_engine_they_compile_for(world):
    """Another profile or limits mean another engine and another compile, not another read."""
    fid = world.p.register_guest(ECHO)
    fast = echo_task(world.p, fid)
    assert world.run(fast) == "Finished"
    r = world.p.client.patch(
        f"/v1/functions/{fid}", headers=world.p.auth["fo"], json={"limits": {"fuel": 10**9}}
    )
    assert r.status_code == 200, r.text
    fueled = echo_task(world.p, fid)
    assert world.run(fueled) == "Finished"
    assert world.blobs.reads.count(fid) == 1
    assert world.ctx.cache.stats["compiles"] == 2
    assert world.ctx.caches.wasm.stats["hits"] == 1


def test_tampered_wasm_fails_the_task_with_integrity_and_is_not_kept(world, settings):
    fid = world.p.register_guest(ECHO)
    (settings.blob_dir / fid).write_bytes(guest("(i32.const 0)"))
    for _ in range(2):
        task_id = echo_task(world.p, fid)
        assert world.run(task_id) == "Failed"
        task = world.p.task(task_id)
        assert task["result_kind"] == FailureKind.INTEGRITY, task["result"]
    assert world.blobs.reads.count(fid) == 2  # read again: bad bytes are not kept
    assert world.ctx.caches.wasm.size == 0 and world.ctx.cache.stats["compiles"] == 0


def weights_function(p: Platform) -> str:
    return p.register(
        guest(ECHO_WEIGHTS, WEIGHTS_DATA),
        builder_manifest(weights={"mode": "separate"}),
        inputs=[{"name": "in"}, {"name": WEIGHTS_SLOT}],
        outputs=[{"name": "out"}],
        arguments=[{"name": n, "default": n} for n in ("in", WEIGHTS_SLOT, "out")],
    )


def weights_task(p: Platform, fid: str, weights: str, owner: str = "fo") -> tuple[str, str]:
    out = p.output("do1")
    inputs = {"in": ("do1", p.input("do1", b"image")), WEIGHTS_SLOT: (owner, weights)}
    return p.submit(fid, inputs, {"out": ("do1", out)}), out


def test_a_function_owners_weights_are_decrypted_once_and_dropped_when_the_file_changes(world):
    p = world.p
    fid = weights_function(p)
    weights = p.input("fo", b"weights v1", schema="aes-gcm-256")
    blob = p.client.get(f"/v1/files/{weights}", headers=p.auth["fo"]).json()["url"][5:]
    outs = []
    for _ in range(2):
        task_id, out = weights_task(p, fid, weights)
        assert world.run(task_id) == "Finished", p.task(task_id)["result"]
        outs.append(out)
    assert world.blobs.reads.count(blob) == 1  # the second task took them from memory
    assert [p.fetch_output("do1", o) for o in outs] == [b"weights v1"] * 2
    assert world.ctx.caches.weights.stats == {"hits": 1, "misses": 1, "dropped": 0}

    # the file changes (new ciphertext, iv and cmac under the same key): a miss, the old
    # plaintext dropped, the new one served
    schema, key = p.file_keys[weights]
    sealed, meta = encrypt(schema, key, b"weights v2")
    new_url = p.upload("fo", sealed)
    with world.ctx.sessions.begin() as session:
        session.execute(
            update(DataFile)
            .where(DataFile.id == weights)
            .values(url=new_url, iv=meta.iv.hex(), cmac=meta.cmac.hex())
        )
    task_id, out = weights_task(p, fid, weights)
    assert world.run(task_id) == "Finished", p.task(task_id)["result"]
    assert p.fetch_output("do1", out) == b"weights v2"
    assert world.ctx.caches.weights.stats == {"hits": 1, "misses": 2, "dropped": 1}
    assert world.ctx.caches.weights.size == len(b"weights v2")


def test_a_data_owners_weights_are_never_kept(world):
    p = world.p
    fid = weights_function(p)
    weights = p.input("do2", b"do2's weights", schema="aes-gcm-256")
    for _ in range(2):
        task_id, out = weights_task(p, fid, weights, owner="do2")
        assert world.run(task_id) == "Finished", p.task(task_id)["result"]
        assert p.fetch_output("do1", out) == b"do2's weights"
    assert world.ctx.caches.weights.size == 0
    assert world.ctx.caches.weights.stats["misses"] == 0  # never even looked up


def test_the_bytes_cache_is_bounded_and_drops_the_least_recently_used():
    cache = BytesCache(10)
    cache.put("a", b"1234")
    cache.put("b", b"5678")
    assert cache.get("a") == b"1234"  # "b" is now the least recently used
    cache.put("c", b"9abc")
    assert "b" not in cache and cache.get("a") == b"1234" and cache.size == 8
    cache.put("big", b"x" * 11)  # over the bound alone: not kept, nothing dropped
    assert "big" not in cache and cache.size == 8
    assert cache.get("a", version="v2") is None and "a" not in cache  # another version: gone


def test_a_task_given_up_as_lost_is_told_to_whoever_waits(world, settings):
    with world.ctx.sessions.begin() as session:
        admin = session.scalars(select(User).where(User.username == "admin")).one()
        task = Task(
            function_sha256="0" * 64,
            creator_id=admin.id,
            state=State.STAGED,
            attempts=3,  # its workers died three times
            invoked_at=datetime.now(UTC),
        )
        session.add(task)
    assert not Worker(world.ctx, settings).run_once()  # nothing left to run
    assert world.signals.published == [(Channel.ENDED.value, "Failed")]


def test_a_lease_is_renewed_only_once_due_and_a_failed_renewal_marks_it_lost():
    renewals = Renewals()
    calls: list[str] = []
    later = Renewing(lambda: calls.append("later") or True, 3600.0, {})
    due = Renewing(lambda: calls.append("due") or False, 0.0, {})  # due at once; then lost
    renewals.hold(later)
    renewals.hold(due)
    assert due.lost.wait(HANG_GUARD_S)
    renewals.release(later)
    renewals.release(due)
    assert calls == ["due"] and not later.lost.is_set()
