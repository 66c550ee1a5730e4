"""Two ASGI middlewares around every request: body size limits enforced while the body streams,
and the audit log. Pure ASGI (not Starlette's BaseHTTPMiddleware) so that a request ending in an
unhandled exception is still audited, and so that no database work runs on the event loop."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..domain.models import AuditEvent, User
from .problems import problem_response

__all__ = ["AuditLog", "BodyLimit"]

_UPLOADS = ("multipart/", "application/octet-stream")
_READ_ONLY = {"GET", "HEAD", "OPTIONS"}


class BodyLimit:
    """Refuses a body over its limit (uploads have their own) with a 413: at once when its
    Content-Length says so, and while it streams otherwise (a chunked body is cut off at the
    limit, never read whole)."""

    def __init__(self, app: ASGIApp, body_bytes: int, upload_bytes: int) -> None:
        self.app, self.body_bytes, self.upload_bytes = app, body_bytes, upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        upload = headers.get("content-type", "").startswith(_UPLOADS)
        limit = self.upload_bytes if upload else self.body_bytes
        detail = f"the body is over {limit} bytes"
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await problem_response(413, "Request too large", detail)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:  # FastAPI re-raises an HTTPException met while reading the body
                raise HTTPException(413, detail)
            return message

        await self.app(scope, limited, send)


class AuditLog:
    """Writes one audit row for every state-changing request and every failed one (status
    >= 400, unhandled exceptions as 500), in a worker thread: the event loop never waits for a
    database connection."""

    def __init__(self, app: ASGIApp, sessions: sessionmaker[Session]) -> None:
        self.app, self.sessions = app, sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            status = 500
            raise
        finally:
            if scope["method"] not in _READ_ONLY or status >= 400:
                await anyio.to_thread.run_sync(self._write, _record(scope, status))

    def _write(self, event: dict[str, Any]) -> None:
        with self.sessions() as session:
            if (user_id := event["user_id"]) is not None:  # the account may be gone since
                event["user_id"] = select(User.id).where(User.id == user_id).scalar_subquery()
            session.execute(insert(AuditEvent).values(event))
            session.commit()


def _record(scope: Scope, status: int) -> dict[str, Any]:
    user_id, username = scope.get("state", {}).get("user", (None, ""))
    path = getattr(scope.get("route"), "path", scope["path"])
    targets: dict[str, Any] = {
        k: _clip(str(v), 64) for k, v in scope.get("path_params", {}).items()
    }
    return {
        "at": datetime.now(UTC),
        "user_id": user_id,
        "username": username,
        "action": _clip(f"{scope['method']} {path}", 64),
        "targets": targets,
        "status": status,
    }


def _clip(text: str, limit: int) -> str:
    """Text that fits its column and encodes as UTF-8 (a path may hold a lone surrogate)."""
    return text.encode("utf-8", "replace").decode()[:limit]
