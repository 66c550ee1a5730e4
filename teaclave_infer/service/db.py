"""The database: engine, sessions and migrations. The only module that knows SQL dialects."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from sqlalchemy import CursorResult, Engine, Update, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["changed", "make_engine", "migrate", "session_factory"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    # With WAL, NORMAL survives a crash of the process (it syncs at checkpoints), not of the OS.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url.replace("postgresql://", "postgresql+psycopg://", 1), pool_pre_ping=True
    )


def migrate(engine: Engine) -> None:
    """Brings the schema to the newest revision (Alembic)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def changed(session: Session, statement: Update) -> int:
    """Rows an UPDATE changed: how a compare-and-swap tells whether it won."""
    return cast(CursorResult[Any], session.execute(statement)).rowcount
