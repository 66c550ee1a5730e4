"""The SDK's names as they were importable before the client was split by concern (kept for
scripts that import `teaclave_client.sdk`): the client is in `client`, its verbs in `accounts`,
`functions`, `data` (files) and `tasks`, the models in `models`, key stores in `keystore`."""

from __future__ import annotations

from .client import Client
from .keystore import DirectoryKeyStore, KeyStore, MemoryKeyStore, write_private
from .models import ENDED, FileInfo, Function, Task, TaskResult, User

__all__ = [
    "ENDED",
    "Client",
    "DirectoryKeyStore",
    "FileInfo",
    "Function",
    "KeyStore",
    "MemoryKeyStore",
    "Task",
    "TaskResult",
    "User",
    "write_private",
]
