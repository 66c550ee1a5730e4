"""What Teaclave's two services share in the facade: the constructor (a URL where Teaclave took
an address, its attestation arguments accepted and ignored), `connect`, `metadata`, `close` and
use as a context manager, and the error every call raises."""

from __future__ import annotations

import ipaddress
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Self
from urllib.parse import urlsplit

import requests

from ..client import Client
from ..errors import TeaclaveClientError
from ..keystore import KeyStore
from ._ids import DIRECTORY
from ._types import AttestationNotAvailable, InsecureConnection, TeaclaveException

__all__ = ["ATTESTATION_NOTE", "TeaclaveService", "failing"]

ATTESTATION_NOTE = (
    "attestation is not available here: this platform runs no SGX enclave, so "
    "as_root_ca_cert_path, enclave_info_path and dump_report are ignored. Use an https:// URL "
    "(TLS authenticates the platform) and rely on the signed receipts get_task_result checks."
)
PLAIN_HTTP_NOTE = (
    "{url} is plain http:// to another host: the token and the platform's sealing key (which "
    "file keys are wrapped to) can be read or replaced on the way. Use https://, and pin the "
    "platform's keys with pinned_keys= (`teaclave-client login --json` shows them as key_ids)."
)


def _loopback(host: str | None) -> bool:
    if host is None or host == "localhost":
        return host is not None
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextmanager
def failing(verb: str) -> Iterator[None]:
    """Any error of the client inside as Teaclave's SDK reports it: "Failed to <verb> (...)"."""
    try:
        yield
    except TeaclaveException:
        raise
    except TeaclaveClientError as err:
        raise TeaclaveException(f"Failed to {verb} ({err})", err.exit_code) from err
    except ValueError as err:  # a key of the wrong size, an unknown schema
        raise TeaclaveException(f"Failed to {verb} ({err})") from err


class TeaclaveService:
    """One of Teaclave's services, here a session with the platform at `url` (both services
    are the same platform: the same URL for both). Teaclave's attestation arguments are
    accepted and ignored, with an `AttestationNotAvailable` warning. `session` (a requests
    session) and `keys` (the key store of the files this service registers) are passed to
    the underlying `teaclave_client.Client`, which `client` gives for what the facade lacks."""

    def __init__(
        self,
        url: str,
        as_root_ca_cert_path: str | None = None,
        enclave_info_path: str | None = None,
        dump_report: bool = False,
        *,
        timeout: float = 30.0,
        keys: KeyStore | None = None,
        session: requests.Session | None = None,
        pinned_keys: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise TeaclaveException(
                f"{type(self).__name__}({url!r}): give the platform's URL (http(s)://HOST:PORT), "
                "where Teaclave took an address: one URL serves both services here"
            )
        if as_root_ca_cert_path is not None or enclave_info_path is not None or dump_report:
            warnings.warn(ATTESTATION_NOTE, AttestationNotAvailable, stacklevel=2)
        if url.startswith("http://") and not _loopback(urlsplit(url).hostname):
            warnings.warn(PLAIN_HTTP_NOTE.format(url=url), InsecureConnection, stacklevel=2)
        self.client = Client(
            url, keys=keys, timeout=timeout, session=session, pinned_keys=pinned_keys
        )
        self._metadata: dict[str, str] | None = None

    @property
    def url(self) -> str:
        return self.client.url

    def connect(self) -> Self:
        """Checks that the platform answers (and reads its published keys); returns self."""
        with failing(f"connect to {self.url}"):
            self.client.platform_keys()
        return self

    @property
    def metadata(self) -> dict[str, str] | None:
        """`{"id": user name, "token": token}`, as `user_login` sets it; setting it logs this
        service in with that token."""
        return self._metadata

    @metadata.setter
    def metadata(self, value: Mapping[str, str] | None) -> None:
        if value is None:
            self._metadata, self.client.token, self.client.user = None, None, None
            return
        if "token" not in value:
            raise TeaclaveException('metadata: expected {"id": user name, "token": token}')
        self._metadata = {"id": str(value.get("id", "")), "token": str(value["token"])}
        self.client.token, self.client.user = self._metadata["token"], None

    def get_metadata(self) -> dict[str, str] | None:
        return self._metadata

    def check_metadata(self) -> None:
        if not self._metadata:
            raise TeaclaveException("Metadata is None: log in with user_login or set .metadata")

    def _my_id(self) -> str:
        """The logged-in user's id; the pair (name, id) is remembered for owner lists."""
        self.check_metadata()
        user = self.client.user or self.client.me()
        DIRECTORY.learn(self.url, user.username, user.id)
        return user.id

    def _user_ids(self, names: Any, what: str) -> list[str]:
        self._my_id()
        return DIRECTORY.user_ids(self.url, [str(n) for n in names], what)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
