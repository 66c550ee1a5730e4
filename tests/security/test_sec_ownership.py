"""An attacker with an account names objects that are not theirs: another user's blob, a private
function's wasm, another user's file place; the admin reaches for what belongs to owners; a user
is named co-owner of a file without consent."""

from __future__ import annotations

import uuid

import pytest
from guests import guest
from platform_helpers import Platform
from service_helpers import assert_problem, builder_manifest, login, make_user

NOTHING = "(i32.const 0)"  # the tests here register functions, none runs


@pytest.fixture
def p(client) -> Platform:
    return Platform(client)


def _register_input(p: Platform, who: str, url: str, cmac: str = "00" * 16, **more):
    body = {"id": uuid.uuid4().hex, "url": url, "schema": "raw", "iv": "", "cmac": cmac, **more}
    return p.client.post("/v1/files/inputs", headers=p.auth[who], json=body)


def _register_output(p: Platform, who: str, url: str):
    return p.client.post(
        "/v1/files/outputs",
        headers=p.auth[who],
        json={"id": (i := uuid.uuid4().hex), "url": url, "schema": "aes-gcm-128"}
        | {"wrapped_key": p.wrap(bytes(16), i, "aes-gcm-128")},
    )


def test_a_blob_is_registered_only_by_its_uploader(p: Platform):
    victim_blob = p.upload("do1", b"do1's ciphertext")
    function_id = p.register_guest(NOTHING, public=False)  # its id is its wasm's blob id
    for who in ("do2", "fo"):
        for url in (victim_blob, "blob:" + "0" * 32):
            assert_problem(_register_input(p, who, url), 422, "not a blob you uploaded")
        for url in (victim_blob.upper(), f"blob:{victim_blob}", victim_blob + "/"):
            assert _register_input(p, who, url).status_code == 422
    p.auth["admin"] = p.admin
    for who in ("do2", "admin"):
        assert_problem(_register_input(p, who, f"blob:{function_id}"), 422, "you uploaded")
    assert _register_input(p, "do1", victim_blob).status_code == 201


def test_content_is_served_to_owners_only_and_with_its_tag_checked(p: Platform):
    file_id = p.input("do1", b"secret digit")
    ok = p.client.get(f"/v1/files/{file_id}/content", headers=p.auth["do1"])
    assert ok.status_code == 200 and ok.content == p.last_sealed
    for who in ("do2", "fo"):
        r = p.client.get(f"/v1/files/{file_id}/content", headers=p.auth[who])
        assert_problem(r, 404, "no file")
    assert_problem(p.client.get(f"/v1/files/{file_id}/content", headers=p.admin), 404, "no file")
    # The uploader registers its own blob with a cmac that is not the bytes' own: not served.
    lying = _register_input(p, "do1", p.upload("do1", b"other bytes"), cmac="ab" * 16)
    assert lying.status_code == 201, lying.text
    r = p.client.get(f"/v1/files/{lying.json()['id']}/content", headers=p.auth["do1"])
    assert_problem(r, 409, "not its cmac")


def test_a_private_function_belongs_to_its_owner_alone(p: Platform):
    function_id = p.register_guest(NOTHING, public=False, allowlist=[p.ids["do1"]])
    payload = f"/v1/functions/{function_id}/payload"
    assert p.client.get(payload, headers=p.auth["do1"]).status_code == 200
    assert p.client.get(payload, headers=p.auth["do2"]).status_code == 404
    assert p.client.get(payload, headers=p.admin).status_code == 403
    admin_id = p.client.get("/v1/users/me", headers=p.admin).json()["id"]
    for change in ({"allowlist": [admin_id]}, {"public": True}, {"browser": True}):
        r = p.client.patch(f"/v1/functions/{function_id}", headers=p.admin, json=change)
        assert_problem(r, 403, "only the function's owner")
    assert p.client.get(payload, headers=p.admin).status_code == 403
    # What the admin may do: disable it.
    r = p.client.patch(f"/v1/functions/{function_id}", headers=p.admin, json={"disabled": True})
    assert r.status_code == 200 and r.json()["disabled"] is True
    # Only its owner sees who is on its allowlist.
    seen = {
        who: p.client.get(f"/v1/functions/{function_id}", headers=auth).json()["allowlist"]
        for who, auth in (("fo", p.auth["fo"]), ("do1", p.auth["do1"]), ("admin", p.admin))
    }
    assert seen == {"fo": [p.ids["do1"]], "do1": [], "admin": []}


@pytest.mark.parametrize(
    "spelling",
    [
        "file:///srv/data/x.bin",
        "file:///srv/data/./x.bin",
        "file:///srv/data/sub/../x.bin",
        "file:////srv//data/x.bin",
        "file://localhost/srv/data/x.bin",
        "file:///srv/data/%78.bin",
        "file:///srv/data/x.bin?v=2#f",
        "file:///srv/data/x.bin/",
    ],
)
def test_an_output_never_names_another_users_place(p: Platform, spelling: str):
    assert _register_input(p, "do1", "file:///srv/data/x.bin").status_code == 201
    assert_problem(_register_output(p, "do2", spelling), 409, "another user's file")
    assert _register_output(p, "do1", spelling).status_code == 201  # the same owner's own place


@pytest.mark.parametrize(
    "spelling",
    [
        "http://files.example/a/b?v=1",
        "http://FILES.EXAMPLE:80/a/./b?v=1",
        "http://files.example./a/c/../b?v=1",
        "http://files.example/a/%62?v=1",
        "http://files.example/a/b?v=1#fragment",
        "http://files.example/a/b/?v=1",
        "http://files.example/a/b?%76=%31",
        "http://\uff46iles.example/a/b?v=1",  # a full-width "f"
    ],
)
def test_an_http_place_in_any_spelling_is_one_place(p: Platform, spelling: str):
    assert _register_output(p, "do1", "http://files.example/a/b?v=1").status_code == 201
    assert_problem(_register_input(p, "do2", spelling), 409, "another user's file")
    assert_problem(_register_output(p, "do2", spelling), 409, "another user's file")


@pytest.mark.parametrize(
    ("first", "other"),
    [
        ("http://93.184.215.14/a", "http://0x5db8d70e/a"),
        ("http://93.184.215.14/a", "http://1572394766/a"),
        ("http://93.184.215.14/a", "http://[::ffff:93.184.215.14]/a"),
        ("http://127.0.0.1/a", "http://127.1/a"),
        ("http://[2001:db8::1]/a", "http://[2001:db8:0:0:0:0:0:1]/a"),
    ],
)
def test_an_address_in_any_spelling_is_one_place(p: Platform, first: str, other: str):
    assert _register_output(p, "do1", first).status_code == 201
    assert_problem(_register_output(p, "do2", other), 409, "another user's file")


def test_urls_with_credentials_or_bad_escapes_are_refused(p: Platform):
    for url in (
        "http://user:pw@files.example/a",
        "file:///srv/%ff",
        "file://host/srv/a",
        "http://[fe80::1%25lo]/a",
    ):
        assert_problem(_register_output(p, "do1", url), 422, "url:")


def test_co_owners_must_accept(p: Platform):
    do2 = p.ids["do2"]
    blob = p.upload("do1", b"x")
    r = _register_input(p, "do1", blob, owners=[do2])
    assert r.status_code == 201 and r.json()["owners"] == [p.ids["do1"]]
    assert r.json()["pending_owners"] == [do2]
    file_id = r.json()["id"]
    # Not do2's until accepted: not in their name, not readable, not usable.
    assert p.client.get(f"/v1/files/{file_id}", headers=p.auth["do2"]).status_code == 404
    function_id = p.register_guest(NOTHING)
    task = p.client.post(
        "/v1/tasks",
        headers=p.auth["do1"],
        json={
            "function_id": function_id,
            "arguments": {"in": "in", "out": "out"},
            "inputs_ownership": [{"name": "in", "owners": sorted([p.ids["do1"], do2])}],
            "outputs_ownership": [{"name": "out", "owners": [p.ids["do1"]]}],
        },
    ).json()
    assign = f"/v1/tasks/{task['id']}/assign"
    r = p.client.post(assign, headers=p.auth["do1"], json={"inputs": {"in": file_id}})
    assert_problem(r, 409, "waits for its co-owners")
    # Someone else cannot accept for do2; do2 can.
    assert p.client.post(f"/v1/files/{file_id}/accept", headers=p.auth["fo"]).status_code == 404
    r = p.client.post(f"/v1/files/{file_id}/accept", headers=p.auth["do2"])
    assert r.status_code == 200 and r.json()["owners"] == sorted([p.ids["do1"], do2])
    r = p.client.post(assign, headers=p.auth["do1"], json={"inputs": {"in": file_id}})
    assert r.status_code == 200, r.text


def test_a_named_co_owner_can_decline(p: Platform):
    do3 = make_user(p.client, p.admin, "do3")
    blob = p.upload("do1", b"x")
    r = _register_input(p, "do1", blob, owners=[do3])
    file_id = r.json()["id"]
    p.auth["do3"] = login(p.client, "do3", "do3-password")
    assert p.client.post(f"/v1/files/{file_id}/decline", headers=p.auth["do3"]).status_code == 204
    meta = p.client.get(f"/v1/files/{file_id}", headers=p.auth["do1"]).json()
    assert meta["owners"] == [p.ids["do1"]] and meta["pending_owners"] == []
    assert p.client.post(f"/v1/files/{file_id}/accept", headers=p.auth["do3"]).status_code == 404


def _separate_weights_function(p: Platform) -> str:
    manifest = builder_manifest(weights={"mode": "separate"})
    return p.register(guest(NOTHING), manifest, public=True, browser=True)


def test_browser_weights_are_a_file_of_the_function_owners_alone(p: Platform):
    """Their key goes to every user of the function: a co-owned file would be given away by
    one of its owners."""
    fid = _separate_weights_function(p)
    blob = p.upload("do1", b"do1's weights")
    r = _register_input(p, "do1", blob, owners=[p.ids["fo"]])
    shared = r.json()["id"]
    for accepted in (False, True):
        if accepted:
            assert (
                p.client.post(f"/v1/files/{shared}/accept", headers=p.auth["fo"]).status_code == 200
            )
        r = p.client.patch(
            f"/v1/functions/{fid}", headers=p.auth["fo"], json={"browser_weights": shared}
        )
        assert_problem(r, 422, "of the owner's alone")
    assert p.client.get(f"/v1/functions/{fid}/browser", headers=p.auth["do2"]).status_code == 409


def test_browser_weights_whose_key_does_not_unwrap_are_refused(p: Platform):
    fid = _separate_weights_function(p)
    blob = p.upload("fo", b"x")
    r = p.client.post(
        "/v1/files/inputs",
        headers=p.auth["fo"],
        json={
            "id": uuid.uuid4().hex,
            "url": blob,
            "schema": "aes-gcm-128",
            "iv": "00" * 12,
            "cmac": "00" * 16,
            "wrapped_key": "AAAA",
        },
    )
    assert r.status_code == 201, r.text
    patch = {"browser_weights": r.json()["id"]}
    r = p.client.patch(f"/v1/functions/{fid}", headers=p.auth["fo"], json=patch)
    assert_problem(r, 422, "does not unwrap")
