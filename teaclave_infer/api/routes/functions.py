"""Functions: register (multipart .wasm + spec, and the builder's manifest if there is one),
get, list, update, delete, usage, and what a browser needs to run one. The rules are the
domain's (domain/functions.py, domain/browser.py); these routes parse, validate the wasm, and
render."""

from __future__ import annotations

import base64
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ...abi import PROFILES, TEACLAVE_PROFILE, Profile
from ...domain import browser, files
from ...domain import functions as domain
from ...domain.errors import Invalid, NotFound
from ...domain.models import Function, User
from ...domain.policy import visible_function
from ...errors import InvalidModuleError
from ...executor import EngineKey, Limits, compile_checked, engine_for
from ..bounded import Filter, Id, Limit, Offset
from ..deps import CurrentUser, Platform, PlatformDep, SessionDep
from ..function_schemas import (
    BrowserRun,
    BrowserWeights,
    FunctionPublic,
    FunctionSpec,
    FunctionUpdate,
    FunctionUsage,
    Manifest,
)
from ..idempotency import remember, replay
from ..problems import Problem
from ..schemas import Page

router = APIRouter(prefix="/v1/functions", tags=["functions"])
M = TypeVar("M", bound=BaseModel)


def _public(function: Function, user: User) -> FunctionPublic:
    """The function as the caller may see it: its allowlist is its owner's business alone."""
    public = FunctionPublic.model_validate(function)
    return public if function.owner_id == user.id else public.model_copy(update={"allowlist": []})


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
        raise Invalid(f"{where}: {first['msg']}", title=f"Invalid {what}") from err


def _parse(
    spec: str, manifest_bytes: bytes | None
) -> tuple[domain.FunctionDraft, dict[str, Any] | None, Profile]:
    """The spec, the manifest with the fields the platform reads checked (the rest kept as
    given; None when there is none) and the profile the wasm is checked and run with: the
    manifest's, or Teaclave's WAMR rules without one. A 422 naming the first wrong field."""
    parsed = _validated(FunctionSpec, "spec", spec)
    manifest: dict[str, Any] | None = None
    profile = TEACLAVE_PROFILE
    if manifest_bytes is not None:
        checked = _validated(Manifest, "manifest", manifest_bytes)
        manifest = checked.model_dump(mode="json", exclude_unset=True)
        profile = PROFILES[checked.profile.name]
        # The profile it was registered with, also when the manifest named none.
        manifest.setdefault("profile", {"name": profile.name})
    declared = {"limits", "arguments", "inputs", "outputs", "executor_type"}  # the draft's below
    fields = parsed.model_dump(exclude=declared)
    draft = domain.FunctionDraft(
        **fields,
        limits=parsed.limits.model_dump(exclude_none=True),
        arguments=None if parsed.arguments is None else [a.model_dump() for a in parsed.arguments],
        inputs=None if parsed.inputs is None else [s.model_dump() for s in parsed.inputs],
        outputs=None if parsed.outputs is None else [s.model_dump() for s in parsed.outputs],
    )
    return draft, manifest, profile


def _check_wasm(wasm: bytes, profile: Profile) -> None:
    """The executor's validator, before anything is stored."""
    try:
        key = EngineKey(profile.name, fuel=False, wasm_stack_bytes=Limits().wasm_stack_bytes)
        compile_checked(engine_for(key), wasm, profile.name)
    except (InvalidModuleError, ValueError) as err:
        raise Invalid(str(err), title="Invalid function") from err


@router.post("", status_code=201)
async def register(
    request: Request,
    platform: PlatformDep,
    user: CurrentUser,
    session: SessionDep,
    wasm: Annotated[UploadFile, File(description="the function's .wasm")],
    spec: Annotated[str, Form(description="FunctionSpec as JSON")],
    manifest: Annotated[
        UploadFile | None,
        File(description="its NAME.json from the builder; none for any Teaclave-ABI function"),
    ] = None,
) -> Any:
    domain.require_registrar(user)
    payload = await _read_limited(wasm, platform.settings.max_function_bytes, "the wasm")
    manifest_bytes = None
    if manifest is not None:
        manifest_bytes = await _read_limited(manifest, 1 << 20, "the manifest")
    # Compiling, hashing and storing take seconds for a large module: never on the event loop.
    return await run_in_threadpool(
        _register, request, platform, user, session, payload, spec, manifest_bytes
    )


def _register(
    request: Request,
    platform: Platform,
    user: User,
    session: Session,
    payload: bytes,
    spec: str,
    manifest_bytes: bytes | None,
) -> Any:
    if (previous := replay(request, session, user)) is not None:
        return previous
    draft, manifest, profile = _parse(spec, manifest_bytes)
    _check_wasm(payload, profile)
    blobs = platform.blobs
    function = domain.register(session, blobs, user, draft, manifest, profile.name, payload)
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
    found = domain.listing(
        session, user, "mine" if scope == "mine" else "allowed", name, offset, limit
    )
    items = [_public(f, user) for f in found.items]
    return Page(items=items, total=found.total, offset=offset, limit=limit)


@router.get("/{function_id}")
def get_function(function_id: Id, user: CurrentUser, session: SessionDep) -> FunctionPublic:
    return _public(visible_function(session, function_id, user), user)


@router.get("/{function_id}/manifest")
def get_manifest(function_id: Id, user: CurrentUser, session: SessionDep) -> dict[str, Any]:
    """The builder's NAME.json it was registered with: how to shape its inputs and read its
    outputs. Not found for a function registered without one."""
    function = visible_function(session, function_id, user)
    if not function.has_manifest:
        raise NotFound(
            f"function {function.id} ({function.name}) was registered without a builder's "
            "manifest: it has no tensor shapes",
            title="No manifest",
        )
    return dict(function.manifest)


@router.get("/{function_id}/payload")
def get_payload(
    function_id: Id, platform: PlatformDep, user: CurrentUser, session: SessionDep
) -> Response:
    wasm = domain.payload(session, platform.blobs, user, function_id)
    return Response(wasm, media_type="application/wasm")


@router.patch("/{function_id}")
def update_function(
    function_id: Id,
    body: FunctionUpdate,
    platform: PlatformDep,
    user: CurrentUser,
    session: SessionDep,
) -> FunctionPublic:
    changes = body.model_dump(exclude_none=True, exclude={"executor_type"})  # checked: wamr
    function = domain.update(session, platform.keys, user, function_id, changes)
    session.commit()
    return _public(function, user)


@router.get("/{function_id}/browser")
def browser_run(
    function_id: Id, platform: PlatformDep, user: CurrentUser, session: SessionDep
) -> BrowserRun:
    """What a browser needs to run the function itself: its manifest and, with separate
    weights, where they are and their key. The key leaves the platform here, by the owner's
    choice (`browser`), to a user allowed to run the function: what a browser runs, its user
    can copy."""
    kit = browser.kit(session, platform.keys, user, function_id)
    weights = None
    if (f := kit.weights) is not None:
        weights = BrowserWeights(
            file_id=f.id,
            schema_=f.schema,
            iv=f.iv,
            cmac=f.cmac or "",
            key=base64.b64encode(kit.key).decode(),
        )
    function = kit.function
    return BrowserRun(function=_public(function, user), manifest=function.manifest, weights=weights)


@router.get("/{function_id}/browser/weights")
def browser_weights(
    function_id: Id, platform: PlatformDep, user: CurrentUser, session: SessionDep
) -> StreamingResponse:
    """The encrypted bytes of the weights named by /browser."""
    f = browser.weights_file(session, user, function_id)
    content = files.verified_content(platform.blobs, f)
    return StreamingResponse(content, media_type="application/octet-stream")


@router.delete("/{function_id}", status_code=204)
def delete_function(
    function_id: Id, platform: PlatformDep, user: CurrentUser, session: SessionDep
) -> None:
    blob_id = domain.delete(session, user, function_id)
    session.commit()
    platform.blobs.delete(blob_id)  # once the deletion is committed: a failed one keeps it whole


@router.get("/{function_id}/usage")
def usage(function_id: Id, user: CurrentUser, session: SessionDep) -> FunctionUsage:
    function, by_state = domain.usage(session, user, function_id)
    return FunctionUsage(
        function_id=function.id,
        quota=function.quota,
        usage=function.usage,
        tasks_by_state=by_state,
    )
