"""Pages of a listing, cut in SQL: the filters, the order, OFFSET and LIMIT all run in the
database, in two statements whatever the page's size (the rows, and how many there are in all)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

__all__ = ["Slice", "page"]

T = TypeVar("T")


@dataclass(frozen=True)
class Slice(Generic[T]):
    """One page of a listing and the number of rows in all of it."""

    items: list[T]
    total: int


def page(session: Session, query: Select[T], offset: int, limit: int) -> Slice[T]:
    """The rows of `query` (filtered and ordered; its order must end on a unique column, so
    that pages neither skip nor repeat a row) from `offset`, at most `limit` of them."""
    counted: Select[Any] = select(func.count()).select_from(query.order_by(None).subquery())
    total = session.scalar(counted) or 0
    items = list(session.scalars(query.offset(offset).limit(limit)))
    return Slice(items=items, total=total)
