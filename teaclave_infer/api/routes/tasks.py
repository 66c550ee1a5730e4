"""Tasks through Teaclave's lifecycle: create (with the caller's own steps, in one request if
asked), assign, approve, invoke, cancel, get (a long-poll with `wait`), list. The rules live in
domain/tasks; these routes translate, commit what the domain flushed, and send the signals."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from ...domain import tasks
from ...domain.lifecycle import State
from ...domain.models import Task, User
from ...domain.signals import Channel
from ..bounded import Id, Limit, Offset
from ..deps import CurrentUser, Platform, PlatformDep, SessionDep, user_of
from ..idempotency import remember, replay
from ..schemas import Approval, Assignment, Page, TaskCreate, TaskProgress, TaskPublic

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])

MAX_WAIT_S = 60
_DERIVED = ("approvals", "result")  # TaskPublic's fields that are not the task's columns
Wait = Annotated[
    float | None,
    Query(ge=0, le=MAX_WAIT_S, description="seconds to wait for the task to end (a long-poll)"),
]
Until = Annotated[
    list[State],
    Query(max_length=len(State), description="states to stop waiting at, besides the ends"),
]


def public(
    session: Session, task: Task, user: User, approvals: dict[str, bool] | None = None
) -> TaskPublic:
    """The task as `user` may see it (`approvals`, if already read with others')."""
    if approvals is None:
        approvals = tasks.approvals(session, [task.id])[task.id]
    fields = {c: getattr(task, c) for c in TaskPublic.model_fields if c not in _DERIVED}
    return TaskPublic.model_validate(
        fields | {"approvals": approvals, "result": tasks.visible_result(task, user)}
    )


def _progress(session: Session, reached: tasks.Progress, user: User) -> TaskProgress:
    shown = public(session, reached.task, user).model_dump()
    return TaskProgress(**shown, waiting_for=reached.waiting_for, stopped=reached.stopped)


def _changed(platform: Platform, task_id: str, channel: Channel | None = None) -> None:
    """After a commit: wakes this process's waits on the task, and, with `channel`, every
    process listening to it (workers hear STAGED, every API process ENDED)."""
    platform.waits.notify(task_id)
    if channel is not None:
        platform.signals.publish(channel, task_id)


@router.post("", status_code=201)
def create_task(
    body: TaskCreate,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    platform: PlatformDep,
) -> Any:
    """Creates a task; with `assign`, `approve` and `invoke`, takes the caller's own steps in
    the same transaction, as far as the rules allow (`stopped` says where and why it stopped).
    A refusal of any step refuses the whole request: nothing is created."""
    if (previous := replay(request, session, user)) is not None:
        return previous
    spec = tasks.TaskSpec(
        body.function_id,
        body.arguments,
        {o.name: o.owners for o in body.inputs_ownership},
        {o.name: o.owners for o in body.outputs_ownership},
    )
    assign = body.assign
    files = None if assign is None else tasks.Files(assign.inputs, assign.outputs)
    approve = body.approve or (assign is not None and assign.approve)
    reached = tasks.submit(session, user, spec, files, approve, body.invoke)
    out = _progress(session, reached, user).model_dump(mode="json")
    remember(request, session, user, 201, out)
    session.commit()
    if reached.staged:
        _changed(platform, reached.task.id, Channel.STAGED)
    return out


@router.post("/{task_id}/assign")
def assign(
    task_id: Id, body: Assignment, user: CurrentUser, session: SessionDep, platform: PlatformDep
) -> TaskProgress:
    """Assigns files the caller owns (withdrawing every approval given so far); with
    `approve`, approves in the same transaction once the data is complete."""
    files = tasks.Files(body.inputs, body.outputs)
    reached = tasks.assign(session, user, task_id, files, body.approve)
    _changed(platform, task_id)
    return _progress(session, reached, user)


@router.post("/{task_id}/approve")
def approve(
    task_id: Id,
    user: CurrentUser,
    session: SessionDep,
    platform: PlatformDep,
    body: Approval | None = None,
) -> TaskProgress:
    """Records the caller's approval; with `invoke` (the creator's), stages the task in the
    same transaction if this approval was the last."""
    reached = tasks.approve(session, user, task_id, body is not None and body.invoke)
    _changed(platform, task_id, Channel.STAGED if reached.staged else None)
    return _progress(session, reached, user)


@router.post("/{task_id}/invoke")
def invoke(
    task_id: Id, user: CurrentUser, session: SessionDep, platform: PlatformDep
) -> TaskPublic:
    """Stages an Approved task (its creator only), counted against the function's quota."""
    task = tasks.invoke(session, user, task_id)
    _changed(platform, task_id, Channel.STAGED)
    return public(session, task, user)


@router.post("/{task_id}/cancel")
def cancel(
    task_id: Id, user: CurrentUser, session: SessionDep, platform: PlatformDep
) -> TaskPublic:
    """Cancels a task that has not ended (any participant)."""
    task = tasks.cancel(session, user, task_id)
    _changed(platform, task_id, Channel.ENDED)
    return public(session, task, user)


def _read_once(session: Session, user: User, task_id: str) -> TaskPublic:
    """The task, then the request's session closed: a long-poll holds no connection."""
    try:
        return public(session, tasks.get(session, user, task_id), user)
    finally:
        session.close()


@router.get("/{task_id}")
async def get_task(
    task_id: Id,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    platform: PlatformDep,
    wait: Wait = None,
    until: Until = [],  # noqa: B006 (FastAPI copies a query default)
) -> TaskPublic:
    """The task. With `wait=S` (at most 60), a long-poll: the answer comes as soon as the task
    has ended (or reached a state in `until`), else after S seconds with the task as it is
    then. Only its participants may wait (a 404 for anyone else, as without `wait`); waits are
    bounded per user and in all (a 429 past them)."""
    task = await run_in_threadpool(_read_once, session, user, task_id)
    stop = tasks.ENDED | set(until)
    if not wait or task.state in stop:
        return task

    claims, route = request.state.claims, request.scope["route"].path

    def again() -> TaskPublic:  # the token is checked again: it may be revoked while it waits
        with platform.sessions() as fresh:
            caller = user_of(fresh, claims, route)
            return public(fresh, tasks.get(fresh, caller, task_id), caller)

    return await platform.waits.wait(
        user.id, task_id, wait, again, lambda t: t.state in stop, request.is_disconnected
    )


@router.get("")
def list_tasks(
    user: CurrentUser,
    session: SessionDep,
    state: State | None = None,
    offset: Offset = 0,
    limit: Limit = 100,
) -> Page[TaskPublic]:
    """The tasks the caller takes part in, oldest first: three queries for a page."""
    found = tasks.page(session, user, state, offset, limit)
    approvals = tasks.approvals(session, [t.id for t in found.items])
    return Page(
        items=[public(session, t, user, approvals[t.id]) for t in found.items],
        total=found.total,
        offset=offset,
        limit=limit,
    )
