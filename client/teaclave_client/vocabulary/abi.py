"""The function ABI's numbers, shared by every host of a function (the executor, the browser
host) and by the C runtime compiled into it: Teaclave's imports, the file API's return values,
what a function returns on failure, the tensor dtypes it reads and writes.

`python -m teaclave_infer.generate` writes them into `runtime/ti_constants.h` and
`client/web/teaclave-constants.js`; a test fails when those are stale.
"""

from __future__ import annotations

import enum

__all__ = [
    "ARGV_AREA",
    "ARGV_AREA_BYTES",
    "ENTRYPOINT",
    "IMPORT_ERROR",
    "IMPORT_MODULE",
    "MAX_FILE_ID_BYTES",
    "MAX_NDIM",
    "TEACLAVE_IMPORTS",
    "WEIGHTS_ID",
    "WRITE_FLAG",
    "DLPackCode",
    "DType",
    "Status",
]

ENTRYPOINT = "entrypoint"
IMPORT_MODULE = "env"
# Import name -> number of i32 parameters; every one returns one i32, IMPORT_ERROR on error.
TEACLAVE_IMPORTS: dict[str, int] = {
    "teaclave_open_input": 1,
    "teaclave_create_output": 1,
    "teaclave_read_file": 3,
    "teaclave_write_file": 3,
    "teaclave_close_file": 1,
}
IMPORT_ERROR = -1  # the only error value of the five imports
WRITE_FLAG = 0x4000_0000  # marks a write handle, as Teaclave's: 0x4000_0000 | n
MAX_FILE_ID_BYTES = 4096  # bytes of a file id a host reads before giving up on finding its NUL
WEIGHTS_ID = "weights"  # the input a function with separate weights reads them from
MAX_NDIM = 8  # dimensions of a tensor in the runtime's blob (ti_tensor.shape)
# A function may export ARGV_AREA, an i32 global: the address of ARGV_AREA_BYTES of its memory,
# zeroed and unused until entrypoint runs. A host that finds it there (and within the memory)
# may place argv in it instead of growing memory for it; otherwise, or when argv is longer, it
# grows memory as for any module. The runtime of the functions built here exports one.
ARGV_AREA = "ti_argv_area"
ARGV_AREA_BYTES = 4096


class Status(enum.IntEnum):
    """What a function built here returns on failure (the runtime's `ti_status`, 0 being ok)."""

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


class DLPackCode(enum.IntEnum):
    """DLPack's type codes, as the runtime's tensor records carry them."""

    INT = 0
    UINT = 1
    FLOAT = 2
    BOOL = 6


class DType(enum.StrEnum):
    """The tensor element types a function can take and give (numpy's names); each has a .npy
    descr and a DLPack code, so the runtime reads and writes all of them."""

    FLOAT16 = "float16"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    INT8 = "int8"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    UINT8 = "uint8"
    UINT16 = "uint16"
    UINT32 = "uint32"
    UINT64 = "uint64"
    BOOL = "bool"

    @property
    def dlpack(self) -> tuple[DLPackCode, int]:
        """(DLPack type code, bits)."""
        return _DLPACK[self]

    @property
    def onnx_type(self) -> int:
        """ONNX's TensorProto.DataType number (fixed by the ONNX spec)."""
        return _ONNX_TYPES[self]


_DLPACK = {
    DType.FLOAT16: (DLPackCode.FLOAT, 16),
    DType.FLOAT32: (DLPackCode.FLOAT, 32),
    DType.FLOAT64: (DLPackCode.FLOAT, 64),
    DType.INT8: (DLPackCode.INT, 8),
    DType.INT16: (DLPackCode.INT, 16),
    DType.INT32: (DLPackCode.INT, 32),
    DType.INT64: (DLPackCode.INT, 64),
    DType.UINT8: (DLPackCode.UINT, 8),
    DType.UINT16: (DLPackCode.UINT, 16),
    DType.UINT32: (DLPackCode.UINT, 32),
    DType.UINT64: (DLPackCode.UINT, 64),
    DType.BOOL: (DLPackCode.BOOL, 8),
}
_ONNX_TYPES = {
    DType.FLOAT32: 1,
    DType.UINT8: 2,
    DType.INT8: 3,
    DType.UINT16: 4,
    DType.INT16: 5,
    DType.INT32: 6,
    DType.INT64: 7,
    DType.BOOL: 9,
    DType.FLOAT16: 10,
    DType.FLOAT64: 11,
    DType.UINT32: 12,
    DType.UINT64: 13,
}
