"""Who the client is on the platform: logging in and out, a saved session, users, and the
platform's published keys (pinned across sessions). The base of the client's verbs."""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import IntegrityError, TeaclaveClientError
from .keystore import KeyStore, write_private
from .models import User, parse
from .transport import Transport

__all__ = ["Accounts"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


class Accounts(Transport):
    """Identity verbs; the state they share with the other verbs is set up by `Client`."""

    keys: KeyStore
    pinned_keys: dict[str, str]
    user: User | None
    _platform_keys: dict[str, Any] | None

    def login(self, username: str, password: str) -> User:
        """Logs in; the token stays in memory (`save_session` stores it, 0600)."""
        body = self._json(
            "POST", "/v1/auth/login", json={"username": username, "password": password}
        )
        self.token = body["token"]
        self.user = parse(User, body["user"])
        return self.user

    def save_session(self, path: Path) -> None:
        """Stores the service's URL, the token, the user and the platform's key ids in a 0600
        file, for `from_session`: only when asked, since the token is a credential."""
        if not self.token:
            raise TeaclaveClientError("not logged in: no session to save")
        user = self.user or self.me()
        body = {"url": self.url, "token": self.token, "user": user, "key_ids": self.key_ids()}
        write_private(path, json.dumps(body, default=_jsonable).encode())

    def logout(self) -> None:
        """Revokes the token on the platform."""
        self._request("POST", "/v1/auth/logout")
        self.token, self.user = None, None

    def me(self) -> User:
        self.user = parse(User, self._json("GET", "/v1/users/me"))
        return self.user

    def my_id(self) -> str:
        """The logged-in user's id, asked of the platform only once."""
        return (self.user or self.me()).id

    def register_user(
        self, username: str, password: str, role: str = "DataOwner", attribute: str = ""
    ) -> User:
        """(PlatformAdmin) A new user: role PlatformAdmin, FunctionOwner or DataOwner."""
        body = {"username": username, "password": password, "role": role, "attribute": attribute}
        return parse(User, self._json("POST", "/v1/users", json=body))

    def list_users(self) -> list[User]:
        """(PlatformAdmin) Every user."""
        return [parse(User, u) for u in self._pages("/v1/users", {})]

    def update_user(
        self, user_id: str, role: str | None = None, attribute: str | None = None
    ) -> User:
        """(PlatformAdmin) Changes a user's role or attribute (None: unchanged)."""
        changes = {k: v for k, v in (("role", role), ("attribute", attribute)) if v is not None}
        return parse(User, self._json("PATCH", f"/v1/users/{user_id}", json=changes))

    def delete_user(self, user_id: str) -> None:
        """(PlatformAdmin) Deletes a user."""
        self._request("DELETE", f"/v1/users/{user_id}")

    def reset_password(self, user_id: str, password: str) -> None:
        """(PlatformAdmin) Sets a password the user must change at their next login; their
        tokens are revoked."""
        self._request("POST", f"/v1/users/{user_id}/password", json={"password": password})

    def change_password(self, old_password: str, new_password: str) -> None:
        """Changes the caller's own password. The platform revokes every token of theirs, this
        one too: log in again with the new password."""
        body = {"old_password": old_password, "new_password": new_password}
        self._request("POST", "/v1/auth/password", json=body)
        self.token = None

    def platform_keys(self) -> dict[str, Any]:
        """The platform's published keys, checked against `pinned_keys` if any."""
        if self._platform_keys is None:
            keys = self._json("GET", "/v1/platform/keys")
            for use, expected in self.pinned_keys.items():
                if keys[use]["key_id"] != expected:
                    raise IntegrityError(
                        f"the platform's {use} key is {keys[use]['key_id']}, not the pinned "
                        f"{expected}: another platform, or its keys were replaced"
                    )
            self._platform_keys = keys
        return self._platform_keys

    def key_ids(self) -> dict[str, str]:
        return {use: str(self.platform_keys()[use]["key_id"]) for use in ("sealing", "signing")}
