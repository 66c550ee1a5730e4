"""The MNIST demo, against a running platform: every digit image of a folder classified as an
encrypted task, through the whole lifecycle, by two users who do not trust the platform.

1. The admin creates a model owner and a data owner (fresh names, random passwords).
2. The model owner registers the MNIST function, private, usable by the data owner only. If it
   was built with separate weights, the owner uploads them encrypted (AES-256-GCM) once.
3. For each image the data owner prepares the input tensor, encrypts it with a fresh key,
   uploads it, registers it and an output file, and creates the task with its files assigned
   and approved, in one request; the model owner assigns the weights (if separate) and
   approves, in one request, as the owner of a private function; the data owner approves and
   invokes in one request, waits (a long-poll: the answer comes when the task ends), and checks
   the result: the receipt's signature and contents, the output's tag, then decrypts the
   scores.
4. A table: file, label, prediction, latency (invoke to verified result), receipt.

    python examples/teaclave_examples/mnist/remote.py --url URL --admin-password-file F \
        --wasm W.wasm [--images DIR]

(or `python -m teaclave_examples.mnist.remote ...`: it needs only the light client installed).
`teaclave-infer demo` builds the function and starts a local service first, then runs this.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from teaclave_client import Client, FileInfo, Function, TeaclaveClientError, npy_bytes, prepare_for
from teaclave_client.images import is_blank
from teaclave_client.progress import Progress
from teaclave_client.vocabulary import Schema

__all__ = ["DemoReport", "Row", "main", "run_demo"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


@dataclass(frozen=True)
class Row:
    file: str
    label: int | None
    prediction: int | None
    latency_ms: float
    receipt_ok: bool
    error: str = ""


@dataclass
class DemoReport:
    rows: list[Row] = field(default_factory=list)

    @property
    def labelled(self) -> list[Row]:
        return [r for r in self.rows if r.label is not None]

    @property
    def correct(self) -> int:
        return sum(r.prediction == r.label for r in self.labelled)

    @property
    def ok(self) -> bool:
        """Every task finished with a verified receipt."""
        return bool(self.rows) and all(r.receipt_ok for r in self.rows)


def labelled_images(folder: Path) -> list[tuple[Path, int | None]]:
    """The folder's images with their labels: from labels.json (file name -> digit) if there is
    one, else from a name like `7.png`, `digit_7_a.png` or `3-photo.jpg` (none if ambiguous)."""
    if not folder.is_dir():
        raise TeaclaveClientError(f"{folder} is not a folder of images")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise TeaclaveClientError(f"{folder} holds no PNG or JPEG images")
    labels_file = folder / "labels.json"
    labels = json.loads(labels_file.read_text()) if labels_file.exists() else {}
    out = []
    for path in images:
        label = labels.get(path.name)
        if label is None:
            digits = re.findall(r"(?<![0-9])([0-9])(?![0-9])", path.stem)
            label = int(digits[0]) if len(digits) == 1 else None
        out.append((path, None if label is None else int(label)))
    return out


class _Owners:
    """The two demo users, each with their own client (and key store)."""

    def __init__(self, url: str, admin_password: str) -> None:
        suffix = secrets.token_hex(3)
        with Client(url) as admin:
            admin.login("admin", admin_password)
            made = {}
            for who, role in (("model-owner", "FunctionOwner"), ("data-owner", "DataOwner")):
                password = secrets.token_urlsafe(18)
                made[who] = (admin.register_user(f"demo-{who}-{suffix}", password, role), password)
        self.model, self.data = Client(url), Client(url)
        self.model.login(made["model-owner"][0].username, made["model-owner"][1])
        self.data.login(made["data-owner"][0].username, made["data-owner"][1])

    def close(self) -> None:
        self.model.close()
        self.data.close()


def _register(
    owners: _Owners, wasm: Path, manifest: dict, weights: Path | None
) -> tuple[Function, FileInfo | None]:
    assert owners.data.user is not None
    function = owners.model.register_function(
        wasm,
        manifest,
        manifest.get("name", "mnist"),
        public=False,
        allowlist=[owners.data.user.id],
        description="MNIST digit classifier (demo)",
    )
    sealed_weights = None
    if manifest.get("weights", {}).get("mode") == "separate":
        if weights is None or not weights.exists():
            raise TeaclaveClientError(f"the function needs its weights file {weights}")
        sealed_weights = owners.model.put_input(weights.read_bytes(), Schema.AES_GCM_256)
    return function, sealed_weights


def _classify(
    owners: _Owners,
    function: Function,
    manifest: dict,
    weights: FileInfo | None,
    image: Path,
    timeout: float,
) -> tuple[int, float]:
    data, model = owners.data, owners.model
    assert data.user is not None and model.user is not None
    slot, tensor = prepare_for(manifest, image)
    if is_blank(tensor):
        print(f"warning: {image.name} is blank: its prediction means nothing", file=sys.stderr)
    sealed = data.put_input(npy_bytes(tensor))
    scores = {o["name"]: data.register_output_file().id for o in function.outputs}
    others = {"weights": [model.user.id]} if weights else {}
    # One request: create, assign the image and the scores file, approve (and invoke, which
    # waits here for the model owner, whom a private function's every use needs).
    task = data.submit_task(
        function.id,
        {slot: sealed.id},
        scores,
        arguments=function.default_arguments(),
        inputs_ownership=others,
    )
    # The model owner's one request: the weights (if separate) and the approval together. An
    # assignment withdraws earlier approvals: the data owner then approves again, and invokes.
    if weights is not None:
        task = model.assign_data(task.id, {"weights": weights.id}, approve=True)
    else:
        task = model.approve_task(task.id)
    started = time.monotonic()
    if task.state == "Approved":
        data.invoke_task(task.id)
    else:
        data.approve_task(task.id, invoke=True)
    result = data.get_task_result(data.wait(task.id, timeout))
    latency = (time.monotonic() - started) * 1000
    for slot_name, plaintext in result.outputs.items():  # the decrypted scores agree
        values = np.load(io.BytesIO(plaintext), allow_pickle=False)
        if int(values.argmax()) != result.return_value:
            raise TeaclaveClientError(f"output {slot_name} disagrees with the return value")
    return result.return_value, latency


def run_demo(
    url: str,
    admin_password: str,
    wasm: Path,
    images: Path,
    *,
    manifest_path: Path | None = None,
    timeout: float = 120.0,
    say: Callable[[str], None] = print,
) -> DemoReport:
    """Runs the demo against the service at `url`; prints the table through `say`."""
    manifest_path = manifest_path or wasm.with_suffix(".json")
    manifest = json.loads(manifest_path.read_text())
    work = labelled_images(images)
    owners = _Owners(url, admin_password)
    report = DemoReport()
    try:
        function, weights = _register(owners, wasm, manifest, wasm.with_suffix(".weights"))
        say(
            f"function {function.name} ({function.id}) registered by the model owner; "
            f"{len(work)} images from {images}"
        )
        progress = Progress(len(work))
        for path, label in work:
            progress(f"{path.name}")
            try:
                prediction, latency = _classify(owners, function, manifest, weights, path, timeout)
                report.rows.append(Row(path.name, label, prediction, latency, True))
            except TeaclaveClientError as err:
                report.rows.append(Row(path.name, label, None, 0.0, False, str(err)))
        progress.close()
    finally:
        owners.close()
    for line in table(report):
        say(line)
    return report


def table(report: DemoReport) -> list[str]:
    lines = [f"{'file':<24} {'label':>5} {'prediction':>10} {'latency':>10}  receipt"]
    for r in report.rows:
        label = "-" if r.label is None else str(r.label)
        prediction = "-" if r.prediction is None else str(r.prediction)
        mark = "" if r.label is None or r.prediction == r.label else "  (wrong)"
        receipt = "ok" if r.receipt_ok else f"FAILED: {r.error}"
        lines.append(
            f"{r.file:<24} {label:>5} {prediction:>10} {r.latency_ms:>7.1f} ms  {receipt}{mark}"
        )
    latencies = sorted(r.latency_ms for r in report.rows if r.receipt_ok)
    if latencies:
        lines.append(
            f"median latency (invoke to verified result): {latencies[len(latencies) // 2]:.1f} ms"
        )
    if report.labelled:
        n = len(report.labelled)
        lines.append(f"accuracy: {report.correct}/{n} ({100 * report.correct / n:.0f}%)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="remote.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True, help="the platform service")
    parser.add_argument("--admin-password-file", type=Path, required=True)
    parser.add_argument("--wasm", type=Path, required=True, help="the built mnist.wasm")
    parser.add_argument("--images", type=Path, default=Path("functions/mnist/samples"))
    args = parser.parse_args(argv)
    try:
        password = args.admin_password_file.read_text().strip()
        report = run_demo(args.url, password, args.wasm, args.images)
    except (TeaclaveClientError, OSError) as err:
        print(f"remote.py: error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", 1)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
