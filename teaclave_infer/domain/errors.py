"""The domain's errors: what a request asked that the platform refuses, and why.

They know nothing of HTTP; the API maps each kind to a status (api/problems.py), the CLI and the
worker to their own words. Each carries a detail a person can act on, an optional short title
(the kind's own by default) and extra fields the caller may need (a task's state, say).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..errors import TeaclaveInferError

__all__ = [
    "Conflict",
    "DomainError",
    "Exhausted",
    "Forbidden",
    "Gone",
    "Invalid",
    "NotFound",
    "TooLarge",
    "Unavailable",
]


class DomainError(TeaclaveInferError):
    """A refused request."""

    title: ClassVar[str] = "Refused"

    def __init__(self, detail: str, *, title: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail, self.extra = detail, extra
        self.title = title or type(self).title  # type: ignore[misc]


class NotFound(DomainError):
    """No such object, or one the caller may not know of (its existence stays hidden)."""

    title = "Not found"


class Forbidden(DomainError):
    """The caller may know of the object but not do this to it."""

    title = "Forbidden"


class Conflict(DomainError):
    """The object's state does not allow this now (a task's state, a place already taken)."""

    title = "Conflict"


class Invalid(DomainError):
    """The request names something that cannot be (an unknown user, a weak password)."""

    title = "Invalid request"


class Exhausted(DomainError):
    """A quota is used up."""

    title = "Quota exhausted"


class TooLarge(DomainError):
    title = "Too large"


class Gone(DomainError):
    title = "Gone"


class Unavailable(DomainError):
    """The platform cannot do this now (a dependency is down); retrying later may work."""

    title = "Unavailable"
