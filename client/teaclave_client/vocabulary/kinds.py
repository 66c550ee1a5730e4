"""How a call or a task ends: the executor's result kinds and the platform's failure kinds.

A task's `result_kind` is one of either. Adding a kind is one member here (with its meaning);
the web host's constants and the docs' table are generated from these enums.
"""

from __future__ import annotations

import enum

__all__ = ["FailureKind", "ResultKind", "TaskKind"]


class ResultKind(enum.StrEnum):
    """How one invocation of a function ended, in the executor and in the browser host."""

    OK = "ok"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    STACK_OVERFLOW = "stack_overflow"
    TRAP = "trap"
    INVALID_MODULE = "invalid_module"
    FORBIDDEN_IMPORT = "forbidden_import"

    @property
    def meaning(self) -> str:
        return _RESULT_MEANINGS[self]


_RESULT_MEANINGS = {
    ResultKind.OK: "the function returned; its return value and outputs are kept",
    ResultKind.TIMEOUT: "the wall-clock deadline (or the fuel budget) ran out",
    ResultKind.MEMORY_LIMIT: "linear memory or tables reached the memory cap",
    ResultKind.OUTPUT_LIMIT: "the outputs written exceeded the output cap",
    ResultKind.STACK_OVERFLOW: "the wasm stack ran out (deep recursion)",
    ResultKind.TRAP: "the function trapped (unreachable, out-of-bounds access...); "
    "`trap_code` says which",
    ResultKind.INVALID_MODULE: "not a function this host runs: not wasm, a feature its profile "
    "does not allow, a missing or mistyped export",
    ResultKind.FORBIDDEN_IMPORT: "the module imports something other than Teaclave's five file "
    "functions",
}


class FailureKind(enum.StrEnum):
    """Why a task failed other than by its invocation's result kind (the worker's and the
    queue's reasons). The browser host also ends a call as `integrity`."""

    INTEGRITY = "integrity"
    FETCH = "fetch"
    STORE = "store"
    FUNCTION_ERROR = "function_error"
    MISSING_OUTPUT = "missing_output"
    OUTPUT_CONFLICT = "output_conflict"
    FUNCTION_UNAVAILABLE = "function_unavailable"
    INVALID_LIMITS = "invalid_limits"
    INPUT_LIMIT = "input_limit"
    LOST = "lost"

    @property
    def meaning(self) -> str:
        return _FAILURE_MEANINGS[self]


_FAILURE_MEANINGS = {
    FailureKind.INTEGRITY: "a cmac, tag or wrapped key does not check, or the stored wasm is not "
    "the function the task names",
    FailureKind.FETCH: "an input could not be fetched (or was deleted); the cause is only logged",
    FailureKind.STORE: "an output could not be stored; the cause is only logged",
    FailureKind.FUNCTION_ERROR: "the function returned a negative value (see the status codes)",
    FailureKind.MISSING_OUTPUT: "the function did not write every output the task asks for",
    FailureKind.OUTPUT_CONFLICT: "an output file was written meanwhile by another task",
    FailureKind.FUNCTION_UNAVAILABLE: "the function was deleted or disabled, or its wasm is "
    "missing",
    FailureKind.INVALID_LIMITS: "the function's limits are not ones the executor accepts",
    FailureKind.INPUT_LIMIT: "an input is larger than the executor takes",
    FailureKind.LOST: "the task's worker lost its lease on every claim (3)",
}

# What a task's `result_kind` can be.
TaskKind = ResultKind | FailureKind
