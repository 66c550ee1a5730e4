"""Errors as application/problem+json (RFC 9457), with a message a person can act on.

The one place where the domain's errors become HTTP: each kind has its status here."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..domain import errors as domain

__all__ = ["Problem", "install", "problem_response"]

MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """An error response: status, short title, and what went wrong in this request."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra
        self.headers = headers or {}  # e.g. Retry-After on a 429


def problem_response(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    headers = ({"WWW-Authenticate": "Bearer"} if status == 401 else {}) | (headers or {})
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


# Each kind of domain error and its status; a subclass takes its nearest listed base's.
STATUS: dict[type[domain.DomainError], int] = {
    domain.NotFound: 404,
    domain.Forbidden: 403,
    domain.Conflict: 409,
    domain.Invalid: 422,
    domain.Exhausted: 429,
    domain.TooLarge: 413,
    domain.Gone: 410,
    domain.Unavailable: 503,
}


def status_of(error: domain.DomainError) -> int:
    return next((STATUS[k] for k in type(error).__mro__ if k in STATUS), 400)


def install(app: FastAPI) -> None:
    @app.exception_handler(domain.DomainError)
    async def refused(_: Request, exc: domain.DomainError) -> JSONResponse:
        return problem_response(status_of(exc), exc.title, exc.detail, **exc.extra)

    @app.exception_handler(Problem)
    async def problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"where": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"where": "body", "message": "invalid"}
        detail = f"{first['where']}: {first['message']}"
        return problem_response(422, "Invalid request", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = HTTPStatus(exc.status_code).phrase
        return problem_response(exc.status_code, title, str(exc.detail))
