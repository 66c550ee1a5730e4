"""The FastAPI app: storage, the first admin, size limits, the audit log, the routes."""

from __future__ import annotations

import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from fastapi import FastAPI, Request, Response
from sqlalchemy.orm import Session, sessionmaker

from .blobs import BlobStore
from .db import make_engine, migrate, session_factory
from .keys import PlatformKeys
from .models import AuditEvent, Role, User
from .problems import install, problem_response
from .routes import audit, auth, files, functions, platform, tasks, users, web
from .routes.platform import metrics_registry
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
    """The service. With settings.workers > 0, that many workers run tasks in this process
    from startup to shutdown (the app's lifespan)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    migrate(engine)  # the schema at the newest revision
    sessions = session_factory(engine)
    _first_admin(sessions, settings)
    wake = threading.Event()  # set on invoke: in-process workers start at once

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.workers <= 0:
            yield
            return
        from ..worker import context_for, workers  # the executor, only where tasks run

        with workers(context_for(settings, sessions), settings, settings.workers, wake):
            yield

    app = FastAPI(title="teaclave-infer", version="1", docs_url="/docs", lifespan=lifespan)
    app.state.settings, app.state.engine, app.state.sessions = settings, engine, sessions
    app.state.secret = load_secret(settings.secret_file)
    app.state.blobs = BlobStore(settings.blob_dir)
    app.state.keys = PlatformKeys.load_or_create(settings.keys_dir)
    app.state.metrics = metrics_registry(sessions, settings.workers)
    app.state.wake = wake
    install(app)
    for router in (
        platform.router,
        auth.router,
        users.router,
        functions.router,
        files.router,
        tasks.router,
        audit.router,
        web.router,
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
