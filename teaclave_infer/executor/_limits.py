"""What one invocation may use, and how it ended."""

from __future__ import annotations

from dataclasses import dataclass, field

from teaclave_client.vocabulary import (
    DEADLINE_S,
    FUEL,
    HANDLES,
    MAX_HANDLES,
    MAX_INPUT_BYTES,
    MAX_TABLES,
    MEMORY_BYTES,
    MIB,
    OUTPUT_BYTES,
    TABLE_ELEMENT_BYTES,
    WASM_STACK_BYTES,
    ResultKind,
)

__all__ = ["MAX_TABLES", "TABLE_ELEMENT_BYTES", "Limits", "Result", "ResultKind"]

PAGE = 65536


@dataclass(frozen=True)
class Limits:
    """Hard limits of one invocation; each default, and why it is what it is, is in
    `teaclave_client.vocabulary.limits`."""

    deadline_s: float = DEADLINE_S.default
    fuel: int | None = FUEL.default
    # Linear memory and tables together (see linear_memory_bytes, table_elements).
    memory_bytes: int = MEMORY_BYTES.default
    wasm_stack_bytes: int = WASM_STACK_BYTES.default
    output_bytes: int = OUTPUT_BYTES.default
    max_handles: int = HANDLES.default
    max_input_bytes: int = MAX_INPUT_BYTES.default

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
            "max_handles": 0 <= self.max_handles <= MAX_HANDLES,
            "max_input_bytes": self.max_input_bytes >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid limits: {', '.join(bad)}")


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
