"""A worker's in-memory caches of what tasks share: a function's wasm bytes and the plaintext of
a function owner's separate weights. Never written to disk; bounded in bytes, the least
recently used entry dropped first; safe to share between a process's worker threads.

An entry is named (a wasm's sha256, a weights file's id) and versioned: asked for under another
version (the file's cmac, iv, schema or wrapped key changed), the old entry is dropped and the
lookup misses, so a changed file is never served from the cache.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

__all__ = ["BytesCache", "Caches", "weights_version"]


class BytesCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.stats = {"hits": 0, "misses": 0, "dropped": 0}
        self._entries: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str, version: str = "") -> bytes | None:
        """The bytes kept for `name` at `version`; None if there are none (an entry of another
        version is dropped)."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None and entry[0] == version:
                self._entries.move_to_end(name)
                self.stats["hits"] += 1
                return entry[1]
            if entry is not None:
                self._drop(name)
            self.stats["misses"] += 1
            return None

    def put(self, name: str, data: bytes, version: str = "") -> None:
        """Keeps `data` (unless it alone is over the bound), dropping the least recently used
        entries until everything fits."""
        if len(data) > self.max_bytes:
            return
        with self._lock:
            if name in self._entries:
                self._drop(name)
            self._entries[name] = (version, data)
            self.size += len(data)
            while self.size > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def __contains__(self, name: str) -> bool:
        with self._lock:
            return name in self._entries

    def _drop(self, name: str) -> None:
        _, data = self._entries.pop(name)
        self.size -= len(data)
        self.stats["dropped"] += 1


def weights_version(cmac: str, iv: str, schema: str, wrapped_key: str, key_file_id: str) -> str:
    """What a file's plaintext depends on besides its id: its tag, its iv, its schema and its
    key (by the wrapped key's digest: the cache holds no key material)."""
    digest = hashlib.sha256(f"{key_file_id}\0{wrapped_key}".encode()).hexdigest()
    return f"{cmac.lower()};{iv.lower()};{schema};{digest}"


@dataclass(frozen=True)
class Caches:
    """A worker process's caches (the compiled modules are the executor's ModuleCache)."""

    wasm: BytesCache = field(default_factory=lambda: BytesCache(128 << 20))
    weights: BytesCache = field(default_factory=lambda: BytesCache(256 << 20))
