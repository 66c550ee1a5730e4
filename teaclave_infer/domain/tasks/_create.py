"""Creating a task, alone or with the caller's assignment, approval and invocation in the same
transaction (`submit`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...abi import argument_text
from ..errors import Conflict, Invalid, NotFound
from ..lifecycle import State
from ..models import Function, Task, TaskParticipant, User
from ..policy import may_use
from ._change import Files, approve_in, assign_in, stage_in
from ._read import Progress, fresh, progress, required


@dataclass(frozen=True)
class TaskSpec:
    """A task to create: the function, its overwritable arguments, each slot's owners."""

    function_id: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    input_owners: Mapping[str, list[str]] = field(default_factory=dict)
    output_owners: Mapping[str, list[str]] = field(default_factory=dict)


def _merged_arguments(function: Function, given: Mapping[str, Any]) -> dict[str, Any]:
    overwritable = {a["name"] for a in function.arguments if a["overwritable"]}
    if set(given) != overwritable:
        raise Invalid(
            f"give exactly the overwritable arguments {sorted(overwritable)}, not {sorted(given)}",
            title="Wrong arguments",
        )
    merged = {a["name"]: given.get(a["name"], a["default"]) for a in function.arguments}
    for name, value in merged.items():  # refused now rather than when a worker packs argv
        try:
            argument_text(name, value)
        except ValueError as err:
            raise Invalid(str(err), title="Wrong arguments") from None
    return merged


def _ownership(
    kind: str, declared: list[dict[str, Any]], given: Mapping[str, list[str]]
) -> dict[str, list[str]]:
    names = {s["name"] for s in declared}
    if unknown := set(given) - names:
        raise Invalid(f"the function declares no {kind}s {sorted(unknown)}", title="Unknown data")
    if missing := required(declared) - set(given):
        raise Invalid(f"name the owners of {kind}s {sorted(missing)}", title="Missing owners")
    return {name: sorted(set(owners)) for name, owners in given.items()}


def _known(session: Session, *ownership: Mapping[str, list[str]]) -> None:
    """Every owner named is a user (one statement for the inputs' and the outputs')."""
    users = {u for owners in ownership for names in owners.values() for u in names}
    if unknown := users - set(session.scalars(select(User.id).where(User.id.in_(users)))):
        raise Invalid(f"owners names no user: {sorted(unknown)}", title="Unknown users")


def create(session: Session, user: User, spec: TaskSpec) -> Task:
    """A new task in state Created, with its participants: the caller, every owner of a slot
    and, for a private function, its owner. Flushed, not committed."""
    function = session.get(Function, spec.function_id)
    if function is None or not may_use(function, user):
        raise NotFound(f"no function {spec.function_id} you may use")
    if function.disabled:
        raise Conflict(f"function {function.id} is disabled", title="Disabled")
    input_owners = _ownership("input", function.inputs, spec.input_owners)
    output_owners = _ownership("output", function.outputs, spec.output_owners)
    _known(session, input_owners, output_owners)
    task = Task(
        function_id=function.id,
        function_sha256=function.sha256,
        creator_id=user.id,
        state=State.CREATED,
        arguments=_merged_arguments(function, spec.arguments),
        input_owners=input_owners,
        output_owners=output_owners,
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
    return task


def submit(
    session: Session,
    user: User,
    spec: TaskSpec,
    files: Files | None = None,
    approve: bool = False,
    invoke: bool = False,
) -> Progress:
    """Creates a task and, in the same transaction, assigns the caller's `files`, approves and
    invokes it, each step exactly as its own request would and as far as the rules allow:
    approving needs every required file assigned, invoking every participant's approval. Where
    it cannot go on, it stops and says why (`Progress.stopped`). A refusal (a file that is not
    the caller's, an exhausted quota) refuses the whole call: the caller rolls back and nothing
    is created. Flushed, not committed: the caller commits."""
    task_id = create(session, user, spec).id
    if files is not None:
        assign_in(session, user, fresh(session, task_id), files)
    task = fresh(session, task_id)
    if approve and task.state == State.DATA_ASSIGNED:
        approve_in(session, user, task)
        task = fresh(session, task_id)  # the approval changed it
    staged = invoke and stage_in(session, task)
    asked = (
        (invoke, State.STAGED),
        (approve, State.APPROVED),
        (files is not None, State.DATA_ASSIGNED),
    )
    goal = next((state for wanted, state in asked if wanted), None)
    return progress(session, task_id, staged, goal)
