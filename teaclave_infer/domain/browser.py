"""Functions run in their users' browsers: which weights file a browser gets, and its key.

The key leaves the platform here, by the owner's choice (`Function.browser`), to a user allowed
to run the function: what a browser runs, its user can copy."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session
from teaclave_client.errors import IntegrityError
from teaclave_client.vocabulary import Schema

from .errors import Conflict, Forbidden, Invalid
from .keys import PlatformKeys
from .models import DataFile, Function, User
from .policy import all_owners, may_use, visible_function

__all__ = ["BrowserKit", "checked_weights", "kit", "weights_file"]


@dataclass(frozen=True)
class BrowserKit:
    """What a browser needs to run a function: the function and, with separate weights, their
    file and its key."""

    function: Function
    weights: DataFile | None = None
    key: bytes = b""


def _separate(function: Function) -> bool:
    return bool(function.manifest.get("weights", {}).get("mode") == "separate")


def checked_weights(
    session: Session, keys: PlatformKeys, function: Function, file_id: str
) -> str | None:
    """The file browsers get as this function's separate weights ("" for none): an encrypted
    input file of the owner's alone (its key is handed to the function's users: a file with
    co-owners would be given away by one of them), whose key unwraps. Invalid otherwise."""
    if not file_id:
        return None
    if not _separate(function):
        raise Invalid("the function's weights are in its wasm", title="No separate weights")
    f = session.get(DataFile, file_id)
    if f is None or f.kind != "input" or all_owners(session, file_id) != [function.owner_id]:
        raise Invalid(
            f"no input file {file_id} of the owner's alone", title="Not the owner's input"
        )
    if not f.wrapped_key or not f.url.startswith("blob:"):
        raise Invalid("the weights must be encrypted, in the blob store", title="Unusable weights")
    if not Schema(f.schema).in_browser:
        raise Invalid(
            f"browsers cannot decrypt {f.schema} files: give the weights in one of "
            f"{', '.join(s for s in Schema if s.in_browser and s.sealed)}",
            title="Unusable weights",
        )
    _key(keys, f)
    return f.id


def _key(keys: PlatformKeys, f: DataFile) -> bytes:
    try:
        return bytes(keys.unwrap(f.wrapped_key, f.key_file_id or f.id, f.schema))
    except (IntegrityError, ValueError) as err:
        raise Invalid(f"the key of file {f.id} does not unwrap", title="Unusable weights") from err


def _for_browser(session: Session, function_id: str, user: User) -> Function:
    function = visible_function(session, function_id, user)
    if not may_use(function, user):
        raise Forbidden("only users allowed to run it may run it in a browser")
    if not function.browser:
        raise Forbidden("its owner does not let it run in browsers", title="Not for browsers")
    return function


def _weights(session: Session, function: Function) -> DataFile:
    f = session.get(DataFile, function.browser_weights or "")
    if f is None:
        raise Conflict("its owner has not set browser_weights", title="No weights for browsers")
    return f


def kit(session: Session, keys: PlatformKeys, user: User, function_id: str) -> BrowserKit:
    """The function for a user allowed to run it in a browser, with its weights' key if they
    are separate: Forbidden if they may not, Conflict if its owner set no weights."""
    function = _for_browser(session, function_id, user)
    if not _separate(function):
        return BrowserKit(function)
    f = _weights(session, function)
    return BrowserKit(function, f, _key(keys, f))


def weights_file(session: Session, user: User, function_id: str) -> DataFile:
    """The weights file named by `kit`, for its encrypted bytes."""
    return _weights(session, _for_browser(session, function_id, user))
