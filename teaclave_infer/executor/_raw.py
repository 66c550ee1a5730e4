"""wasmtime's unchecked C calls for the host functions, the entrypoint and the exports we read.

wasmtime-py's generic path looks a function's type up on every call, converts each argument and
result through a `Val`, wraps the caller in an object and lists every export of an instance to
find one: tens of microseconds a call, most of what a small function costs (bench/executor.py
measures both paths). Everything that crosses here takes and returns only i32, with types that
validation checked (`_validate.py`): what wasmtime's unchecked calls ask of their caller. The C
API is the one wasmtime-py loads; its `_ffi` module is private, so the wasmtime range we support
is pinned in pyproject.toml and tests/executor run every path through here.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Callable

import wasmtime
from teaclave_client.vocabulary import MAX_FILE_ID_BYTES
from wasmtime import _ffi as ffi

from ._files import ERROR

__all__ = ["MemoryView", "call_i32", "define_i32", "export", "reraise_stop", "write"]

_CALLBACKS: list[object] = []  # the linker holds only their addresses: they must never be freed
_stopped = threading.local()  # .exception: a BaseException a host function raised on this thread
_NO_FINALIZER = ctypes.cast(0, ctypes.CFUNCTYPE(None, ctypes.c_void_p))


# A raw value slot is a 16-byte union; an i32 is its first 4 bytes. The callbacks read the slots
# as int32s (an index, not a union object per argument: a third of a host call's cost).
_STRIDE = ctypes.sizeof(ffi.wasmtime_val_raw_t) // ctypes.sizeof(ctypes.c_int32)
_I32S = ctypes.POINTER(ctypes.c_int32)
_Callback = ctypes.CFUNCTYPE(
    ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, _I32S, ctypes.c_size_t
)


def define_i32(
    linker: wasmtime.Linker, module: str, name: str, arity: int, fn: Callable[..., int]
) -> None:
    """Defines `module.name`, an (i32 x arity) -> i32 host function, as an unchecked callback:
    arguments are read from, and the result written to, wasmtime's raw value slots."""
    at = [i * _STRIDE for i in range(arity)]

    def call(env: object, caller: object, slots: ctypes.Array, count: int) -> int:
        try:
            slots[0] = fn(*[slots[i] for i in at])
        except Exception:  # an exception must never unwind into wasm: the guest sees ERROR
            slots[0] = ERROR
        except BaseException as stop:  # Ctrl-C, exit: end the call, raise it when wasm returns
            _stopped.exception = stop
            return _trap("the host was interrupted")
        return 0  # no trap

    callback = _Callback(call)
    _CALLBACKS.append(callback)
    ty = wasmtime.FuncType([wasmtime.ValType.i32()] * arity, [wasmtime.ValType.i32()])
    module_buf, name_buf = module.encode(), name.encode()
    error = ffi.wasmtime_linker_define_func_unchecked(
        linker.ptr(),
        ctypes.create_string_buffer(module_buf),
        len(module_buf),
        ctypes.create_string_buffer(name_buf),
        len(name_buf),
        ty.ptr(),
        ctypes.cast(callback, ffi.wasmtime_func_unchecked_callback_t),
        None,
        _NO_FINALIZER,
    )
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)


def call_i32(store: wasmtime.Store, func: wasmtime.Func, *args: int) -> int:
    """Calls an (i32 x len(args)) -> i32 function; raises wasmtime.Trap or WasmtimeError as
    `Func.__call__` does."""
    slots = (ffi.wasmtime_val_raw_t * max(1, len(args)))()
    for i, value in enumerate(args):
        slots[i].i32 = value
    trap = ctypes.POINTER(ffi.wasm_trap_t)()
    error = ffi.wasmtime_func_call_unchecked(
        store._context(), ctypes.byref(func._func), slots, len(slots), ctypes.byref(trap)
    )
    if error or trap:  # a host function's trap comes back as an error
        ended = wasmtime.WasmtimeError._from_ptr(error) if error else wasmtime.Trap._from_ptr(trap)
        reraise_stop(ended)  # each object owns what it wraps, and frees it
        raise ended
    return int(slots[0].i32)


def reraise_stop(trapped: Exception) -> None:
    """Raises the BaseException (Ctrl-C, exit) that a host function took on this thread and
    turned into `trapped`, if that is what ended the call; else nothing."""
    stop, _stopped.exception = getattr(_stopped, "exception", None), None
    if stop is not None:
        raise stop from trapped


def _trap(message: str) -> int:
    """A new trap, as the address a callback returns to make wasmtime unwind the call."""
    raw = message.encode()
    trap = ffi.wasmtime_trap_new(ctypes.create_string_buffer(raw), len(raw))
    return ctypes.cast(trap, ctypes.c_void_p).value or 0


@functools.cache
def _name(name: str) -> tuple[ctypes.Array, int]:
    raw = name.encode()
    return ctypes.create_string_buffer(raw), len(raw)


def export(
    store: wasmtime.Store, instance: wasmtime.Instance, name: str
) -> wasmtime.Func | wasmtime.Memory | wasmtime.Global | None:
    """One function, memory or global export of an instance by name (None otherwise), without
    listing the others."""
    item = ffi.wasmtime_extern_t()
    found = ffi.wasmtime_instance_export_get(
        store._context(), ctypes.byref(instance._instance), *_name(name), ctypes.byref(item)
    )
    if not found:
        return None
    kind = item.kind
    if kind == ffi.WASMTIME_EXTERN_FUNC.value:
        return wasmtime.Func._from_raw(item.of.func)
    if kind == ffi.WASMTIME_EXTERN_MEMORY.value:
        return wasmtime.Memory._from_raw(item.of.memory)
    if kind == ffi.WASMTIME_EXTERN_GLOBAL.value:
        return wasmtime.Global._from_raw(item.of.global_)
    return None  # a table or a tag: nothing run() reads


# wasmtime_memory_data declared again to return the address as an int (no pointer object).
_memory_data = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)(
    ("wasmtime_memory_data", ffi.dll)
)
_memory_size = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p)(
    ("wasmtime_memory_data_size", ffi.dll)
)


class MemoryView:
    """One invocation's linear memory, bounds-checked for the host functions (guest pointers
    arrive as signed i32). Its base is read once: no engine lets a memory move (_engine.py sets
    memory_may_move off, with all of wasm32's 4 GiB reserved). Its size only grows, so it is
    read again only when an access runs past the size last read: two C calls a host call fewer
    (bench/executor.py's file call). No memory (a host call during instantiation): size 0."""

    __slots__ = ("base", "context", "ref", "size")

    def __init__(self, store: wasmtime.Store | None = None, memory: wasmtime.Memory | None = None):
        self.context, self.ref, self.base, self.size = None, None, 0, 0
        if store is not None and memory is not None:
            self.context, self.ref = store._context(), ctypes.byref(memory._memory)
            self.base = _memory_data(self.context, self.ref) or 0
            self.size = _memory_size(self.context, self.ref)

    def holds(self, end: int) -> bool:
        """Whether guest bytes [0, end) are in the memory now."""
        if end > self.size and self.ref is not None:
            self.size = _memory_size(self.context, self.ref)
        return end <= self.size

    def span(self, ptr: int, length: int) -> int | None:
        """The host address of guest [ptr, ptr+length), or None when it runs past the memory."""
        ptr &= 0xFFFF_FFFF
        if length < 0 or not self.holds(ptr + length):
            return None
        return self.base + ptr

    def c_string(self, ptr: int) -> str | None:
        """The NUL-terminated string at `ptr`, within MAX_FILE_ID_BYTES, else None."""
        ptr &= 0xFFFF_FFFF
        self.holds(ptr + MAX_FILE_ID_BYTES)
        if ptr >= self.size:
            return None
        raw = ctypes.string_at(self.base + ptr, min(MAX_FILE_ID_BYTES, self.size - ptr))
        end = raw.find(b"\0")
        return raw[:end].decode("utf-8", "replace") if end >= 0 else None


def write(view: MemoryView, data: bytes, at: int) -> None:
    """Copies `data` into linear memory at `at`; raises IndexError past its end."""
    if at < 0 or not view.holds(at + len(data)):
        raise IndexError(f"{len(data)} bytes at {at} run past the memory's {view.size}")
    ctypes.memmove(view.base + at, data, len(data))
