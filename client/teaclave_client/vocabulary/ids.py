"""The form of the platform's ids: a uuid4 as 32 lower-case hex digits, for every row (users,
functions, files, tasks). A user name must never have that form: Teaclave's scripts name users
by login name, and the facade accepts a user id where they do, so a name shaped like an id could
stand for someone else's."""

from __future__ import annotations

import uuid

__all__ = ["ID_PATTERN", "id_shaped"]

ID_PATTERN = r"^[0-9a-f]{32}$"


def id_shaped(text: str) -> bool:
    """True if `text` reads as a uuid in any of Python's spellings (32 hex digits in either case,
    with or without dashes, braces or `urn:uuid:`): every form the facade takes as an id."""
    try:
        uuid.UUID(text)
    except (ValueError, TypeError, AttributeError):
        return False
    return True
