"""Wake-ups between processes, so that nobody polls: workers sleep until a task is staged, a
client's long-poll until its task ends.

A signal is a hint, never the truth: the database is. Whoever wakes reads the database, and a
lost signal costs at most one fallback period of whoever waits (a worker's `poll_s`).

- PostgreSQL: `NOTIFY` and `LISTEN` (workers on other machines hear them too).
- SQLite (one machine): Unix datagram sockets. Each listener binds a socket in Linux's abstract
  namespace (no path length limit, gone with its process) and leaves a marker file named after
  it in `<database>.signals/<channel>/`; a publisher sends one datagram to every marker's socket
  and removes the markers of listeners that are gone. Any local account can send to an
  abstract socket, so a listener asks the kernel for each sender's credentials (SO_PASSCRED)
  and drops what another account sent.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import logging
import os
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.engine import make_url

__all__ = ["Channel", "Listener", "Signals", "signals_for"]

log = logging.getLogger(__name__)

PAYLOAD_BYTES = 200  # a task id, with room to spare: NOTIFY allows 8000, a datagram far more


class Channel(enum.StrEnum):
    STAGED = "teaclave_staged"  # a task was invoked (or requeued): a worker may claim it
    ENDED = "teaclave_ended"  # a task ended (Finished, Failed, Canceled); payload: its id


class Listener(Protocol):
    def wait(self, timeout: float) -> list[str]:
        """The payloads received since the last call, waiting up to `timeout` seconds for the
        first; [] when none came."""
        ...


class Signals(Protocol):
    def publish(self, channel: Channel, payload: str = "") -> None:
        """Wakes every listener of `channel`; never raises (a lost signal only costs time)."""
        ...

    def listen(self, channel: Channel) -> contextlib.AbstractContextManager[Listener]: ...


def signals_for(database_url: str) -> Signals:
    """The signals that reach every process using the database at `database_url`."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        return PostgresSignals(database_url)
    if url.database in (None, "", ":memory:"):
        return ThreadSignals()
    return SocketSignals(Path(f"{url.database}.signals"))


# --- PostgreSQL ---------------------------------------------------------------------------


class PostgresSignals:
    """Publishes through one connection kept open (opening one costs ~20 ms, more than a task),
    reopened after an error; each listener has its own."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self.dsn = url.render_as_string(hide_password=False)
        self._lock = threading.Lock()
        self._conn: Any = None

    def publish(self, channel: Channel, payload: str = "") -> None:
        import psycopg

        with self._lock:
            for attempt in (1, 2):  # a connection the server closed meanwhile: once more
                try:
                    if self._conn is None or self._conn.closed:
                        self._conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
                    self._conn.execute(
                        "SELECT pg_notify(%s, %s)", (channel.value, payload[:PAYLOAD_BYTES])
                    )
                    return
                except psycopg.Error as err:
                    self._conn = None
                    if attempt == 2:
                        log.warning(
                            "signal lost", extra={"channel": channel.value, "error": str(err)}
                        )

    @contextlib.contextmanager
    def listen(self, channel: Channel) -> Iterator[Listener]:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'LISTEN "{channel.value}"')  # a constant of this module, not input
            yield _PostgresListener(conn)


class _PostgresListener:
    def __init__(self, conn: object) -> None:
        self.conn = conn

    def wait(self, timeout: float) -> list[str]:
        import psycopg

        conn = self.conn
        assert isinstance(conn, psycopg.Connection)
        try:
            got = [n.payload for n in conn.notifies(timeout=timeout, stop_after=1)]
            if got:  # and whatever else is already there
                got += [n.payload for n in conn.notifies(timeout=0)]
        except psycopg.OperationalError as err:  # the connection broke: the caller falls back
            log.warning("listener lost", extra={"error": str(err)})
            return []
        return got


# --- SQLite: Unix datagram sockets --------------------------------------------------------


class SocketSignals:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, channel: Channel) -> Path:
        return self.root / channel.value

    def publish(self, channel: Channel, payload: str = "") -> None:
        directory = self._dir(channel)
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return  # nobody ever listened
        data = payload[:PAYLOAD_BYTES].encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            for name in names:
                try:
                    sock.sendto(data, _address(name))
                except BlockingIOError:
                    pass  # its queue is full: it has plenty to wake for already
                except OSError as err:
                    if err.errno in (errno.ECONNREFUSED, errno.ENOENT):  # its process is gone
                        (directory / name).unlink(missing_ok=True)

    @contextlib.contextmanager
    def listen(self, channel: Channel) -> Iterator[Listener]:
        directory = self._dir(channel)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = uuid.uuid4().hex
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)  # before the first datagram
            sock.bind(_address(name))
            marker = directory / name
            marker.touch(mode=0o600)
            try:
                yield _SocketListener(sock)
            finally:
                marker.unlink(missing_ok=True)


def _address(name: str) -> bytes:
    """An abstract-namespace address: a leading NUL, no file."""
    return b"\0teaclave-signal-" + name.encode()


_UCRED = struct.Struct("=iII")  # struct ucred: pid, uid, gid


class _SocketListener:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.uid = os.getuid()

    def wait(self, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        got: list[str] = []
        while not got:  # what another account sent does not end the wait
            self.sock.settimeout(max(deadline - time.monotonic(), 0.0))
            try:
                self._receive(got)
            except (TimeoutError, BlockingIOError):
                return []
        self.sock.setblocking(False)
        while True:  # drain what else came
            try:
                self._receive(got)
            except BlockingIOError:
                return got

    def _receive(self, got: list[str]) -> None:
        data, ancillary, _, _ = self.sock.recvmsg(PAYLOAD_BYTES + 1, socket.CMSG_SPACE(_UCRED.size))
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                if _UCRED.unpack_from(value)[1] == self.uid:  # the kernel's word, not the sender's
                    got.append(data.decode(errors="replace"))
                return
        # no credentials: cannot happen with SO_PASSCRED; dropped all the same


# --- one process (an in-memory database) --------------------------------------------------


class ThreadSignals:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[Channel, list[_ThreadListener]] = {}

    def publish(self, channel: Channel, payload: str = "") -> None:
        with self._lock:
            listeners = list(self._queues.get(channel, ()))
        for listener in listeners:
            listener.put(payload)

    @contextlib.contextmanager
    def listen(self, channel: Channel) -> Iterator[Listener]:
        listener = _ThreadListener()
        with self._lock:
            self._queues.setdefault(channel, []).append(listener)
        try:
            yield listener
        finally:
            with self._lock:
                self._queues[channel].remove(listener)


class _ThreadListener:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._got: list[str] = []

    def put(self, payload: str) -> None:
        with self._cond:
            self._got.append(payload)
            self._cond.notify_all()

    def wait(self, timeout: float) -> list[str]:
        with self._cond:
            self._cond.wait_for(lambda: bool(self._got), timeout)
            got, self._got = self._got, []
            return got
