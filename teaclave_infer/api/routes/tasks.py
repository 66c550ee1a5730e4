"""Tasks through Teaclave's lifecycle: create, assign data, approve, invoke, cancel, get."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ...domain.db import LostSwap, changed, retried, swap
from ...domain.lifecycle import TRANSITIONS, Action, State, next_state
from ...domain.models import Function, Task, TaskParticipant, User
from ...domain.policy import may_use, owned_file, participant_task, sees_task_data, settled_owners
from ..bounded import Id, Limit, Offset
from ..deps import CurrentUser, SessionDep
from ..idempotency import remember, replay
from ..problems import Problem
from ..schemas import Assignment, Page, TaskCreate, TaskPublic

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])
T = TypeVar("T")

_CANCELABLE = tuple(s for s, a in TRANSITIONS if a == Action.CANCEL)
# What of a result every participant sees: how it ended. The rest (the return value, the data
# owner's prediction; the receipt, which holds it; output ids; a failure's message and trap
# code, which can spell out a return value; timings) only the creator and the data owners see:
# the function's owner wrote the function, which could encode its input in any of them.
_RESULT_FOR_ALL = ("kind",)


def _approvals(session: Session, task_id: str) -> dict[str, bool]:
    """Who approved, as stored now (columns, not objects a session may hold from before)."""
    rows = session.execute(
        select(TaskParticipant.user_id, TaskParticipant.approved).where(
            TaskParticipant.task_id == task_id
        )
    )
    return {user_id: approved for user_id, approved in rows}


def public(session: Session, task: Task, user: User) -> TaskPublic:
    """The task as `user` may see it."""
    result = task.result
    if result is not None and not sees_task_data(task, user):
        result = {k: v for k, v in result.items() if k in _RESULT_FOR_ALL}
    return TaskPublic.model_validate(
        {c: getattr(task, c) for c in TaskPublic.model_fields if c not in ("approvals", "result")}
        | {"approvals": _approvals(session, task.id), "result": result}
    )


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
    out = public(session, task, user).model_dump(mode="json")
    remember(request, session, user, 201, out)
    session.commit()
    return out


def _assigned(
    session: Session, user: User, task: Task, kind: str, files: dict[str, str]
) -> dict[str, str]:
    """The task's assigned files of `kind` with `files` (the caller's) put in their slots."""
    owners_wanted = task.input_owners if kind == "input" else task.output_owners
    assigned = dict(task.assigned_inputs if kind == "input" else task.assigned_outputs)
    for name, file_id in files.items():
        f = owned_file(session, file_id, user)
        owners = settled_owners(session, f)
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
    return assigned


def _fresh(session: Session, task_id: str) -> Task:
    """The task as committed now, not as this session last saw it."""
    task = session.get(Task, task_id, populate_existing=True)
    if task is None:  # tasks are never deleted while their participants exist
        raise Problem(404, "Not found", f"no task {task_id}")
    return task


def _swap(session: Session, seen: Task, **values: Any) -> None:
    """Writes `values` to the task if it is still at the version and state it was read at,
    raising the version; LostSwap otherwise (`retried` reads it again)."""
    swap(
        session,
        update(Task)
        .where(Task.id == seen.id, Task.version == seen.version, Task.state == seen.state)
        .values(version=seen.version + 1, **values)
        .execution_options(synchronize_session=False),
    )


def _retried(session: Session, attempt: Callable[[], T]) -> T:
    try:
        return retried(session, attempt)
    except LostSwap as err:
        raise Problem(
            409, "Conflict", "the task kept changing meanwhile: get it and try again"
        ) from err


def _required(specs: list[dict[str, Any]]) -> set[str]:
    return {s["name"] for s in specs if not s["optional"]}


@router.post("/{task_id}/assign")
def assign(task_id: Id, body: Assignment, user: CurrentUser, session: SessionDep) -> TaskPublic:
    """Assigns files the caller owns; once every required file is there, DataAssigned (and,
    with a single participant, Approved at once). Any assignment withdraws every approval given
    so far, in the same swap: everyone approves the data as it is now. Owners assigning at once
    all succeed, one after the other."""
    participant_task(session, task_id, user)

    def attempt() -> None:
        task = _fresh(session, task_id)
        next_state(task.state, Action.ASSIGN)  # 409 unless assigning is allowed now
        inputs = _assigned(session, user, task, "input", body.inputs)
        outputs = _assigned(session, user, task, "output", body.outputs)
        function = session.get(Function, task.function_id) if task.function_id else None
        complete = function is None or (
            _required(function.inputs) <= set(inputs)
            and _required(function.outputs) <= set(outputs)
        )
        state = next_state(task.state, Action.ASSIGN_COMPLETE if complete else Action.ASSIGN)
        alone = state == State.DATA_ASSIGNED and len(_approvals(session, task_id)) == 1
        if alone:  # the caller is the only participant: assigning is approving
            state = next_state(state, Action.APPROVE_COMPLETE)
        _swap(session, task, assigned_inputs=inputs, assigned_outputs=outputs, state=state)
        session.execute(
            update(TaskParticipant)
            .where(TaskParticipant.task_id == task_id)
            .values(approved=alone)
            .execution_options(synchronize_session=False)
        )

    _retried(session, attempt)
    return public(session, _fresh(session, task_id), user)


@router.post("/{task_id}/approve")
def approve(task_id: Id, user: CurrentUser, session: SessionDep) -> TaskPublic:
    """Records the caller's approval; the last one moves the task to Approved, exactly once
    however many approve at the same moment (each approval raises the task's version)."""
    participant_task(session, task_id, user)

    def attempt() -> None:
        task = _fresh(session, task_id)
        next_state(task.state, Action.APPROVE)
        others = [ok for who, ok in _approvals(session, task_id).items() if who != user.id]
        last = all(others)
        _swap(
            session,
            task,
            state=next_state(task.state, Action.APPROVE_COMPLETE if last else Action.APPROVE),
        )
        session.execute(
            update(TaskParticipant)
            .where(TaskParticipant.task_id == task_id, TaskParticipant.user_id == user.id)
            .values(approved=True)
            .execution_options(synchronize_session=False)
        )

    _retried(session, attempt)
    return public(session, _fresh(session, task_id), user)


def _count_invocation(session: Session, function_id: str | None) -> None:
    """Counts one invocation against the function's quota in one conditional UPDATE (the
    caller's transaction); a 409 or 429 if the function may not run (nothing written)."""
    counted = function_id is not None and changed(
        session,
        update(Function)
        .where(
            Function.id == function_id,
            Function.disabled.is_(False),
            or_(Function.quota < 0, Function.usage < Function.quota),
        )
        .values(usage=Function.usage + 1)
        .execution_options(synchronize_session=False),
    )
    if counted:
        return
    session.rollback()
    function = session.get(Function, function_id, populate_existing=True) if function_id else None
    if function is None or function.disabled:
        raise Problem(409, "Function unavailable", "the task's function was deleted or disabled")
    raise Problem(
        429, "Quota exhausted", f"function {function.id} allows {function.quota} invocations"
    )


@router.post("/{task_id}/invoke")
def invoke(task_id: Id, request: Request, user: CurrentUser, session: SessionDep) -> TaskPublic:
    """Stages an Approved task and counts it against the function's quota: two conditional
    UPDATEs in one transaction, committed or rolled back together. Of many invocations at
    once, at most the quota's worth are counted and a task is staged at most once."""
    task = participant_task(session, task_id, user)
    if task.creator_id != user.id:
        raise Problem(403, "Forbidden", "only the task's creator may invoke it")
    next_state(task.state, Action.INVOKE)  # 409 naming the state
    # The function's row first, the task's second: the order a function's deletion locks them
    # in (ON DELETE SET NULL), so that PostgreSQL never sees the two wait for each other.
    _count_invocation(session, task.function_id)
    staged = changed(
        session,
        update(Task)
        .where(Task.id == task_id, Task.state == State.APPROVED)
        .values(
            state=next_state(State.APPROVED, Action.INVOKE),
            invoked_at=datetime.now(UTC),
            version=Task.version + 1,
        )
        .execution_options(synchronize_session=False),
    )
    if staged != 1:
        session.rollback()  # and the count with it
        next_state(_fresh(session, task_id).state, Action.INVOKE)  # the 409 naming the state
        raise Problem(409, "Conflict", "the task changed state meanwhile: get it and try again")
    session.commit()
    staged_task = public(session, _fresh(session, task_id), user)  # as staged: before a worker
    request.app.state.wake.set()  # in-process workers look at once
    return staged_task


@router.post("/{task_id}/cancel")
def cancel(task_id: Id, user: CurrentUser, session: SessionDep) -> TaskPublic:
    """Cancels a task that has not ended, in one conditional UPDATE on its state. A worker may
    end it at the same moment with its own conditional UPDATE (on Staged or Running and its
    lease): one of the two wins and the other changes nothing."""
    participant_task(session, task_id, user)
    canceled = changed(
        session,
        update(Task)
        .where(Task.id == task_id, Task.state.in_(_CANCELABLE))
        .values(state=State.CANCELED, finished_at=datetime.now(UTC), version=Task.version + 1)
        .execution_options(synchronize_session=False),
    )
    session.commit()
    task = _fresh(session, task_id)
    if canceled != 1:
        next_state(task.state, Action.CANCEL)  # the 409 naming the state it ended in
        raise Problem(409, "Conflict", "the task changed state meanwhile: get it and try again")
    return public(session, task, user)


@router.get("/{task_id}")
def get_task(task_id: Id, user: CurrentUser, session: SessionDep) -> TaskPublic:
    return public(session, participant_task(session, task_id, user), user)


@router.get("")
def list_tasks(
    user: CurrentUser,
    session: SessionDep,
    state: State | None = None,
    offset: Offset = 0,
    limit: Limit = 100,
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
        items=[public(session, t, user) for t in rows[offset : offset + limit]],
        total=len(rows),
        offset=offset,
        limit=limit,
    )
