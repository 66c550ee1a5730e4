"""The one exception hierarchy of teaclave-infer.

Every error the package raises on purpose is a `TeaclaveInferError`; narrow subclasses name the
stage that failed and carry what a caller needs to act on it.
"""

from __future__ import annotations

from teaclave_client.vocabulary import TaskKind

__all__ = [
    "BuildError",
    "ExecutionError",
    "ForbiddenImportError",
    "InvalidModuleError",
    "LimitError",
    "ModelLoadError",
    "TaskFailed",
    "TeaclaveInferError",
    "ToolchainError",
    "UnsupportedModelError",
]


class TeaclaveInferError(Exception):
    """Base class of every error raised by teaclave-infer."""


class BuildError(TeaclaveInferError):
    """Building a WebAssembly function from a model failed."""


class ModelLoadError(BuildError):
    """The model file is missing, unreadable or not a valid ONNX model."""


class UnsupportedModelError(BuildError):
    """The model is valid ONNX but uses something the builder cannot compile (an operator, a
    dynamic shape, a dtype)."""


class ToolchainError(BuildError):
    """A compiler or linker step failed; `log` holds what the tool printed."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message if not log else f"{message}\n{log}")
        self.log = log


class ExecutionError(TeaclaveInferError):
    """A function could not be run as asked (the executor's errors)."""


class InvalidModuleError(ExecutionError):
    """The bytes are not a function this executor will run: not wasm, a feature the profile
    does not allow, a missing or mistyped export."""


class ForbiddenImportError(InvalidModuleError):
    """The module imports something other than Teaclave's five file functions."""


class LimitError(ExecutionError):
    """The caller's request breaks a limit before anything runs (an input too large)."""


class TaskFailed(ExecutionError):
    """A task cannot finish: `kind` names why (the executor's `ResultKind` or a `FailureKind`,
    both in `teaclave_client.vocabulary`), the message says what, never with data or keys."""

    def __init__(self, kind: TaskKind, message: str, trap_code: str | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.trap_code = kind, message, trap_code
