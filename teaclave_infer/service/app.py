"""The FastAPI app: storage, the first admin, size limits, the audit log, the routes."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from fastapi import FastAPI, Request, Response
from sqlalchemy.orm import Session, sessionmaker

from .blobs import BlobStore
from .db import make_engine, migrate, session_factory
from .models import AuditEvent, Role, User
from .problems import install, problem_response
from .routes import audit, auth, files, functions, tasks, users
from .security import hash_password, load_secret
from .settings import Settings

__all__ = ["ADMIN", "create_app"]

ADMIN = "admin"
_READ_ONLY = {"GET", "HEAD", "OPTIONS"}


def _first_admin(sessions: sessionmaker[Session], settings: Settings) -> None:
    """Creates the admin on first start, from the password file or a one-time password that is
    printed once."""
    with sessions() as session:
        if session.query(User).filter_by(role=Role.PLATFORM_ADMIN).first() is not None:
            return
        if settings.admin_password_file is not None:
            password = settings.admin_password_file.read_text().strip()
        else:
            password = secrets.token_urlsafe(18)
            print(
                f"teaclave-infer: created user {ADMIN!r} with one-time password {password}",
                flush=True,
            )
        session.add(
            User(username=ADMIN, password_hash=hash_password(password), role=Role.PLATFORM_ADMIN)
        )
        session.commit()


def _audit_record(request: Request, status: int) -> AuditEvent:
    route = request.scope.get("route")
    user_id, username = getattr(request.state, "user", (None, ""))
    return AuditEvent(
        at=datetime.now(UTC),
        user_id=user_id,
        username=username,
        action=f"{request.method} {getattr(route, 'path', request.url.path)}"[:64],
        targets=dict(request.path_params),
        status=status,
    )


def create_app(settings: Settings) -> FastAPI:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    migrate(engine)  # the schema at the newest revision
    sessions = session_factory(engine)
    _first_admin(sessions, settings)

    app = FastAPI(title="teaclave-infer", version="1", docs_url="/docs")
    app.state.settings, app.state.engine, app.state.sessions = settings, engine, sessions
    app.state.secret = load_secret(settings.secret_file)
    app.state.blobs = BlobStore(settings.blob_dir)
    install(app)
    for router in (
        auth.router,
        users.router,
        functions.router,
        files.router,
        tasks.router,
        audit.router,
    ):
        app.include_router(router)

    @app.middleware("http")
    async def limits_and_audit(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        kind = request.headers.get("content-type", "")
        upload = kind.startswith(("multipart/", "application/octet-stream"))
        limit = settings.max_upload_bytes if upload else settings.max_body_bytes
        if length is not None and (not length.isdigit() or int(length) > limit):
            return problem_response(413, "Request too large", f"the body is over {limit} bytes")
        response = await call_next(request)
        if request.method not in _READ_ONLY:  # every state-changing request, whatever its outcome
            with sessions() as session:
                session.add(_audit_record(request, response.status_code))
                session.commit()
        return response

    return app
