"""Registering any Teaclave-ABI function without our builder's manifest, from a spec in
Teaclave's terms (issue 18 item 1): the spellings taken, the executor type, the profile it is
checked with, and the task arguments' rule."""

from __future__ import annotations

import pytest
from guests import guest
from platform_helpers import Platform
from service_helpers import BUILDER, assert_problem, builder_manifest
from teaclave_client.vocabulary import executor_refusal

# A SIMD instruction: the `fast` profile takes it, Teaclave's WAMR (the `teaclave` one) does not.
SIMD = guest("(i32x4.extract_lane 0 (v128.const i32x4 7 0 0 0))")


@pytest.fixture
def world(client) -> Platform:
    return Platform(client)


def teaclave_spec(world: Platform) -> dict:
    """What Teaclave's register_function sends, in its own names."""
    return {
        "name": "simple_add",
        "description": "adds two numbers",
        "executor_type": "wamr",
        "public": False,
        "arguments": [
            {"key": "adder1", "default_value": "3", "allow_overwrite": True},
            {"key": "mode", "default_value": "sum", "allow_overwrite": False},
        ],
        "inputs": [{"name": "in", "description": "numbers", "optional": False}],
        "outputs": [{"name": "out", "description": "the sum", "optional": True}],
        "user_allowlist": [world.ids["do1"], world.ids["do1"]],
        "usage_quota": None,
    }


def test_a_teaclave_spec_registers_without_a_manifest(world):
    created = world.post_function(teaclave_spec(world))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["executor_type"] == "wamr" and body["profile"] == "teaclave"
    assert body["has_manifest"] is False
    assert body["arguments"] == [
        {"name": "adder1", "default": "3", "overwritable": True},
        {"name": "mode", "default": "sum", "overwritable": False},
    ]
    assert body["inputs"] == [{"name": "in", "description": "numbers", "optional": False}]
    assert body["outputs"][0]["description"] == "the sum" and body["outputs"][0]["optional"]
    assert body["allowlist"] == [world.ids["do1"]] and body["quota"] == -1
    manifest = world.client.get(f"/v1/functions/{body['id']}/manifest", headers=world.auth["fo"])
    assert_problem(manifest, 404, "without a builder's manifest")


def test_without_a_manifest_and_slots_a_function_has_none(world):
    created = world.post_function({})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["inputs"] == body["outputs"] == body["arguments"] == []


def test_our_own_names_still_register_with_a_manifest(world):
    spec = {"allowlist": [world.ids["do1"]], "quota": 5, "arguments": [{"name": "a"}]}
    created = world.post_function(spec, manifest=builder_manifest(name="f"))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["has_manifest"] and body["profile"] == "fast" and body["quota"] == 5
    assert body["arguments"] == [{"name": "a", "default": "", "overwritable": True}]


def test_a_manifest_of_only_its_format_is_still_one(world):
    """A manifest with nothing but its format is a manifest (the `fast` profile's), not its
    absence."""
    created = world.post_function({}, manifest=builder_manifest())
    assert created.status_code == 201, created.text
    assert created.json()["has_manifest"] and created.json()["profile"] == "fast"
    got = world.client.get(
        f"/v1/functions/{created.json()['id']}/manifest", headers=world.auth["fo"]
    )
    assert got.json() == {**BUILDER, "profile": {"name": "fast"}}


def test_the_profile_is_teaclaves_without_a_manifest(world):
    """SIMD runs under our builder's `fast` profile, not in Teaclave's WAMR."""
    assert world.post_function({}, SIMD, manifest=builder_manifest(name="f")).status_code == 201
    assert_problem(world.post_function({}, SIMD), 422, "invalid module for profile teaclave")


def test_the_refusal_names_teaclaves_other_executor(world):
    refused = world.post_function({"executor_type": "builtin"})
    assert_problem(refused, 422, "Teaclave's built-in native functions")
    assert_problem(refused, 422, str(executor_refusal("builtin")))  # the facade's words too


def test_an_argument_may_share_an_inputs_name(world):
    """Arguments and files are apart in Teaclave's ABI (argv and the file imports), so a name
    may be both: the argument's value reaches argv, the file stays the task's to assign."""
    spec = {"arguments": [{"key": "in"}], "inputs": [{"name": "in"}], "public": True}
    assert world.post_function(spec).status_code == 201


def test_task_arguments_follow_teaclaves_rule(world):
    """As Teaclave's Task::new: a task gives exactly the overwritable arguments, and every
    other takes its default."""
    spec = teaclave_spec(world) | {"inputs": [], "outputs": [], "public": True}
    function_id = world.post_function(spec).json()["id"]

    def create(arguments: dict):
        body = {"function_id": function_id, "arguments": arguments}
        return world.client.post("/v1/tasks", headers=world.auth["do1"], json=body)

    created = create({"adder1": "5"})
    assert created.status_code == 201, created.text
    assert created.json()["arguments"] == {"adder1": "5", "mode": "sum"}
    assert_problem(create({"adder1": "5", "mode": "other"}), 422, "overwritable arguments")
    assert_problem(create({}), 422, "overwritable arguments ['adder1']")


def test_an_update_takes_teaclaves_names_too(world):
    """Teaclave's update_function names the allowlist and quota its way: never ignored."""
    function_id = world.post_function({"quota": 3}).json()["id"]

    def patch(body: dict):
        url = f"/v1/functions/{function_id}"
        return world.client.patch(url, headers=world.auth["fo"], json=body)

    changed = patch({"user_allowlist": [world.ids["do1"]], "usage_quota": None})
    assert changed.status_code == 200, changed.text
    assert changed.json()["allowlist"] == [world.ids["do1"]] and changed.json()["quota"] == -1
    assert patch({"executor_type": "wamr", "usage_quota": 2}).json()["quota"] == 2
    assert_problem(patch({"executor_type": "mesapy"}), 422, "executor type 'mesapy'")
    assert_problem(patch({"quota": 1, "usage_quota": 1}), 422, "not both")
