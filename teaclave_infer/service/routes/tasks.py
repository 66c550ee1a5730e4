"""Tasks through Teaclave's lifecycle: create, assign data, approve, invoke, cancel, get."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..db import changed
from ..deps import CurrentUser, SessionDep
from ..idempotency import remember, replay
from ..lifecycle import Action, State, next_state
from ..models import DataFile, Function, Task, TaskParticipant, User
from ..problems import Problem
from ..schemas import Assignment, Page, TaskCreate, TaskPublic
from .files import owners_of
from .functions import may_use

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])


def _approvals(session: Session, task_id: str) -> dict[str, bool]:
    rows = session.scalars(select(TaskParticipant).where(TaskParticipant.task_id == task_id))
    return {p.user_id: p.approved for p in rows}


def public(session: Session, task: Task) -> TaskPublic:
    return TaskPublic.model_validate(
        {c: getattr(task, c) for c in TaskPublic.model_fields if c != "approvals"}
        | {"approvals": _approvals(session, task.id)}
    )


def participant_task(session: Session, task_id: str, user: User) -> Task:
    """The task if the caller takes part in it; a 404 otherwise (its existence stays hidden)."""
    task = session.get(Task, task_id)
    if task is None or session.get(TaskParticipant, (task_id, user.id)) is None:
        raise Problem(404, "Not found", f"no task {task_id}")
    return task


def _merged_arguments(function: Function, given: dict[str, Any]) -> dict[str, Any]:
    overwritable = {a["name"] for a in function.arguments if a["overwritable"]}
    if set(given) != overwritable:
        raise Problem(
            422,
            "Wrong arguments",
            f"give exactly the overwritable arguments {sorted(overwritable)}, not {sorted(given)}",
        )
    return {a["name"]: given.get(a["name"], a["default"]) for a in function.arguments}


def _ownership(
    kind: str, declared: list[dict[str, Any]], given: dict[str, list[str]], session: Session
) -> dict[str, list[str]]:
    names = {s["name"] for s in declared}
    if unknown := set(given) - names:
        raise Problem(422, "Unknown data", f"the function declares no {kind}s {sorted(unknown)}")
    if missing := {s["name"] for s in declared if not s["optional"]} - set(given):
        raise Problem(422, "Missing owners", f"name the owners of {kind}s {sorted(missing)}")
    users = {u for owners in given.values() for u in owners}
    if unknown_users := users - set(session.scalars(select(User.id).where(User.id.in_(users)))):
        raise Problem(422, "Unknown users", f"owners names no user: {sorted(unknown_users)}")
    return {name: sorted(set(owners)) for name, owners in given.items()}


@router.post("", status_code=201)
def create_task(body: TaskCreate, request: Request, user: CurrentUser, session: SessionDep) -> Any:
    if (previous := replay(request, session, user)) is not None:
        return previous
    function = session.get(Function, body.function_id)
    if function is None or not may_use(function, user):
        raise Problem(404, "Not found", f"no function {body.function_id} you may use")
    if function.disabled:
        raise Problem(409, "Disabled", f"function {function.id} is disabled")
    task = Task(
        function_id=function.id,
        function_sha256=function.sha256,
        creator_id=user.id,
        state=State.CREATED,
        arguments=_merged_arguments(function, body.arguments),
        input_owners=_ownership(
            "input", function.inputs, {o.name: o.owners for o in body.inputs_ownership}, session
        ),
        output_owners=_ownership(
            "output", function.outputs, {o.name: o.owners for o in body.outputs_ownership}, session
        ),
    )
    session.add(task)
    session.flush()
    participants = {user.id} | {
        u for o in (task.input_owners, task.output_owners) for owners in o.values() for u in owners
    }
    if not function.public:
        participants.add(function.owner_id)
    session.add_all(TaskParticipant(task_id=task.id, user_id=u) for u in participants)
    session.flush()
    out = public(session, task).model_dump(mode="json")
    remember(request, session, user, 201, out)
    session.commit()
    return out


def _assign(session: Session, user: User, task: Task, kind: str, files: dict[str, str]) -> None:
    owners_wanted = task.input_owners if kind == "input" else task.output_owners
    assigned = dict(task.assigned_inputs if kind == "input" else task.assigned_outputs)
    for name, file_id in files.items():
        f = session.get(DataFile, file_id)
        owners = owners_of(session, file_id) if f is not None else []
        if f is None or user.id not in owners:
            raise Problem(404, "Not found", f"no file {file_id} of yours")
        if f.kind != kind:
            raise Problem(422, "Wrong file kind", f"{file_id} is an {f.kind}, not an {kind}")
        if kind == "output" and f.cmac is not None:
            raise Problem(409, "Already written", f"output {file_id} holds a task's result")
        if name not in owners_wanted:
            raise Problem(422, "Unknown data", f"the task has no {kind} {name!r}")
        if sorted(owners) != owners_wanted[name]:
            raise Problem(
                403,
                "Wrong owners",
                f"{kind} {name!r} must be owned by exactly {owners_wanted[name]}",
            )
        assigned[name] = file_id
    if kind == "input":
        task.assigned_inputs = assigned
    else:
        task.assigned_outputs = assigned


@router.post("/{task_id}/assign")
def assign(task_id: str, body: Assignment, user: CurrentUser, session: SessionDep) -> TaskPublic:
    """Assigns files the caller owns; once every required file is there, DataAssigned (and,
    with a single participant, Approved at once)."""
    task = participant_task(session, task_id, user)
    function = session.get(Function, task.function_id) if task.function_id else None
    next_state(task.state, Action.ASSIGN)  # 409 unless assigning is allowed now
    _assign(session, user, task, "input", body.inputs)
    _assign(session, user, task, "output", body.outputs)
    required = {s["name"] for s in (function.inputs if function else []) if not s["optional"]}
    required_out = {s["name"] for s in (function.outputs if function else []) if not s["optional"]}
    complete = required <= set(task.assigned_inputs) and required_out <= set(task.assigned_outputs)
    task.state = next_state(task.state, Action.ASSIGN_COMPLETE if complete else Action.ASSIGN)
    if task.state == State.DATA_ASSIGNED and len(_approvals(session, task.id)) == 1:
        session.get(TaskParticipant, (task.id, user.id)).approved = True  # type: ignore[union-attr]
        task.state = next_state(task.state, Action.APPROVE_COMPLETE)
    session.commit()
    return public(session, task)


@router.post("/{task_id}/approve")
def approve(task_id: str, user: CurrentUser, session: SessionDep) -> TaskPublic:
    task = participant_task(session, task_id, user)
    next_state(task.state, Action.APPROVE)
    session.get(TaskParticipant, (task.id, user.id)).approved = True  # type: ignore[union-attr]
    session.flush()
    everyone = all(_approvals(session, task.id).values())
    task.state = next_state(task.state, Action.APPROVE_COMPLETE if everyone else Action.APPROVE)
    session.commit()
    return public(session, task)


@router.post("/{task_id}/invoke")
def invoke(task_id: str, request: Request, user: CurrentUser, session: SessionDep) -> TaskPublic:
    task = participant_task(session, task_id, user)
    if task.creator_id != user.id:
        raise Problem(403, "Forbidden", "only the task's creator may invoke it")
    state = next_state(task.state, Action.INVOKE)
    function = session.get(Function, task.function_id) if task.function_id else None
    if function is None or function.disabled:
        raise Problem(409, "Function unavailable", "the task's function was deleted or disabled")
    if 0 <= function.quota <= function.usage:
        raise Problem(
            429, "Quota exhausted", f"function {function.id} allows {function.quota} invocations"
        )
    function.usage += 1
    task.state, task.invoked_at = state, datetime.now(UTC)
    session.commit()
    request.app.state.wake.set()  # in-process workers look at once
    return public(session, task)


@router.post("/{task_id}/cancel")
def cancel(task_id: str, user: CurrentUser, session: SessionDep) -> TaskPublic:
    """Cancels a task that has not ended. A worker may end it at the same moment: the update is
    conditional on the state read, so one of the two wins and the other is refused."""
    task = participant_task(session, task_id, user)
    seen = task.state
    canceled = changed(
        session,
        update(Task)
        .where(Task.id == task.id, Task.state == seen)
        .values(state=next_state(seen, Action.CANCEL), finished_at=datetime.now(UTC)),
    )
    session.commit()
    if canceled != 1:
        raise Problem(409, "Conflict", "the task changed state meanwhile: get it and try again")
    session.refresh(task)
    return public(session, task)


@router.get("/{task_id}")
def get_task(task_id: str, user: CurrentUser, session: SessionDep) -> TaskPublic:
    return public(session, participant_task(session, task_id, user))


@router.get("")
def list_tasks(
    user: CurrentUser,
    session: SessionDep,
    state: State | None = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Page[TaskPublic]:
    query = (
        select(Task)
        .join(TaskParticipant, TaskParticipant.task_id == Task.id)
        .where(TaskParticipant.user_id == user.id)
    )
    if state is not None:
        query = query.where(Task.state == state)
    rows = list(session.scalars(query.order_by(Task.created_at, Task.id)))
    return Page(
        items=[public(session, t) for t in rows[offset : offset + limit]],
        total=len(rows),
        offset=offset,
        limit=limit,
    )
