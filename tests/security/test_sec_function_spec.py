"""A function spec as an attacker would write it (issue 18 item 1): Teaclave's spellings and
ours clashing, names declared twice, lists past every bound, executors spelled almost right,
unknown users, a profile asked for through the spec, a manifest added afterwards. Each is a
422 naming what was wrong, and nothing is stored."""

from __future__ import annotations

import pytest
from cheap_kdf import CHEAP
from fastapi.testclient import TestClient
from guests import guest
from platform_helpers import Platform
from service_helpers import ADMIN_PASSWORD, assert_problem
from teaclave_client.vocabulary import MAX_ARGUMENTS, MAX_SLOTS

from teaclave_infer.api import create_app
from teaclave_infer.domain import passwords
from teaclave_infer.domain.settings import Settings

SIMD = guest("(i32x4.extract_lane 0 (v128.const i32x4 7 0 0 0))")


@pytest.fixture
def world(client) -> Platform:
    return Platform(client)


@pytest.fixture(scope="module")
def refusing(tmp_path_factory) -> Platform:
    """One service for the cases that are refused: each checks that nothing was stored, so
    they cannot disturb each other (a validation refusal is the same on either database)."""
    folder = tmp_path_factory.mktemp("refusing")
    (folder / "admin.txt").write_text(ADMIN_PASSWORD + "\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passwords, "PARAMETERS", CHEAP)
        settings = Settings(data_dir=folder / "data", admin_password_file=folder / "admin.txt")
        return Platform(TestClient(create_app(settings)))


def _nothing_stored(world: Platform) -> None:
    mine = world.client.get("/v1/functions", headers=world.auth["fo"], params={"scope": "mine"})
    assert mine.status_code == 200 and mine.json()["total"] == 0


@pytest.mark.parametrize(
    "executor", ["builtin", "mesapy", "python", "WAMR", "wamr ", " wamr", "wamr\x00", "", 7, None]
)
def test_an_executor_other_than_exactly_wamr_is_refused(refusing, executor):
    world = refusing
    refused = world.post_function({"executor_type": executor})
    assert refused.status_code == 422, refused.text
    if isinstance(executor, str) and "\x00" not in executor:
        assert_problem(refused, 422, f"executor type {executor!r}")
        assert "only 'wamr'" in refused.json()["detail"]
    _nothing_stored(world)


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"allowlist": [], "user_allowlist": []}, "give `allowlist` or Teaclave's"),
        ({"quota": 1, "usage_quota": 2}, "give `quota` or Teaclave's `usage_quota`"),
        ({"arguments": [{"name": "a", "key": "b"}]}, "spec.arguments.0"),
        ({"arguments": [{"key": "a", "overwritable": 1, "allow_overwrite": 0}]}, "not both"),
        ({"arguments": [{"name": "a"}, {"key": "a"}]}, "arguments: 'a' is declared twice"),
        ({"inputs": [{"name": "x"}, {"name": "x", "optional": True}]}, "'x' is declared twice"),
        ({"inputs": [{"name": "x"}], "outputs": [{"name": "x"}]}, "'x' is declared twice"),
        ({"arguments": [{"name": "a"}] * (MAX_ARGUMENTS + 1)}, "spec.arguments"),
        ({"inputs": [{"name": f"i{n}"} for n in range(MAX_SLOTS + 1)]}, "spec.inputs"),
        ({"outputs": [{"name": f"o{n}"} for n in range(MAX_SLOTS + 1)]}, "spec.outputs"),
        ({"arguments": [{"name": "a", "default_value": "x" * 5000}]}, "spec.arguments.0"),
        ({"arguments": [{"name": "a", "default": {"not": "text"}}]}, "spec.arguments.0"),
        ({"arguments": "adder1"}, "spec.arguments"),
        ({"inputs": [{"name": "../etc/passwd"}]}, "spec.inputs.0.name"),
        ({"inputs": [{"name": "x", "description": "d" * 5000}]}, "spec.inputs.0.description"),
        ({"user_allowlist": ["no-such-user"]}, "allowlist names no user"),
        ({"allowlist": ["x"] * 1001}, "spec.allowlist"),
    ],
)
def test_a_spec_an_attacker_would_send_is_refused(refusing, spec, words):
    assert_problem(refusing.post_function(spec), 422, words)
    _nothing_stored(refusing)


def test_the_spec_cannot_choose_a_profile(world):
    """Only a builder's manifest names a profile: a spec's `profile` is not read, so a
    manifest-less module is still checked against Teaclave's WAMR features."""
    refused = world.post_function(
        {"profile": "fast", "manifest": {"profile": {"name": "fast"}}}, SIMD
    )
    assert_problem(refused, 422, "invalid module for profile teaclave")
    _nothing_stored(world)


def test_a_manifest_cannot_be_added_afterwards(world):
    """What a manifest-less function is (its profile, its missing shapes) is fixed at
    registration: an update names no manifest or profile."""
    function_id = world.post_function({"public": True}).json()["id"]
    patch = {"manifest": {"name": "f", "inputs": [{"id": "x"}]}, "profile": "fast"}
    world.client.patch(f"/v1/functions/{function_id}", headers=world.auth["fo"], json=patch)
    shown = world.client.get(f"/v1/functions/{function_id}", headers=world.auth["fo"]).json()
    assert shown["profile"] == "teaclave" and shown["has_manifest"] is False
    manifest = world.client.get(f"/v1/functions/{function_id}/manifest", headers=world.auth["fo"])
    assert manifest.status_code == 404


def test_the_allowlist_stays_the_owners_business(world):
    """Given in Teaclave's spelling, the allowlist is hidden from its users as ours is."""
    spec = {"user_allowlist": [world.ids["do1"]]}
    function_id = world.post_function(spec).json()["id"]
    seen = world.client.get(f"/v1/functions/{function_id}", headers=world.auth["do1"])
    assert seen.status_code == 200 and seen.json()["allowlist"] == []
    hidden = world.client.get(f"/v1/functions/{function_id}", headers=world.auth["do2"])
    assert hidden.status_code == 404


def test_a_spec_past_a_form_parts_size_is_refused_whole(world):
    """Every list and text is bounded, and the spec part as a whole too (the form parser's
    part limit): 1023 slots of 4096-character descriptions never reach the validator."""
    slots = [{"name": f"i{n}", "description": "d" * 4096} for n in range(MAX_SLOTS)]
    refused = world.post_function({"inputs": slots})
    assert 400 <= refused.status_code < 500, refused.text
    assert refused.headers["content-type"] == "application/problem+json", refused.text
    _nothing_stored(world)
