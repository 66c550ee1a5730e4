"""Teaclave's file crypto schemas. Adding one is a member here plus its cipher in `crypto.py`
(and `teaclave-crypto.js`, or `in_browser` False); the API, the CLI and the web constants take
the list from here."""

from __future__ import annotations

import enum

__all__ = [
    "DEFAULT_SCHEMA",
    "IV_BYTES",
    "KEY_WRAP_INFO",
    "RECEIPT_VERSION",
    "SCHEMAS",
    "TAG_BYTES",
    "Schema",
]

TAG_BYTES = 16  # an AES-GCM tag: every schema's cmac, and each protected-file node's tag
IV_BYTES = 12  # an AES-GCM iv, for the schemas that take one
# The label that starts HPKE's `info` when a file key is wrapped to the platform (then the file's
# id and schema): a new wrapping scheme is a new label.
KEY_WRAP_INFO = "teaclave-infer/file-key/v1"


class Schema(enum.StrEnum):
    """How a file is encrypted: AES-GCM with a 128- or 256-bit key, Teaclave's SGX protected
    file with a 128-bit key, or `raw` (plaintext)."""

    AES_GCM_128 = "aes-gcm-128"
    AES_GCM_256 = "aes-gcm-256"
    TEACLAVE_FILE_128 = "teaclave-file-128"
    RAW = "raw"

    @property
    def key_bytes(self) -> int:
        """The length of a file key; 0 for `raw`, which has none."""
        return _KEY_BYTES[self]

    @property
    def sealed(self) -> bool:
        """Whether a file of this schema is encrypted (and has a key to wrap)."""
        return self.key_bytes > 0

    @property
    def takes_iv(self) -> bool:
        """Whether a file comes with an iv: a protected file keeps its nonces inside."""
        return self in (Schema.AES_GCM_128, Schema.AES_GCM_256)

    @property
    def in_browser(self) -> bool:
        """Whether the web host can encrypt and decrypt it (not teaclave-file-128: use the
        Python client)."""
        return self is not Schema.TEACLAVE_FILE_128

    @property
    def meaning(self) -> str:
        if self is Schema.TEACLAVE_FILE_128:
            return (
                "Teaclave's SGX protected file, user key: 4 KiB nodes, AES-GCM; no iv; the "
                "cmac is the metadata node's GMAC (bytes 80..96)"
            )
        if not self.sealed:
            return "plaintext; its cmac is the first 16 bytes of its SHA-256"
        return (
            f"AES-GCM, {8 * self.key_bytes}-bit key, {IV_BYTES}-byte iv, AAD = 8 zero bytes, "
            f"ciphertext ‖ {TAG_BYTES}-byte tag (the cmac)"
        )


_KEY_BYTES = {
    Schema.AES_GCM_128: 16,
    Schema.AES_GCM_256: 32,
    Schema.TEACLAVE_FILE_128: 16,
    Schema.RAW: 0,
}

DEFAULT_SCHEMA = Schema.AES_GCM_128
# schema name -> key bytes, as `teaclave_client.SCHEMAS` has always been.
SCHEMAS: dict[str, int] = {s.value: s.key_bytes for s in Schema}

# The format the platform signs receipts in, as `receipt_version` in the signed payload: 2 is
# RFC 8785 canonical JSON. A new one is a number here plus its bytes in sealing.RECEIPT_FORMATS
# (and teaclave-crypto.js's receiptBody); receipts without the field are v1 (json.dumps text).
RECEIPT_VERSION = 2
