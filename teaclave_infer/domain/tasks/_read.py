"""Reading tasks: one (its participants only), a page of them, who approved, what of a result
the caller sees, and how far a task got and what it waits for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import pages
from ..errors import NotFound
from ..lifecycle import State
from ..models import Function, Task, TaskParticipant, User
from ..pages import Slice
from ..policy import participant_task, sees_task_data

ENDED = frozenset({State.FINISHED, State.FAILED, State.CANCELED})
# What of a result every participant sees: how it ended. The rest (the return value, the data
# owner's prediction; the receipt, which holds it; output ids; a failure's message and trap
# code, which can spell out a return value; timings) only the creator and the data owners see:
# the function's owner wrote the function, which could encode its input in any of them.
_RESULT_FOR_ALL = ("kind",)
_GOALS = {State.DATA_ASSIGNED: "have its data", State.APPROVED: "be approved", State.STAGED: "run"}


@dataclass(frozen=True)
class Progress:
    """How far a call that asked for several steps took the task: the task as it left it,
    whether it staged it, what the task still waits for (required `inputs` and `outputs` not
    assigned, `approvals` not given) and, when the call asked for more than the rules
    allowed yet, why it stopped."""

    task: Task
    staged: bool = False
    waiting_for: dict[str, list[str]] = field(default_factory=dict)
    stopped: str | None = None


def get(session: Session, user: User, task_id: str) -> Task:
    """The task if the caller takes part in it; NotFound otherwise (its existence stays
    hidden)."""
    return participant_task(session, task_id, user)


def fresh(session: Session, task_id: str) -> Task:
    """The task as committed now (or as this transaction wrote it), not as the session last
    saw it."""
    task = session.get(Task, task_id, populate_existing=True)
    if task is None:  # tasks are never deleted while their participants exist
        raise NotFound(f"no task {task_id}")
    return task


def approvals(session: Session, task_ids: list[str]) -> dict[str, dict[str, bool]]:
    """Who approved each task, as stored now (columns, not objects a session may hold from
    before), in one query however many tasks."""
    out: dict[str, dict[str, bool]] = {t: {} for t in task_ids}
    rows = session.execute(
        select(TaskParticipant.task_id, TaskParticipant.user_id, TaskParticipant.approved).where(
            TaskParticipant.task_id.in_(task_ids)
        )
    )
    for task_id, user_id, approved in rows:
        out[task_id][user_id] = approved
    return out


def visible_result(task: Task, user: User) -> dict[str, Any] | None:
    """The task's result as the caller may see it."""
    if task.result is None or sees_task_data(task, user):
        return task.result
    return {k: v for k, v in task.result.items() if k in _RESULT_FOR_ALL}


def page(session: Session, user: User, state: State | None, offset: int, limit: int) -> Slice[Task]:
    """One page of the tasks the caller takes part in, oldest first, cut in SQL."""
    mine = select(TaskParticipant.task_id).where(TaskParticipant.user_id == user.id)
    query = select(Task).where(Task.id.in_(mine))
    if state is not None:
        query = query.where(Task.state == state)
    return pages.page(session, query.order_by(Task.created_at, Task.id), offset, limit)


def required(specs: list[dict[str, Any]]) -> set[str]:
    """The names of the slots a function needs (its inputs' or outputs' specs)."""
    return {s["name"] for s in specs if not s["optional"]}


def waiting_for(session: Session, task: Task) -> dict[str, list[str]]:
    """What the task waits for before it can go on: its required files, then approvals."""
    if task.state == State.CREATED:
        function = session.get(Function, task.function_id) if task.function_id else None
        if function is None:
            return {}
        waits = {
            "inputs": sorted(required(function.inputs) - set(task.assigned_inputs)),
            "outputs": sorted(required(function.outputs) - set(task.assigned_outputs)),
        }
        return {k: v for k, v in waits.items() if v}
    if task.state == State.DATA_ASSIGNED:
        given = approvals(session, [task.id])[task.id]
        return {"approvals": sorted(u for u, ok in given.items() if not ok)}
    return {}


def _described(waiting: dict[str, list[str]]) -> str:
    parts = [f"{kind} {names}" for kind, names in waiting.items() if kind != "approvals"]
    if parts:
        parts[-1] += " from their owners"
    if "approvals" in waiting:
        parts.append(f"the approval of {waiting['approvals']}")
    return " and ".join(parts) or "its creator to invoke it"


def progress(session: Session, task_id: str, staged: bool, goal: State | None) -> Progress:
    """The task as a call left it; `stopped` says why it is short of `goal`, the state the
    call asked for."""
    task = fresh(session, task_id)
    waiting = waiting_for(session, task)
    order = list(State)
    stopped = None
    if goal is not None and order.index(State(task.state)) < order.index(goal):
        stopped = (
            f"the task is {task.state}: before it can {_GOALS[goal]}, it waits for "
            f"{_described(waiting)}"
        )
    return Progress(task, staged, waiting, stopped)
