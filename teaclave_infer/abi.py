"""The function ABI in one place: Teaclave's imports, argv packing, status codes, profiles.

A function is a wasm module that imports at most the five `env.teaclave_*` file functions and
exports `entrypoint(argc, argv) -> i32` and `memory`. Task arguments reach it as key/value string
pairs sorted by key; the returned i32 is the task's return value.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "ENTRYPOINT",
    "PROFILES",
    "TEACLAVE_IMPORTS",
    "WEIGHTS_ID",
    "Profile",
    "Status",
    "explain_status",
    "pack_arguments",
    "safe_id",
]

ENTRYPOINT = "entrypoint"
IMPORT_MODULE = "env"
# Import name -> number of i32 parameters; every one returns one i32, -1 being the only error.
TEACLAVE_IMPORTS: dict[str, int] = {
    "teaclave_open_input": 1,
    "teaclave_create_output": 1,
    "teaclave_read_file": 3,
    "teaclave_write_file": 3,
    "teaclave_close_file": 1,
}
WEIGHTS_ID = "weights"


class Status(enum.IntEnum):
    """What a function built here returns on failure (the runtime's ti_status, `ti.h`)."""

    MISSING_ARGUMENT = -2
    OPEN_INPUT_FAILED = -3
    READ_INPUT_FAILED = -4
    BAD_INPUT_FORMAT = -5
    BAD_WEIGHTS = -6
    OUT_OF_MEMORY = -7
    KERNEL_FAILED = -8
    WRITE_OUTPUT_FAILED = -9

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


def explain_status(value: int, error_codes: Mapping[str, str] | None = None) -> str:
    """A negative return value in words: "the function returned -6: the weights file ...",
    from the function's manifest's `error_codes` where given (a function built by another
    version may number them otherwise), else from this version's Status."""
    known = {str(int(s)): s.meaning for s in Status} if error_codes is None else error_codes
    meaning = known.get(str(value))
    return f"the function returned {value}" + (f": {meaning}" if meaning else "")


_MEANINGS = {
    Status.MISSING_ARGUMENT: "a task argument naming an input file is missing",
    Status.OPEN_INPUT_FAILED: "an input file could not be opened",
    Status.READ_INPUT_FAILED: "reading or closing an input file failed",
    Status.BAD_INPUT_FORMAT: "an input is not .npy or raw bytes of the model's dtype and shape",
    Status.BAD_WEIGHTS: "the weights file is missing, malformed or of another model",
    Status.OUT_OF_MEMORY: "linear memory could not grow",
    Status.KERNEL_FAILED: "a kernel reported an error",
    Status.WRITE_OUTPUT_FAILED: "creating, writing or closing an output file failed",
}


@dataclass(frozen=True)
class Profile:
    """A set of WebAssembly features a function may use, for the compiler and the linker."""

    name: str
    llvm_features: tuple[str, ...]  # LLVM's names, as TVM's `mattr`
    description: str
    heap_limit: int | None = None  # bytes of data + arena + weights the host can give, if capped
    stack_size: int = 1 << 20

    @property
    def zig_cpu(self) -> str:
        """The `-mcpu` value in zig's syntax: a base CPU plus features."""
        return "mvp" + "".join("+" + f.lstrip("+").replace("-", "_") for f in self.llvm_features)


_MVP_EXTRAS = ("+sign-ext", "+nontrapping-fptoint")
PROFILES: dict[str, Profile] = {
    # What Teaclave's WAMR interpreter accepts, within its default heap and stack.
    "teaclave": Profile(
        "teaclave",
        _MVP_EXTRAS,
        "wasm MVP + sign-extension + non-trapping float-to-int; 20 MiB heap, 160 KiB stack",
        heap_limit=20 << 20,
        stack_size=160 << 10,
    ),
    "fast": Profile(
        "fast",
        (*_MVP_EXTRAS, "+simd128", "+bulk-memory"),
        "wasm MVP + sign-extension + non-trapping float-to-int + SIMD128 + bulk memory",
    ),
}


def safe_id(name: str) -> str:
    """An ONNX name made into a function-level id: letters, digits and `_` only, not starting
    with a digit, never the reserved `weights`."""
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name) or "_"
    if ident[0].isdigit():
        ident = "_" + ident
    return ident + "_" if ident == WEIGHTS_ID else ident


def pack_arguments(arguments: Mapping[str, object]) -> list[bytes]:
    """argv for `entrypoint`: key then value for each argument, pairs sorted by key (byte order);
    non-string values as their JSON text."""
    pairs = sorted(
        (key.encode(), (value if isinstance(value, str) else json.dumps(value)).encode())
        for key, value in arguments.items()
    )
    return [item for pair in pairs for item in pair]
