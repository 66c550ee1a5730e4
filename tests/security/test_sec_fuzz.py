"""No request makes a 5xx, and none leaves a row that makes later requests fail (issue 15 item 10).

First the cases fuzzing found, as plain regression tests; then schemathesis against the app's
own /openapi.json with an admin's, a function owner's and a data owner's tokens, checking only
`not_a_server_error`. TEACLAVE_FUZZ_EXAMPLES sets the examples per operation and token (a few
by default; a few hundred for a long run, which the `slow` variant makes against a live
`teaclave-infer serve`)."""

from __future__ import annotations

import json
import os
from typing import Any

import hypothesis
import pytest
import schemathesis
from guests import guest
from hypothesis import strategies as st
from platform_helpers import Platform
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from service_helpers import BUILDER, DATABASES, HttpClient, assert_problem, builder_manifest
from sqlalchemy.exc import StatementError
from teaclave_client.vocabulary import MANIFEST_FORMAT as FORMAT

from teaclave_infer.api.bounded import INT32_MAX, INT64_MAX, check_json
from teaclave_infer.domain.models import Function

HUGE = 2**64
NOOP = guest("(i32.const 0)")


@pytest.fixture
def world(client) -> Platform:
    return Platform(client)


def _register(world: Platform, manifest: bytes | None = None, **spec: object):
    return world.client.post(
        "/v1/functions",
        headers=world.auth["fo"],
        files={"wasm": ("f.wasm", NOOP), "manifest": ("f.json", manifest or builder_manifest())},
        data={"spec": json.dumps({"name": "f", "public": True, **spec})},
    )


def _raw_post(world: Platform, who: str, path: str, body: bytes):
    """A JSON body as bytes: escapes like a lone surrogate that a client library would refuse."""
    headers = {**world.auth[who], "Content-Type": "application/json"}
    return world.client.post(path, headers=headers, content=body)


# (a) The cases found, each a 500 before.


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (b'"\\ud800"', "lone surrogate"),
        (b"1e400", "not a finite number"),
        (b"NaN", "not a finite number"),
        (str(HUGE).encode(), "past 64 bits"),
        (b"[" * 40 + b"]" * 40, "nested deeper"),
    ],
)
def test_task_arguments_that_cannot_be_read_back_are_refused(world, value, words):
    """A lone surrogate was committed, then every `GET /v1/tasks` of the participants was a
    500; an infinity, the same; deep nesting failed the response."""
    registered = _register(world, arguments=[{"name": "a"}], inputs=[], outputs=[])
    function_id = registered.json()["id"]
    body = b'{"function_id": "%s", "arguments": {"a": %s}}' % (function_id.encode(), value)
    assert_problem(_raw_post(world, "do1", "/v1/tasks", body), 422, words)
    listed = world.client.get("/v1/tasks", headers=world.auth["do1"])
    assert listed.status_code == 200 and listed.json()["total"] == 0


def test_a_lone_surrogate_anywhere_in_a_body_is_a_422(world):
    key = _raw_post(world, "do1", "/v1/tasks", b'{"function_id": "x", "arguments": {"\\ud800": 1}}')
    assert_problem(key, 422, "a key: not UTF-8")
    file = _raw_post(world, "do1", "/v1/files/inputs/from-output", b'{"output_id": "\\ud800"}')
    assert_problem(file, 422, "output_id: not UTF-8")


@pytest.mark.parametrize("path", ["/v1/users", "/v1/audit", "/v1/tasks", "/v1/functions"])
def test_a_huge_offset_is_a_422(world, path):
    huge = world.client.get(path, headers=world.admin, params={"offset": HUGE})
    assert_problem(huge, 422, "offset")
    top = world.client.get(path, headers=world.admin, params={"offset": INT32_MAX})
    assert top.status_code == 200 and top.json()["items"] == []


def test_audit_filters_are_bounded(world):
    assert_problem(
        world.client.get("/v1/audit", headers=world.admin, params={"status": HUGE}), 422, "status"
    )
    nul = world.client.get("/v1/audit", headers=world.admin, params={"action": "\x00"})
    assert_problem(nul, 422, "action")
    ok = world.client.get("/v1/audit", headers=world.admin, params={"status": 201})
    assert ok.status_code == 200 and ok.json()["total"] >= 3  # the users made by Platform


def test_quota_past_the_column_is_a_422(world):
    assert_problem(_register(world, quota=2**70), 422, "quota: an integer past 64 bits")
    assert_problem(_register(world, quota=2**40), 422, "spec.quota: Input should be less than")
    function_id = world.register_guest("(i32.const 0)")
    patch = world.client.patch(
        f"/v1/functions/{function_id}", headers=world.auth["fo"], json={"quota": 2**70}
    )
    assert_problem(patch, 422, "quota")
    assert _register(world, quota=INT32_MAX).status_code == 201


def test_fuel_past_64_bits_is_a_422_not_a_wrap_to_zero(world):
    assert_problem(_register(world, limits={"fuel": HUGE}), 422, "limits.fuel: an integer past")
    top = _register(world, limits={"fuel": INT64_MAX})
    assert top.status_code == 201 and top.json()["limits"] == {"fuel": INT64_MAX}


def _ours(json_object: bytes) -> bytes:
    """`json_object` (written as bytes: some are not JSON a library would write) with the
    builder's `format` first, so the error is the one the case is about."""
    return json_object.replace(b"{", b'{"format": "' + FORMAT.encode() + b'", ', 1)


@pytest.mark.parametrize(
    ("manifest", "where"),
    [
        (b"[]", "manifest: Input should be an object"),
        (b"{}", "manifest.format: Field required"),
        (b'{"name": "f"}', "manifest.format: Field required"),
        (b'{"format": "other/1"}', "manifest.format: Value error, 'other/1' is not the"),
        (_ours(b'{"inputs": "abc"}'), "manifest.inputs: Input should be a valid array"),
        (_ours(b'{"inputs": [{}]}'), "manifest.inputs.0.id: Field required"),
        (
            _ours(b'{"outputs": [{"id": 5}]}'),
            "manifest.outputs.0.id: Input should be a valid string",
        ),
        (_ours(b'{"inputs": [{"id": "a b"}]}'), "manifest.inputs.0.id: String should match"),
        (_ours(b'{"profile": "fast"}'), "manifest.profile: Input should be an object"),
        (
            _ours(b'{"profile": {"name": "nope"}}'),
            "manifest.profile.name: Value error, unknown profile",
        ),
        (_ours(b'{"weights": []}'), "manifest.weights: Input should be an object"),
        (_ours(b'{"weights": {"mode": 1}}'), "manifest.weights.mode: Input should be 'embedded'"),
        (_ours(b'{"inputs": [{"id": "a", "shape": ["x"]}]}'), "manifest.inputs.0.shape.0"),
        (_ours(b'{"outputs": [{"id": "a", "dtype": "complex64"}]}'), "manifest.outputs.0.dtype"),
        (_ours(b'{"extra": NaN}'), "extra: not a finite number"),
        (_ours(b'{"extra": "\\ud800"}'), "manifest: Invalid JSON"),
        (b"\xff", "manifest: Invalid JSON"),
    ],
)
def test_a_wrong_manifest_is_a_422_naming_the_field(world, manifest, where):
    response = _register(world, manifest)
    assert_problem(response, 422, where)
    assert response.json()["title"] == "Invalid manifest"


def test_a_manifest_keeps_the_fields_it_does_not_check(world):
    manifest = {
        **BUILDER,
        "name": "m",
        "profile": {"name": "teaclave", "features": ["+sign-ext"]},
        "weights": {"mode": "embedded", "input_id": None},
        "inputs": [{"id": "img", "shape": [1, 1, 28, 28], "image": {"range": [0.0, 1.0]}}],
        "outputs": [{"id": "scores", "dtype": "float32", "onnx_name": "out"}],
        "tools": {"zig": "0.14"},
    }
    registered = _register(world, json.dumps(manifest).encode())
    assert registered.status_code == 201, registered.text
    assert [s["name"] for s in registered.json()["inputs"]] == ["img"]
    function_id = registered.json()["id"]
    stored = world.client.get(f"/v1/functions/{function_id}/manifest", headers=world.auth["fo"])
    assert stored.json() == manifest


def test_text_the_database_cannot_hold_is_a_422(world):
    """PostgreSQL's text holds no NUL: each of these was a 500 there."""
    attribute = world.client.patch(
        f"/v1/users/{world.ids['do1']}", headers=world.admin, json={"attribute": "a\x00b"}
    )
    assert_problem(attribute, 422, "attribute: holds NUL")
    assert_problem(world.client.get("/v1/users/a%00b", headers=world.admin), 422, "user_id")
    assert_problem(world.client.get("/v1/tasks/a%00b", headers=world.auth["do1"]), 422, "task_id")
    name = world.client.get("/v1/functions", headers=world.admin, params={"name": "\x00"})
    assert_problem(name, 422, "name")


def test_nothing_unreadable_can_be_committed(world):
    """The last resort behind the schemas: the JSON columns' serializer fails the flush."""
    function_id = world.register_guest("(i32.const 0)")
    sessions = world.client.app.state.platform.sessions  # type: ignore[union-attr]
    with sessions() as session:
        stored = session.get(Function, function_id).manifest
    for unreadable in ({"x": "\ud800"}, {"x": float("nan")}, {"x": float("inf")}):
        with sessions() as session:
            function = session.get(Function, function_id)
            function.manifest = unreadable
            with pytest.raises((StatementError, ValueError)):  # psycopg: not wrapped
                session.commit()
    with sessions() as session:
        assert session.get(Function, function_id).manifest == stored


def test_one_idempotency_key_at_the_same_time_is_a_409(world):
    """Two requests with one key both miss the replay; the second to store was a 500."""
    from starlette.requests import Request

    from teaclave_infer.api.idempotency import remember
    from teaclave_infer.domain.models import User

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/tasks",
        "headers": [(b"idempotency-key", b"k1")],
        "query_string": b"",
    }
    sessions = world.client.app.state.platform.sessions  # type: ignore[union-attr]
    with sessions() as first, sessions() as second:
        user = first.get(User, world.ids["do1"])
        remember(Request(scope), first, user, 201, {"id": "a"})
        first.commit()
        with pytest.raises(Exception) as refused:
            remember(Request(scope), second, second.get(User, world.ids["do1"]), 201, {"id": "b"})
        assert getattr(refused.value, "status", None) == 409


def test_check_json_walks_without_recursion():
    deep: Any = "x"
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper"):
        check_json(deep)
    check_json({"a": [1, 2.5, None, True, {"b": "ü"}]})


# (b) Schemathesis over every operation, with each role's token.

EXAMPLES = int(os.environ.get("TEACLAVE_FUZZ_EXAMPLES", "8"))
# Revokes the token the run uses; nothing to fuzz in it (no body, no parameters).
SKIPPED = {"POST /v1/auth/logout"}
ROLES = ("admin", "fo", "do1")
IN_PROCESS = [db for db in DATABASES if db != "sqlite"]


def _seeded(world: Platform) -> dict[str, str]:
    """Real ids for path parameters, so that fuzzing reaches past the 404s: a function, an
    input and an output file, a task created (and one invoked: Staged, no workers here)."""
    function_id = world.register_guest("(i32.const 0)")
    data, out = world.input("do1", b"data"), world.output("do1")
    world.submit(function_id, {"in": ("do1", data)}, {"out": ("do1", out)})
    created = world.client.post(
        "/v1/tasks",
        headers=world.auth["do1"],
        json={
            "function_id": function_id,
            "arguments": {"in": "in", "out": "out"},
            "inputs_ownership": [{"name": "in", "owners": [world.ids["do1"]]}],
            "outputs_ownership": [{"name": "out", "owners": [world.ids["do1"]]}],
        },
    )
    assert created.status_code == 201, created.text
    return {
        "function_id": function_id,
        "file_id": data,
        "task_id": created.json()["id"],
        "user_id": world.ids["do2"],
    }


def _strategy(operation: Any, ids: dict[str, str]) -> st.SearchStrategy:
    """Schema-valid and schema-violating cases; for operations that do not delete or revoke,
    also cases on the seeded objects."""
    modes = [operation.as_strategy(m) for m in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    names = {p.name for p in operation.path_parameters}
    destructive = operation.method.upper() == "DELETE" or operation.path.endswith("/password")
    if (real := {n: ids[n] for n in names if n in ids}) and not destructive:
        modes.insert(0, operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real))
    return st.one_of(modes)


def _fuzz(schema: Any, world: Platform, ids: dict[str, str], role: str, **call: Any) -> int:
    """Every operation with `EXAMPLES` cases as `role`; returns the number of cases run."""
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if f"{operation.method.upper()} {operation.path}" in SKIPPED:
            continue

        @hypothesis.settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=EXAMPLES <= 50,  # the fast tier is the same run every time
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate, hypothesis.Phase.shrink],
        )
        @hypothesis.given(case=_strategy(operation, ids))
        def run(case: Any) -> None:
            nonlocal ran
            ran += 1
            headers = world.auth[role] if role != "admin" else world.admin
            case.call_and_validate(headers=headers, checks=[not_a_server_error], **call)

        run()
    return ran


@pytest.mark.slow  # many processes or requests: the full tier
@pytest.mark.parametrize("settings", IN_PROCESS, indirect=True)
@pytest.mark.parametrize("role", ROLES)
def test_schemathesis_finds_no_server_error(client, role):
    """In process, on each database but SQLite: the live variant below draws the same cases
    (the same schema and strategies, derandomized) against a served SQLite database."""
    world = Platform(client)
    ids = _seeded(world)
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    assert _fuzz(schema, world, ids, role) > 0


@pytest.mark.slow  # many processes or requests: the full tier
@pytest.mark.parametrize("role", ROLES)
def test_schemathesis_finds_no_server_error_live(live_service, role):
    """The same against `teaclave-infer serve` over HTTP (set TEACLAVE_FUZZ_EXAMPLES=300 or
    more for a run of minutes per role)."""
    world = Platform(HttpClient(live_service))
    ids = _seeded(world)
    schema = schemathesis.openapi.from_url(f"{live_service}/openapi.json")
    ran = _fuzz(schema, world, ids, role, base_url=live_service)
    operations = sum(1 for _ in schema.get_all_operations()) - len(SKIPPED)
    print(f"{role}: {ran} cases over {operations} operations, no server error")
    assert ran > 0
