"""The worker's fetches and stores (issue 15, items 4-6 and 13): http(s):// only to public
addresses or the operator's allowlist, checked on the address actually connected to (every
spelling of loopback, redirects, DNS rebinding); one failure for every cause, so a task cannot
scan ports; a total deadline per transfer (the clock injected, nothing sleeps); file:// outputs
created, never overwritten, never through a symlink. Storage is tested directly, and through a
task run by the platform's workers at the end. No TVM, no model."""

from __future__ import annotations

import datetime
import http.server
import os
import socket
import socketserver
import ssl
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from guests import ECHO
from paths import REPO
from platform_helpers import Platform, app_with_workers
from service_helpers import refused_port
from teaclave_client.vocabulary import FailureKind

from teaclave_infer.domain.blobs import LocalBlobStore
from teaclave_infer.errors import TaskFailed
from teaclave_infer.worker import transfer
from teaclave_infer.worker.addresses import AddressPolicy, Refused
from teaclave_infer.worker.storage import Storage, _open_directory

LOCAL = ("127.0.0.1/32",)  # what the tests allow to reach their servers


@dataclass
class Server:
    """A small object store on loopback that records every request it gets."""

    port: int = 0
    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, Host)
    stored: dict[str, bytes] = field(default_factory=dict)

    wrap: Callable[[ssl.SSLContext], None] = lambda context: None  # serve over TLS from now

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


@contextmanager
def serving(address: str = "127.0.0.1", port: int = 0) -> Iterator[Server]:
    server = Server()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.seen.append(("GET", self.path, self.headers["Host"]))
            status, headers, body = server.routes.get(self.path, (404, {}, b""))
            self.send_response(status)
            for name, value in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self) -> None:
            server.seen.append(("PUT", self.path, self.headers["Host"]))
            length = int(self.headers["Content-Length"])
            if len(body := self.rfile.read(length)) == length:  # a cut-off upload is not stored
                server.stored[self.path] = body
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer((address, port), Handler)
    server.port = httpd.server_address[1]

    def wrap(context: ssl.SSLContext) -> None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)

    server.wrap = wrap
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    with serving() as s:
        s.routes["/in.bin"] = (200, {}, b"ciphertext")
        yield s


def storage(
    tmp_path: Path,
    allow: tuple[str, ...] = (),
    roots: tuple[Path, ...] = (),
    clock: Callable[[], float] | None = None,
) -> Storage:
    more = {"clock": clock} if clock else {}
    blobs = LocalBlobStore(tmp_path / "blobs")
    return Storage(blobs, 1 << 20, 30.0, roots, AddressPolicy.allowing(allow), **more)


def fetch_failure(s: Storage, url: str) -> str:
    with pytest.raises(TaskFailed) as failed:
        s.fetch(url, "input x")
    assert failed.value.kind == FailureKind.FETCH
    return failed.value.message


# Every spelling of an address the worker must not reach, with what it resolves to.
REFUSED = [
    ("127.0.0.1", "127.0.0.1"),
    ("localhost", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("[::1]", "::1"),
    ("[::ffff:127.0.0.1]", "127.0.0.1"),  # one spelling: the IPv4 address it maps
    ("0.0.0.0", "0.0.0.0"),
    ("169.254.169.254", "169.254.169.254"),
    ("10.0.0.1", "10.0.0.1"),
    ("100.64.0.1", "100.64.0.1"),  # shared address space (CGNAT)
    ("[64:ff9b::a00:1]", "64:ff9b::a00:1"),  # NAT64 of 10.0.0.1
]


@pytest.mark.parametrize(("host", "resolved"), REFUSED)
def test_every_spelling_of_a_private_address_is_refused_before_connecting(
    tmp_path, server, host, resolved
):
    with pytest.raises(Refused, match=f"resolves to {resolved}"):
        AddressPolicy().target(f"http://{host}:{server.port}/in.bin")
    message = fetch_failure(storage(tmp_path), f"http://{host}:{server.port}/in.bin")
    assert message == "input x: cannot fetch it"
    assert server.seen == []


@pytest.mark.parametrize(
    "url",
    [
        "http://user:pw@127.0.0.1:{port}/in.bin",
        "http://user:pw@example.com:{port}/in.bin",
        "ftp://127.0.0.1:{port}/in.bin",
        "gopher://127.0.0.1:{port}/in.bin",
    ],
)
def test_userinfo_and_other_schemes_are_refused_even_when_allowed(tmp_path, server, url):
    url = url.format(port=server.port)
    with pytest.raises(Refused):
        AddressPolicy.allowing(LOCAL).target(url)
    assert fetch_failure(storage(tmp_path, LOCAL), url) == "input x: cannot fetch it"
    assert server.seen == []


def test_public_addresses_pass_and_the_allowlist_lets_a_local_server_through(tmp_path, server):
    target = AddressPolicy().target("https://8.8.8.8/a/b?c=d#e")
    assert (target.addresses, target.port, target.path) == (("8.8.8.8",), 443, "/a/b?c=d")
    for allow, host in [(LOCAL, "127.0.0.1"), (("localhost",), "localhost")]:
        s = storage(tmp_path, allow)
        assert s.fetch(server.url("/in.bin", host), "input x") == b"ciphertext"
        assert s.store(server.url("/out.bin", host), b"sealed", "output y").endswith("/out.bin")
        assert server.stored["/out.bin"] == b"sealed"
    with pytest.raises(ValueError, match="not a host name or CIDR"):
        AddressPolicy.allowing(["10.0.0.0/33"])


def test_a_redirect_is_checked_on_every_hop(tmp_path, server):
    """Allowed by host name, a server redirects to loopback by address: refused, never asked."""
    server.routes["/hop"] = (302, {"Location": server.url("/secret")}, b"")
    server.routes["/secret"] = (200, {}, b"the service's own secret")
    server.routes["/relative"] = (307, {"Location": "/in.bin"}, b"")
    for n in range(5):
        server.routes[f"/loop{n}"] = (301, {"Location": f"/loop{n + 1}"}, b"")
    server.routes["/loop5"] = (200, {}, b"too far")
    s = storage(tmp_path, ("localhost",))
    assert fetch_failure(s, server.url("/hop", "localhost")) == "input x: cannot fetch it"
    assert [path for _, path, _ in server.seen] == ["/hop"]
    assert s.fetch(server.url("/relative", "localhost"), "input x") == b"ciphertext"
    assert fetch_failure(s, server.url("/loop0", "localhost")) == "input x: cannot fetch it"
    assert "/loop4" not in [path for _, path, _ in server.seen]  # at most 3 redirects


@contextmanager
def rebinding(monkeypatch, name: str, answers: list[str]) -> Iterator[list[str]]:
    """`name` resolves to the next of `answers` at each lookup; yields the lookups made."""
    real, lookups = socket.getaddrinfo, []

    def getaddrinfo(host, port, *args, **kwargs):
        if host != name:
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        address = answers[min(len(lookups), len(answers)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield lookups


def test_dns_rebinding_cannot_move_the_connection_off_the_checked_address(
    tmp_path, server, monkeypatch
):
    """The name resolves to an allowed address, then to a refused one (127.0.0.2, where a
    second server listens on the same port): the worker resolves once per connection and
    connects to the address it checked, with the name kept in the Host header."""
    with serving("127.0.0.2", server.port) as other:
        other.routes["/in.bin"] = (200, {}, b"from the address nobody checked")
        s = storage(tmp_path, LOCAL)
        url = f"http://rebind.test:{server.port}/in.bin"
        with rebinding(monkeypatch, "rebind.test", ["127.0.0.1", "127.0.0.2"]) as lookups:
            assert s.fetch(url, "input x") == b"ciphertext"
        assert lookups == ["rebind.test"] and other.seen == []
        assert server.seen == [("GET", "/in.bin", f"rebind.test:{server.port}")]
        # refused at the first answer, the second (allowed) one is never asked for
        with rebinding(monkeypatch, "rebind.test", ["127.0.0.2", "127.0.0.1"]) as lookups:
            assert fetch_failure(s, url) == "input x: cannot fetch it"
        assert lookups == ["rebind.test"] and other.seen == [] and len(server.seen) == 1


def self_signed(tmp_path: Path, host: str) -> tuple[Path, Path]:
    """A certificate for `host` (its own CA) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem, key_pem = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_pem, key_pem


def test_https_to_a_pinned_address_keeps_the_host_name_for_sni_and_the_certificate(
    tmp_path, monkeypatch
):
    """Connected to the checked address, TLS still names (SNI) and checks the URL's host."""
    cert, key = self_signed(tmp_path, "files.test")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []
    context.sni_callback = lambda _sock, name, _context: names.append(name)
    with serving() as tls:
        tls.routes["/in.bin"] = (200, {}, b"over tls")
        tls.wrap(context)
        monkeypatch.setattr(transfer, "_tls", lambda: ssl.create_default_context(cafile=cert))
        s = storage(tmp_path, LOCAL)
        with rebinding(monkeypatch, "files.test", ["127.0.0.1"]):
            assert s.fetch(f"https://files.test:{tls.port}/in.bin", "input x") == b"over tls"
        assert names == ["files.test"] and tls.seen[0][2] == f"files.test:{tls.port}"
        with rebinding(monkeypatch, "other.test", ["127.0.0.1"]):  # not the certificate's name
            assert fetch_failure(s, f"https://other.test:{tls.port}/in.bin")
        assert len(tls.seen) == 1


@contextmanager
def garbage_server() -> Iterator[int]:
    """A port that answers anything with something that is not HTTP."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(4096)
            self.request.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler) as tcp:
        threading.Thread(target=tcp.serve_forever, args=(0.05,), daemon=True).start()
        try:
            yield tcp.server_address[1]
        finally:
            tcp.shutdown()


def test_open_and_closed_ports_fail_alike(tmp_path, server):
    """Closed, open with a 404, open with a 500, open but not HTTP, refused by the policy: a
    task's result cannot tell them apart (nor can a store's)."""
    server.routes["/broken"] = (500, {}, b"stack trace")
    s = storage(tmp_path, LOCAL)
    with garbage_server() as ssh, refused_port() as closed:
        urls = [
            f"http://127.0.0.1:{closed}/in.bin",
            server.url("/missing"),
            server.url("/broken"),
            f"http://127.0.0.1:{ssh}/in.bin",
            f"http://10.0.0.1:{server.port}/in.bin",
        ]
        assert {fetch_failure(s, url) for url in urls} == {"input x: cannot fetch it"}
        stores = set()
        for url in (f"http://127.0.0.1:{closed}/o", f"http://127.0.0.1:{ssh}/o"):
            with pytest.raises(TaskFailed) as failed:
                s.store(url, b"sealed", "output y")
            stores.add((failed.value.kind, failed.value.message))
    assert stores == {(FailureKind.STORE, "output y: cannot store it")}


class SteppingClock:
    """A clock that moves `step` seconds each time the worker reads it. It also paces the drip
    server: each read lets one more byte go, so a byte reaches the worker only after it looked
    at the clock again, however fast the machine."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step
        self.reads = threading.Semaphore(0)

    def __call__(self) -> float:
        self.now += self.step
        self.reads.release()
        return self.now


@contextmanager
def drip_server(clock: SteppingClock, headers_at_once: bool) -> Iterator[tuple[int, list[int]]]:
    """Answers a GET or PUT with 1000 bytes, one byte per read of `clock` (the status line and
    headers too unless `headers_at_once`); yields its port and the bytes it could send."""
    sent: list[int] = [0]
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            length = 0
            while (line := self.rfile.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            self.rfile.read(length)
            drip = head + b"x" * 1000
            if headers_at_once:
                self.wfile.write(head)
                drip = drip[len(head) :]
            try:
                for byte in drip:
                    if not clock.reads.acquire(timeout=10):  # a guard against a hung test
                        return
                    self.wfile.write(bytes([byte]))
                    sent[0] += 1
            except OSError:
                return

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler) as tcp:
        tcp.daemon_threads = True
        threading.Thread(target=tcp.serve_forever, args=(0.05,), daemon=True).start()
        try:
            yield tcp.server_address[1], sent
        finally:
            clock.reads.release(10_000)  # the handler runs out of its drip and ends
            tcp.shutdown()


@pytest.mark.parametrize(
    ("method", "headers_at_once"),
    [("GET", True), ("GET", False), ("PUT", False)],  # a PUT's answer body is never read
    ids=["GET-body", "GET-headers", "PUT-answer"],
)
def test_a_slow_drip_is_cut_off_at_the_total_deadline(tmp_path, method, headers_at_once):
    """One byte per 5 s, each read well within any per-read timeout: the fetch (or the
    upload's answer) ends when the 30 s of the whole transfer are spent."""
    clock = SteppingClock(step=5.0)
    s = storage(tmp_path, LOCAL, clock=clock)
    with drip_server(clock, headers_at_once) as (port, sent):
        url = f"http://127.0.0.1:{port}/in.bin"
        with pytest.raises(TaskFailed) as failed:
            if method == "GET":
                s.fetch(url, "input x")
            else:
                s.store(url, b"sealed", "output y")
        assert str(failed.value) in ("input x: cannot fetch it", "output y: cannot store it")
        assert clock.now >= 30.0 and sent[0] < 30  # cut off after 30 s of 1000+ 5-second bytes


def test_an_upload_is_cut_off_at_the_total_deadline(tmp_path, server):
    """1 MiB goes out in 16 chunks; each takes 5 s on the clock: the upload ends at 30 s."""
    clock = SteppingClock(step=5.0)
    s = storage(tmp_path, LOCAL, clock=clock)
    with pytest.raises(TaskFailed, match="output y: cannot store it"):
        s.store(server.url("/big.bin"), b"x" * (1 << 20), "output y")
    assert "/big.bin" not in server.stored
    assert storage(tmp_path, LOCAL).store(server.url("/big.bin"), b"x" * (1 << 20), "output y")
    assert len(server.stored["/big.bin"]) == 1 << 20


@pytest.fixture
def root(tmp_path) -> Path:
    root = tmp_path / "shared"
    (root / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return root


def store_failure(s: Storage, path: Path) -> str:
    with pytest.raises(TaskFailed) as failed:
        s.store(path.as_uri(), b"sealed", "output y")
    assert failed.value.kind == FailureKind.STORE
    return failed.value.message


def test_a_file_output_is_created_never_overwritten(tmp_path, root):
    s = storage(tmp_path, roots=(root,))
    assert s.store((root / "sub" / "out.bin").as_uri(), b"sealed", "output y").endswith("out.bin")
    assert (root / "sub" / "out.bin").read_bytes() == b"sealed"
    assert (root / "sub" / "out.bin").stat().st_mode & 0o777 == 0o600
    (root / "theirs.bin").write_bytes(b"someone's input")
    # the same file again (a retried task), and another user's file
    for existing in (root / "sub" / "out.bin", root / "theirs.bin"):
        before = existing.read_bytes()
        assert store_failure(s, existing) == "output y: cannot store it"
        assert existing.read_bytes() == before
    assert sorted(p.name for p in root.rglob("*")) == ["out.bin", "sub", "theirs.bin"]


def test_a_file_output_never_follows_a_symlink(tmp_path, root):
    s = storage(tmp_path, roots=(root,))
    outside = tmp_path / "outside"
    (outside / "victim").write_bytes(b"precious")
    (root / "link.bin").symlink_to(outside / "victim")  # to an existing file
    (root / "dangling.bin").symlink_to(outside / "new.bin")  # to a file it would create
    (root / "inside.bin").symlink_to(root / "sub" / "target.bin")  # even inside the root
    (root / "escape").symlink_to(outside)  # a directory on the way
    for path in (root / "link.bin", root / "dangling.bin", root / "inside.bin"):
        assert store_failure(s, path) == "output y: cannot store it"
    assert store_failure(s, root / "escape" / "out.bin") == "output y: cannot store it"
    assert (outside / "victim").read_bytes() == b"precious"
    assert sorted(p.name for p in outside.iterdir()) == ["victim"]
    assert not (root / "sub" / "target.bin").exists()
    # a directory swapped for a symlink after it was resolved (a race) is not walked through
    with pytest.raises(OSError):
        _open_directory(root.resolve(), root.resolve() / "escape")


def test_a_refused_file_output_fails_as_store_and_inputs_alike(tmp_path, root):
    s = storage(tmp_path, roots=(root,))
    outside = tmp_path / "outside"
    assert store_failure(s, outside / "out.bin") == "output y: cannot store it"
    assert store_failure(s, root / "missing-dir" / "out.bin") == "output y: cannot store it"
    assert not (outside / "out.bin").exists()
    (outside / "secret").write_bytes(b"secret")
    (root / "peek").symlink_to(outside / "secret")
    (root / "in.bin").write_bytes(b"ciphertext")
    assert s.fetch((root / "in.bin").as_uri(), "input x") == b"ciphertext"
    for path in (outside / "secret", root / "peek", root / "nothing", root / "sub"):
        assert fetch_failure(s, path.as_uri()) == "input x: cannot fetch it"
    os.mkfifo(root / "fifo")  # opening it does not block the worker
    assert fetch_failure(s, (root / "fifo").as_uri()) == "input x: cannot fetch it"


# Through a task run by the platform's workers.


@pytest.fixture
def platform(settings, tmp_path) -> Iterator[Platform]:
    settings = settings.model_copy(update={"file_roots": (tmp_path / "shared",)})
    (tmp_path / "shared").mkdir()
    with app_with_workers(settings, workers=1) as client:
        yield Platform(client)


def test_a_task_cannot_reach_loopback_nor_overwrite_a_file(platform, server, tmp_path):
    """With no --allow-fetch, an input on the worker's loopback fails the task as `fetch`, the
    server never asked; an output at an existing file fails it as `store`, the file intact."""
    p = platform
    fid = p.register_guest(ECHO)
    local = p.input("do1", b"payload", url=server.url("/in.bin"))
    task = p.wait(p.submit(fid, {"in": ("do1", local)}, {"out": ("do1", p.output("do1"))}))
    assert (task["state"], task["result_kind"]) == ("Failed", FailureKind.FETCH), task["result"]
    assert task["result"]["message"] == "input in: cannot fetch it"
    assert server.seen == []
    existing = tmp_path / "shared" / "out.bin"
    existing.write_bytes(b"precious")
    out = p.output("do1", url=existing.as_uri())
    task = p.wait(p.submit(fid, {"in": ("do1", p.input("do1", b"x"))}, {"out": ("do1", out)}))
    assert (task["state"], task["result_kind"]) == ("Failed", FailureKind.STORE), task["result"]
    assert task["result"]["message"] == "output out: cannot store it"
    assert existing.read_bytes() == b"precious"
    assert sorted(f.name for f in existing.parent.iterdir()) == ["out.bin"]


def test_the_examples_allow_their_file_server_and_not_the_hosts_loopback_services(tmp_path):
    """The Teaclave examples' operator allows one address, where only the file server listens:
    a task of the examples' platform cannot reach the platform's own API on 127.0.0.1."""
    sys.path.insert(0, str(REPO / "examples" / "teaclave"))
    try:
        from file_server import ALLOW_FETCH, FileServer
    finally:
        sys.path.remove(str(REPO / "examples" / "teaclave"))
    policy = AddressPolicy.allowing([ALLOW_FETCH])
    for api in ("http://127.0.0.1:8000/v1/platform/keys", "http://localhost:8000/"):
        with pytest.raises(Refused):
            policy.target(api)
    with FileServer(tmp_path) as files:
        url = files.put("a.enc", b"sealed")
        assert policy.target(url).addresses == (urlsplit(url).hostname,)
