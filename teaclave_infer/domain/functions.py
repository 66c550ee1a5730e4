"""Functions: registering one, listing, changing and deleting them, their usage.

Each operation takes the session, the caller and plain values, checks the access policy
(policy.py) and raises the domain's errors; it flushes and leaves the commit to its caller, so
that an API route stores its idempotency record in the same transaction. Validating the wasm is
the caller's business (the domain does not know wasm)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .blobs import BlobStore
from .browser import checked_weights
from .errors import Forbidden
from .keys import PlatformKeys
from .models import Function, Role, Task, User
from .pages import Slice, page
from .policy import may_use, owned_function, usable_by, visible_function
from .users import require_known

__all__ = [
    "FunctionDraft",
    "delete",
    "listing",
    "payload",
    "register",
    "require_registrar",
    "update",
    "usage",
]

Scope = Literal["mine", "allowed"]


@dataclass(frozen=True)
class FunctionDraft:
    """A function as its registering owner declares it; slots and arguments left None take
    the manifest's (see `register`), or none without one."""

    name: str
    description: str = ""
    public: bool = False
    allowlist: list[str] = field(default_factory=list)
    arguments: list[dict[str, Any]] | None = None  # {name, default, overwritable}
    inputs: list[dict[str, Any]] | None = None  # {name, description, optional}
    outputs: list[dict[str, Any]] | None = None
    quota: int = -1
    limits: dict[str, Any] = field(default_factory=dict)
    browser: bool = False


def require_registrar(user: User) -> None:
    if user.role not in (Role.FUNCTION_OWNER, Role.PLATFORM_ADMIN):
        raise Forbidden("only a FunctionOwner may register functions")


def _slots(
    draft: FunctionDraft, manifest: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The declared slots, or the manifest's: its inputs (and the weights, when they are
    separate), and its outputs as optional ones."""
    inputs = draft.inputs
    if inputs is None:
        inputs = [{"name": i["id"], "optional": False} for i in manifest.get("inputs", [])]
        if manifest.get("weights", {}).get("mode") == "separate":
            inputs.append({"name": "weights", "optional": False})
    outputs = draft.outputs
    if outputs is None:
        outputs = [{"name": o["id"], "optional": True} for o in manifest.get("outputs", [])]
    return inputs, outputs


def register(
    session: Session,
    blobs: BlobStore,
    user: User,
    draft: FunctionDraft,
    manifest: dict[str, Any] | None,
    profile: str,
    wasm: bytes,
) -> Function:
    """Stores a module validated for `profile` as the caller's function; `manifest` is the
    builder's, None for none (the function's `has_manifest`). Without declared arguments, one
    overwritable argument per slot. Invalid if the allowlist names no user."""
    require_registrar(user)
    inputs, outputs = _slots(draft, manifest or {})
    arguments = draft.arguments
    if arguments is None:
        arguments = [
            {"name": s["name"], "default": s["name"], "overwritable": True}
            for s in inputs + outputs
        ]
    require_known(session, draft.allowlist, "allowlist")
    blob_id, sha256 = blobs.put(wasm)
    function = Function(
        id=blob_id,
        sha256=sha256,
        owner_id=user.id,
        name=draft.name,
        description=draft.description,
        public=draft.public,
        allowlist=draft.allowlist,
        arguments=arguments,
        inputs=inputs,
        outputs=outputs,
        quota=draft.quota,
        limits=draft.limits,
        browser=draft.browser,
        profile=profile,
        manifest=manifest if manifest is not None else {},
        has_manifest=manifest is not None,
        size=len(wasm),
    )
    session.add(function)
    session.flush()
    return function


def listing(
    session: Session, user: User, scope: Scope, name: str | None, offset: int, limit: int
) -> Slice[Function]:
    """`mine`: the caller's own functions; `allowed`: every one the caller may use; `name`:
    only those of that name. Oldest first."""
    query = select(Function).where(
        Function.owner_id == user.id if scope == "mine" else usable_by(user)
    )
    if name:
        query = query.where(Function.name == name)
    return page(session, query.order_by(Function.created_at, Function.id), offset, limit)


def payload(session: Session, blobs: BlobStore, user: User, function_id: str) -> bytes:
    """The function's wasm, for the users allowed to run it."""
    function = visible_function(session, function_id, user)
    if not may_use(function, user):
        raise Forbidden("the payload is only for users allowed to run it")
    return blobs.get(function.id)


def update(
    session: Session, keys: PlatformKeys, user: User, function_id: str, changes: dict[str, Any]
) -> Function:
    """Changes the given fields, as the owner (the admin may change only what an admin may);
    `browser_weights` must name a usable weights file (see browser.checked_weights)."""
    function = owned_function(session, function_id, user, frozenset(changes))
    if "browser_weights" in changes:
        weights = checked_weights(session, keys, function, changes["browser_weights"])
        changes = {**changes, "browser_weights": weights}
    for name, value in changes.items():
        setattr(function, name, value)
    session.flush()
    return function


def delete(session: Session, user: User, function_id: str) -> str:
    """Deletes the function, as its owner or the admin; returns its blob's id, for the caller
    to delete once the deletion is committed."""
    function = owned_function(session, function_id, user)
    session.delete(function)
    session.flush()
    return function.id


def usage(session: Session, user: User, function_id: str) -> tuple[Function, dict[str, int]]:
    """The owner's function and how many of its tasks are in each state."""
    function = owned_function(session, function_id, user)
    counts = session.execute(
        select(Task.state, func.count()).where(Task.function_id == function.id).group_by(Task.state)
    )
    return function, {state: n for state, n in counts}
