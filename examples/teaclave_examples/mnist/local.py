"""`teaclave-infer demo`: build the MNIST function if it is missing or stale, start the service
on a free loopback port (SQLite in a temporary data dir, worker processes) unless `--url` names
one, and run the MNIST demo's client side (`remote.py`) against it: every digit an encrypted
task through the full lifecycle (each owner's steps batched into one request where the rules
allow, the result waited for with a long-poll), then the table and the accuracy. Everything
started is stopped at the end, also on Ctrl-C or SIGTERM. With `web`, the local service then
stays up with the MNIST function (weights embedded, public, allowed in browsers) shared for the
/demo page, until Ctrl-C or SIGTERM.

Bad input is one line before anything is built or started: a folder of images that is not
there, and with `--url` a service that cannot be reached or refuses the admin's password. The
builder (and TVM with it, 3 s to import) is imported only when a build is needed."""

from __future__ import annotations

import hashlib
import json
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from teaclave_client import Client, TeaclaveClientError
from teaclave_client.files import write_private

from teaclave_infer.errors import TeaclaveInferError
from teaclave_infer.local import local_service

from .remote import labelled_images
from .remote import run_demo as run_client_demo

__all__ = ["DEMO_BUILD", "WEB_BUILD", "DemoBuild", "built", "run_demo", "share_for_web"]

INTERRUPTED = 130  # the exit status of a demo stopped by Ctrl-C or SIGTERM (as a shell's)


@dataclass(frozen=True)
class DemoBuild:
    """The builder options the demo sets (the rest are the builder's defaults)."""

    weights: str  # "separate" (the model owner uploads them encrypted) or "embedded"
    pixel_range: tuple[float, float] = (0.0, 1.0)


DEMO_BUILD = DemoBuild(weights="separate")
WEB_BUILD = DemoBuild(weights="embedded")  # what browsers run: one file


def _up_to_date(manifest_path: Path, source_sha256: str, build: DemoBuild) -> bool:
    manifest = json.loads(manifest_path.read_text())
    image = (manifest["inputs"][0].get("image") or {}).get("range")
    return bool(
        manifest["source"]["sha256"] == source_sha256
        and manifest["weights"]["mode"] == build.weights
        and image == list(build.pixel_range)
    )


def built(model: Path, out: Path, build: DemoBuild = DEMO_BUILD) -> Path:
    """The wasm of an up-to-date build of `model` in `out` (same model, same options), building
    it if needed."""
    manifest_path, wasm = out / f"{model.stem}.json", out / f"{model.stem}.wasm"
    try:
        source = hashlib.sha256(model.read_bytes()).hexdigest()
    except OSError as err:
        raise TeaclaveInferError(f"model {model}: {err.strerror}") from err
    if manifest_path.exists() and wasm.exists() and _up_to_date(manifest_path, source, build):
        return wasm
    from teaclave_infer.builder import BuildOptions  # TVM: only to build
    from teaclave_infer.builder import build as build_function
    from teaclave_infer.cli import build_progress

    print(f"building {model} -> {out}")
    options = BuildOptions(weights=build.weights, pixel_range=build.pixel_range)
    return build_function(model, out, options, progress=build_progress).wasm


def _admin_password(url: str, password_file: Path | None) -> str:
    """The admin's password for the service at `url`, checked by logging in."""
    if password_file is None:
        raise TeaclaveInferError("--url needs --admin-password-file (the platform's admin)")
    try:
        password = password_file.read_text().strip()
    except OSError as err:
        raise TeaclaveInferError(f"admin password file {password_file}: {err.strerror}") from err
    with Client(url) as admin:
        admin.login("admin", password)
    return password


def run_demo(
    model: Path,
    images: Path,
    out: Path,
    url: str | None = None,
    admin_password_file: Path | None = None,
    workers: int = 2,
    web: bool = False,
) -> int:
    """0 when every image was classified by a task whose receipt verified; 130 if stopped by
    Ctrl-C or SIGTERM (after stopping what it started)."""
    if web and url is not None:
        raise TeaclaveInferError("--web serves the page from the local service: not with --url")
    try:
        labelled_images(images)
        if url is not None:
            password = _admin_password(url, admin_password_file)
            report = run_client_demo(url, password, built(model, out), images)
            return 0 if report.ok else 1
        with _sigterm_as_interrupt():
            return _run_locally(model, images, out, workers, web)
    except TeaclaveClientError as err:
        raise TeaclaveInferError(str(err)) from err
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return INTERRUPTED


def _run_locally(model: Path, images: Path, out: Path, workers: int, web: bool) -> int:
    wasm = built(model, out)
    with tempfile.TemporaryDirectory(prefix="teaclave-demo-") as tmp:
        password_file = Path(tmp) / "admin.txt"
        password = secrets.token_urlsafe(18)
        write_private(password_file, password.encode())
        with local_service(Path(tmp) / "data", password_file, workers) as local_url:
            print(f"service: {local_url} (SQLite in a temporary folder, {workers} workers)")
            report = run_client_demo(local_url, password, wasm, images)
            if web:
                embedded = built(model, out / "web", WEB_BUILD)
                username, user_password = share_for_web(local_url, password, embedded)
                _serve_until_interrupted(
                    f"\nthe page: {local_url}/demo  (sign in as {username}, password "
                    f"{user_password}); Ctrl-C stops the service"
                )
    return 0 if report.ok else 1


def share_for_web(url: str, admin_password: str, wasm: Path) -> tuple[str, str]:
    """A model owner registers `wasm` (weights embedded) public and allowed in browsers; returns
    the user name and password of a new data owner to sign in to /demo with."""
    suffix = secrets.token_hex(3)
    made = {}
    with Client(url) as admin:
        admin.login("admin", admin_password)
        for who, role in (("web-owner", "FunctionOwner"), ("web-user", "DataOwner")):
            made[who] = (f"demo-{who}-{suffix}", secrets.token_urlsafe(12))
            admin.register_user(*made[who], role)
    with Client(url) as owner:
        owner.login(*made["web-owner"])
        manifest = wasm.with_suffix(".json")
        owner.register_function(wasm, manifest, "mnist", public=True, browser=True)
    return made["web-user"]


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (`kill`) raises KeyboardInterrupt, as Ctrl-C does, so that the service and the
    temporary folder are cleaned up on the way out; a second one is ignored while they are."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: signals are not ours to handle
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _serve_until_interrupted(message: str) -> None:
    """Prints `message` (the page's address) and waits for Ctrl-C or SIGTERM. The message is
    printed inside the `try`: whoever reads it may stop the demo at once, and an interrupt
    arriving between the print and the wait must still count as a clean stop."""
    try:
        print(message, flush=True)
        _wait_forever()
    except KeyboardInterrupt:
        print("stopping the service", flush=True)


def _wait_forever() -> None:
    while True:
        time.sleep(3600)
