"""The committed MNIST builds (tests/prebuilt.py) are what the builder makes today: the same
manifest and the same scores as a fresh build, and onnxruntime's scores."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import reference, run_built
from prebuilt import MNIST, REBUILD, VARIANTS, build_variant, prebuilt
from teaclave_client.images import prepare_image

LABELS: dict[str, int] = json.loads((MNIST / "samples" / "labels.json").read_text())
# What differs between two builds of the same model by design: hashes, sizes and tool versions.
VOLATILE = {"artifacts", "tools"}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_committed_build_is_a_fresh_one(tmp_path, variant):
    committed, fresh = prebuilt(variant), build_variant(variant, tmp_path)
    stale = f"tests/data/prebuilt/mnist-{variant} is stale: rebuild with `{REBUILD}`"
    strip = lambda m: {k: v for k, v in m.items() if k not in VOLATILE}  # noqa: E731
    assert strip(committed.manifest) == strip(fresh.manifest), stale
    for name, label in sorted(LABELS.items()):
        x = prepare_image(MNIST / "samples" / name, (1, 1, 28, 28))
        rv, outputs = run_built(committed, {"input_img": x})
        fresh_rv, fresh_outputs = run_built(fresh, {"input_img": x})
        scores = outputs["scores"]
        np.testing.assert_array_equal(scores, fresh_outputs["scores"], err_msg=stale)
        expected = reference(MNIST / "mnist.onnx", {"input_img": x})["scores"]
        np.testing.assert_allclose(scores, expected, rtol=1e-3, atol=1e-4, err_msg=name)
        assert rv == fresh_rv == label, name
