"""HTTP(S) GETs and PUTs of a task's files: through the address policy, within one deadline.

`http.client` on a socket that `addresses.connect` opened to a checked address; the Host header,
TLS SNI and the certificate check keep the URL's host name. Every read and write of the
connection first checks the deadline on the injected clock, then waits at most the time left, so
a server that sends (or reads) one byte every few seconds is cut off at the deadline of the whole
transfer, not of each read. A GET follows redirects by hand, at most MAX_REDIRECTS, each hop
checked by the policy again; a PUT is never redirected (a 3xx fails it). No proxy from the
environment is used: it would connect on the worker's behalf to addresses nobody checked.

Why not requests/urllib3 (which the client uses): they resolve the host again when they connect
and time out per read, not per transfer; pinning the checked address and a total deadline there
means overriding their private connection classes, which move between releases.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
from collections.abc import Callable
from contextlib import closing
from functools import cache
from urllib.parse import urljoin

import requests.certs

from .addresses import AddressPolicy, Target, connect

__all__ = ["MAX_REDIRECTS", "Deadline", "TransferFailed", "get", "put"]

MAX_REDIRECTS = 3
_REDIRECTS = {301, 302, 303, 307, 308}
_CHUNK = 1 << 16


class TransferFailed(Exception):
    """The server answered, but not with the file: an HTTP status, a redirect too many, a body
    over the limit."""


class Deadline:
    """The end of one transfer on `clock`."""

    def __init__(self, seconds: float, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.end = clock() + seconds

    def left(self) -> float:
        """Seconds left; TimeoutError once there are none."""
        left = self.end - self.clock()
        if left <= 0:
            raise TimeoutError("the transfer's deadline passed")
        return left


def get(policy: AddressPolicy, url: str, max_bytes: int, deadline: Deadline) -> bytes:
    """The body of a 200 answer to a GET of `url`, at most `max_bytes` of it."""
    for _ in range(MAX_REDIRECTS + 1):
        deadline.left()
        target = policy.target(url)
        with closing(_Connection(target, deadline)) as conn:
            conn.request("GET", target.path, headers={"Connection": "close"})
            with conn.getresponse() as response:
                location = response.getheader("Location")
                if response.status in _REDIRECTS and location:
                    url = urljoin(url, location)
                    continue
                if response.status != 200:
                    raise TransferFailed(f"HTTP {response.status}")
                return _body(response, max_bytes)
    raise TransferFailed(f"more than {MAX_REDIRECTS} redirects")


def put(policy: AddressPolicy, url: str, data: bytes, deadline: Deadline) -> None:
    """PUTs `data` at `url`; a 2xx answer is success."""
    deadline.left()
    target = policy.target(url)
    with closing(_Connection(target, deadline)) as conn:
        conn.putrequest("PUT", target.path)
        conn.putheader("Content-Length", str(len(data)))
        conn.putheader("Connection", "close")
        conn.endheaders()
        view = memoryview(data)
        for start in range(0, len(data), _CHUNK):  # the deadline is checked between chunks
            conn.send(view[start : start + _CHUNK])
        with conn.getresponse() as response:
            if not 200 <= response.status < 300:
                raise TransferFailed(f"HTTP {response.status}")


def _body(response: http.client.HTTPResponse, max_bytes: int) -> bytes:
    declared = response.getheader("Content-Length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise TransferFailed(f"{declared} bytes: over the {max_bytes}-byte limit")
    data = bytearray()
    while chunk := response.read1(_CHUNK):
        data += chunk
        if len(data) > max_bytes:
            raise TransferFailed(f"over the {max_bytes}-byte limit")
    return bytes(data)


@cache
def _tls() -> ssl.SSLContext:
    """Certificates checked against requests' CA bundle (certifi), as before this module."""
    return ssl.create_default_context(cafile=requests.certs.where())


class _Connection(http.client.HTTPConnection):
    """An HTTP or HTTPS connection to the target's checked addresses only."""

    def __init__(self, target: Target, deadline: Deadline) -> None:
        super().__init__(target.host, target.port)
        self.target, self.deadline = target, deadline
        if target.scheme == "https":
            self.default_port = 443  # no ":443" in the Host header

    def connect(self) -> None:
        sock = connect(self.target, self.deadline.left)
        if self.target.scheme == "https":
            sock.settimeout(self.deadline.left())  # the handshake as a whole (CPython's ssl)
            sock = _tls().wrap_socket(sock, server_hostname=self.target.host)
        # http.client calls only sendall, makefile and close on its socket
        self.sock = _DeadlineSocket(sock, self.deadline)


class _DeadlineSocket:
    """A socket whose every send and receive ends by the deadline. Like a socket, it stays open
    while a file made from it is (http.client closes the connection before reading the body of
    a response that ends it)."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock, self._deadline = sock, deadline
        self._files, self._closing = 0, False

    def sendall(self, data: bytes | memoryview) -> None:
        self._sock.settimeout(self._deadline.left())  # sendall's timeout is for all of it
        self._sock.sendall(data)

    def recv_into(self, buffer: memoryview) -> int:
        self._sock.settimeout(self._deadline.left())
        return self._sock.recv_into(buffer)

    def makefile(self, mode: str) -> io.BufferedReader:
        assert mode == "rb"
        self._files += 1
        return io.BufferedReader(_Reader(self))

    def close(self) -> None:
        self._closing = True
        if self._files == 0:
            self._sock.close()

    def file_closed(self) -> None:
        self._files -= 1
        if self._closing and self._files == 0:
            self._sock.close()


class _Reader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._sock.file_closed()
        super().close()
