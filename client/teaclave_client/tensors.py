"""A tensor checked against the function's manifest before it is encrypted and uploaded: a
wrong shape or dtype is refused here, naming the input and both shapes, instead of failing as
a task on the platform."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .errors import TeaclaveClientError

__all__ = ["InputMismatch", "check_tensor", "input_spec"]


class InputMismatch(TeaclaveClientError):
    """A tensor that is not what the function's manifest says its input takes."""


def input_spec(manifest: Mapping[str, Any], slot: str) -> dict[str, Any] | None:
    """The manifest's entry for input `slot`, None if the manifest does not describe it."""
    for spec in manifest.get("inputs") or []:
        if spec.get("id") == slot:
            return dict(spec)
    return None


def check_tensor(manifest: Mapping[str, Any], slot: str, tensor: np.ndarray) -> None:
    """InputMismatch unless `tensor` has the shape and dtype the manifest gives input `slot`
    (an input the manifest does not describe, or describes without a shape, passes)."""
    spec = input_spec(manifest, slot)
    if spec is None:
        names = [s.get("id") for s in manifest.get("inputs") or []]
        if names:
            raise InputMismatch(f"the function has no input {slot!r} (its inputs: {names})")
        return
    expected = spec.get("shape")
    if expected is not None and list(tensor.shape) != list(expected):
        raise InputMismatch(
            f"input {slot!r} takes shape {list(expected)}, not {list(tensor.shape)}"
        )
    dtype = spec.get("dtype")
    if dtype is not None and np.dtype(dtype) != tensor.dtype:
        raise InputMismatch(f"input {slot!r} takes {np.dtype(dtype)}, not {tensor.dtype}")
