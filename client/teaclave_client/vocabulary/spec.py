"""What a function's spec may declare: the executor types it may name, and how many arguments
and file slots it may list. The service checks registrations against these, the client's
`function register` offers them."""

from __future__ import annotations

from .limits import MAX_HANDLES

__all__ = [
    "EXECUTOR_TYPE",
    "MANIFEST_FORMAT",
    "MAX_ARGUMENTS",
    "MAX_DEFAULT_CHARS",
    "MAX_SLOTS",
    "TEACLAVE_EXECUTOR_TYPES",
    "executor_refusal",
]

# The `format` of the builder's NAME.json: what tells a builder's manifest from any other JSON
# (a client takes a NAME.json beside the wasm only with it, the service refuses one without it).
MANIFEST_FORMAT = "teaclave-infer-function/1"
# The one executor here: Teaclave's WebAssembly one (WAMR), run by wasmtime.
EXECUTOR_TYPE = "wamr"
# Teaclave's other executor types, named so a refusal can say what they were.
TEACLAVE_EXECUTOR_TYPES = {
    "builtin": "Teaclave's built-in native functions",
    "python": "Teaclave's MesaPy Python executor",
    "mesapy": "Teaclave's MesaPy Python executor",
}


def executor_refusal(executor_type: str) -> str | None:
    """Why `executor_type` cannot run here, in one line (None for ours): the one wording the
    service's 422 and the Teaclave facade's exception share."""
    if executor_type == EXECUTOR_TYPE:
        return None
    known = TEACLAVE_EXECUTOR_TYPES.get(executor_type, "not one of Teaclave's executors")
    return (
        f"executor type {executor_type!r} ({known}) is not supported: only {EXECUTOR_TYPE!r} "
        "runs here, WebAssembly functions for Teaclave's WAMR executor"
    )


# A function never opens more files than it has handles, so more slots could never all be used.
MAX_SLOTS = MAX_HANDLES
# Far past any real function's (Teaclave's examples declare at most 3); argv is one allocation.
MAX_ARGUMENTS = 256
MAX_DEFAULT_CHARS = 4096  # an argument's default value
