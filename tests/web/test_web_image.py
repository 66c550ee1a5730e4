"""The page's image preparation (client/web/digit-image.js) against the Python client's
prepare-image, on the redrawn samples of tests/redrawn.py (other sizes, polarity, JPEG,
transparency): the same decoded pixels give the same tensor in Node as in Python. (Decoding itself
is the browser's; the Chromium test checks predictions on the samples end to end.)"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess

import numpy as np
import pytest
from paths import MNIST, WEB
from PIL import Image, ImageOps
from redrawn import LABELS, SHAPE, VARIANTS
from teaclave_client.images import prepare_image

SCRIPT = f"""
import {{ readFileSync }} from "node:fs";
import {{ npyBytes, parseNpy, prepareImage }} from "{(WEB / "digit-image.js").as_uri()}";
const cases = JSON.parse(readFileSync(process.argv[2], "utf8"));
const out = cases.map(({{ width, height, rgba }}) => {{
  const data = Uint8ClampedArray.from(Buffer.from(rgba, "base64"));
  const tensor = prepareImage({{ data, width, height }}, 28, 28);
  return tensor && Array.from(parseNpy(npyBytes(tensor, [1, 1, 28, 28])));
}});
console.log(JSON.stringify(out));
"""


def rgba(encoded: bytes) -> dict[str, object]:
    """What a browser's canvas holds for the image: straight RGBA bytes."""
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(encoded))).convert("RGBA")
    raw = base64.b64encode(img.tobytes()).decode()
    return {"width": img.width, "height": img.height, "rgba": raw}


def test_node_prepares_images_as_the_python_client(tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.fail("the web tests need Node.js >= 20 (CI has it)")
    names = sorted(LABELS)[::4]  # five digits, every variant of each
    cases, expected = [], []
    for name in names:
        sample = Image.open(MNIST / "samples" / name).convert("L")
        for variant in VARIANTS.values():
            encoded = variant(sample)
            cases.append(rgba(encoded))
            expected.append(prepare_image(encoded, SHAPE).ravel())
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    (tmp_path / "prepare.mjs").write_text(SCRIPT)
    done = subprocess.run(
        [node, str(tmp_path / "prepare.mjs"), str(tmp_path / "cases.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert len(got) == len(expected) == len(names) * len(VARIANTS)
    for k, (js, py) in enumerate(zip(got, expected, strict=True)):
        label = f"{names[k // len(VARIANTS)]}, {list(VARIANTS)[k % len(VARIANTS)]}"
        js = np.asarray(js, dtype=np.float32)
        # alpha compositing and the gray conversion may round a level (1/255) apart
        np.testing.assert_allclose(js, py, atol=0.005, err_msg=label)
        assert np.abs(js - py).mean() < 1e-3, label
