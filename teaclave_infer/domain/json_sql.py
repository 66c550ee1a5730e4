"""JSON in SQL: the one test on a JSON column that listings need, spelled for each database.

A function's allowlist is a JSON array of user ids; "may this user run it" must be a WHERE
clause, so that a listing is filtered and paged in the database (not loaded whole and filtered
here). SQLite has `json_each`, PostgreSQL `jsonb` containment: both test whole elements (an id
that is part of another, or a quote inside one, never matches)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, ColumnElement, bindparam
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

__all__ = ["json_array_has"]


class _ArrayHas(FunctionElement[bool]):
    type = Boolean()
    inherit_cache = True
    name = "json_array_has"


def json_array_has(
    column: ColumnElement[Any] | InstrumentedAttribute[Any], text: str
) -> ColumnElement[bool]:
    """True where `column`, a JSON array, has the string `text` as one of its elements."""
    return _ArrayHas(column, bindparam(None, text, type_=None))


def _parts(element: _ArrayHas, compiler: SQLCompiler, **kw: Any) -> tuple[str, str]:
    column, text = element.clauses
    return compiler.process(column, **kw), compiler.process(text, **kw)


@compiles(_ArrayHas, "sqlite")
def _sqlite(element: _ArrayHas, compiler: SQLCompiler, **kw: Any) -> str:
    column, text = _parts(element, compiler, **kw)
    return f"EXISTS (SELECT 1 FROM json_each({column}) AS elements WHERE elements.value = {text})"


@compiles(_ArrayHas, "postgresql")
def _postgresql(element: _ArrayHas, compiler: SQLCompiler, **kw: Any) -> str:
    column, text = _parts(element, compiler, **kw)
    return f"(CAST({column} AS JSONB) @> jsonb_build_array(CAST({text} AS TEXT)))"


@compiles(_ArrayHas)
def _other(element: _ArrayHas, compiler: SQLCompiler, **kw: Any) -> str:
    raise NotImplementedError(f"json_array_has on {compiler.dialect.name}: SQLite or PostgreSQL")
