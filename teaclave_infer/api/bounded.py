"""Bounded field types: every number and string a request carries, bounded by what the database
column, the executor and a JSON reader accept. A value past them is a 422 naming the field,
never a 500, and never a row that is stored and then fails every later read (a lone surrogate
committed in a task's arguments once made `GET /v1/tasks` a 500 for everyone taking part)."""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BaseModel, Field, model_validator
from teaclave_client.vocabulary import FUEL

__all__ = [
    "INT32_MAX",
    "INT64_MAX",
    "MAX_DEPTH",
    "Body",
    "Filter",
    "Fuel",
    "Id",
    "Limit",
    "Name",
    "Offset",
    "Quota",
    "Status",
    "check_json",
    "check_text",
    "one_of",
]

INT32_MAX = 2**31 - 1  # SQL INTEGER: PostgreSQL's int4 (SQLite's holds 64 bits)
INT64_MAX = 2**63 - 1  # SQLite's and PostgreSQL's widest integers; wasmtime's fuel is a u64
MAX_DEPTH = 32  # JSON nesting: far past any real body, far below Python's recursion limit

# Query and path parameters. Query strings and paths are decoded with replacement characters, so
# they never hold a lone surrogate; NUL is refused because PostgreSQL's text cannot hold it.
Offset = Annotated[int, Query(ge=0, le=INT32_MAX)]
Limit = Annotated[int, Query(ge=1, le=500)]
Status = Annotated[int | None, Query(ge=100, le=599)]  # an HTTP status, for the audit log
Filter = Annotated[str | None, Query(max_length=128, pattern=r"^[^\x00]*$")]
# The platform's ids are 32 hex digits; anything else of this shape is simply not found.
Id = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]

# Body fields.
Quota = Annotated[int, Field(ge=-1, le=INT32_MAX)]  # invocations; -1: unlimited
Fuel = Annotated[int, Field(gt=0, le=FUEL.function_max)]
Name = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")  # slots, arguments


def one_of(names: list[str]) -> str:
    """A pattern matching exactly one of `names` (a vocabulary's values)."""
    return "^(" + "|".join(re.escape(name) for name in names) + ")$"


def _shown(key: str) -> str:
    """A key as it can be shown in a message: JSON-escaped unless it is a plain name."""
    return key if key.isidentifier() else json.dumps(key)


def check_text(text: str, where: str = "") -> None:
    """Raises ValueError unless `text` is UTF-8 (no lone surrogate) without NUL: what both
    databases store and what every response can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{where or 'text'}: not UTF-8 (a lone surrogate)") from None
    if "\x00" in text:
        raise ValueError(f"{where or 'text'}: holds NUL")


def check_json(value: Any, where: str = "") -> None:
    """Raises ValueError naming the first place in `value` (parsed JSON) that could not be
    stored and read back: text `check_text` refuses (object keys too), a float that is not
    finite (JSON has no NaN), an integer past 64 bits, nesting deeper than MAX_DEPTH. Walks
    without recursion, so no depth can exhaust the stack."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, at, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"{at or 'the body'}: nested deeper than {MAX_DEPTH}")
        if isinstance(item, str):
            check_text(item, at)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not -INT64_MAX - 1 <= item <= INT64_MAX:
                raise ValueError(f"{at or 'number'}: an integer past 64 bits")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"{at or 'number'}: not a finite number")
        elif isinstance(item, dict):
            for key, inner in item.items():
                if isinstance(key, str):
                    check_text(key, f"{at}: a key" if at else "a key")
                    stack.append((inner, f"{at}.{_shown(key)}" if at else _shown(key), depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((inner, f"{at}[{i}]", depth + 1) for i, inner in enumerate(item))


class Body(BaseModel):
    """A request body: before its fields are read, the whole of it must pass `check_json`,
    so that no string anywhere in it (free-form `Any` values and dict keys included) holds
    what the database cannot store or a response cannot carry."""

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        if isinstance(data, dict | list):
            check_json(data)
        return data
