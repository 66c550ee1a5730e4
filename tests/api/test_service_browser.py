"""In-browser runs through the API: only what the owner allows, only to users who may run the
function, the separate weights' key handed over only then."""

from __future__ import annotations

import base64
import json

import pytest
from fastapi.testclient import TestClient
from platform_helpers import Platform
from service_helpers import assert_problem

from teaclave_infer.api import create_app


@pytest.fixture
def p(settings) -> Platform:
    return Platform(TestClient(create_app(settings)))


def browser(p: Platform, fid: str, who: str = "do1"):
    return p.client.get(f"/v1/functions/{fid}/browser", headers=p.auth[who])


def patch(p: Platform, fid: str, who: str = "fo", **changes: object):
    return p.client.patch(f"/v1/functions/{fid}", headers=p.auth[who], json=changes)


def test_a_function_runs_in_browsers_only_if_its_owner_says_so(p, mnist):
    wasm, manifest = mnist
    fid = p.register(wasm, manifest, public=False, allowlist=[p.ids["do1"]])
    assert_problem(browser(p, fid), 403, "does not let it run in browsers")
    assert patch(p, fid, browser=True).json()["browser"] is True
    assert_problem(browser(p, fid, "do2"), 404, "")  # not allowed: it stays hidden
    assert_problem(browser(p, fid), 409, "has not set browser_weights")  # separate weights
    assert patch(p, fid, browser=False).status_code == 200
    assert_problem(browser(p, fid), 403, "does not let it run in browsers")


def test_the_weights_and_their_key_go_to_allowed_users(p, mnist, mnist_build):
    wasm, manifest = mnist
    fid = p.register(wasm, manifest, public=True, browser=True)
    weights = mnist_build.weights.read_bytes()
    mine = p.input("fo", weights, schema="aes-gcm-256")
    sealed = p.last_sealed
    others = p.input("do1", b"not the owner's", schema="aes-gcm-256")
    output = p.output("fo")
    protected = p.input("fo", weights, schema="teaclave-file-128")
    for bad, words in [
        (others, "of the owner's"),
        (output, "of the owner's"),
        ("nope", ""),
        (protected, "browsers cannot decrypt teaclave-file-128 files"),
    ]:
        assert_problem(patch(p, fid, browser_weights=bad), 422, words)
    assert_problem(patch(p, fid, "do1", browser_weights=mine), 403, "owner")
    assert patch(p, fid, browser_weights=mine).json()["browser_weights"] == mine

    got = browser(p, fid, "do2").json()
    assert got["function"]["id"] == fid and got["manifest"] == json.loads(manifest)
    w = got["weights"]
    schema, key = p.file_keys[mine]
    assert (w["file_id"], w["schema"], base64.b64decode(w["key"])) == (mine, schema, key)
    content = p.client.get(f"/v1/functions/{fid}/browser/weights", headers=p.auth["do2"])
    assert content.content == sealed
    assert patch(p, fid, browser_weights="").json()["browser_weights"] is None


def test_embedded_weights_need_no_weights_file(p):
    fid = p.register_guest("(i32.const 0)", browser=True)
    got = browser(p, fid).json()
    assert got["weights"] is None
    assert_problem(patch(p, fid, browser_weights="x"), 422, "weights are in its wasm")
