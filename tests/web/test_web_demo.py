"""The /demo page in real headless Chromium (Debian's `chromium`, driven by playwright-core from
tests/browser): the 20 MNIST samples chosen as files and run in the browser, with embedded and
with separate weights, give the executor's predictions; a digit drawn by pointer events is
classified right in the browser and on the platform, the receipt verified; no console errors.
Signing in takes the keyboard alone, every control has a label, and a phone-width page does not
scroll sideways. The screenshots are kept as build/test-artifacts/demo.png and demo-narrow.png."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import run_built
from paths import MNIST, REPO
from PIL import Image
from prebuilt import Prebuilt, prebuilt
from service_helpers import ADMIN_PASSWORD
from teaclave_client import Client
from teaclave_client.images import prepare_image

from teaclave_infer.api.routes.web import FILES, POLICY

pytestmark = pytest.mark.slow

SAMPLES = MNIST / "samples"
LABELS: dict[str, int] = json.loads((SAMPLES / "labels.json").read_text())
DRIVER = REPO / "tests" / "browser"
ARTIFACTS = REPO / "build" / "test-artifacts"
DRAWN = "digit_3_a.png"  # the sample whose strokes the test draws


def chromium() -> str:
    """$CHROMIUM or the system's Chromium; as root with apt, Debian's is installed if missing
    (what .ci/run does), so that the README's test command works on a fresh machine."""
    names = ("chromium", "chromium-browser")
    found = os.environ.get("CHROMIUM") or next(filter(None, map(shutil.which, names)), None)
    if not found and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for step in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            done = subprocess.run(step, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                pytest.fail(f"{' '.join(step)} failed: {done.stderr[-2000:]}")
        found = shutil.which("chromium")
    if not found:
        pytest.fail("no Chromium: install Debian's `chromium` (apt-get install chromium)")
    return found


def node_driver() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("the browser tests need Node.js >= 20 and npm")
    if not (DRIVER / "node_modules" / "playwright-core").is_dir():
        subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=DRIVER, check=True)
    return DRIVER / "drive_demo.mjs"


def strokes(png: Path) -> list[list[list[float]]]:
    """Horizontal strokes over the digit's inked runs, in the pad's 280-pixel frame."""
    pixels = np.asarray(Image.open(png).convert("L"), dtype=np.float32) / 255
    lines = []
    for y, row in enumerate(pixels > 0.5):
        x = 0
        while x < row.size:
            if row[x]:
                end = x
                while end + 1 < row.size and row[end + 1]:
                    end += 1
                lines.append([[10 * x + 5, 10 * y + 5], [10 * end + 5, 10 * y + 5]])
                x = end
            x += 1
    return lines


def executor_predictions(built: Prebuilt) -> dict[str, int]:
    """Each sample's prediction by the executor, with its tensor from the Python client."""
    return {
        name: run_built(built, {"input_img": prepare_image(SAMPLES / name, (1, 1, 28, 28))})[0]
        for name in sorted(LABELS)
    }


@pytest.fixture(scope="module")
def builds() -> dict[str, Prebuilt]:
    return {mode: prebuilt(mode) for mode in ("embedded", "separate")}


@pytest.fixture(scope="module")
def shared(module_service, builds) -> dict[str, str]:
    """A model owner's two MNIST functions, public and allowed in browsers (the separate one
    with its weights set for browsers), and a data owner to sign in as."""
    with Client(module_service) as admin, Client(module_service) as owner:
        admin.login("admin", ADMIN_PASSWORD)
        admin.register_user("web-owner", "web-owner-password", "FunctionOwner")
        admin.register_user("web-user", "web-user-password", "DataOwner")
        owner.login("web-owner", "web-owner-password")
        ids = {}
        for mode, built in builds.items():
            fn = owner.register_function(
                built.wasm, built.manifest_path, f"mnist-{mode}", public=True, browser=True
            )
            ids[mode] = fn.id
        assert builds["separate"].weights is not None
        weights = owner.put_input(builds["separate"].weights.read_bytes(), "aes-gcm-256")
        updated = owner.update_function(ids["separate"], browser_weights=weights.id)
        assert updated.browser and updated.browser_weights == weights.id
    return ids


def test_the_page_is_served_with_its_policy(module_service):
    with Client(module_service) as c:
        index = c._http.get(f"{module_service}/demo/", timeout=10)
        script = c._http.get(f"{module_service}/demo/teaclave-host.js", timeout=10)
        test_file = c._http.get(f"{module_service}/demo/test/host.test.mjs", timeout=10)
        outside = c._http.get(f"{module_service}/demo/..%2Fpyproject.toml", timeout=10)
    assert index.status_code == 200 and "<canvas" in index.text
    assert index.headers["content-security-policy"] == POLICY
    assert script.status_code == 200 and script.headers["content-type"].startswith(
        "text/javascript"
    )
    assert test_file.status_code == 404 and outside.status_code == 404
    assert set(FILES) <= {p.name for p in (REPO / "client" / "web").iterdir()}


def test_chromium_predicts_as_the_executor_and_draws_a_digit(
    tmp_path, module_service, builds, shared
):
    driver = node_driver()
    samples = [
        {"function": shared[mode], "path": str(SAMPLES / name), "mode": mode, "name": name}
        for mode in ("embedded", "separate")
        for name in sorted(LABELS)
    ]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / "demo.png"
    config = {
        "url": module_service,
        "chromium": chromium(),
        "username": "web-user",
        "password": "web-user-password",
        "screenshot": str(screenshot),
        "samples": samples,
        "drawn": {
            "function": shared["embedded"],
            "strokes": strokes(SAMPLES / DRAWN),
            "modes": ["browser", "platform"],
        },
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    done = subprocess.run(
        ["node", str(driver), str(tmp_path / "config.json")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["problems"] == [], (seen["problems"], seen["drawn"])
    assert seen["unlabelled"] == [] and seen["overflow"] <= 0

    expected = {mode: executor_predictions(builds[mode]) for mode in builds}
    for sample in seen["samples"]:
        assert "error" not in sample, sample
        assert sample["prediction"] == expected[sample["mode"]][sample["name"]], sample["name"]
        assert sample["where"] == "browser"
    assert expected["embedded"] == expected["separate"]
    assert sum(expected["embedded"][n] == label for n, label in LABELS.items()) >= 19

    label = LABELS[DRAWN]
    assert len(seen["tensor"]) == 28 * 28 and max(seen["tensor"]) > 0.9
    browser, platform = seen["drawn"]
    assert browser["where"] == "browser" and browser["prediction"] == label, browser
    assert browser["receipt"] is None
    assert platform["where"] == "platform" and platform["prediction"] == label, platform
    assert platform["receipt"]["result_kind"] == "ok"
    np.testing.assert_allclose(platform["scores"], browser["scores"], rtol=1e-5, atol=1e-6)
    assert screenshot.stat().st_size > 10_000
