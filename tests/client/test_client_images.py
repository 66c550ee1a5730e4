"""`prepare-image`: the 20 sample digits redrawn as users photograph them (bigger, smaller, not
square, dark on light, JPEG, transparent) still come out as MNIST's input, and the model
(onnxruntime) still reads them; bad images and non-image inputs are clear errors."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from paths import MNIST
from PIL import Image
from redrawn import LABELS, SHAPE, VARIANTS, encoded
from teaclave_client.images import ImageError, image_input, prepare_for, prepare_image


@pytest.fixture(scope="module")
def model():
    return ort.InferenceSession(str(MNIST / "mnist.onnx"), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_redrawn_samples_are_still_read_right(model, variant):
    correct = 0
    for name, label in sorted(LABELS.items()):
        original = Image.open(MNIST / "samples" / name).convert("L")
        x = prepare_image(VARIANTS[variant](original), SHAPE)
        assert x.shape == SHAPE and x.dtype == np.float32
        assert x.min() >= 0.0 and 0.9 < x.max() <= 1.0
        if not variant.startswith("as is"):  # reframed as MNIST's digits were
            rows, cols = np.nonzero(x[0, 0] > 0.1)
            extent = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1
            assert 18 <= extent <= 22, f"{name}: the digit spans {extent} pixels"
            ys, xs = np.indices((28, 28))
            mass = x[0, 0].sum()
            centre = ((ys * x[0, 0]).sum() / mass, (xs * x[0, 0]).sum() / mass)
            assert np.allclose(centre, 13.5, atol=1.0), f"{name}: centre of mass {centre}"
        correct += int(model.run(None, {"input_img": x})[0].argmax()) == label
    assert correct >= 19, f"{variant}: {correct}/20"


def test_the_samples_themselves_pass_through_unchanged():
    for name in LABELS:
        x = prepare_image(MNIST / "samples" / name, SHAPE)
        pixels = np.asarray(Image.open(MNIST / "samples" / name), dtype=np.float32) / 255.0
        np.testing.assert_allclose(x[0, 0], pixels / pixels.max(), atol=1e-6)


def test_forced_polarity_range_dtype_and_layouts():
    img = MNIST / "samples" / "digit_3_a.png"
    assert prepare_image(img, SHAPE, invert=True)[0, 0, 0, 0] == pytest.approx(1.0)  # white bg
    scaled = prepare_image(img, SHAPE, pixel_range=(-1.0, 1.0))
    assert scaled.min() == -1.0 and scaled.max() == 1.0
    assert prepare_image(img, SHAPE, dtype="float64").dtype == np.float64
    assert prepare_image(img, (1, 28, 28, 1)).shape == (1, 28, 28, 1)
    rgb = prepare_image(img, (1, 3, 32, 32))
    assert rgb.shape == (1, 3, 32, 32) and np.allclose(rgb[0, 0], rgb[0, 2])  # gray in RGB


def test_the_manifest_says_what_the_input_is():
    manifest = {
        "inputs": [
            {"id": "mask", "shape": [1, 10], "dtype": "float32"},
            {
                "id": "img",
                "shape": [1, 1, 28, 28],
                "dtype": "float32",
                "image": {"range": [0, 255]},
            },
        ]
    }
    assert image_input(manifest)["id"] == "img"
    slot, x = prepare_for(manifest, MNIST / "samples" / "digit_0_a.png")
    assert slot == "img" and x.max() == 255.0
    with pytest.raises(ImageError, match="no image input nope"):
        image_input(manifest, "nope")
    with pytest.raises(ImageError, match="not one image"):
        prepare_for(manifest, MNIST / "samples" / "digit_0_a.png", "mask")


def test_unreadable_images_are_clear_errors(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ImageError, match="cannot read the image"):
        prepare_image(tmp_path / "junk.png", SHAPE)
    with pytest.raises(ImageError, match="cannot read the image"):
        prepare_image(tmp_path / "missing.png", SHAPE)
    blank = encoded(Image.new("L", (40, 40), 255), "PNG")
    assert not prepare_image(blank, SHAPE).any()  # an empty sheet: nothing drawn, no error
