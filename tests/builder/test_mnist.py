"""The committed MNIST model as a function: every sample digit is classified as labelled, the
scores match onnxruntime, in both weight modes and both profiles."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from helpers import build_model, reference, run_built
from paths import MNIST
from teaclave_client.images import prepare_image

LABELS: dict[str, int] = json.loads((MNIST / "samples" / "labels.json").read_text())


def test_the_model_is_what_the_contract_says():
    model = onnx.load(str(MNIST / "mnist.onnx"))
    (inp,) = model.graph.input
    assert inp.name == "input_img"
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, 1, 28, 28]
    assert len(LABELS) == 20 and set(LABELS.values()) == set(range(10))


@pytest.mark.parametrize("weights", ["embedded", "separate"])
@pytest.mark.parametrize("profile", ["fast", "teaclave"])
def test_samples_are_classified_as_labelled(tmp_path, profile, weights):
    result = build_model(tmp_path, MNIST / "mnist.onnx", "mnist", profile=profile, weights=weights)
    assert result.manifest["inputs"][0]["id"] == "input_img"
    for name, label in sorted(LABELS.items()):
        x = prepare_image(MNIST / "samples" / name, (1, 1, 28, 28))
        rv, outputs = run_built(result, {"input_img": x})
        expected = reference(MNIST / "mnist.onnx", {"input_img": x})
        (scores,) = outputs.values()
        np.testing.assert_allclose(scores, next(iter(expected.values())), rtol=1e-3, atol=1e-4)
        assert rv == label, name
