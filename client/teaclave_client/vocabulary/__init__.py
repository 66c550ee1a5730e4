"""The one definition of each small vocabulary the platform, its hosts and its clients share:
task states, result and failure kinds, crypto schemas, limit defaults, the function ABI's
numbers, what a function's spec may declare.

This is the bottom layer (it imports only the standard library), so the executor, the service
and the client all take their names from here; the C runtime's `ti_constants.h`, the browser
host's `teaclave-constants.js` and `docs/reference/vocabulary.md` are generated from it by
`python -m teaclave_infer.generate`.
"""

from .abi import (
    ARGV_AREA,
    ARGV_AREA_BYTES,
    ENTRYPOINT,
    IMPORT_ERROR,
    IMPORT_MODULE,
    MAX_FILE_ID_BYTES,
    MAX_NDIM,
    TEACLAVE_IMPORTS,
    WEIGHTS_ID,
    WRITE_FLAG,
    DLPackCode,
    DType,
    Status,
)
from .ids import ID_PATTERN, id_shaped
from .kinds import FailureKind, ResultKind, TaskKind
from .limits import (
    DEADLINE_S,
    FUEL,
    HANDLES,
    LIMITS,
    MAX_HANDLES,
    MAX_INPUT_BYTES,
    MAX_TABLES,
    MEMORY_BYTES,
    MIB,
    OUTPUT_BYTES,
    TABLE_ELEMENT_BYTES,
    WASM_STACK_BYTES,
    Limit,
)
from .schemas import (
    DEFAULT_SCHEMA,
    IV_BYTES,
    KEY_WRAP_INFO,
    RECEIPT_VERSION,
    SCHEMAS,
    TAG_BYTES,
    Schema,
)
from .spec import (
    EXECUTOR_TYPE,
    MANIFEST_FORMAT,
    MAX_ARGUMENTS,
    MAX_DEFAULT_CHARS,
    MAX_SLOTS,
    TEACLAVE_EXECUTOR_TYPES,
    executor_refusal,
)
from .states import BEFORE_INVOKE, ENDED, TaskState

__all__ = [
    "ARGV_AREA",
    "ARGV_AREA_BYTES",
    "BEFORE_INVOKE",
    "DEADLINE_S",
    "DEFAULT_SCHEMA",
    "ENDED",
    "ENTRYPOINT",
    "EXECUTOR_TYPE",
    "FUEL",
    "HANDLES",
    "ID_PATTERN",
    "IMPORT_ERROR",
    "IMPORT_MODULE",
    "IV_BYTES",
    "KEY_WRAP_INFO",
    "LIMITS",
    "MANIFEST_FORMAT",
    "MAX_ARGUMENTS",
    "MAX_DEFAULT_CHARS",
    "MAX_FILE_ID_BYTES",
    "MAX_HANDLES",
    "MAX_INPUT_BYTES",
    "MAX_NDIM",
    "MAX_SLOTS",
    "MAX_TABLES",
    "MEMORY_BYTES",
    "MIB",
    "OUTPUT_BYTES",
    "RECEIPT_VERSION",
    "SCHEMAS",
    "TABLE_ELEMENT_BYTES",
    "TAG_BYTES",
    "TEACLAVE_EXECUTOR_TYPES",
    "TEACLAVE_IMPORTS",
    "WASM_STACK_BYTES",
    "WEIGHTS_ID",
    "WRITE_FLAG",
    "DLPackCode",
    "DType",
    "FailureKind",
    "Limit",
    "ResultKind",
    "Schema",
    "Status",
    "TaskKind",
    "TaskState",
    "executor_refusal",
    "id_shaped",
]
