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

from .client import Client
from .crypto import SCHEMAS, Encrypted, decrypt, decrypt_file, encrypt, encrypt_file, generate_key
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
__all__ = [
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
