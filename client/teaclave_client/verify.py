"""What a client checks of a task's result before it believes it: the task finished, its signed
receipt speaks of this very task, function, return value and outputs, and names the client's
own inputs by their tags."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ReceiptError, TaskFailed, TeaclaveClientError
from .models import Task
from .vocabulary import ResultKind, TaskState

__all__ = ["check_finished", "check_input", "check_receipt"]


def check_finished(task: Task) -> dict[str, Any]:
    """The result of a Finished task; TaskFailed if it failed or was canceled, an error if it
    has not ended."""
    result = task.result or {}
    if task.state == TaskState.FINISHED:
        return result
    if not task.ended:
        raise TeaclaveClientError(f"task {task.id} has not ended: it is {task.state}")
    kind = result.get("kind") or task.result_kind or task.state.lower()
    raise TaskFailed(task.id, task.state, kind, str(result.get("message", "")))


def check_receipt(payload: Mapping[str, Any], task: Task, result: Mapping[str, Any]) -> None:
    """The signed receipt must describe this very task and result."""
    expected = {
        "task_id": task.id,
        "function_sha256": task.function_sha256,
        "return_value": result.get("return_value"),
        "result_kind": ResultKind.OK.value,
    }
    for name, value in expected.items():
        if payload.get(name) != value:
            raise ReceiptError(f"the receipt's {name} is {payload.get(name)!r}, not {value!r}")
    recorded = {slot: out["cmac"] for slot, out in result.get("outputs", {}).items()}
    if payload.get("outputs") != recorded:
        raise ReceiptError("the receipt's outputs are not the task's outputs")


def check_input(payload: Mapping[str, Any], slot: str, file_id: str, cmac: str) -> None:
    """The receipt must name the input the client gave (`cmac`, its tag) in `slot`."""
    if payload.get("inputs", {}).get(slot, "").lower() != cmac.lower():
        raise ReceiptError(f"the receipt's input {slot!r} is not file {file_id}")
