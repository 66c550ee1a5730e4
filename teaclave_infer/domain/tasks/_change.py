"""Changing a task: assign, approve, invoke, cancel. Each is a compare-and-swap on the task's
(version, state) or a conditional UPDATE on its state, in one transaction with what goes
with it (the participants' approvals, the function's quota)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from ..db import LostSwap, changed, retried, swap
from ..errors import Conflict, Exhausted, Forbidden, Invalid
from ..lifecycle import TRANSITIONS, Action, State, next_state
from ..models import Function, Task, TaskParticipant, User
from ..policy import participant_task, usable_file
from ._read import Progress, approvals, fresh, progress, required

T = TypeVar("T")
_CANCELABLE = tuple(s for s, a in TRANSITIONS if a == Action.CANCEL)


@dataclass(frozen=True)
class Files:
    """Files of the caller's to assign: slot name -> file id."""

    inputs: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)


def _assigned(
    session: Session, user: User, task: Task, kind: str, files: Mapping[str, str]
) -> dict[str, str]:
    """The task's assigned files of `kind` with `files` (the caller's) put in their slots."""
    owners_wanted = task.input_owners if kind == "input" else task.output_owners
    assigned = dict(task.assigned_inputs if kind == "input" else task.assigned_outputs)
    for name, file_id in files.items():
        f, owners = usable_file(session, file_id, user)
        if f.kind != kind:
            raise Invalid(f"{file_id} is an {f.kind}, not an {kind}", title="Wrong file kind")
        if kind == "output" and f.cmac is not None:
            raise Conflict(f"output {file_id} holds a task's result", title="Already written")
        if name not in owners_wanted:
            raise Invalid(f"the task has no {kind} {name!r}", title="Unknown data")
        if sorted(owners) != owners_wanted[name]:
            raise Forbidden(
                f"{kind} {name!r} must be owned by exactly {owners_wanted[name]}",
                title="Wrong owners",
            )
        assigned[name] = file_id
    return assigned


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


def _set_approval(session: Session, task_id: str, approved: bool, user_id: str | None) -> None:
    """Sets one participant's approval (`user_id`), or everyone's (None)."""
    query = update(TaskParticipant).where(TaskParticipant.task_id == task_id)
    if user_id is not None:
        query = query.where(TaskParticipant.user_id == user_id)
    session.execute(query.values(approved=approved).execution_options(synchronize_session=False))


def assign_in(session: Session, user: User, task: Task, files: Files) -> None:
    """`assign` in the caller's transaction, on the task as read (LostSwap if it changed)."""
    next_state(task.state, Action.ASSIGN)  # a Conflict unless assigning is allowed now
    inputs = _assigned(session, user, task, "input", files.inputs)
    outputs = _assigned(session, user, task, "output", files.outputs)
    function = session.get(Function, task.function_id) if task.function_id else None
    complete = function is None or (
        required(function.inputs) <= set(inputs) and required(function.outputs) <= set(outputs)
    )
    state = next_state(task.state, Action.ASSIGN_COMPLETE if complete else Action.ASSIGN)
    alone = state == State.DATA_ASSIGNED and len(approvals(session, [task.id])[task.id]) == 1
    if alone:  # the caller is the only participant: assigning is approving
        state = next_state(state, Action.APPROVE_COMPLETE)
    _swap(session, task, assigned_inputs=inputs, assigned_outputs=outputs, state=state)
    _set_approval(session, task.id, alone, None)


def approve_in(session: Session, user: User, task: Task) -> None:
    """`approve` in the caller's transaction, on the task as read (LostSwap if it changed).
    Approving an Approved task the caller approved changes nothing: a single participant's
    assignment approved it already, and a retried request must not fail. Every other state
    past DataAssigned (staged, ended, cancelled) is a Conflict, as before."""
    given = approvals(session, [task.id])[task.id]
    if task.state == State.APPROVED and given.get(user.id):
        return
    next_state(task.state, Action.APPROVE)
    last = all(ok for who, ok in given.items() if who != user.id)
    _swap(
        session,
        task,
        state=next_state(task.state, Action.APPROVE_COMPLETE if last else Action.APPROVE),
    )
    _set_approval(session, task.id, True, user.id)


def _retried(session: Session, attempt: Callable[[], T]) -> T:
    try:
        return retried(session, attempt)
    except LostSwap as err:
        raise Conflict("the task kept changing meanwhile: get it and try again") from err


def assign(
    session: Session, user: User, task_id: str, files: Files, approve: bool = False
) -> Progress:
    """Assigns files the caller owns; once every required file is there, DataAssigned (and,
    with a single participant, Approved at once). Any assignment withdraws every approval
    given so far, in the same swap: everyone approves the data as it is now. With `approve`,
    the caller's approval follows in the same transaction once the data is complete (else the
    Progress says what is missing). Owners assigning at once all succeed, one after the
    other. Committed."""
    participant_task(session, task_id, user)

    def attempt() -> None:
        assign_in(session, user, fresh(session, task_id), files)
        if approve and (task := fresh(session, task_id)).state == State.DATA_ASSIGNED:
            approve_in(session, user, task)

    _retried(session, attempt)
    return progress(session, task_id, False, State.APPROVED if approve else None)


def approve(session: Session, user: User, task_id: str, invoke: bool = False) -> Progress:
    """Records the caller's approval; the last one moves the task to Approved, exactly once
    however many approve at the same moment (each approval raises the task's version); an
    Approved task stays as it is. With `invoke`, an approval that leaves the task Approved
    also stages it, in the same transaction;
    only the creator may ask that (a Forbidden before anything is written), and a refused
    invocation (the quota) refuses the approval too. Committed."""
    task = participant_task(session, task_id, user)
    if invoke and task.creator_id != user.id:
        raise Forbidden("only the task's creator may invoke it")

    def attempt() -> bool:
        approve_in(session, user, fresh(session, task_id))
        return invoke and stage_in(session, fresh(session, task_id))

    staged = _retried(session, attempt)
    return progress(session, task_id, staged, State.STAGED if invoke else State.APPROVED)


def _count_invocation(session: Session, function_id: str | None) -> None:
    """Counts one invocation against the function's quota in one conditional UPDATE (the
    caller's transaction); a Conflict or Exhausted if the function may not run (the caller
    rolls back)."""
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
    function = session.get(Function, function_id, populate_existing=True) if function_id else None
    if function is None or function.disabled:
        raise Conflict("the task's function was deleted or disabled", title="Function unavailable")
    raise Exhausted(f"function {function.id} allows {function.quota} invocations")


def stage_in(session: Session, task: Task) -> bool:
    """Stages an Approved task in the caller's transaction, counting it against the quota;
    False (nothing written) if the task as read is not Approved; a Conflict if it no longer
    is."""
    if task.state != State.APPROVED:
        return False
    # The function's row first, the task's second: the order a function's deletion locks them
    # in (ON DELETE SET NULL), so that PostgreSQL never sees the two wait for each other.
    _count_invocation(session, task.function_id)
    staged = changed(
        session,
        update(Task)
        .where(Task.id == task.id, Task.state == State.APPROVED)
        .values(
            state=next_state(State.APPROVED, Action.INVOKE),
            invoked_at=datetime.now(UTC),
            version=Task.version + 1,
        )
        .execution_options(synchronize_session=False),
    )
    if staged != 1:
        next_state(fresh(session, task.id).state, Action.INVOKE)  # the Conflict naming it
        raise Conflict("the task changed state meanwhile: get it and try again")
    return True


def invoke(session: Session, user: User, task_id: str) -> Task:
    """Stages an Approved task and counts it against the function's quota: two conditional
    UPDATEs in one transaction, committed or rolled back together. Of many invocations at
    once, at most the quota's worth are counted and a task is staged at most once."""
    task = participant_task(session, task_id, user)
    if task.creator_id != user.id:
        raise Forbidden("only the task's creator may invoke it")
    next_state(task.state, Action.INVOKE)  # a Conflict naming the state
    try:
        stage_in(session, task)
        session.commit()
    except BaseException:
        session.rollback()  # the count with the rest
        raise
    return fresh(session, task_id)  # as staged: before a worker


def cancel(session: Session, user: User, task_id: str) -> Task:
    """Cancels a task that has not ended, in one conditional UPDATE on its state. A worker may
    end it at the same moment with its own conditional UPDATE (on Staged or Running and its
    lease): one of the two wins and the other changes nothing. Committed."""
    participant_task(session, task_id, user)
    canceled = changed(
        session,
        update(Task)
        .where(Task.id == task_id, Task.state.in_(_CANCELABLE))
        .values(state=State.CANCELED, finished_at=datetime.now(UTC), version=Task.version + 1)
        .execution_options(synchronize_session=False),
    )
    session.commit()
    task = fresh(session, task_id)
    if canceled != 1:
        next_state(task.state, Action.CANCEL)  # the Conflict naming the state it ended in
        raise Conflict("the task changed state meanwhile: get it and try again")
    return task
