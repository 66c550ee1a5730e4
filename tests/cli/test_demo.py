"""The MNIST demo end to end, as a newcomer runs it: build (once), a local service with workers,
two users, 20 encrypted tasks, the table and the accuracy; and on any folder of digit images."""

from __future__ import annotations

import re
import shutil

import pytest
from paths import MNIST
from PIL import Image, ImageOps
from teaclave_client.mnist_demo import labelled_images
from teaclave_client.sdk import Client

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


def test_the_demo_then_serves_the_page_with_the_function_shared(tmp_path, capsys, monkeypatch):
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

    monkeypatch.setattr("teaclave_infer.demo._until_interrupted", while_serving)
    args = ["demo", "--model", str(MNIST / "mnist.onnx"), "--out", str(tmp_path / "build")]
    assert main([*args, "--images", str(images), "--web"]) == 0
    browser = seen["browser"]
    assert isinstance(browser, dict) and browser["function"]["browser"] is True
    assert browser["weights"] is None and browser["manifest"]["weights"]["mode"] == "embedded"
    assert seen["page"].status_code == 200  # type: ignore[attr-defined]
    assert (tmp_path / "build" / "web" / "mnist.wasm").exists()
