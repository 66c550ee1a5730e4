"""The audit log, for admins (domain/audit.py)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter

from ...domain import audit
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
    found = audit.events(
        session,
        user_id=user_id,
        action=action,
        status=status,
        since=since,
        until=until,
        offset=offset,
        limit=limit,
    )
    items = [AuditPublic.model_validate(e) for e in found.items]
    return Page(items=items, total=found.total, offset=offset, limit=limit)
