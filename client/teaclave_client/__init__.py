"""teaclave-client: what a data or model owner installs. File crypto compatible with Teaclave,
file keys sealed to the platform (HPKE), receipts verified against its published key (and, as
the platform grows, the SDK, the CLI and the MNIST demo)."""

from .crypto import SCHEMAS, Encrypted, IntegrityError, decrypt, decrypt_file, encrypt, encrypt_file
from .sealing import ReceiptError, unwrap_key, verify_receipt, wrap_key

__version__ = "0.1.0"
__all__ = [
    "SCHEMAS",
    "Encrypted",
    "IntegrityError",
    "ReceiptError",
    "decrypt",
    "decrypt_file",
    "encrypt",
    "encrypt_file",
    "unwrap_key",
    "verify_receipt",
    "wrap_key",
]
