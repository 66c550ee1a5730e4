"""Tasks through Teaclave's lifecycle, as the domain's verbs: create, assign, approve, invoke,
cancel, read and list; and `submit`, which creates, assigns, approves and invokes in one
transaction as far as the rules allow.

The multi-party rules are the same on every path: a caller assigns only files it owns, whose
owners are exactly those the task names for the slot; any assignment withdraws every approval
given so far; the task is Approved once every participant approved the data as it is; only its
creator invokes it, once, counted against the function's quota. Every change of a task is a
compare-and-swap on its (version, state), so two concurrent requests never both win. Refusals
are the domain's errors (errors.py); nothing a refused call wrote is committed.
"""

from ._change import Files, approve, assign, cancel, invoke
from ._create import TaskSpec, create, submit
from ._read import ENDED, Progress, approvals, get, page, visible_result

__all__ = [
    "ENDED",
    "Files",
    "Progress",
    "TaskSpec",
    "approvals",
    "approve",
    "assign",
    "cancel",
    "create",
    "get",
    "invoke",
    "page",
    "submit",
    "visible_result",
]
