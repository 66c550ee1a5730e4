"""run(): one invocation, as a pipeline of named stages.

validate + compile (or load from the cache) → instantiate (imports linked once per module) → place
argv → call `entrypoint` under the limits → collect outputs. One Store per invocation; engines and
the cache are shared, so invocations may run on several threads at once.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import wasmtime
from teaclave_client.vocabulary import ARGV_AREA, ARGV_AREA_BYTES

from ..abi import DEFAULT_PROFILE, ENTRYPOINT, IMPORT_MODULE, TEACLAVE_IMPORTS, pack_arguments
from ..errors import ForbiddenImportError, InvalidModuleError, LimitError
from ..laps import Laps
from ._cache import ModuleCache, Wasm
from ._engine import TICK_S, EngineKey, engine_for, pool_slot, ticker_for
from ._files import FileContext
from ._limits import MAX_TABLES, Limits, Result, ResultKind
from ._raw import MemoryView, call_i32, define_i32, export, reraise_stop, write
from ._tables import REFUSED

__all__ = ["DEFAULT_CACHE", "run"]

PAGE = 65536
DEFAULT_CACHE = ModuleCache()  # in memory only; pass a ModuleCache(directory) to persist
DEFAULT_LIMITS = Limits()


class _Host:
    """The five host functions, linked once per engine. A call acts on the file context and
    memory of the invocation running on its thread (wasmtime calls host functions on the thread
    that called into wasm). They hold no store on purpose: the linker keeps them for the life of
    the process, so a callable holding its store would keep that store and its linear memory
    alive forever (~600 KB leaked per call, measured)."""

    current = threading.local()  # .invocation: the _Invocation inside wasm on this thread

    @classmethod
    def files(cls) -> FileContext:
        return cls.current.invocation.files

    @classmethod
    def guest(cls) -> MemoryView:
        return cls.current.invocation.view

    @classmethod
    def functions(cls) -> dict[str, Callable[..., int]]:
        files, guest = cls.files, cls.guest
        return {
            "teaclave_open_input": lambda p: files().open_input(guest().c_string(p)),
            "teaclave_create_output": lambda p: files().create_output(guest().c_string(p)),
            "teaclave_read_file": lambda fd, p, n: files().read(fd, guest().span(p, n), n),
            "teaclave_write_file": lambda fd, p, n: files().write(fd, guest().span(p, n), n),
            "teaclave_close_file": lambda fd: files().close(fd),
        }


@functools.cache
def _linker(key: EngineKey) -> wasmtime.Linker:
    linker = wasmtime.Linker(engine_for(key))
    for name, fn in _Host.functions().items():  # a raise is ERROR to the guest (_raw.py)
        define_i32(linker, IMPORT_MODULE, name, TEACLAVE_IMPORTS[name], fn)
    return linker


@dataclass
class _Prepared:
    """A module with its imports resolved once (instantiating it is then only the store's work),
    and what run() reads of its exports: whether it exports the REFUSED flag of a guarded table
    (_tables.py), and the address of its argv area (ARGV_AREA: an immutable i32 global, so the
    same in every instance; read from the first)."""

    pre: wasmtime.InstancePre
    guarded: bool
    has_argv_area: bool
    argv_area: int | None = None

    def argv_area_of(self, store: wasmtime.Store, instance: wasmtime.Instance) -> int | None:
        if self.has_argv_area and self.argv_area is None:
            area = export(store, instance, ARGV_AREA)
            if not isinstance(area, wasmtime.Global) or not _immutable_i32(area.type(store)):
                self.has_argv_area = False  # not what the ABI describes: argv goes in grown pages
                return None
            self.argv_area = area.value(store) & 0xFFFF_FFFF
        return self.argv_area


def _immutable_i32(ty: wasmtime.GlobalType) -> bool:
    return not ty.mutable and str(ty.content) == "i32"


@functools.lru_cache(maxsize=16)  # as many as the module cache keeps by default
def _prepared(module: wasmtime.Module, key: EngineKey) -> _Prepared:
    """Cached by the module object, which the module cache hands out again and again."""
    names = {e.name for e in module.exports}
    return _Prepared(_linker(key).instantiate_pre(module), REFUSED in names, ARGV_AREA in names)


def _place_argv(
    store: wasmtime.Store,
    memory: wasmtime.Memory,
    view: MemoryView,
    argv: list[bytes],
    area: int | None,
) -> int:
    """Writes the pointer array then the strings into the module's argv area when it has one
    that holds them, else into pages it grows at the end of memory; returns the array's address.
    Raises WasmtimeError when the memory limit refuses the growth."""
    strings = b"".join(a + b"\0" for a in argv)
    table_bytes = 4 * len(argv)
    size = table_bytes + len(strings)
    if area is not None and size <= ARGV_AREA_BYTES and view.holds(area + size):
        base = area  # no growth: a grown page costs two mprotect calls a call (ti_mem.c)
    else:
        base = memory.grow(store, max(1, -(-size // PAGE))) * PAGE
    table, cursor = bytearray(), base + table_bytes
    for a in argv:
        table += cursor.to_bytes(4, "little")
        cursor += len(a) + 1
    write(view, bytes(table) + strings, base)
    return base


def _check_inputs(inputs: Mapping[str, bytes], limits: Limits) -> None:
    for fid, data in inputs.items():
        if len(data) > limits.max_input_bytes:
            raise LimitError(
                f"input {fid!r} is {len(data)} bytes, over the limit of {limits.max_input_bytes}"
            )


class _Ended(Exception):
    """An invocation ended before returning; carries its result kind."""

    def __init__(self, kind: ResultKind, message: str, trap_code: str | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.trap_code = kind, f"{kind}: {message}", trap_code


class _Invocation:
    """One Store, one instance, one call."""

    def __init__(
        self, module: wasmtime.Module, key: EngineKey, limits: Limits, files: FileContext
    ) -> None:
        self.module, self.limits = module, limits
        self.store = wasmtime.Store(ticker_for(key).engine)
        # Every growable resource counts against memory_bytes: linear memory and tables share
        # it (_limits.py); one instance, one memory, a few tables.
        self.store.set_limits(
            memory_size=limits.linear_memory_bytes,
            table_elements=limits.table_elements,
            instances=1,
            tables=MAX_TABLES,
            memories=1,
        )
        if limits.fuel is not None:
            self.store.set_fuel(limits.fuel)
        self.store.set_epoch_deadline(max(1, round(limits.deadline_s / TICK_S)))
        self.key, self.files = key, files
        self.memory: wasmtime.Memory | None = None
        self.view = MemoryView()  # self.memory's, for the host functions; none until instantiated
        self.refused: wasmtime.Global | None = None  # set by a guarded module (_tables.py)
        self.argv_area: int | None = None  # where argv goes, if the module has an area for it

    def __enter__(self) -> _Invocation:
        _Host.current.invocation = self
        return self

    def __exit__(self, *exc: object) -> None:
        _Host.current.invocation = None
        self.store.close()  # gives the instance's pool slot back now, not when collected

    def table_refused(self) -> bool:
        """Whether the store's limit refused a table growth (the guard then trapped)."""
        return self.refused is not None and bool(self.refused.value(self.store))

    def at_memory_cap(self) -> bool:
        """Whether the guest's memory is within 1/16 of its cap (at least 1 MiB) of it.

        wasmtime-py's store limits refuse a growth past the cap (memory.grow returns -1) but
        offer no callback to observe it, so a call that fails this close to the cap is taken to
        have failed for want of memory."""
        cap = self.limits.linear_memory_bytes
        size = self.memory.data_len(self.store) if self.memory is not None else 0
        return size + max(1 << 20, cap // 16) > cap

    def instantiate(self) -> wasmtime.Func:
        try:
            prepared = _prepared(self.module, self.key)
            instance = prepared.pre.instantiate(self.store)
        except wasmtime.Trap as err:  # a start function trapped
            reraise_stop(err)
            raise self.trapped(err) from err
        except wasmtime.WasmtimeError as err:  # the initial memory is over the cap
            reraise_stop(err)
            raise _Ended(
                ResultKind.MEMORY_LIMIT, f"{self.limits.memory_bytes} bytes: {err}"
            ) from err
        memory = export(self.store, instance, "memory")
        entry = export(self.store, instance, ENTRYPOINT)
        assert isinstance(memory, wasmtime.Memory) and isinstance(entry, wasmtime.Func)  # validated
        self.memory, self.view = memory, MemoryView(self.store, memory)
        refused = export(self.store, instance, REFUSED) if prepared.guarded else None
        self.refused = refused if isinstance(refused, wasmtime.Global) else None
        self.argv_area = prepared.argv_area_of(self.store, instance)
        return entry

    def place_argv(self, argv: list[bytes]) -> int:
        assert self.memory is not None
        try:
            return _place_argv(self.store, self.memory, self.view, argv, self.argv_area)
        except wasmtime.WasmtimeError as err:
            raise _Ended(ResultKind.MEMORY_LIMIT, f"no room for argv: {err}") from err

    def call(self, entry: wasmtime.Func, argc: int, argv_ptr: int) -> int:
        try:
            return call_i32(self.store, entry, argc, argv_ptr)
        except wasmtime.Trap as err:
            raise self.trapped(err) from err
        except wasmtime.WasmtimeError as err:
            raise _Ended(ResultKind.TRAP, _describe(str(err))) from err

    def trapped(self, err: wasmtime.Trap) -> _Ended:
        code = err.trap_code
        first = _describe(err.message)
        if code is wasmtime.TrapCode.INTERRUPT:
            return _Ended(
                ResultKind.TIMEOUT, f"the deadline of {self.limits.deadline_s:g} s passed"
            )
        if code is wasmtime.TrapCode.OUT_OF_FUEL:
            return _Ended(ResultKind.TIMEOUT, f"the fuel budget of {self.limits.fuel} ran out")
        if code is wasmtime.TrapCode.STACK_OVERFLOW:
            return _Ended(ResultKind.STACK_OVERFLOW, first, "stack_overflow")
        if self.table_refused():
            return _Ended(
                ResultKind.MEMORY_LIMIT,
                f"{self.limits.memory_bytes} bytes: a table growth past it was refused",
            )
        if self.at_memory_cap():
            return _Ended(
                ResultKind.MEMORY_LIMIT, f"{self.limits.memory_bytes} bytes, then {first}"
            )
        return _Ended(ResultKind.TRAP, first, code.name.lower() if code is not None else None)


def _compiled(
    cache: ModuleCache, wasm: bytes | Wasm, key: EngineKey
) -> tuple[wasmtime.Module, EngineKey]:
    """The module for the pooled engine, or, when it does not fit the pool (more than
    MAX_TABLES tables, or a table declared larger than any limit allows), for the unpooled one:
    there the store's limits end it as `memory_limit`, as in the web host. The cache remembers
    the pooled engine's refusal, so a misfit is not compiled for the pool on every call. A module
    that is invalid for both raises the unpooled engine's error."""
    try:
        return cache.get(wasm, key), key
    except InvalidModuleError:
        unpooled = dataclasses.replace(key, pooled=False)
        return cache.get(wasm, unpooled), unpooled


def run(
    wasm: bytes | Wasm,
    arguments: Mapping[str, object],
    inputs: Mapping[str, bytes],
    outputs: Sequence[str] = (),
    limits: Limits = DEFAULT_LIMITS,
    *,
    profile: str = DEFAULT_PROFILE.name,
    cache: ModuleCache = DEFAULT_CACHE,
) -> Result:
    """Runs the function's entrypoint once; every way it can end is a Result kind. Raises only
    LimitError, for a request that breaks a limit before anything runs, and what a `Wasm`'s
    load raises (called only if the module is in neither cache)."""
    _check_inputs(inputs, limits)
    key = EngineKey(profile, limits.fuel is not None, limits.wasm_stack_bytes, pooled=True)
    laps = Laps()
    try:
        module, key = _compiled(cache, wasm, key)  # validate + compile, or load from the cache
    except ForbiddenImportError as err:
        kind = ResultKind.FORBIDDEN_IMPORT
        return Result(kind, message=f"{kind}: {err}")
    except InvalidModuleError as err:
        kind = ResultKind.INVALID_MODULE
        return Result(kind, message=f"{kind}: {err}")
    laps("compile")
    files = FileContext(inputs, outputs, limits.max_handles, limits.output_bytes)
    invocation = _Invocation(module, key, limits, files)
    try:
        # the epoch advances while anything runs; the store is closed before the slot is freed
        with ticker_for(key), pool_slot(key), invocation:
            entry = invocation.instantiate()  # link + instantiate
            argv = pack_arguments(arguments)
            argv_ptr = invocation.place_argv(argv)  # argv in fresh pages at the end
            laps("instantiate")
            return_value = invocation.call(entry, len(argv), argv_ptr)  # under the limits
            laps("run")
            at_cap = return_value < 0 and invocation.at_memory_cap()
    except _Ended as ended:
        laps("run")
        return Result(
            ended.kind, message=ended.message, trap_code=ended.trap_code, timings=laps.times
        )
    if files.output_limit_hit:
        kind = ResultKind.OUTPUT_LIMIT
        message = f"{kind}: outputs exceeded {limits.output_bytes} bytes"
        return Result(kind, message=message, timings=laps.times)
    if at_cap:
        kind = ResultKind.MEMORY_LIMIT
        message = f"{kind}: the function hit {limits.memory_bytes} bytes and failed"
        return Result(kind, message=message, timings=laps.times)
    kind = ResultKind.OK
    return Result(kind, return_value, dict(files.written), kind.value, timings=laps.times)


def _describe(message: str) -> str:
    """A trap's cause and innermost frame on one line ("wasm trap: ... (at 0: 0x1b6 - f)")."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return "trap"
    frame = next((line for line in lines if line.startswith("0:")), None)
    cause = re.sub(r"^\d+:\s*", "", lines[-1])
    return cause + (f" (at {' '.join(frame.split()[1:])})" if frame else "")
