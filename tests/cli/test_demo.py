"""The MNIST demo end to end, as a newcomer runs it: build (once), a local service with workers,
two users, 20 encrypted tasks, the table and the accuracy; and on any folder of digit images."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from paths import MNIST
from PIL import Image, ImageOps
from teaclave_client import Client
from teaclave_examples.mnist import local
from teaclave_examples.mnist.local import WEB_BUILD, built
from teaclave_examples.mnist.remote import labelled_images

from teaclave_infer.cli import main

# The demo builds the MNIST function on the way (with TVM).
pytestmark = pytest.mark.build


def test_the_demo_classifies_the_samples_through_the_service(tmp_path, capsys):
    args = ["demo", "--model", str(MNIST / "mnist.onnx"), "--out", str(tmp_path / "build")]
    assert main([*args, "--images", str(MNIST / "samples")]) == 0
    out = capsys.readouterr().out
    assert "building" in out and "service: http://127.0.0.1:" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("digit_")]
    assert len(rows) == 20 and all(row[-1] in ("ok", "(wrong)") for row in rows)
    correct = sum(row[1] == row[2] for row in rows)
    assert correct >= 19 and f"accuracy: {correct}/20" in out

    # the build is reused; photos of dark digits on paper, labelled by their names
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("digit_2_a.png", "digit_6_b.png", "digit_9_a.png"):
        digit = ImageOps.invert(Image.open(MNIST / "samples" / name).convert("L"))
        digit.resize((90, 90), Image.Resampling.BICUBIC).save(photos / f"photo-{name[6]}.jpg")
    shutil.copy(MNIST / "samples" / "digit_4_a.png", photos / "unlabelled.png")
    assert main([*args, "--images", str(photos)]) == 0
    out = capsys.readouterr().out
    assert "building" not in out and "accuracy: 3/3" in out
    assert [line.split()[:3] for line in out.splitlines() if line.startswith("unlabelled")] == [
        ["unlabelled.png", "-", "4"]
    ]


def test_labels_come_from_labels_json_or_the_names(tmp_path):
    for name in ("7.png", "digit_3_x.jpg", "12.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert labelled_images(tmp_path) == [
        (tmp_path / "12.png", None),
        (tmp_path / "7.png", 7),
        (tmp_path / "digit_3_x.jpg", 3),
    ]
    assert labelled_images(MNIST / "samples")[0] == (MNIST / "samples" / "digit_0_a.png", 0)


def test_the_demo_then_serves_the_page_with_the_function_shared(
    tmp_path, capsys, monkeypatch, demo_out
):
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(MNIST / "samples" / "digit_7_a.png", images / "digit_7_a.png")
    seen: dict[str, object] = {}

    def while_serving() -> None:  # instead of waiting for Ctrl-C: use the page's API
        out = capsys.readouterr().out
        page = next(line for line in out.splitlines() if line.startswith("the page: "))
        url, username, password = re.findall(
            r"(http://\S+)/demo\s+\(sign in as (\S+), password (\S+)\)", page
        )[0]
        with Client(url) as user:
            user.login(username, password)
            (fn,) = user.list_functions()
            seen["browser"] = user._json("GET", f"/v1/functions/{fn.id}/browser")
            seen["page"] = user._http.get(f"{url}/demo/", timeout=10)

    monkeypatch.setattr("teaclave_examples.mnist.local._wait_forever", while_serving)
    args = ["demo", "--model", str(MNIST / "mnist.onnx"), "--out", str(demo_out)]
    assert main([*args, "--images", str(images), "--web"]) == 0
    browser = seen["browser"]
    assert isinstance(browser, dict) and browser["function"]["browser"] is True
    assert browser["weights"] is None and browser["manifest"]["weights"]["mode"] == "embedded"
    assert seen["page"].status_code == 200  # type: ignore[attr-defined]
    assert (demo_out / "web" / "mnist.wasm").exists()


def test_an_interrupt_as_the_page_is_announced_is_a_clean_stop(monkeypatch, capsys):
    """Whoever reads the page's line may stop the demo at once: a SIGTERM that lands right after
    the line is written (before the wait begins) stops the service as one during the wait does."""

    flushes: list[str] = []

    def interrupted_once() -> None:  # the signal's handler runs as the first flush returns
        flushes.append("flush")
        if len(flushes) == 1:
            raise KeyboardInterrupt

    waits: list[str] = []
    monkeypatch.setattr(local, "_wait_forever", lambda: waits.append("waited"))
    monkeypatch.setattr(sys.stdout, "flush", interrupted_once)
    local._serve_until_interrupted("the page: http://127.0.0.1:1/demo")
    monkeypatch.undo()
    assert waits == [] and len(flushes) == 2
    assert capsys.readouterr().out.splitlines()[-1] == "stopping the service"


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory) -> Path:
    """The demo's two builds (separate weights; embedded, for the page), made once a module by
    the demo's own build step, which the demo then finds fresh."""
    out = tmp_path_factory.mktemp("demo-build")
    built(MNIST / "mnist.onnx", out)
    built(MNIST / "mnist.onnx", out / "web", WEB_BUILD)
    return out


def descendants(pid: int) -> set[int]:
    """The live processes below `pid` (from /proc: each one's parent)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # gone meanwhile
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_sigterm_stops_the_web_demo_like_ctrl_c(tmp_path, demo_out):
    """`kill` of `demo --web`: its `serve` child (and its workers) stop, its temporary folder
    goes, as with Ctrl-C."""
    images, tmp = tmp_path / "images", tmp_path / "tmp"
    images.mkdir()
    tmp.mkdir()
    shutil.copy(MNIST / "samples" / "digit_7_a.png", images / "digit_7_a.png")
    command = [sys.executable, "-m", "teaclave_infer.cli", "demo", "--web", "--workers", "1"]
    command += ["--out", str(demo_out), "--images", str(images)]
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"}
    demo = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert demo.stdout is not None
        for line in demo.stdout:  # until it serves the page
            if line.startswith("the page: "):
                break
        else:
            pytest.fail(f"the demo ended with {demo.wait()} before serving the page")
        started = descendants(demo.pid)
        assert started and list(tmp.glob("teaclave-demo-*"))
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(60) == 0
        assert "stopping the service" in demo.stdout.read()
    finally:
        demo.kill()
        demo.wait()
    assert not [pid for pid in started if alive(pid)]
    assert not list(tmp.glob("teaclave-demo-*"))
