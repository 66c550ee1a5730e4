"""A data owner's whole flow as one call, on top of the client's verbs: encrypt and register
the inputs, submit the task in one request, do the creator's part while other owners act,
wait with long-polls, verify and decrypt."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from .models import Function, Task, TaskResult
from .vocabulary import BEFORE_INVOKE, DEFAULT_SCHEMA, TaskState

if TYPE_CHECKING:
    from .client import Client

__all__ = ["infer"]

_LATER = {  # a state before the task is invoked -> the states that follow it
    TaskState.CREATED: {TaskState.DATA_ASSIGNED, TaskState.APPROVED},
    TaskState.DATA_ASSIGNED: {TaskState.APPROVED},
}


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def infer(
    client: Client,
    function: Function | str,
    inputs: Mapping[str, bytes],
    *,
    schema: str = DEFAULT_SCHEMA,
    others: Mapping[str, Sequence[str]] | None = None,
    timeout: float | None = 300.0,
    progress: Callable[[str], None] | None = None,
) -> TaskResult:
    """See `Client.infer`."""
    say = progress or (lambda _: None)
    deadline = None if timeout is None else time.monotonic() + timeout
    function = function if isinstance(function, Function) else client.get_function(function)
    say("encrypting and uploading")
    given = {slot: client.put_input(data, schema).id for slot, data in inputs.items()}
    made = {s["name"]: client.register_output_file(schema=schema).id for s in function.outputs}
    say("submitting the task")
    task = client.submit_task(
        function.id,
        given,
        made,
        arguments=function.default_arguments(),
        inputs_ownership=dict(others or {}),
    )
    task = until_invoked(client, task, deadline, say)
    say(task.state)
    task = client.wait(task.id, _left(deadline), progress=lambda t: say(t.state))
    return client.get_task_result(task)


def until_invoked(
    client: Client, task: Task, deadline: float | None, say: Callable[[str], None]
) -> Task:
    """The creator's part while other owners assign and approve: approve once the data is
    complete (an assignment withdraws earlier approvals), invoke once everyone approved."""
    me = client.my_id()
    while task.state in BEFORE_INVOKE:
        if task.state == TaskState.APPROVED:
            return client.invoke_task(task.id)
        if task.state == TaskState.DATA_ASSIGNED and not task.approvals.get(me, True):
            task = client.approve_task(task.id, invoke=True)
            continue
        say(f"waiting: {task.stopped or 'the other owners have yet to act'}")
        task = client.wait(task.id, _left(deadline), states=_LATER[TaskState(task.state)])
    return task
