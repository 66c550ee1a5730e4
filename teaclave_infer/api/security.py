"""Bearer tokens (HS256 JWT with an expiry, a unique id and the user's token epoch), and the
service's token secret, kept owner-only in the data dir. Passwords are in passwords.py."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from teaclave_client.files import write_private

__all__ = [
    "TokenClaims",
    "issue_token",
    "load_secret",
    "read_token",
]

_ALGORITHM = "HS256"


def load_secret(path: Path) -> bytes:
    """The token secret, created on first start with owner-only permissions."""
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process made it first: theirs
            write_private(path, secrets.token_bytes(32), replace=False)
    return path.read_bytes()


@dataclass(frozen=True)
class TokenClaims:
    user_id: str
    epoch: int
    jti: str
    expires_at: datetime


def issue_token(secret: bytes, user_id: str, epoch: int, ttl_s: int) -> tuple[str, TokenClaims]:
    expires = datetime.now(UTC) + timedelta(seconds=ttl_s)
    claims = TokenClaims(user_id, epoch, uuid.uuid4().hex, expires)
    payload = {"sub": user_id, "epoch": epoch, "jti": claims.jti, "exp": expires}
    return jwt.encode(payload, secret, algorithm=_ALGORITHM), claims


def read_token(secret: bytes, token: str) -> TokenClaims | None:
    """The claims of a token this service signed and that has not expired, else None."""
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[_ALGORITHM],
            options={"require": ["sub", "exp", "jti", "epoch"]},
        )
        return TokenClaims(
            str(payload["sub"]),
            int(payload["epoch"]),
            str(payload["jti"]),
            datetime.fromtimestamp(payload["exp"], UTC),
        )
    except (jwt.PyJWTError, ValueError, TypeError):
        return None
