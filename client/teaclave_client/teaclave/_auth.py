"""`AuthenticationService`: Teaclave's user verbs on this platform's accounts.

Users are named by their login name as in Teaclave; roles are the platform's (PlatformAdmin,
FunctionOwner, DataOwner: Teaclave's DataOwnerManager has no equivalent and is refused by the
platform). Where the platform's rules differ, the method says how."""

from __future__ import annotations

import secrets

from ._ids import DIRECTORY
from ._service import TeaclaveService, failing
from ._types import Message, TeaclaveException

__all__ = ["AuthenticationService"]


class AuthenticationService(TeaclaveService):
    """Logs users in and, for a PlatformAdmin, manages users. See `TeaclaveService` for the
    constructor. No password is kept after the call it was given to returns."""

    def user_login(self, user_id: str, user_password: str) -> str:
        """Logs `user_id` (a login name) in; returns the token and sets `metadata`."""
        with failing("login user"):
            user = self.client.login(user_id, user_password)
        DIRECTORY.learn(self.url, user.username, user.id)
        self._metadata = {"id": user_id, "token": str(self.client.token)}
        return str(self.client.token)

    def user_register(
        self, user_id: str, user_password: str, role: str = "", attribute: str = ""
    ) -> Message:
        """(PlatformAdmin) A new user named `user_id`; the response's `id` is the platform's
        id for it. `role` is required here: PlatformAdmin, FunctionOwner or DataOwner."""
        self.check_metadata()
        if not role:
            raise TeaclaveException(
                "Failed to register user (give a role: PlatformAdmin, FunctionOwner or DataOwner)"
            )
        with failing("register user"):
            user = self.client.register_user(user_id, user_password, role, attribute)
        DIRECTORY.learn(self.url, user.username, user.id)
        return Message(id=user.id)

    def user_update(
        self, user_id: str, user_password: str, role: str, attribute: str = ""
    ) -> Message:
        """(PlatformAdmin) Sets the user's role and attribute, and a password if one is
        given; the platform makes the user change a password an admin set at their next
        login, and revokes their tokens."""
        self.check_metadata()
        with failing("update user"):
            target = self._admin_lookup(user_id)
            self.client.update_user(target, role or None, attribute)
            if user_password:
                self.client.reset_password(target, user_password)
        return Message()

    def user_change_password(self, user_password: str, old_password: str | None = None) -> Message:
        """Sets the logged-in user's password to `user_password`. Unlike Teaclave's, it takes
        the old password too, `old_password` (the platform asks for it, and the service keeps
        no password to give in its place). The platform revokes the user's tokens; this service
        logs in again with the new password, so that `metadata` keeps working."""
        self.check_metadata()
        if old_password is None:
            raise TeaclaveException(
                "Failed to change password (this platform asks for the old password: "
                "user_change_password(new_password, old_password))"
            )
        with failing("change password"):
            username = self.client.user.username if self.client.user else self.client.me().username
            self.client.change_password(old_password, user_password)
            self.client.login(username, user_password)
        self._metadata = {"id": username, "token": str(self.client.token)}
        return Message()

    def reset_user_password(self, user_id: str) -> Message:
        """(PlatformAdmin) Gives the user a new random password, returned as `password`; they
        must change it at their next login."""
        self.check_metadata()
        password = secrets.token_urlsafe(18)
        with failing("reset password"):
            self.client.reset_password(self._admin_lookup(user_id), password)
        return Message(password=password)

    def delete_user(self, user_id: str) -> Message:
        """(PlatformAdmin) Deletes the user."""
        self.check_metadata()
        with failing("delete user"):
            self.client.delete_user(self._admin_lookup(user_id))
        return Message()

    def list_users(self, user_id: str | None = None) -> Message:
        """(PlatformAdmin) The login names of every user, as `ids`. Teaclave listed the users
        a DataOwnerManager `user_id` manages; this platform has no such managers, so
        `user_id` is not used."""
        self.check_metadata()
        with failing("list users"):
            users = self.client.list_users()
        for user in users:
            DIRECTORY.learn(self.url, user.username, user.id)
        return Message(ids=[u.username for u in users])

    def _admin_lookup(self, name: str) -> str:
        """The id of user `name`, asking the platform's user list (an admin's) if needed."""
        try:
            return DIRECTORY.user_id(self.url, name, "user")
        except TeaclaveException:
            self.list_users()
            return DIRECTORY.user_id(self.url, name, "user")
