"""Ids as Teaclave's scripts see them, and user names as Teaclave's scripts name users.

Teaclave's ids are `<kind>-<uuid>` (`function-…`, `input-…`, `output-…`, `task-…`); the
platform's are the same uuids as 32 hex digits. The facade shows the first and accepts both, so
an id printed by the `teaclave-client` CLI works in a script and the other way round.

Teaclave names users by their login name everywhere (owner lists, allowlists, task
participants); the platform names them by user id, and shows a user's name only to the user
and to the admin. The facade learns the pairs it sees in this process (each login, each user
an admin registers or lists) and translates with them; a name it has not seen is an error that
says so, and a platform user id is always accepted as is. A string in the form of an id is
always taken as the id, before any name, and a name in that form is never learned: the platform
refuses such names, and one on an older platform could otherwise stand for the user whose id it
spells (someone registered as "<bob's id>" would receive what an owner list meant for Bob).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable

from ..vocabulary import id_shaped
from ._types import TeaclaveException

__all__ = ["DIRECTORY", "Directory", "external_id", "platform_id"]

KINDS = ("function", "input", "output", "task")  # the prefixes of Teaclave's ids


def external_id(kind: str, platform_id: str) -> str:
    """`kind-<uuid>` for a platform id (32 hex digits)."""
    return f"{kind}-{uuid.UUID(hex=platform_id)}"


def platform_id(kind: str, given: str, what: str) -> str:
    """The platform's id for `given`: `kind-<uuid>`, a bare uuid or 32 hex digits. Another
    kind's id, or something that is no id, is a TeaclaveException naming `what`."""
    text = str(given).strip()
    prefix, _, rest = text.partition("-")
    if prefix in KINDS:
        if prefix != kind:
            raise TeaclaveException(f"{what}: {given!r} is a {prefix}- id, not a {kind}- id")
        text = rest
    try:
        return uuid.UUID(text).hex
    except ValueError:
        raise TeaclaveException(f"{what}: {given!r} is not the id of a {kind}") from None


class Directory:
    """User name <-> user id pairs seen in this process, per platform URL."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[tuple[str, str], str] = {}
        self._names: dict[tuple[str, str], str] = {}

    def learn(self, url: str, username: str, user_id: str) -> None:
        if id_shaped(username):
            return  # never a name: it would shadow the id it spells, in both directions
        with self._lock:
            self._ids[url, username] = user_id
            self._names[url, user_id] = username

    def user_id(self, url: str, name: str, what: str) -> str:
        """The id of user `name`: `name` itself if it has the form of an id (first, so no
        name can stand for an id), else the id of a login name seen here."""
        if id_shaped(name):
            return uuid.UUID(name).hex
        with self._lock:
            found = self._ids.get((url, name))
        if found is not None:
            return found
        raise TeaclaveException(
            f"{what}: user {name!r} has not logged in or been registered in this process, and "
            "this platform names users by id: give their user id (`teaclave-client login --json` "
            "shows it as user.id), or log them in here first"
        )

    def user_ids(self, url: str, names: Iterable[str], what: str) -> list[str]:
        return [self.user_id(url, name, what) for name in names]

    def name(self, url: str, user_id: str) -> str:
        """The login name of `user_id` if seen here, else the id itself."""
        with self._lock:
            return self._names.get((url, user_id), user_id)


DIRECTORY = Directory()  # one per process: Teaclave's scripts log several users in, one client each
