"""A task's states, Teaclave's names (the platform's transition table is in
`teaclave_infer.domain.lifecycle`; clients and the browser read the states only)."""

from __future__ import annotations

import enum

__all__ = ["BEFORE_INVOKE", "ENDED", "TaskState"]


class TaskState(enum.StrEnum):
    """Created → DataAssigned → Approved → Staged → Running → Finished | Failed | Canceled."""

    CREATED = "Created"
    DATA_ASSIGNED = "DataAssigned"
    APPROVED = "Approved"
    STAGED = "Staged"
    RUNNING = "Running"
    FINISHED = "Finished"
    FAILED = "Failed"
    CANCELED = "Canceled"


# The states a task never leaves.
ENDED = frozenset({TaskState.FINISHED, TaskState.FAILED, TaskState.CANCELED})
# The states in which the task's participants still assign and approve, before it is invoked.
BEFORE_INVOKE = (TaskState.CREATED, TaskState.DATA_ASSIGNED, TaskState.APPROVED)
