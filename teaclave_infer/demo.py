"""`teaclave-infer demo`: build the MNIST function if it is missing or stale, start the service
on a free loopback port (SQLite in a temporary data dir, worker processes) unless `--url` names
one, and run the client's MNIST demo against it: every digit an encrypted task through the full
lifecycle (each owner's steps batched into one request where the rules allow, the result waited
for with a long-poll), then the table and the accuracy. Everything started is stopped at the
end. With `web`, the local service then stays up with the MNIST function (weights embedded,
public, allowed in browsers) shared for the /demo page, until Ctrl-C."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import tempfile
import time
from pathlib import Path

from teaclave_client.files import write_private
from teaclave_client.mnist_demo import run_demo as run_client_demo
from teaclave_client.sdk import Client

from .builder import BuildOptions
from .cli import build_progress
from .errors import TeaclaveInferError
from .local import local_service

__all__ = ["built", "run_demo", "share_for_web"]

DEMO_BUILD = BuildOptions(weights="separate", pixel_range=(0.0, 1.0))


def built(model: Path, out: Path, options: BuildOptions = DEMO_BUILD) -> Path:
    """The wasm of an up-to-date build of `model` in `out` (same model, same options), building
    it if needed."""
    name = options.name or model.stem
    manifest_path, wasm = out / f"{name}.json", out / f"{name}.wasm"
    try:
        source = hashlib.sha256(model.read_bytes()).hexdigest()
    except OSError as err:
        raise TeaclaveInferError(f"model {model}: {err.strerror}") from err
    if manifest_path.exists() and wasm.exists():
        manifest = json.loads(manifest_path.read_text())
        image = (manifest["inputs"][0].get("image") or {}).get("range")
        if (
            manifest["source"]["sha256"] == source
            and manifest["weights"]["mode"] == options.weights
            and image == (list(options.pixel_range) if options.pixel_range else None)
        ):
            return wasm
    from .builder import build  # TVM only when a build is needed

    print(f"building {model} -> {out}")
    return build(model, out, options, progress=build_progress).wasm


def run_demo(
    model: Path,
    images: Path,
    out: Path,
    url: str | None = None,
    admin_password_file: Path | None = None,
    workers: int = 2,
    web: bool = False,
) -> int:
    """0 when every image was classified by a task whose receipt verified."""
    wasm = built(model, out)
    if web and url is not None:
        raise TeaclaveInferError("--web serves the page from the local service: not with --url")
    if url is not None:
        if admin_password_file is None:
            raise TeaclaveInferError("--url needs --admin-password-file (the platform's admin)")
        report = run_client_demo(url, admin_password_file.read_text().strip(), wasm, images)
        return 0 if report.ok else 1
    with tempfile.TemporaryDirectory(prefix="teaclave-demo-") as tmp:
        password_file = Path(tmp) / "admin.txt"
        password = secrets.token_urlsafe(18)
        write_private(password_file, password.encode())
        with local_service(Path(tmp) / "data", password_file, workers) as local_url:
            print(f"service: {local_url} (SQLite in a temporary folder, {workers} workers)")
            report = run_client_demo(local_url, password, wasm, images)
            if web:
                embedded = built(
                    model, out / "web", dataclasses.replace(DEMO_BUILD, weights="embedded")
                )
                username, user_password = share_for_web(local_url, password, embedded)
                print(
                    f"\nthe page: {local_url}/demo  (sign in as {username}, password "
                    f"{user_password}); Ctrl-C stops the service"
                )
                _until_interrupted()
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


def _until_interrupted() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping the service")
