"""Compiled modules, serialized to a directory and kept in memory.

An entry's key is the sha256 of the wasm, the wasmtime version and the engine config. A module
may be asked for by its bytes or by a `Wasm`: its sha256 and a way to read the bytes, called only
when the module must be compiled (a warm module costs no read, no hash, no deserialize). A file is
"TICM" + version + sha256 of the payload + the payload (wasmtime's serialized module). A file
that is short, has another magic, or whose payload does not hash to what its header says is
deleted and rebuilt, never deserialized. wasmtime trusts what it deserializes, so the directory
must be writable only by the platform: the hash guards against corruption, not an attacker.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import wasmtime

from ..errors import InvalidModuleError
from ._engine import EngineKey, engine_for
from ._validate import compile_checked, validate

__all__ = ["ModuleCache", "Wasm"]

MAGIC = b"TICM"
VERSION = (1).to_bytes(4, "little")
HEADER = len(MAGIC) + len(VERSION) + 32


REFUSALS_KEPT = 256
WASMTIME_VERSION = metadata.version("wasmtime")  # read once: a lookup costs ~1 ms


@dataclass(frozen=True)
class Wasm:
    """A module's bytes named by their sha256 (hex); `load` is called only to compile them, and
    what it returns must hash to `sha256` (InvalidModuleError otherwise). Whatever `load`
    raises passes through."""

    sha256: str
    load: Callable[[], bytes]


@functools.lru_cache(maxsize=256)  # a warm call's key costs a dict lookup, not a hash
def _key(wasm_sha256: str, engine: EngineKey) -> str:
    material = f"{wasm_sha256};wasmtime={WASMTIME_VERSION};{engine.describe()}"
    return hashlib.sha256(material.encode()).hexdigest()


class ModuleCache:
    """Compile-or-load of validated modules, the last `in_memory` kept compiled in memory; safe
    to share between threads."""

    def __init__(self, directory: Path | None = None, in_memory: int = 16) -> None:
        self.directory, self.in_memory = directory, in_memory
        self.memory: OrderedDict[str, wasmtime.Module] = OrderedDict()
        self.lock = threading.Lock()
        self.stats = {"memory_hits": 0, "disk_hits": 0, "compiles": 0, "rejected": 0}
        # key -> the error compiling gave: a module is not compiled again to be refused again
        # (run() asks for the pooled engine first, and a module may not fit its pool)
        self.refused: OrderedDict[str, InvalidModuleError] = OrderedDict()
        # id -> (the bytes object, its sha256): the same object passed again is not rehashed
        # (100 MB of ResNet-50 take ~60 ms); holding the object keeps its id from being reused
        self.digests: OrderedDict[int, tuple[bytes, str]] = OrderedDict()

    def digest(self, wasm: bytes) -> str:
        """The sha256 (hex) of `wasm`, remembered for the same bytes object."""
        if type(wasm) is not bytes:  # a mutable buffer may change under the same id
            return hashlib.sha256(wasm).hexdigest()
        with self.lock:
            known = self.digests.get(id(wasm))
            if known is not None and known[0] is wasm:
                return known[1]
        digest = hashlib.sha256(wasm).hexdigest()
        with self.lock:
            self.digests[id(wasm)] = (wasm, digest)
            while len(self.digests) > self.in_memory:
                self.digests.popitem(last=False)
        return digest

    def _bytes(self, wasm: bytes | Wasm) -> bytes:
        if not isinstance(wasm, Wasm):
            return wasm
        data = wasm.load()
        if self.digest(data) != wasm.sha256:
            raise InvalidModuleError(f"the wasm read does not hash to {wasm.sha256}")
        return data

    def get(self, wasm: bytes | Wasm, engine_key: EngineKey) -> wasmtime.Module:
        """The validated module for these bytes; raises InvalidModuleError otherwise."""
        digest = wasm.sha256 if isinstance(wasm, Wasm) else self.digest(wasm)
        key = _key(digest, engine_key)
        with self.lock:
            module = self.memory.get(key)
            if module is not None:
                self.memory.move_to_end(key)
        if module is not None:
            self._count("memory_hits")
            return module
        with self.lock:
            refused = self.refused.get(key)
        if refused is not None:
            raise type(refused)(str(refused))
        engine = engine_for(engine_key)
        module = self._load(key, engine)
        if module is None:
            data = self._bytes(wasm)  # a loader's error is not the module's: not remembered
            try:
                module = compile_checked(engine, data, engine_key.profile)
            except InvalidModuleError as err:
                with self.lock:
                    self.refused[key] = err
                    while len(self.refused) > REFUSALS_KEPT:
                        self.refused.popitem(last=False)
                raise
            self._count("compiles")
            self._store(key, module)
        with self.lock:
            self.memory[key] = module
            while len(self.memory) > self.in_memory:  # least recently used first
                self.memory.popitem(last=False)
        return module

    def path(self, key: str) -> Path | None:
        return self.directory / f"{key}.cwasm" if self.directory else None

    def _load(self, key: str, engine: wasmtime.Engine) -> wasmtime.Module | None:
        path = self.path(key)
        if path is None or not path.exists():
            return None
        data = path.read_bytes()
        payload = data[HEADER:]
        intact = (
            len(data) > HEADER
            and data[:8] == MAGIC + VERSION
            and hashlib.sha256(payload).digest() == data[8:HEADER]
        )
        try:
            if not intact:
                raise ValueError("damaged entry")
            module = wasmtime.Module.deserialize(engine, payload)
            validate(module)
        except (ValueError, wasmtime.WasmtimeError):
            self._count("rejected")
            path.unlink(missing_ok=True)
            return None
        self._count("disk_hits")
        return module

    def _count(self, stat: str) -> None:
        with self.lock:
            self.stats[stat] += 1

    def _store(self, key: str, module: wasmtime.Module) -> None:
        path = self.path(key)
        if path is None:
            return
        payload = bytes(module.serialize())
        path.parent.mkdir(parents=True, exist_ok=True)
        # Imported here: the client package's __init__ costs ~1 s, paid once a module is stored.
        from teaclave_client.files import PRIVATE, atomic_file

        header = MAGIC + VERSION + hashlib.sha256(payload).digest()
        with atomic_file(path, PRIVATE) as f:
            f.write(header)
            f.write(payload)
