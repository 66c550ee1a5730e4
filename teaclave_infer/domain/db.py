"""The database: engine, sessions and migrations. With json_sql.py (a JSON test that listings
need), the only module that knows SQL dialects."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import URL, Connection, CursorResult, Engine, Update, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import TeaclaveInferError
from .errors import Unavailable

__all__ = [
    "LostSwap",
    "changed",
    "describe",
    "make_engine",
    "migrate",
    "not_awaiting_disk",
    "retried",
    "session_factory",
    "swap",
]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
T = TypeVar("T")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    # With WAL, NORMAL survives a crash of the process (it syncs at checkpoints), not of the OS.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _storable_json(value: Any) -> str:
    """JSON columns' serializer, the last resort behind the request schemas: what could not be
    read back and sent in a response (NaN, infinities, a lone surrogate) fails the flush, so it
    is never committed."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    text.encode("utf-8")  # UnicodeEncodeError on a lone surrogate
    return text


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False}, json_serializer=_storable_json
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url.replace("postgresql://", "postgresql+psycopg://", 1),
        pool_pre_ping=True,
        json_serializer=_storable_json,
    )


def describe(url: URL) -> str:
    """Where a database is, for a message: never its password."""
    if url.get_backend_name() == "sqlite":
        return f"SQLite database {url.database}"
    where = f"{url.host or 'localhost'}:{url.port or 5432}"
    return f"PostgreSQL at {where} (database {url.database!r}, user {url.username!r})"


def migrate(engine: Engine) -> None:
    """Brings the schema to the newest revision (Alembic); Unavailable, one line naming the
    database, if it cannot be reached (the first connection a process makes is this one)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        connection = engine.connect()
    except OperationalError as err:
        reason = str(err.orig).strip().splitlines()[0] if str(err.orig).strip() else "refused"
        raise Unavailable(f"cannot connect to the {describe(engine.url)}: {reason}") from None
    with connection, connection.begin():
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def not_awaiting_disk(connection: Connection) -> None:
    """Lets this transaction's commit return before PostgreSQL has flushed it to disk (nothing
    on SQLite, whose WAL with synchronous=NORMAL does not wait either). Only for writes that a
    crash may lose safely: a queue's claim, start or renewal, which a crash of the database
    undoes as if the lease had run out (the task is claimed again). A result is never one."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL synchronous_commit = off")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def changed(session: Session, statement: Update) -> int:
    """Rows an UPDATE changed: how a compare-and-swap tells whether it won."""
    return cast(CursorResult[Any], session.execute(statement)).rowcount


class LostSwap(TeaclaveInferError):
    """A compare-and-swap found its row changed since it was read: read again and retry."""


def swap(session: Session, statement: Update) -> None:
    """Executes a compare-and-swap UPDATE (its WHERE names what was read); LostSwap unless it
    changed exactly one row. Both databases make it atomic: PostgreSQL re-checks the WHERE on
    the newest row once a concurrent writer commits, SQLite lets one writer in at a time."""
    if changed(session, statement) != 1:
        raise LostSwap(str(statement.table))


def _committed(session: Session, attempt: Callable[[], T]) -> T:
    try:
        result = attempt()
        session.commit()
    except BaseException:
        session.rollback()  # the attempt's writes go together
        raise
    return result


def retried(session: Session, attempt: Callable[[], T], tries: int = 16) -> T:
    """Runs `attempt` (reads, then writes guarded by `swap`) and commits it. When a swap is
    lost, everything the attempt wrote is rolled back and it runs again on what is committed
    now; each loss means another writer committed, so `tries` bounds it under as many
    concurrent writers. Raises LostSwap if the last try loses too."""
    for _ in range(tries - 1):
        try:
            return _committed(session, attempt)
        except LostSwap:
            pass
    return _committed(session, attempt)
