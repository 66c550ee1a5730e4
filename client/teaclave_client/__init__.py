"""teaclave-client: what a data or model owner installs. The SDK (`Client`) and the
`teaclave-client` CLI for the platform's verbs; file crypto compatible with Teaclave; file keys
sealed to the platform (HPKE); receipts verified against its published key; images prepared as
a model's input.

Laid out like requests: `client` (the `Client` class) whose verbs live by concern in
`accounts`, `functions`, `data` (files) and `tasks`, with `flows` for the whole data owner's flow;
`transport` (session, retries, problem+json -> the typed errors of `errors`); `models`;
`keystore`; `verify` (what a result must show before it is believed); `crypto` and `sealing`
(file crypto, key wrapping, receipts); `images`; and `cli/`, one module per command group.
`teaclave_client.teaclave` has Apache Teaclave's Python SDK names over `Client`, for scripts
written for Teaclave."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Client
    from .crypto import (
        SCHEMAS,
        Encrypted,
        decrypt,
        decrypt_file,
        encrypt,
        encrypt_file,
        generate_key,
    )
    from .errors import (
        ApiError,
        AuthenticationError,
        IntegrityError,
        NotFound,
        PermissionDenied,
        ReceiptError,
        ServiceUnavailable,
        TaskFailed,
        TaskTimeout,
        TeaclaveClientError,
    )
    from .images import npy_bytes, prepare_for, prepare_image
    from .keystore import DirectoryKeyStore, MemoryKeyStore
    from .models import FileInfo, Function, Task, TaskResult, User
    from .sealing import unwrap_key, verify_receipt, wrap_key

__version__ = "0.1.0"
# Each name's module, imported on first use (PEP 562): `import teaclave_client.vocabulary` or
# `.errors` then costs no requests, numpy or cryptography import (0.5 s for every CLI start).
_HOMES = {
    "client": ["Client"],
    "crypto": [
        "SCHEMAS",
        "Encrypted",
        "decrypt",
        "decrypt_file",
        "encrypt",
        "encrypt_file",
        "generate_key",
    ],
    "errors": [
        "ApiError",
        "AuthenticationError",
        "IntegrityError",
        "NotFound",
        "PermissionDenied",
        "ReceiptError",
        "ServiceUnavailable",
        "TaskFailed",
        "TaskTimeout",
        "TeaclaveClientError",
    ],
    "images": ["npy_bytes", "prepare_for", "prepare_image"],
    "keystore": ["DirectoryKeyStore", "MemoryKeyStore"],
    "models": ["FileInfo", "Function", "Task", "TaskResult", "User"],
    "sealing": ["unwrap_key", "verify_receipt", "wrap_key"],
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}
__all__ = [  # what `from teaclave_client import *` gives: every name above (a test checks)
    "SCHEMAS",
    "ApiError",
    "AuthenticationError",
    "Client",
    "DirectoryKeyStore",
    "Encrypted",
    "FileInfo",
    "Function",
    "IntegrityError",
    "MemoryKeyStore",
    "NotFound",
    "PermissionDenied",
    "ReceiptError",
    "ServiceUnavailable",
    "Task",
    "TaskFailed",
    "TaskResult",
    "TaskTimeout",
    "TeaclaveClientError",
    "User",
    "decrypt",
    "decrypt_file",
    "encrypt",
    "encrypt_file",
    "generate_key",
    "npy_bytes",
    "prepare_for",
    "prepare_image",
    "unwrap_key",
    "verify_receipt",
    "wrap_key",
]


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next lookup is a plain global
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
