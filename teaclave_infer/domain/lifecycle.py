"""Teaclave's task lifecycle, as one transition table.

Created → DataAssigned → Approved → Staged → Running → Finished | Failed | Canceled

A worker claims a Staged task (fetches and decrypts its inputs), moves it to Running (the
executor), then to Finished or Failed. A task whose worker died goes back to Staged.
"""

from __future__ import annotations

import enum

from teaclave_client.vocabulary import TaskState as State

from .errors import Conflict

__all__ = ["Action", "State", "next_state"]


class Action(enum.StrEnum):
    ASSIGN = "assign"  # some data assigned, more required
    ASSIGN_COMPLETE = "assign_complete"  # every required file assigned
    APPROVE = "approve"  # one participant approved, others remain
    APPROVE_COMPLETE = "approve_complete"  # the last participant approved
    WITHDRAW = "withdraw"  # an approval stops counting (an admin reset its giver's password)
    INVOKE = "invoke"
    START = "start"  # a worker has the inputs and starts the function
    FINISH = "finish"
    FAIL = "fail"
    REQUEUE = "requeue"  # the worker's lease ran out
    CANCEL = "cancel"


_S, _A = State, Action
TRANSITIONS: dict[tuple[State, Action], State] = {
    (_S.CREATED, _A.ASSIGN): _S.CREATED,
    (_S.CREATED, _A.ASSIGN_COMPLETE): _S.DATA_ASSIGNED,
    (_S.DATA_ASSIGNED, _A.ASSIGN): _S.DATA_ASSIGNED,  # optional files, before approval
    (_S.DATA_ASSIGNED, _A.ASSIGN_COMPLETE): _S.DATA_ASSIGNED,
    (_S.DATA_ASSIGNED, _A.APPROVE): _S.DATA_ASSIGNED,
    (_S.DATA_ASSIGNED, _A.APPROVE_COMPLETE): _S.APPROVED,
    (_S.DATA_ASSIGNED, _A.WITHDRAW): _S.DATA_ASSIGNED,
    (_S.APPROVED, _A.WITHDRAW): _S.DATA_ASSIGNED,
    (_S.APPROVED, _A.INVOKE): _S.STAGED,
    (_S.STAGED, _A.START): _S.RUNNING,
    (_S.RUNNING, _A.FINISH): _S.FINISHED,
    (_S.STAGED, _A.FAIL): _S.FAILED,
    (_S.RUNNING, _A.FAIL): _S.FAILED,
    (_S.STAGED, _A.REQUEUE): _S.STAGED,
    (_S.RUNNING, _A.REQUEUE): _S.STAGED,
    **{
        (s, _A.CANCEL): _S.CANCELED
        for s in (_S.CREATED, _S.DATA_ASSIGNED, _S.APPROVED, _S.STAGED, _S.RUNNING)
    },
}


def next_state(current: str, action: Action) -> State:
    """The state after `action`; a Conflict naming the current state if there is none."""
    state = State(current)
    if (state, action) not in TRANSITIONS:
        raise Conflict(
            f"cannot {action.value.split('_')[0]} a task in state {state.value}",
            state=state.value,
        )
    return TRANSITIONS[(state, action)]
