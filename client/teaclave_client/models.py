"""What the platform's responses describe, as frozen dataclasses: users, functions, files,
tasks, and a task's verified result."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, TypeVar

from .vocabulary import ENDED

__all__ = ["ENDED", "FileInfo", "Function", "Task", "TaskResult", "User", "parse"]

T = TypeVar("T")


def parse(cls: type[T], body: Mapping[str, Any]) -> T:
    """A dataclass from a response body: known fields only (a newer service may add some),
    timestamps as datetimes."""
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name in body:
            value = body[f.name]
            if f.name.endswith("_at") and isinstance(value, str):
                value = datetime.fromisoformat(value)
            values[f.name] = value
    return cls(**values)


@dataclass(frozen=True)
class User:
    id: str
    username: str
    role: str
    attribute: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True)
class Function:
    id: str
    sha256: str
    owner_id: str
    name: str
    description: str = ""
    public: bool = False
    allowlist: list[str] = field(default_factory=list)
    arguments: list[dict[str, Any]] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    quota: int = -1
    usage: int = 0
    disabled: bool = False
    profile: str = "fast"
    size: int = 0
    limits: dict[str, Any] = field(default_factory=dict)
    browser: bool = False  # its users may run it in their browsers too
    browser_weights: str | None = None  # the input file browsers get as its separate weights
    created_at: datetime | None = None
    executor_type: str = "wamr"
    has_manifest: bool = True  # False: registered without the builder's (no tensor shapes)

    def default_arguments(self) -> dict[str, Any]:
        """The overwritable arguments with their defaults: what create_task takes as is."""
        return {a["name"]: a.get("default", "") for a in self.arguments if a.get("overwritable")}


@dataclass(frozen=True)
class FileInfo:
    id: str
    kind: str
    url: str
    schema: str
    iv: str = ""
    cmac: str | None = None
    owners: list[str] = field(default_factory=list)
    created_at: datetime | None = None


@dataclass(frozen=True)
class Task:
    id: str
    function_id: str | None
    function_sha256: str
    creator_id: str
    state: str
    arguments: dict[str, Any] = field(default_factory=dict)
    input_owners: dict[str, list[str]] = field(default_factory=dict)
    output_owners: dict[str, list[str]] = field(default_factory=dict)
    assigned_inputs: dict[str, str] = field(default_factory=dict)
    assigned_outputs: dict[str, str] = field(default_factory=dict)
    approvals: dict[str, bool] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    result_kind: str | None = None
    attempts: int = 0
    invoked_at: datetime | None = None
    finished_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    # Set by a request that asked for several steps (`Client.submit_task`, `approve_task(...,
    # invoke=True)`): what the task still waits for, and why the request stopped short.
    waiting_for: dict[str, list[str]] = field(default_factory=dict)
    stopped: str | None = None

    @property
    def ended(self) -> bool:
        return self.state in ENDED


@dataclass(frozen=True)
class TaskResult:
    """A finished task whose receipt verified: its return value, the outputs this client holds
    keys for (slot -> plaintext), the receipt's payload, and the slots it holds no key for."""

    task: Task
    return_value: int
    outputs: dict[str, bytes]
    receipt: dict[str, Any]
    missing_keys: list[str] = field(default_factory=list)
