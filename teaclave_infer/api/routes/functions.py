"""Functions: register (multipart .wasm + manifest + spec), get, list, update, delete, usage."""

from __future__ import annotations

import base64
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from pydantic import BaseModel, ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from teaclave_client.errors import IntegrityError

from ...domain.models import DataFile, Function, Role, Task, User
from ...domain.policy import all_owners, may_use, owned_function, visible_function
from ...errors import InvalidModuleError
from ...executor import EngineKey, Limits, compile_checked, engine_for
from ..bounded import Filter, Id, Limit, Offset
from ..deps import CurrentUser, SessionDep
from ..idempotency import remember, replay
from ..problems import Problem
from ..schemas import (
    Argument,
    BrowserRun,
    BrowserWeights,
    FunctionPublic,
    FunctionSpec,
    FunctionUpdate,
    FunctionUsage,
    Manifest,
    Page,
    Slot,
)
from .files import blob_content

router = APIRouter(prefix="/v1/functions", tags=["functions"])
M = TypeVar("M", bound=BaseModel)


def _public(function: Function, user: User) -> FunctionPublic:
    """The function as the caller may see it: its allowlist is its owner's business alone."""
    public = FunctionPublic.model_validate(function)
    return public if function.owner_id == user.id else public.model_copy(update={"allowlist": []})


def _slots(spec: FunctionSpec, manifest: dict[str, Any]) -> tuple[list[Slot], list[Slot]]:
    inputs = spec.inputs
    if inputs is None:
        inputs = [Slot(name=i["id"]) for i in manifest.get("inputs", [])]
        if manifest.get("weights", {}).get("mode") == "separate":
            inputs.append(Slot(name="weights"))
    outputs = spec.outputs
    if outputs is None:
        outputs = [Slot(name=o["id"], optional=True) for o in manifest.get("outputs", [])]
    return inputs, outputs


async def _read_limited(upload: UploadFile, limit: int, what: str) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise Problem(413, "Too large", f"{what} is over {limit} bytes")
    return data


def _validated(model: type[M], what: str, raw: str | bytes) -> M:
    try:
        return model.model_validate_json(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in (what, *first["loc"]))
        raise Problem(422, f"Invalid {what}", f"{where}: {first['msg']}") from err


def _parse(spec: str, manifest_bytes: bytes) -> tuple[FunctionSpec, dict[str, Any]]:
    """The spec, and the manifest with the fields the platform reads checked (the rest kept as
    given); a 422 naming the first wrong field."""
    parsed = _validated(FunctionSpec, "spec", spec)
    manifest = _validated(Manifest, "manifest", manifest_bytes)
    return parsed, manifest.model_dump(mode="json", exclude_unset=True)


@router.post("", status_code=201)
async def register(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    wasm: Annotated[UploadFile, File(description="the function's .wasm")],
    manifest: Annotated[UploadFile, File(description="its NAME.json from the builder")],
    spec: Annotated[str, Form(description="FunctionSpec as JSON")],
) -> Any:
    if user.role not in (Role.FUNCTION_OWNER, Role.PLATFORM_ADMIN):
        raise Problem(403, "Forbidden", "only a FunctionOwner may register functions")
    payload = await _read_limited(wasm, request.app.state.settings.max_function_bytes, "the wasm")
    manifest_bytes = await _read_limited(manifest, 1 << 20, "the manifest")
    # Compiling, hashing and storing take seconds for a large module: never on the event loop.
    return await run_in_threadpool(_register, request, user, session, payload, spec, manifest_bytes)


def _register(
    request: Request,
    user: User,
    session: Session,
    payload: bytes,
    spec: str,
    manifest_bytes: bytes,
) -> Any:
    if (previous := replay(request, session, user)) is not None:
        return previous
    parsed, manifest_json = _parse(spec, manifest_bytes)
    profile = str(manifest_json.get("profile", {}).get("name", "fast"))
    try:  # the executor's validator, before anything is stored
        key = EngineKey(profile, fuel=False, wasm_stack_bytes=Limits().wasm_stack_bytes)
        compile_checked(engine_for(key), payload, profile)
    except (InvalidModuleError, ValueError) as err:
        raise Problem(422, "Invalid function", str(err)) from err
    inputs, outputs = _slots(parsed, manifest_json)
    arguments = parsed.arguments
    if arguments is None:
        arguments = [Argument(name=s.name, default=s.name) for s in inputs + outputs]
    unknown = set(parsed.allowlist) - set(session.scalars(select(User.id)))
    if unknown:
        raise Problem(422, "Unknown users", f"allowlist names no user: {sorted(unknown)}")
    blob_id, sha256 = request.app.state.blobs.put(payload)
    function = Function(
        id=blob_id,
        sha256=sha256,
        owner_id=user.id,
        name=parsed.name,
        description=parsed.description,
        public=parsed.public,
        allowlist=parsed.allowlist,
        arguments=[a.model_dump() for a in arguments],
        inputs=[s.model_dump() for s in inputs],
        outputs=[s.model_dump() for s in outputs],
        quota=parsed.quota,
        limits=parsed.limits.model_dump(exclude_none=True),
        browser=parsed.browser,
        profile=profile,
        manifest=manifest_json,
        size=len(payload),
    )
    session.add(function)
    session.flush()
    body = FunctionPublic.model_validate(function).model_dump(mode="json")
    remember(request, session, user, 201, body)
    session.commit()
    return body


@router.get("")
def list_functions(
    user: CurrentUser,
    session: SessionDep,
    scope: Annotated[str, Query(pattern="^(mine|allowed)$")] = "allowed",
    name: Filter = None,
    offset: Offset = 0,
    limit: Limit = 100,
) -> Page[FunctionPublic]:
    """`mine`: the caller's own; `allowed`: everything the caller may use; `name`: only those
    of that name."""
    functions = select(Function).where(Function.name == name) if name else select(Function)
    query = functions.where(Function.owner_id == user.id)
    if scope == "allowed":
        query = functions.where(or_(Function.public, Function.owner_id == user.id))
    rows = [f for f in session.scalars(query.order_by(Function.created_at, Function.id))]
    if scope == "allowed":  # allowlists are JSON: filtered here, not in dialect-specific SQL
        rows += [
            f
            for f in session.scalars(functions.where(~Function.public))
            if user.id in f.allowlist and f.owner_id != user.id
        ]
    page = rows[offset : offset + limit]
    return Page(
        items=[_public(f, user) for f in page],
        total=len(rows),
        offset=offset,
        limit=limit,
    )


@router.get("/{function_id}")
def get_function(function_id: Id, user: CurrentUser, session: SessionDep) -> FunctionPublic:
    return _public(visible_function(session, function_id, user), user)


@router.get("/{function_id}/manifest")
def get_manifest(function_id: Id, user: CurrentUser, session: SessionDep) -> dict[str, Any]:
    """The builder's NAME.json it was registered with: how to shape its inputs and read its
    outputs."""
    return dict(visible_function(session, function_id, user).manifest)


@router.get("/{function_id}/payload")
def get_payload(
    function_id: Id, request: Request, user: CurrentUser, session: SessionDep
) -> Response:
    function = visible_function(session, function_id, user)
    if not may_use(function, user):
        raise Problem(403, "Forbidden", "the payload is only for users allowed to run it")
    return Response(request.app.state.blobs.get(function.id), media_type="application/wasm")


@router.patch("/{function_id}")
def update_function(
    function_id: Id, body: FunctionUpdate, request: Request, user: CurrentUser, session: SessionDep
) -> FunctionPublic:
    changes = body.model_dump(exclude_none=True)
    function = owned_function(session, function_id, user, frozenset(changes))
    if "browser_weights" in changes:
        changes["browser_weights"] = _browser_weights(
            request, session, function, changes["browser_weights"]
        )
    for field, value in changes.items():
        setattr(function, field, value)
    session.commit()
    return _public(function, user)


def _browser_weights(
    request: Request, session: SessionDep, function: Function, file_id: str
) -> str | None:
    """The file browsers get as this function's separate weights ("" for none): an encrypted
    input file of the owner's alone (its key is handed to the function's users: a file with
    co-owners would be given away by one of them), whose key unwraps."""
    if not file_id:
        return None
    if function.manifest.get("weights", {}).get("mode") != "separate":
        raise Problem(422, "No separate weights", "the function's weights are in its wasm")
    f = session.get(DataFile, file_id)
    if f is None or f.kind != "input" or all_owners(session, file_id) != [function.owner_id]:
        raise Problem(422, "Not the owner's input", f"no input file {file_id} of the owner's alone")
    if not f.wrapped_key or not f.url.startswith("blob:"):
        raise Problem(422, "Unusable weights", "the weights must be encrypted, in the blob store")
    _weights_key(request, f)
    return f.id


def _weights_key(request: Request, f: DataFile) -> bytes:
    try:
        return bytes(request.app.state.keys.unwrap(f.wrapped_key, f.key_file_id or f.id, f.schema))
    except (IntegrityError, ValueError) as err:
        raise Problem(422, "Unusable weights", f"the key of file {f.id} does not unwrap") from err


def _for_browser(session: SessionDep, function_id: str, user: User) -> Function:
    function = visible_function(session, function_id, user)
    if not may_use(function, user):
        raise Problem(403, "Forbidden", "only users allowed to run it may run it in a browser")
    if not function.browser:
        raise Problem(403, "Not for browsers", "its owner does not let it run in browsers")
    return function


@router.get("/{function_id}/browser")
def browser_run(
    function_id: Id, request: Request, user: CurrentUser, session: SessionDep
) -> BrowserRun:
    """What a browser needs to run the function itself: its manifest and, with separate
    weights, where they are and their key. The key leaves the platform here, by the owner's
    choice (`browser`), to a user allowed to run the function: what a browser runs, its user
    can copy."""
    function = _for_browser(session, function_id, user)
    weights = None
    if function.manifest.get("weights", {}).get("mode") == "separate":
        f = session.get(DataFile, function.browser_weights or "")
        if f is None:
            raise Problem(409, "No weights for browsers", "its owner has not set browser_weights")
        key = _weights_key(request, f)
        weights = BrowserWeights(
            file_id=f.id,
            schema_=f.schema,
            iv=f.iv,
            cmac=f.cmac or "",
            key=base64.b64encode(key).decode(),
        )
    return BrowserRun(
        function=_public(function, user),
        manifest=function.manifest,
        weights=weights,
    )


@router.get("/{function_id}/browser/weights")
def browser_weights(
    function_id: Id, request: Request, user: CurrentUser, session: SessionDep
) -> Any:
    """The encrypted bytes of the weights named by /browser."""
    function = _for_browser(session, function_id, user)
    f = session.get(DataFile, function.browser_weights or "")
    if f is None:
        raise Problem(409, "No weights for browsers", "its owner has not set browser_weights")
    return blob_content(request, f)


@router.delete("/{function_id}", status_code=204)
def delete_function(
    function_id: Id, request: Request, user: CurrentUser, session: SessionDep
) -> None:
    function = owned_function(session, function_id, user)
    session.delete(function)
    session.commit()
    request.app.state.blobs.delete(function.id)


@router.get("/{function_id}/usage")
def usage(function_id: Id, user: CurrentUser, session: SessionDep) -> FunctionUsage:
    function = owned_function(session, function_id, user)
    counts = session.execute(
        select(Task.state, func.count()).where(Task.function_id == function.id).group_by(Task.state)
    )
    return FunctionUsage(
        function_id=function.id,
        quota=function.quota,
        usage=function.usage,
        tasks_by_state={state: n for state, n in counts},
    )
