"""A user name in the form of a user id: the platform refuses it, and the Teaclave facade, which
takes ids where Teaclave's scripts give names, never lets such a name stand for the user whose
id it spells (Mallory registered as "<Bob's id>" would otherwise receive Bob's outputs). And
the facade keeps no login password."""

from __future__ import annotations

import uuid
import warnings

import pytest
import requests
from service_helpers import TestClientAdapter as InProcess
from service_helpers import assert_problem
from teaclave_client.teaclave import AuthenticationService, InsecureConnection
from teaclave_client.teaclave._ids import Directory

URL = "http://platform.test"


@pytest.mark.parametrize(
    "shape", [lambda u: u.hex, lambda u: u.hex.upper(), str, lambda u: str(u).upper()]
)
def test_platform_refuses_a_username_shaped_like_an_id(client, admin, shape) -> None:
    bob = client.post(
        "/v1/users",
        headers=admin,
        json={"username": "bob", "password": "bob-password-1", "role": "DataOwner"},
    )
    assert bob.status_code == 201, bob.text
    name = shape(uuid.UUID(bob.json()["id"]))
    response = client.post(
        "/v1/users",
        headers=admin,
        json={"username": name, "password": "mallory-password-1", "role": "DataOwner"},
    )
    assert response.status_code in (400, 422), response.text
    assert "form of a user id" in response.json()["detail"]


def test_platform_still_takes_names_near_the_form(client, admin) -> None:
    for name in ["a" * 31, "a" * 33, "g" * 32, "bob-2026"]:
        response = client.post(
            "/v1/users",
            headers=admin,
            json={"username": name, "password": "some-password-1", "role": "DataOwner"},
        )
        assert response.status_code == 201, (name, response.text)


def test_facade_takes_an_id_shaped_name_as_the_id() -> None:
    bob, mallory = uuid.uuid4().hex, uuid.uuid4().hex
    directory = Directory()
    directory.learn(URL, bob, mallory)  # as an older platform would have let Mallory be named
    directory.learn(URL, "alice", uuid.uuid4().hex)
    assert directory.user_id(URL, bob, "owner") == bob
    assert directory.user_ids(URL, [bob.upper(), str(uuid.UUID(bob))], "owner") == [bob, bob]
    assert directory.name(URL, mallory) == mallory  # never shown under Bob's id as a name
    assert directory.name(URL, bob) == bob


def test_facade_still_translates_names_it_learned() -> None:
    directory = Directory()
    alice = uuid.uuid4().hex
    directory.learn(URL, "alice", alice)
    assert directory.user_id(URL, "alice", "owner") == alice
    assert directory.name(URL, alice) == "alice"


def test_problem_shape(client, admin) -> None:
    response = client.post(
        "/v1/users",
        headers=admin,
        json={"username": uuid.uuid4().hex, "password": "mallory-password-1", "role": "DataOwner"},
    )
    assert_problem(response, response.status_code, "form of a user id")


def test_the_facade_keeps_no_password_after_login(client, admin) -> None:
    """A login's password is not kept on the service or its SDK client (a core dump, a
    debugger or a careless repr would show it)."""
    password = "a-password-to-forget-1"
    made = client.post(
        "/v1/users",
        headers=admin,
        json={"username": "forgetful", "password": password, "role": "DataOwner"},
    )
    assert made.status_code == 201, made.text
    session = requests.Session()
    session.mount(str(client.base_url), InProcess(client))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureConnection)  # the in-process app's test URL
        auth = AuthenticationService(str(client.base_url), session=session)
    auth.user_login("forgetful", password)
    held = [vars(auth), vars(auth.client), vars(type(auth))]
    assert not any(password in repr(v) for v in held)
