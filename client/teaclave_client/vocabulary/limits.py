"""What one invocation may use: each limit's default, the reason for it, and the most a function
may ask for. The executor's `Limits`, the API's `FunctionLimits`, `teaclave-infer run`'s flags,
the browser host's `DEFAULT_LIMITS` and the docs' table all read these records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = [
    "DEADLINE_S",
    "FUEL",
    "HANDLES",
    "LIMITS",
    "MAX_HANDLES",
    "MAX_INPUT_BYTES",
    "MAX_TABLES",
    "MEMORY_BYTES",
    "MIB",
    "OUTPUT_BYTES",
    "TABLE_ELEMENT_BYTES",
    "WASM_STACK_BYTES",
    "Limit",
]

T = TypeVar("T")
KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30

# Teaclave's own bound on handles per invocation (write handles are 0x4000_0000 | n).
MAX_HANDLES = 1023
# What one table element costs the host, the most of the engines we run on (RSS growth per
# element, growing a 10M-element table): wasmtime 50 funcref 8.0 B, externref 4.0 B; V8 (Node
# 20) funcref ~27 B. Tables count against `memory_bytes` at this price in both hosts.
TABLE_ELEMENT_BYTES = 32
# wasm-ld writes one table; reference types (always on in wasmtime 50) allow more, so a few are
# allowed, each with an equal share of the tables' budget.
MAX_TABLES = 4


@dataclass(frozen=True)
class Limit(Generic[T]):
    """One hard limit of an invocation."""

    name: str  # the executor's `Limits.<name>`, a function spec's `limits.<name>`
    default: T
    unit: str  # "s", "bytes", "instructions" or "handles"
    meaning: str
    why: str  # why the default is what it is
    function_max: T | None = None  # the most a function spec may set; None: not settable
    run_flag: str | None = None  # `teaclave-infer run`'s flag
    web_name: str | None = None  # the browser host's option (seconds become milliseconds there)


DEADLINE_S = Limit[float](
    "deadline_s",
    30.0,
    "s",
    "wall-clock deadline (epoch interruption)",
    "Teaclave has no CPU-time limit, so an endless loop would hold a worker forever; 30 s is "
    "~1000x an MNIST inference and ~10x a ResNet-50 one with unscheduled kernels",
    function_max=600.0,
    run_flag="--timeout S",
    web_name="deadlineMs",
)
FUEL = Limit[int | None](
    "fuel",
    None,
    "instructions",
    "instruction budget (fuel, counted by wasmtime)",
    "a deterministic budget, independent of machine load, for callers who need one; off by "
    "default because counting costs run time",
    function_max=2**63 - 1,  # wasmtime's set_fuel takes a u64, the database a signed 64-bit int
    run_flag="--fuel N",
)
MEMORY_BYTES = Limit[int](
    "memory_bytes",
    256 * MIB,
    "bytes",
    "linear memory and tables together",
    "linear memory and tables are host RAM; ResNet-50 with embedded weights needs ~120 MiB, "
    "MNIST under 1 MiB",
    function_max=4 * GIB,
    run_flag="--memory-limit MIB",
    web_name="memoryBytes",
)
WASM_STACK_BYTES = Limit[int](
    "wasm_stack_bytes",
    512 * KIB,
    "bytes",
    "native stack for wasm frames",
    "bounds recursion before it reaches the host's own stack",
)
OUTPUT_BYTES = Limit[int](
    "output_bytes",
    64 * MIB,
    "bytes",
    "total bytes of outputs",
    "outputs are kept in host memory until the call returns",
    function_max=256 * MIB,
    run_flag="--output-limit MIB",
    web_name="outputBytes",
)
HANDLES = Limit[int](
    "max_handles",
    MAX_HANDLES,
    "handles",
    "file handles per invocation",
    "Teaclave's own bound",
    web_name="maxHandles",
)
MAX_INPUT_BYTES = Limit[int](
    "max_input_bytes",
    1 * GIB,
    "bytes",
    "size of one input file",
    "inputs are handed over in memory; a larger one is refused before running",
    web_name="maxInputBytes",
)

LIMITS: tuple[Limit[float] | Limit[int] | Limit[int | None], ...] = (
    DEADLINE_S,
    FUEL,
    MEMORY_BYTES,
    WASM_STACK_BYTES,
    OUTPUT_BYTES,
    HANDLES,
    MAX_INPUT_BYTES,
)
