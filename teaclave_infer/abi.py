"""The function ABI in one place: Teaclave's imports, argv packing, status codes, profiles.

The numbers (imports, status codes, dtypes) are defined in `teaclave_client.vocabulary`; the
profiles, which only the builder and the executor use, here.

A function is a wasm module that imports at most the five `env.teaclave_*` file functions and
exports `entrypoint(argc, argv) -> i32` and `memory`. Task arguments reach it as key/value string
pairs sorted by key; the returned i32 is the task's return value.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import rfc8785

# The ABI's numbers live with the client, the bottom layer, since the browser host needs them.
from teaclave_client.vocabulary import (
    ENTRYPOINT,
    IMPORT_MODULE,
    TEACLAVE_IMPORTS,
    WEIGHTS_ID,
    Status,
)

__all__ = [
    "DEFAULT_PROFILE",
    "ENTRYPOINT",
    "IMPORT_MODULE",
    "PROFILES",
    "TEACLAVE_IMPORTS",
    "TEACLAVE_PROFILE",
    "WEIGHTS_ID",
    "Profile",
    "Status",
    "WasmFeature",
    "argument_text",
    "explain_status",
    "pack_arguments",
    "safe_id",
]


class WasmFeature(enum.StrEnum):
    """A post-MVP WebAssembly feature a profile may turn on (LLVM's names)."""

    SIGN_EXT = "sign-ext"
    NONTRAPPING_FPTOINT = "nontrapping-fptoint"
    SIMD128 = "simd128"
    BULK_MEMORY = "bulk-memory"


def explain_status(value: int, error_codes: Mapping[str, str] | None = None) -> str:
    """A negative return value in words: "the function returned -6: the weights file ...",
    from the function's manifest's `error_codes` where given (a function built by another
    version may number them otherwise), else from this version's Status."""
    known = {str(int(s)): s.meaning for s in Status} if error_codes is None else error_codes
    meaning = known.get(str(value))
    return f"the function returned {value}" + (f": {meaning}" if meaning else "")


@dataclass(frozen=True)
class Profile:
    """A set of WebAssembly features a function may use, for the compiler, the linker and the
    executor's engine (every feature not listed is off)."""

    name: str
    features: frozenset[WasmFeature]
    description: str
    heap_limit: int | None = None  # bytes of data + arena + weights the host can give, if capped
    # The runtime's and the kernels' frames are small; wasm-ld puts the stack first, so an
    # overflow traps (below address 0), never writes over data. The executor resets a function's
    # whole memory after each call: a 1 MiB stack cost mnist-8 6% of a call (212 vs 200 us,
    # interleaved), and every model in the tests runs within this one.
    stack_size: int = 160 << 10

    @property
    def llvm_features(self) -> tuple[str, ...]:
        """LLVM's names, as TVM's `mattr`, in WasmFeature's order."""
        return tuple("+" + f for f in WasmFeature if f in self.features)

    @property
    def zig_cpu(self) -> str:
        """The `-mcpu` value in zig's syntax: a base CPU plus features."""
        return "mvp" + "".join("+" + f.lstrip("+").replace("-", "_") for f in self.llvm_features)


_MVP_EXTRAS = frozenset({WasmFeature.SIGN_EXT, WasmFeature.NONTRAPPING_FPTOINT})
PROFILES: dict[str, Profile] = {
    # What Teaclave's WAMR interpreter accepts, within its default heap and stack.
    "teaclave": Profile(
        "teaclave",
        _MVP_EXTRAS,
        "wasm MVP + sign-extension + non-trapping float-to-int; 20 MiB heap, 160 KiB stack",
        heap_limit=20 << 20,
    ),
    "fast": Profile(
        "fast",
        _MVP_EXTRAS | {WasmFeature.SIMD128, WasmFeature.BULK_MEMORY},
        "wasm MVP + sign-extension + non-trapping float-to-int + SIMD128 + bulk memory",
    ),
}
DEFAULT_PROFILE = PROFILES["fast"]  # a manifest's without a `profile`
# A function registered without our builder's manifest: a Teaclave binary, for WAMR's features.
TEACLAVE_PROFILE = PROFILES["teaclave"]


def safe_id(name: str) -> str:
    """An ONNX name made into a function-level id: letters, digits and `_` only, not starting
    with a digit, never the reserved `weights`."""
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name) or "_"
    if ident[0].isdigit():
        ident = "_" + ident
    return ident + "_" if ident == WEIGHTS_ID else ident


def argument_text(name: str, value: Any) -> str:
    """An argument's argv text: a string as it is, any other value its RFC 8785 canonical JSON
    (what the browser host writes too, with `canonicalize`); ValueError naming the argument for
    a value that has none (NaN, an infinity, an integer beyond 2**53, a non-string key)."""
    if isinstance(value, str):
        return value
    try:
        return rfc8785.dumps(value).decode()
    except rfc8785.CanonicalizationError as err:
        raise ValueError(f"argument {name}: {err}") from None


def pack_arguments(arguments: Mapping[str, object]) -> list[bytes]:
    """argv for `entrypoint`: key then value for each argument, pairs sorted by key (byte order);
    non-string values as their canonical JSON (argument_text)."""
    pairs = sorted(
        (key.encode(), argument_text(key, value).encode()) for key, value in arguments.items()
    )
    return [item for pair in pairs for item in pair]
