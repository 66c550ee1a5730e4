"""Migrations that change what stored rows mean, run on SQLite from the revision before them
with rows as that revision stored them."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from teaclave_infer.domain.db import MIGRATIONS, make_engine, migrate


def _upgrade(engine: sa.Engine, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as connection, connection.begin():
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def test_functions_stored_before_0008_keep_having_a_manifest(tmp_path: Path) -> None:
    """A function stored with an empty manifest before the flag existed was registered with
    one (the API took any object): it keeps its statuses, it does not become a manifest-less
    Teaclave function."""
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    _upgrade(engine, "0007")
    now = "2026-12-01 00:00:00"
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO users (id, username, password_hash, role, attribute, created_at, "
                "token_epoch) VALUES ('u1', 'owner', 'x', 'FunctionOwner', '', :now, 0)"
            ),
            {"now": now},
        )
        for fid, manifest in (("f-empty", {}), ("f-full", {"profile": {"name": "native"}})):
            conn.execute(
                sa.text(
                    "INSERT INTO functions (id, sha256, owner_id, name, description, public, "
                    "allowlist, arguments, inputs, outputs, quota, usage, disabled, profile, "
                    "manifest, size, limits, browser, created_at) VALUES (:id, 'h', 'u1', 'f', "
                    "'', 0, '[]', '[]', '[]', '[]', -1, 0, 0, 'native', :manifest, 1, '{}', 0, "
                    ":now)"
                ),
                {"id": fid, "manifest": json.dumps(manifest), "now": now},
            )
    migrate(engine)
    with engine.connect() as conn:
        rows = dict(conn.execute(sa.text("SELECT id, has_manifest FROM functions")).all())
    assert rows == {"f-empty": 1, "f-full": 1}
    engine.dispose()
