"""What Teaclave's examples/python/utils.py gave its scripts, for this platform: the services
(one URL where Teaclave had two addresses and attestation files), the platform admin, logging a
user in, and what the scripts need around them here: a local platform, the data owners' file
server, and the functions' committed builds (functions/*.wasm; each .c's header says how to
build it with `python -m ziglang cc`).

Run an example with no setting and it starts its own platform (`teaclave-infer serve` on a free
loopback port, SQLite in a temporary folder, one worker, fetches allowed from the file server's
own address 127.0.0.2 only) and file server, and stops both at the end. With
TEACLAVE_PLATFORM_URL and TEACLAVE_ADMIN_PASSWORD it uses that platform instead, whose operator
must allow the file server's address (`--allow-fetch 127.0.0.2/32`: a platform on this
machine); never all of 127.0.0.1, where the platform's own API listens."""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from file_server import ALLOW_FETCH, FileServer
from teaclave_client.crypto import encrypt, generate_key
from teaclave_client.errors import TeaclaveClientError
from teaclave_client.files import write_private
from teaclave_client.teaclave import AuthenticationService, FrontendService

from teaclave_infer.errors import TeaclaveInferError
from teaclave_infer.local import ENTRY, serve_process

__all__ = [
    "ADMIN_ID",
    "HERE",
    "OwnedFile",
    "Platform",
    "PlatformAdmin",
    "connect_authentication_service",
    "connect_frontend_service",
    "local_platform",
    "login",
    "main",
    "owned_file",
    "payload",
]

HERE = Path(__file__).resolve().parent
ADMIN_ID = "admin"
URL_VARIABLE, PASSWORD_VARIABLE = "TEACLAVE_PLATFORM_URL", "TEACLAVE_ADMIN_PASSWORD"
FUNCTIONS = HERE / "functions"  # Teaclave's example functions in C, and their builds


@dataclass(frozen=True)
class Platform:
    """A platform to run the examples on, and the data owners' file server beside it."""

    url: str
    admin_password: str
    files: FileServer


def connect_authentication_service(platform: Platform) -> AuthenticationService:
    return AuthenticationService(platform.url).connect()


def connect_frontend_service(platform: Platform) -> FrontendService:
    return FrontendService(platform.url).connect()


def login(platform: Platform, user_id: str, password: str) -> FrontendService:
    """The lines every Teaclave script repeats: log in, then a frontend with the token."""
    with connect_authentication_service(platform) as auth:
        print(f"[+] {user_id} login")
        token = auth.user_login(user_id, password)
    client = connect_frontend_service(platform)
    client.metadata = {"id": user_id, "token": token}
    return client


class PlatformAdmin:
    """The platform's admin, registering the examples' users."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.client = connect_authentication_service(platform)
        token = self.client.user_login(ADMIN_ID, platform.admin_password)
        self.client.metadata = {"id": ADMIN_ID, "token": token}

    def register_user(self, user_id: str, role: str = "DataOwner") -> str:
        """Registers the user with a fresh random password and returns it (Teaclave's scripts
        used fixed ones, published with them: on a platform that outlives the run, anyone could
        have logged in as their users). A user of that name already there (a rerun) gets a fresh
        one too: the admin resets it, and the user sets the new one (a reset password must be
        changed at its first use)."""
        password = secrets.token_urlsafe(18)
        if user_id not in self.client.list_users().ids:
            self.client.user_register(user_id, password, role)
            return password
        reset = self.client.reset_user_password(user_id)["password"]
        with connect_authentication_service(self.platform) as user:
            user.user_login(user_id, reset)
            user.user_change_password(password, reset)
        return password

    def close(self) -> None:
        self.client.close()


@dataclass(frozen=True)
class OwnedFile:
    """A data owner's encrypted file on the file server, and what registering it takes."""

    url: str
    schema: str
    key: bytes
    iv: bytes
    cmac: bytes


def owned_file(files: FileServer, name: str, schema: str, plaintext: bytes) -> OwnedFile:
    """Encrypts `plaintext` with a fresh key and places it on the file server as `name` (the
    name a teaclave-file-128 file stores, as Teaclave's tools do)."""
    key = generate_key(schema)
    sealed, meta = encrypt(schema, key, plaintext, name)
    return OwnedFile(files.put(name, sealed), schema, key, meta.iv, meta.cmac)


def payload(name: str) -> bytes:
    """The committed build of functions/NAME.c (its header says how to build it again)."""
    return (FUNCTIONS / f"{name}.wasm").read_bytes()


@contextmanager
def local_platform(
    workers: int = 1, entry: Sequence[str] = ENTRY, timeout: float = 60.0
) -> Iterator[Platform]:
    """A platform of its own on loopback (see the module's docstring) with its file server;
    `entry` is what the interpreter runs as `teaclave-infer` (the tests give theirs)."""
    with tempfile.TemporaryDirectory(prefix="teaclave-examples-") as tmp:
        password = secrets.token_urlsafe(18)
        write_private(Path(tmp) / "admin.txt", password.encode())
        (Path(tmp) / "files").mkdir()
        flags = ("--allow-fetch", ALLOW_FETCH)
        with (
            serve_process(
                Path(tmp) / "data",
                Path(tmp) / "admin.txt",
                workers,
                timeout,
                flags=flags,
                entry=entry,
            ) as served,
            FileServer(Path(tmp) / "files") as files,
        ):
            yield Platform(served.url, password, files)


def main(example: Callable[[Platform], object]) -> None:
    """Runs `example` on the platform the environment names, or on a local one; a failure is
    one line on stderr and exit status 1."""
    url, password = os.environ.get(URL_VARIABLE), os.environ.get(PASSWORD_VARIABLE)
    try:
        if url and not password:
            raise TeaclaveInferError(f"{URL_VARIABLE} needs {PASSWORD_VARIABLE} (its admin's)")
        if url and password:
            with (
                tempfile.TemporaryDirectory(prefix="teaclave-files-") as tmp,
                FileServer(Path(tmp)) as files,
            ):
                example(Platform(url, password, files))
            return
        with local_platform() as platform:
            example(platform)
    except (TeaclaveClientError, TeaclaveInferError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
