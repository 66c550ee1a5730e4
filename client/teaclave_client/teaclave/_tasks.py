"""`FrontendService`: Teaclave's task verbs on the client's, with the function and file verbs
of `FunctionsAndFiles`.

A task runs as in Teaclave: created with its arguments and each slot's owners, its files
assigned by their owners, approved by every participant, invoked by its creator. As in
Teaclave, a task whose only participant is its creator needs no approval: `invoke_task`
approves it on the way. `get_task_result` waits with the platform's long-polls (no sleeping
loop) and checks the platform's signed receipt before it returns the return value."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from ..models import Task
from ..vocabulary import TaskState
from ._functions import FunctionsAndFiles, check_executor
from ._ids import DIRECTORY, external_id, platform_id
from ._service import failing
from ._types import TaskStatus, TeaclaveException

__all__ = ["FrontendService"]


class _Owners(Protocol):  # OwnerList, or a look-alike of the script's
    data_name: str
    uids: list[str]


class _Data(Protocol):  # DataMap, or a look-alike (Teaclave's PSI script passes its own class)
    data_name: str
    data_id: str


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class FrontendService(FunctionsAndFiles):
    """Functions, files and tasks. See `TeaclaveService` for the constructor."""

    def create_task(
        self,
        function_id: str,
        function_arguments: Mapping[str, Any],
        executor: str,
        inputs_ownership: Iterable[_Owners] = (),
        outputs_ownership: Iterable[_Owners] = (),
    ) -> str:
        """A task of the function; the owners are user names (or ids); returns
        `task-<uuid>`."""
        self.check_metadata()
        check_executor(executor, "create task")
        fid = platform_id("function", function_id, "create_task")
        with failing("create task"):
            task = self.client.create_task(
                fid,
                dict(function_arguments),
                self._ownership(inputs_ownership, "inputs_ownership"),
                self._ownership(outputs_ownership, "outputs_ownership"),
            )
        return external_id("task", task.id)

    def assign_data_to_task(
        self, task_id: str, inputs: Iterable[_Data], outputs: Iterable[_Data]
    ) -> None:
        self.check_metadata()
        tid = platform_id("task", task_id, "assign_data_to_task")
        given = {m.data_name: platform_id("input", m.data_id, "inputs") for m in inputs}
        made = {m.data_name: platform_id("output", m.data_id, "outputs") for m in outputs}
        with failing("assign data to task"):
            self.client.assign_data(tid, given, made)

    def approve_task(self, task_id: str) -> None:
        self.check_metadata()
        with failing("approve task"):
            self.client.approve_task(platform_id("task", task_id, "approve_task"))

    def invoke_task(self, task_id: str) -> None:
        """(Its creator) Runs the task once every participant approved; a creator who is its
        only participant approves it in the same request, as Teaclave counts them approved."""
        self.check_metadata()
        tid = platform_id("task", task_id, "invoke_task")
        with failing("invoke task"):
            task = self.client.get_task(tid)
            if set(task.approvals) <= {self._my_id()}:  # alone: assigning (nothing) approves
                if task.state == TaskState.CREATED:
                    task = self.client.assign_data(tid)
                if task.state == TaskState.DATA_ASSIGNED:
                    task = self.client.approve_task(tid)
            self.client.invoke_task(tid)

    def cancel_task(self, task_id: str) -> None:
        self.check_metadata()
        with failing("cancel task"):
            self.client.cancel_task(platform_id("task", task_id, "cancel_task"))

    def get_task(self, task_id: str) -> dict[str, Any]:
        """The task as Teaclave's `get_task` gave it: a dict with `status` a TaskStatus number,
        users by name where this process knows them, bytes in base64."""
        self.check_metadata()
        with failing("get task"):
            task = self.client.get_task(platform_id("task", task_id, "get_task"))
        return self._teaclave_task(task)

    def get_task_result(self, task_id: str, timeout: float | None = None) -> bytes:
        """The return value of the finished task, as Teaclave gives it: its decimal text in
        bytes (`b"7"`). Waits until the task ends (`timeout` seconds, or as long as it takes as
        in Teaclave), then checks the platform's signed receipt against the task. A failed or
        canceled task is a TeaclaveException with the platform's reason."""
        return str(self._verified(task_id, timeout).return_value).encode()

    def get_output_cmac_by_tag(self, task_id: str, tag: str, timeout: float | None = None) -> bytes:
        """The tag (cmac) of output `tag` of the finished task, as its signed receipt names it:
        what the output's owner checks the file against when they decrypt it."""
        receipt = self._verified(task_id, timeout).receipt
        if tag not in receipt.get("outputs", {}):
            raise TeaclaveException(
                f"Failed to get task result (task {task_id} has no output {tag!r})"
            )
        return bytes.fromhex(receipt["outputs"][tag])

    def _verified(self, task_id: str, timeout: float | None) -> Any:
        self.check_metadata()
        tid = platform_id("task", task_id, "get_task_result")
        with failing("get task result"):
            task = self.client.wait(tid, timeout)
            if task.state != TaskState.FINISHED:
                reason = str((task.result or {}).get("message", "")) or task.state
                raise TeaclaveException(
                    f"Failed to get task result (Task {task.state}, Error: {reason})"
                )
            return self.client.get_task_result(task, fetch_outputs=False)

    def _ownership(self, owners: Iterable[_Owners], what: str) -> dict[str, list[str]]:
        return {o.data_name: self._user_ids(o.uids, f"{what} {o.data_name}") for o in owners}

    def _teaclave_task(self, task: Task) -> dict[str, Any]:
        def names(ids: Iterable[str]) -> list[str]:
            return [DIRECTORY.name(self.url, i) for i in ids]

        def owners(by_slot: Mapping[str, list[str]]) -> list[dict[str, Any]]:
            return [{"data_name": n, "uids": names(u)} for n, u in sorted(by_slot.items())]

        def files(kind: str, by_slot: Mapping[str, str]) -> list[dict[str, str]]:
            return [
                {"data_name": n, "data_id": external_id(kind, f)}
                for n, f in sorted(by_slot.items())
            ]

        body: dict[str, Any] = {
            "task_id": external_id("task", task.id),
            "creator": DIRECTORY.name(self.url, task.creator_id),
            "function_id": external_id("function", task.function_id) if task.function_id else "",
            "function_arguments": json.dumps(task.arguments, sort_keys=True),
            "executor": "wamr",
            "inputs_ownership": owners(task.input_owners),
            "outputs_ownership": owners(task.output_owners),
            "participants": names(sorted(task.approvals)),
            "approved_users": names(sorted(u for u, ok in task.approvals.items() if ok)),
            "assigned_inputs": files("input", task.assigned_inputs),
            "assigned_outputs": files("output", task.assigned_outputs),
            "status": int(TaskStatus[str(task.state)]),
        }
        result = task.result or {}
        if task.state == TaskState.FINISHED and "return_value" in result:
            tags = {s: _b64(bytes.fromhex(o["cmac"])) for s, o in result.get("outputs", {}).items()}
            value = str(result["return_value"]).encode()
            body["result"] = {"Ok": {"return_value": _b64(value), "tags_map": tags}}
        elif task.ended:
            body["result"] = {"Err": {"reason": str(result.get("message", task.state))}}
        return body
