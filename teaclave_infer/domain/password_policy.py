"""What a password must be: at least 8 characters, not one of the 30,000 most common passwords
(zxcvbn's `passwords` frequency list, MIT, shipped in the pinned `zxcvbn` package), and not
the user's name; letter case does not make a weak password strong."""

from __future__ import annotations

import functools
import unicodedata

from .errors import Invalid

__all__ = ["MIN_LENGTH", "require_strong", "weakness"]

MIN_LENGTH = 8


@functools.cache
def _common() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS  # 30,000 lowercase passwords, ~25 ms

    return frozenset(FREQUENCY_LISTS["passwords"])


def _folded(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().strip()


def weakness(password: str, username: str) -> str | None:
    """Why `password` may not be `username`'s, as the end of a sentence ("the password ..."),
    or None if it may."""
    if not password.strip():
        return "is empty"
    if len(password) < MIN_LENGTH:
        return f"is shorter than {MIN_LENGTH} characters"
    folded = _folded(password)
    if folded == _folded(username):
        return "is the user name"
    if folded in _common():
        return "is one of the 30,000 most common passwords"
    return None


def require_strong(password: str, username: str) -> None:
    """A 422 naming why, if `password` may not be `username`'s."""
    if (reason := weakness(password, username)) is not None:
        raise Invalid(f"the password {reason}: choose another", title="Weak password")
