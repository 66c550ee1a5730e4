"""The FastAPI app: storage, the first admin, size limits, the audit log, the routes."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from ..domain.blobs import LocalBlobStore
from ..domain.db import make_engine, migrate, session_factory
from ..domain.keys import PlatformKeys
from ..domain.models import Role, User
from ..domain.password_policy import weakness
from ..domain.passwords import hash_password
from ..domain.settings import Settings, private_data_dir
from ..domain.signals import signals_for
from ..errors import TeaclaveInferError
from .deps import Platform
from .middleware import AuditLog, BodyLimit
from .problems import install
from .routes import (
    apidocs,
    audit,
    auth,
    files,
    functions,
    platform,
    tasks,
    users,
    web,
    worker_blobs,
)
from .routes.platform import metrics_registry
from .security import load_secret
from .waits import TaskWaits

__all__ = ["ADMIN", "create_app"]

ADMIN = "admin"


def _first_admin(sessions: sessionmaker[Session], settings: Settings) -> None:
    """Creates the admin on first start, from the password file or a one-time password that is
    printed once."""
    with sessions() as session:
        if session.query(User).filter_by(role=Role.PLATFORM_ADMIN).first() is not None:
            return
        if (path := settings.admin_password_file) is not None:
            try:
                password = path.read_text().strip()
            except (OSError, UnicodeDecodeError) as err:
                message = f"cannot read the admin password file {path}: {err}"
                raise TeaclaveInferError(message) from err
            if (reason := weakness(password, ADMIN)) is not None:
                raise TeaclaveInferError(
                    f"the admin password in {path} {reason}: write a stronger one there"
                )
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


def create_app(settings: Settings) -> FastAPI:
    """The service: the API only. Tasks run in worker processes (`serve --workers N` supervises
    them, `teaclave-infer worker` runs elsewhere); this process never runs one."""
    private_data_dir(settings)
    engine = make_engine(settings.database_url)
    migrate(engine)  # the schema at the newest revision
    sessions = session_factory(engine)
    _first_admin(sessions, settings)
    signals = signals_for(settings.database_url)
    waits = TaskWaits(signals)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with waits.running():  # long-polls hear tasks end (Channel.ENDED)
            yield

    # /docs and /redoc are routes/apidocs.py's: FastAPI's own load their scripts from a CDN.
    app = FastAPI(
        title="teaclave-infer", version="1", docs_url=None, redoc_url=None, lifespan=lifespan
    )
    app.state.platform = Platform(
        settings=settings,
        sessions=sessions,
        blobs=LocalBlobStore(settings.blob_dir),
        keys=PlatformKeys.load_or_create(settings.keys_dir),
        signals=signals,
        secret=load_secret(settings.secret_file),
        metrics=metrics_registry(sessions, settings.workers),
        waits=waits,
    )
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
        apidocs.router,
        worker_blobs.router,
    ):
        app.include_router(router)

    # Added innermost first: the audit log sees the 413s of the body limit.
    app.add_middleware(
        BodyLimit, body_bytes=settings.max_body_bytes, upload_bytes=settings.max_upload_bytes
    )
    app.add_middleware(AuditLog, sessions=sessions)
    return app
