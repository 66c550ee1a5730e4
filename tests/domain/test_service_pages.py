"""Listings are cut in SQL: the right rows in a stable order, and a page costs the same number
of statements whatever its size (no query per row, nothing loaded whole and sliced here)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from guests import guest
from platform_helpers import Platform
from sqlalchemy import Engine, event

NOOP = guest("(i32.const 0)")


@pytest.fixture
def world(client) -> Platform:
    return Platform(client)


@contextmanager
def statements(world: Platform) -> Iterator[list[str]]:
    """The SQL statements the app runs meanwhile."""
    engine: Engine = world.client.app.state.platform.sessions.kw["bind"]  # type: ignore[union-attr]
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _ids(world: Platform, who: str, **params: object) -> tuple[list[str], int]:
    r = world.client.get("/v1/functions", headers=world.auth[who], params=params)
    assert r.status_code == 200, r.text
    return [f["id"] for f in r.json()["items"]], r.json()["total"]


def _functions(world: Platform) -> dict[str, str]:
    """Functions of every kind of access, registered in this order."""
    do1 = world.ids["do1"]
    made = {
        "public": world.register(NOOP),
        "allowed": world.register(NOOP, public=False, allowlist=[do1]),
        "private": world.register(NOOP, public=False),
        "quoted": world.register(NOOP, public=False),
        "longer": world.register(NOOP, public=False),
        "other name": world.register(NOOP, name="g"),
    }
    # Allowlists that hold do1's id but not as an element: never a match.
    for name, allowlist in (("quoted", [f'x"{do1}']), ("longer", [do1 + "0", "0" + do1])):
        r = world.client.patch(
            f"/v1/functions/{made[name]}", headers=world.auth["fo"], json={"allowlist": allowlist}
        )
        assert r.status_code == 200, r.text
    return made


def test_functions_are_listed_by_access_in_sql(world):
    made = _functions(world)
    mine, total = _ids(world, "fo", scope="mine")
    assert mine == list(made.values()) and total == len(made)
    allowed = [made["public"], made["allowed"], made["other name"]]
    assert _ids(world, "do1") == (allowed, 3)
    assert _ids(world, "do2") == ([made["public"], made["other name"]], 2)
    assert _ids(world, "do1", name="f") == (allowed[:2], 2)
    assert _ids(world, "do1", offset=1, limit=1) == ([made["allowed"]], 3)
    assert _ids(world, "do1", offset=3) == ([], 3)


@pytest.mark.parametrize(
    ("path", "who"),
    [
        ("/v1/functions", "do1"),
        ("/v1/functions?scope=mine", "fo"),
        ("/v1/users", "admin"),
        ("/v1/audit", "admin"),
    ],
)
def test_a_page_costs_the_same_statements_whatever_its_size(world, path, who):
    _functions(world)
    headers = world.admin if who == "admin" else world.auth[who]
    counts = []
    for limit in (1, 500):
        with statements(world) as seen:
            r = world.client.get(path, headers=headers, params={"limit": limit})
        assert r.status_code == 200, r.text
        assert len(r.json()["items"]) == min(limit, r.json()["total"])
        counts.append(len(seen))
    assert counts[0] == counts[1], counts
    assert counts[1] <= 6, counts  # the caller's token (2), the count and the page
