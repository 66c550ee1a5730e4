"""What one invocation may use, and how it ended."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["MAX_TABLES", "TABLE_ELEMENT_BYTES", "Limits", "Result", "ResultKind"]

MIB = 1 << 20
PAGE = 65536
# What one table element costs the host, the most of the engines we run on (RSS growth per
# element, growing a 10M-element table): wasmtime 50 funcref 8.0 B, externref 4.0 B; V8 (Node
# 20) funcref ~27 B. Tables count against `memory_bytes` at this price in both hosts.
TABLE_ELEMENT_BYTES = 32
# wasm-ld writes one table; reference types (always on in wasmtime 50) allow more, so a few are
# allowed, each with an equal share of the tables' budget.
MAX_TABLES = 4


@dataclass(frozen=True)
class Limits:
    """Hard limits of one invocation. Each default says why it is what it is."""

    # Teaclave has no CPU-time limit: an endless loop would hold a worker forever. 30 s is ~1000x
    # an MNIST inference and ~10x a ResNet-50 one with unscheduled kernels.
    deadline_s: float = 30.0
    # Instructions, counted by wasmtime: a deterministic budget, independent of machine load, for
    # callers who need one. Off by default: counting costs run time.
    fuel: int | None = None
    # Linear memory and tables are host RAM: caps what one invocation can take, both together
    # (see linear_memory_bytes, table_elements). ResNet-50 with embedded weights needs ~120 MiB;
    # MNIST under 1 MiB.
    memory_bytes: int = 256 * MIB
    # Native stack for wasm frames: bounds recursion before it reaches the host's own stack.
    wasm_stack_bytes: int = 512 * 1024
    # Outputs are kept in host memory until the call returns, so they are capped too.
    output_bytes: int = 64 * MIB
    # Teaclave's own bound on handles per invocation (write handles are 0x4000_0000 | n).
    max_handles: int = 1023
    # Inputs are handed over in memory; a single file past this is refused before running.
    max_input_bytes: int = 1024 * MIB

    @property
    def linear_memory_bytes(self) -> int:
        """Linear memory's share of `memory_bytes`: whole pages, leaving tables at least 1/256
        (the tables of built functions hold at most a few dozen elements)."""
        return (self.memory_bytes - self.memory_bytes // 256) // PAGE * PAGE

    @property
    def table_elements(self) -> int:
        """Elements one table may hold: MAX_TABLES tables share what linear memory leaves of
        `memory_bytes` (8192 each by default, 512 under 1 MiB)."""
        table_bytes = self.memory_bytes - self.linear_memory_bytes
        return table_bytes // (MAX_TABLES * TABLE_ELEMENT_BYTES)

    def __post_init__(self) -> None:
        checks = {
            "deadline_s": self.deadline_s > 0,
            "fuel": self.fuel is None or self.fuel > 0,
            "memory_bytes": self.memory_bytes > 0,
            "wasm_stack_bytes": 64 * 1024 <= self.wasm_stack_bytes <= 64 * MIB,
            "output_bytes": self.output_bytes >= 0,
            "max_handles": 0 <= self.max_handles <= 1023,
            "max_input_bytes": self.max_input_bytes >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid limits: {', '.join(bad)}")


class ResultKind(enum.StrEnum):
    OK = "ok"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    STACK_OVERFLOW = "stack_overflow"
    TRAP = "trap"
    INVALID_MODULE = "invalid_module"
    FORBIDDEN_IMPORT = "forbidden_import"


@dataclass(frozen=True)
class Result:
    """How one invocation ended. `return_value` and `outputs` are set only for `ok`."""

    kind: ResultKind
    return_value: int | None = None
    outputs: dict[str, bytes] = field(default_factory=dict)
    message: str = ""
    trap_code: str | None = None  # for `trap`: unreachable, memory_out_of_bounds, ...
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def ok(self) -> bool:
        return self.kind is ResultKind.OK
