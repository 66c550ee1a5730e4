"""The data owners' file server of the examples: a folder served over HTTP on 127.0.0.2, GET to
read a file and PUT to write one, as Teaclave's examples used its file service on
localhost:6789. The platform fetches inputs from it and writes outputs to it, once its operator
allows that one address (`teaclave-infer serve --allow-fetch 127.0.0.2/32`).

Why 127.0.0.2: a worker allowed to fetch from 127.0.0.1 could be pointed by any task at every
loopback service of its host, the platform's own API among them. A loopback address of its own
(Linux routes all of 127.0.0.0/8 on `lo`; macOS needs `sudo ifconfig lo0 alias 127.0.0.2`)
lets the operator allow this server and nothing else, without the worker's policy learning ports.

Names are flat (letters, digits, `_`, `.`, `-`): nothing outside the folder is ever served or
written, and a PUT replaces a file only once all of it arrived."""

from __future__ import annotations

import http.server
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Self

__all__ = ["ALLOW_FETCH", "HOST", "FileServer"]

HOST = "127.0.0.2"  # the file server's own loopback address (see above)
ALLOW_FETCH = f"{HOST}/32"  # what the platform's operator allows: this address only
MAX_PUT_BYTES = 64 << 20
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def _refusal(path: Path | None, length: str | None) -> int | None:
    """The status a PUT of `length` bytes (its Content-Length header) onto `path` is refused
    with, or None: a name outside the folder, a directory or a Content-Length that is no
    decimal number is 400, none is 411, past MAX_PUT_BYTES 413."""
    if path is None or path.is_dir():
        return 400
    if length is None:
        return 411
    if not (length.strip().isascii() and length.strip().isdigit()):
        return 400
    return 413 if int(length) > MAX_PUT_BYTES else None


class _Handler(http.server.BaseHTTPRequestHandler):
    root: Path  # set on the subclass FileServer makes

    def _file(self) -> Path | None:
        name = self.path.split("?", 1)[0].lstrip("/")
        return self.root / name if _NAME.fullmatch(name) else None

    def do_GET(self) -> None:
        path = self._file()
        if path is None or not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:
        path, header = self._file(), self.headers.get("Content-Length")
        if (status := _refusal(path, header)) is not None:
            self.send_error(status)
            return
        assert path is not None and header is not None
        length = int(header)
        data = self.rfile.read(length)
        if len(data) != length:
            self.send_error(400)
            return
        fd, temporary = tempfile.mkstemp(dir=self.root, prefix=".put-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        except OSError:
            os.unlink(temporary)  # never a half-written or orphaned file in the folder
            self.send_error(409)
            return
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet: the example prints
        pass


class FileServer:
    """Serves `root` on HOST (a free port) while in its `with` block."""

    def __init__(self, root: Path) -> None:
        self.root = root
        handler = type("Handler", (_Handler,), {"root": root})
        self._server = http.server.ThreadingHTTPServer((HOST, 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, name: str) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}/{name}"

    def put(self, name: str, data: bytes) -> str:
        """Places a file (as its owner would); its URL."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"file name {name!r}: letters, digits, _ . - only")
        (self.root / name).write_bytes(data)
        return self.url(name)

    def read(self, name: str) -> bytes:
        return (self.root / name).read_bytes()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
