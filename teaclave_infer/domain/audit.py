"""The audit log, as the admin reads it: filtered and paged in SQL, oldest first."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import AuditEvent
from .pages import Slice, page

__all__ = ["events"]


def events(
    session: Session,
    *,
    user_id: str | None = None,
    action: str | None = None,
    status: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: int = 0,
    limit: int = 100,
) -> Slice[AuditEvent]:
    """The events that match every filter given (`since` inclusive, `until` exclusive)."""
    query = select(AuditEvent)
    for column, value in (
        (AuditEvent.user_id, user_id),
        (AuditEvent.action, action),
        (AuditEvent.status, status),
    ):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    return page(session, query.order_by(AuditEvent.id), offset, limit)
