"""teaclave-client: what a data or model owner installs. File crypto compatible with Teaclave
(and, as the platform grows, the SDK, the CLI and the MNIST demo)."""

from .crypto import SCHEMAS, Encrypted, IntegrityError, decrypt, decrypt_file, encrypt, encrypt_file

__version__ = "0.1.0"
__all__ = [
    "SCHEMAS",
    "Encrypted",
    "IntegrityError",
    "decrypt",
    "decrypt_file",
    "encrypt",
    "encrypt_file",
]
