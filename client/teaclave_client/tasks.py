"""The client's verbs on tasks: create (or submit: create, assign, approve and invoke in one
request), assign, approve, invoke, cancel, read and wait (long-polls), and the verified result."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .data import FileVerbs
from .errors import ApiError, TaskTimeout, TeaclaveClientError
from .functions import FunctionVerbs
from .models import ENDED, Task, TaskResult, parse
from .sealing import verify_receipt
from .verify import check_finished, check_input, check_receipt

__all__ = ["MAX_WAIT_S", "TaskVerbs"]

MAX_WAIT_S = 60.0  # the longest long-poll the platform holds
Owners = Mapping[str, Sequence[str]]  # slot -> user ids


def _ownership(owners: Owners | None) -> list[dict[str, Any]]:
    return [{"name": n, "owners": list(o)} for n, o in (owners or {}).items()]


class TaskVerbs(FileVerbs, FunctionVerbs):
    def _task_body(
        self,
        function_id: str,
        arguments: Mapping[str, Any] | None,
        inputs_ownership: Owners | None,
        outputs_ownership: Owners | None,
    ) -> dict[str, Any]:
        if arguments is None:
            arguments = self.get_function(function_id).default_arguments()
        return {
            "function_id": function_id,
            "arguments": dict(arguments),
            "inputs_ownership": _ownership(inputs_ownership),
            "outputs_ownership": _ownership(outputs_ownership),
        }

    def _post_task(self, body: Mapping[str, Any], idempotency_key: str | None) -> Task:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return parse(Task, self._json("POST", "/v1/tasks", json=body, headers=headers))

    def create_task(
        self,
        function_id: str,
        arguments: Mapping[str, Any] | None = None,
        inputs_ownership: Owners | None = None,
        outputs_ownership: Owners | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Task:
        """A task of the function. `arguments` default to the function's overwritable ones;
        ownership maps each input and output slot to its owners' user ids."""
        body = self._task_body(function_id, arguments, inputs_ownership, outputs_ownership)
        return self._post_task(body, idempotency_key)

    def submit_task(
        self,
        function_id: str,
        inputs: Mapping[str, str] | None = None,
        outputs: Mapping[str, str] | None = None,
        *,
        arguments: Mapping[str, Any] | None = None,
        inputs_ownership: Owners | None = None,
        outputs_ownership: Owners | None = None,
        approve: bool = True,
        invoke: bool = True,
        idempotency_key: str | None = None,
    ) -> Task:
        """Creates a task and, in the same request (one transaction on the platform), assigns
        the caller's files (slot -> file id), approves and invokes it, each as far as the
        rules allow. The task comes back Staged when the caller owns every slot and nobody
        else must approve; otherwise where it must wait for others, `task.stopped` saying why
        and `task.waiting_for` what (the slots and approvals missing). A slot in `inputs` or
        `outputs` is the caller's unless the ownership maps say otherwise."""
        me = self.my_id()
        owners_in = {slot: [me] for slot in inputs or {}} | dict(inputs_ownership or {})
        owners_out = {slot: [me] for slot in outputs or {}} | dict(outputs_ownership or {})
        body = self._task_body(function_id, arguments, owners_in, owners_out)
        body |= {
            "assign": {"inputs": dict(inputs or {}), "outputs": dict(outputs or {})},
            "approve": approve,
            "invoke": invoke,
        }
        return self._post_task(body, idempotency_key)

    def assign_data(
        self,
        task_id: str,
        inputs: Mapping[str, str] | None = None,
        outputs: Mapping[str, str] | None = None,
        *,
        approve: bool = False,
    ) -> Task:
        """Assigns the caller's files (slot -> file id) to the task; with `approve`, approves
        it in the same request once its data is complete."""
        body = {"inputs": dict(inputs or {}), "outputs": dict(outputs or {}), "approve": approve}
        return parse(Task, self._json("POST", f"/v1/tasks/{task_id}/assign", json=body))

    def approve_task(self, task_id: str, *, invoke: bool = False) -> Task:
        """Approves the task; with `invoke` (its creator only), an approval that is the last
        one also invokes it, in the same request."""
        body = {"invoke": True} if invoke else None
        return parse(Task, self._json("POST", f"/v1/tasks/{task_id}/approve", json=body))

    def invoke_task(self, task_id: str) -> Task:
        return parse(Task, self._json("POST", f"/v1/tasks/{task_id}/invoke"))

    def cancel_task(self, task_id: str) -> Task:
        return parse(Task, self._json("POST", f"/v1/tasks/{task_id}/cancel"))

    def get_task(self, task_id: str, wait: float = 0.0, until: Iterable[str] = ()) -> Task:
        """The task; with `wait` (seconds, at most 60), once it ends (or reaches a state in
        `until`) or when `wait` is up, whichever comes first: one long-poll."""
        if wait <= 0:
            return parse(Task, self._json("GET", f"/v1/tasks/{task_id}"))
        wait = min(wait, MAX_WAIT_S)
        params = {"wait": f"{wait:.3f}", "until": sorted(until)}
        body = self._json(
            "GET", f"/v1/tasks/{task_id}", params=params, timeout=(5.0, self.timeout + wait)
        )
        return parse(Task, body)

    def list_tasks(self, state: str | None = None) -> list[Task]:
        return [parse(Task, t) for t in self._pages("/v1/tasks", {"state": state} if state else {})]

    def wait(
        self,
        task_id: str,
        timeout: float | None = 300.0,
        *,
        states: Iterable[str] = ENDED,
        progress: Callable[[Task], None] | None = None,
    ) -> Task:
        """Waits until the task reaches one of `states` (by default: it ended; an ended task
        ends every wait), in long-polls of up to a minute: the platform answers as soon as the
        task ends, without polling. `progress(task)` after each answer. TaskTimeout after
        `timeout` seconds (None: no limit)."""
        wanted = frozenset(states)
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.5  # after a 429: the platform holds as many waits as it allows
        while True:
            left = MAX_WAIT_S if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                task = self.get_task(task_id, left, wanted - ENDED)
            except ApiError as err:
                if err.status != 429 or left < pause:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 8.0)
                continue
            if progress is not None:
                progress(task)
            if task.state in wanted or task.ended:
                return task
            if deadline is not None and time.monotonic() >= deadline:
                raise TaskTimeout(f"task {task_id} is still {task.state} after {timeout:g} s")

    def get_task_result(self, task: str | Task, *, fetch_outputs: bool = True) -> TaskResult:
        """The result of a finished task, verified: the receipt is signed by the platform's
        signing key and speaks of this task, this function, this return value and these
        outputs; each output this client holds a key for is fetched (unless `fetch_outputs` is
        false: an output written to the owner's own URL is read there), its tag checked against
        the receipt and decrypted. TaskFailed if the task failed or was canceled."""
        task = self.get_task(task) if isinstance(task, str) else task
        result = check_finished(task)
        self._check_may_see(task, result)
        signing = self.platform_keys()["signing"]["public_key"]
        payload = verify_receipt(result.get("receipt") or {}, signing)
        check_receipt(payload, task, result)
        for slot, file_id in task.assigned_inputs.items():  # our own inputs: were they used?
            if self.keys.get(file_id) is not None:
                check_input(payload, slot, file_id, self._input_cmac(file_id))
        outputs, missing = {}, []
        for slot, out in result.get("outputs", {}).items():
            if not fetch_outputs or self.keys.get(out["file_id"]) is None:
                missing.append(slot)
                continue
            outputs[slot] = self.fetch_output(
                out["file_id"], payload["outputs"][slot], out.get("iv")
            )
        return TaskResult(task, int(result["return_value"]), outputs, payload, missing)

    def _check_may_see(self, task: Task, result: Mapping[str, Any]) -> None:
        """A clear error for the function's owner, to whom the platform shows no receipt."""
        slots = (*task.input_owners.values(), *task.output_owners.values())
        me = self.my_id()
        if "receipt" not in result and me != task.creator_id and all(me not in s for s in slots):
            raise TeaclaveClientError(
                f"task {task.id} finished, but only its creator and data owners see its return "
                "value, receipt and outputs (you take part as the function's owner)"
            )
