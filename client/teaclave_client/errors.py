"""One hierarchy for everything the client raises; each class carries the exit status the
`teaclave-client` CLI ends with, so scripts can tell failures apart."""

from __future__ import annotations

from typing import Any

__all__ = [
    "ApiError",
    "AuthenticationError",
    "ConflictError",
    "IntegrityError",
    "InvalidRequest",
    "NotFound",
    "PermissionDenied",
    "ReceiptError",
    "ServerError",
    "ServiceUnavailable",
    "TaskFailed",
    "TaskTimeout",
    "TeaclaveClientError",
    "api_error",
]


class TeaclaveClientError(Exception):
    """Base of the client's errors. exit_code: the CLI's exit status for it."""

    exit_code = 1


class ServiceUnavailable(TeaclaveClientError):
    """The service could not be reached (refused, timed out, not HTTP)."""

    exit_code = 3


class ApiError(TeaclaveClientError):
    """The service refused the request; carries its RFC 9457 problem detail."""

    exit_code = 6

    def __init__(self, status: int, title: str, detail: str, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status, self.title, self.detail, self.problem = status, title, detail, problem


class ServerError(ApiError):
    exit_code = 3


class AuthenticationError(ApiError):
    """401: not logged in, a wrong password, or an expired or revoked token."""

    exit_code = 4


class PermissionDenied(ApiError):
    exit_code = 5


class NotFound(ApiError):
    exit_code = 5


class ConflictError(ApiError):
    """409: the resource is not in a state that allows this (or the name or id is taken)."""


class InvalidRequest(ApiError):
    """400, 413, 422: the request itself is wrong."""


class TaskFailed(TeaclaveClientError):
    """The task ended Failed or Canceled; `kind` is the platform's failure kind."""

    exit_code = 7

    def __init__(self, task_id: str, state: str, kind: str, message: str) -> None:
        super().__init__(f"task {task_id} {state.lower()}: {kind}: {message}")
        self.task_id, self.state, self.kind, self.message = task_id, state, kind, message


class IntegrityError(TeaclaveClientError):
    """A file is not what was encrypted with this key, iv and cmac; carries no plaintext."""

    exit_code = 8


class ReceiptError(IntegrityError):
    """A receipt that is malformed, signed by another key, altered, or about another task."""


class TaskTimeout(TeaclaveClientError):
    exit_code = 9


_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: ConflictError,
    413: InvalidRequest,
    422: InvalidRequest,
}


def api_error(status: int, problem: dict[str, Any]) -> ApiError:
    title = str(problem.get("title") or "Error")
    detail = str(problem.get("detail") or title)
    cls = ServerError if status >= 500 else _BY_STATUS.get(status, ApiError)
    return cls(status, title, detail, problem)
