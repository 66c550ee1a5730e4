"""An object store on loopback that holds its answers to PUTs until the test releases them: a task
whose output goes there is Running, its function's run over, until the test says so. Tests that
act on a running task (cancel it, stop its worker) wait for the PUT instead of hoping that a busy
loop in the function outlasts what they do, which a slow or loaded machine does not promise."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

HANG_GUARD_S = 120.0  # a bound on a hang, never a figure the test measures
ALLOW = "127.0.0.1/32"  # what a worker must be allowed to reach (`fetch_allow`, --allow-fetch)


class HeldStore:
    """Bodies PUT by path, each stored as it arrives; the answer (201) waits for `release`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stored: dict[str, bytes] = {}
        self.arrived = threading.Event()  # a PUT came in (and is held)
        self.released = threading.Event()  # from now on, answered at once

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for_a_put(self) -> None:
        assert self.arrived.wait(HANG_GUARD_S), "no PUT reached the store"

    def release(self) -> None:
        self.released.set()


@contextmanager
def held_store() -> Iterator[HeldStore]:
    store: HeldStore

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            store.stored[self.path] = self.rfile.read(int(self.headers["Content-Length"]))
            store.arrived.set()
            store.released.wait(HANG_GUARD_S)
            with suppress(OSError):  # a worker killed meanwhile is no longer there to answer
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    store = HeldStore(server.server_address[1])
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield store
    finally:
        store.release()
        server.shutdown()
        server.server_close()
