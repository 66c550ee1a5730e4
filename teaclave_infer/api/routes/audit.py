"""The audit log, for admins."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from sqlalchemy import func, select

from ...domain.models import AuditEvent
from ..bounded import Filter, Limit, Offset, Status
from ..deps import AdminUser, SessionDep
from ..schemas import AuditPublic, Page

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("")
def list_events(
    admin: AdminUser,
    session: SessionDep,
    user_id: Filter = None,
    action: Filter = None,
    status: Status = None,
    since: datetime | None = None,
    until: datetime | None = None,
    offset: Offset = 0,
    limit: Limit = 100,
) -> Page[AuditPublic]:
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
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(AuditEvent.id).offset(offset).limit(limit))
    return Page(
        items=[AuditPublic.model_validate(e) for e in rows], total=total, offset=offset, limit=limit
    )
