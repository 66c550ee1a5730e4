"""The data classes of Teaclave's Python SDK, their attribute names kept (scripts build them
and sometimes pass look-alikes of their own, so the facade reads only the attributes), the
task statuses with Teaclave's numbers, and the facade's error and warning."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

from ..errors import TeaclaveClientError
from ..vocabulary import TaskState

__all__ = [
    "AttestationNotAvailable",
    "DataMap",
    "FunctionArgument",
    "FunctionInput",
    "FunctionOutput",
    "InsecureConnection",
    "Message",
    "OwnerList",
    "TaskStatus",
    "TeaclaveException",
]


class TeaclaveException(TeaclaveClientError):
    """What every facade call raises, as Teaclave's SDK does: "Failed to <verb> (<reason>)".
    The client's typed error it wraps (NotFound, PermissionDenied, ...) is its `__cause__`,
    and its `exit_code` is that error's."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class AttestationNotAvailable(UserWarning):
    """Teaclave's attestation arguments were given: this platform runs no SGX enclave, so
    there is no attestation report to check them against."""


class InsecureConnection(UserWarning):
    """The platform's URL is plain http:// to a host that is not this machine: anyone on the
    way can read the tokens and replace the platform's sealing key that file keys are wrapped
    to (unless `pinned_keys` pins it)."""


# Teaclave's numbers for the task states (the TaskStatus enum of its teaclave_common.proto), by
# the vocabulary's state. Created 0 to Running 4 and Finished 10 were read in its proto; Failed
# and Canceled, which its last SDK compares against (get_task_result) and its last Rust types
# have, are in a later proto than the public index holds: 20 and 30 follow its spacing but are
# unchecked, so scripts should compare by name (`TaskStatus.Failed`), never by number.
TEACLAVE_STATUS_NUMBERS: dict[TaskState, int] = {
    TaskState.CREATED: 0,
    TaskState.DATA_ASSIGNED: 1,
    TaskState.APPROVED: 2,
    TaskState.STAGED: 3,
    TaskState.RUNNING: 4,
    TaskState.FINISHED: 10,
    TaskState.FAILED: 20,
    TaskState.CANCELED: 30,
}
# A task's status as `get_task()["status"]` gives it: Teaclave's names are the vocabulary's task
# states (TaskStatus["Finished"], TaskStatus.Finished), its numbers the table above.
TaskStatus = enum.IntEnum(  # type: ignore[misc]
    "TaskStatus", [(state.value, TEACLAVE_STATUS_NUMBERS[state]) for state in TaskState]
)
TaskStatus.__module__ = __name__


class Message(dict[str, Any]):
    """A response as Teaclave's SDK gave it: its fields by attribute (`response.name`), and
    as a dict (`response["name"]`, what `MessageToDict` made of the others)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class FunctionInput:
    """An input a function declares: its name, a description, whether it may be left out."""

    def __init__(self, name: str, description: str, optional: bool = False) -> None:
        self.name, self.description, self.optional = name, description, optional


class FunctionOutput(FunctionInput):
    """An output a function declares: its name, a description, whether it may be left out."""


class FunctionArgument:
    """An argument a function declares: its key, its default value, and whether a task's
    creator may give another value (`allow_overwrite`)."""

    def __init__(self, key: str, default_value: str = "", allow_overwrite: bool = True) -> None:
        self.key, self.default_value, self.allow_overwrite = key, default_value, allow_overwrite


class OwnerList:
    """The owners (user ids: Teaclave's were user names, see `FrontendService`) of one of a
    task's inputs or outputs, named `data_name`."""

    def __init__(self, data_name: str, uids: Sequence[str]) -> None:
        self.data_name, self.uids = data_name, list(uids)


class DataMap:
    """A file (`data_id`, as `register_input_file` or `register_output_file` returned it)
    assigned to a task's input or output `data_name`."""

    def __init__(self, data_name: str, data_id: str) -> None:
        self.data_name, self.data_id = data_name, data_id
