"""The committed MNIST model as a function: every sample digit is classified as labelled, the
scores match onnxruntime, in both weight modes and both profiles; and the committed builds the
fast tier runs are what the builder makes today."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from helpers import build_model, reference, run_built
from paths import MNIST
from prebuilt import REBUILD, VARIANTS, prebuilt
from teaclave_client.images import prepare_image

from teaclave_infer.abi import DEFAULT_PROFILE

LABELS: dict[str, int] = json.loads((MNIST / "samples" / "labels.json").read_text())


def test_the_model_is_what_the_contract_says():
    model = onnx.load(str(MNIST / "mnist.onnx"))
    (inp,) = model.graph.input
    assert inp.name == "input_img"
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, 1, 28, 28]
    assert len(LABELS) == 20 and set(LABELS.values()) == set(range(10))


@pytest.mark.parametrize("weights", sorted(VARIANTS))
@pytest.mark.parametrize("profile", ["fast", "teaclave"])
def test_samples_are_classified_as_labelled(tmp_path, profile, weights):
    """In the default profile the build is the committed one's (tests/prebuilt.py), which the
    fast tier runs: the same manifest and the same scores."""
    options = {**VARIANTS[weights], "profile": profile}
    result = build_model(tmp_path, MNIST / "mnist.onnx", **options)
    assert result.manifest["inputs"][0]["id"] == "input_img"
    committed = prebuilt(weights) if profile == DEFAULT_PROFILE.name else None
    stale = f"tests/data/prebuilt/mnist-{weights} is stale: rebuild it with `{REBUILD}`"
    if committed:
        assert stable(committed.manifest) == stable(result.manifest), stale
    for name, label in sorted(LABELS.items()):
        x = prepare_image(MNIST / "samples" / name, (1, 1, 28, 28))
        rv, outputs = run_built(result, {"input_img": x})
        expected = reference(MNIST / "mnist.onnx", {"input_img": x})
        (scores,) = outputs.values()
        np.testing.assert_allclose(scores, next(iter(expected.values())), rtol=1e-3, atol=1e-4)
        assert rv == label, name
        if committed:
            committed_rv, committed_outputs = run_built(committed, {"input_img": x})
            np.testing.assert_array_equal(committed_outputs["scores"], scores, err_msg=stale)
            assert committed_rv == rv, stale


def stable(manifest: dict) -> dict:
    """A manifest without what differs between two builds of one model by design: hashes, sizes
    and tool versions."""
    return {k: v for k, v in manifest.items() if k not in {"artifacts", "tools"}}
