"""One definition per vocabulary (teaclave_client.vocabulary): its users agree with it, and
numpy and ONNX agree with its dtypes."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
from teaclave_client import vocabulary as v

from teaclave_infer import generate
from teaclave_infer.executor import Limits


def test_the_executor_defaults_are_the_vocabulary_limits() -> None:
    defaults = {f.name: f.default for f in dataclasses.fields(Limits)}
    assert defaults == {limit.name: limit.default for limit in v.LIMITS}


def test_each_settable_limit_is_within_its_bound_by_default() -> None:
    for limit in v.LIMITS:
        if limit.function_max is not None and limit.default is not None:
            assert limit.default <= limit.function_max, limit.name


def test_dtypes_agree_with_numpy_and_onnx() -> None:
    for dtype in v.DType:
        code, bits = dtype.dlpack
        assert np.dtype(dtype.value).itemsize * 8 == bits, dtype
        kind = {v.DLPackCode.INT: "i", v.DLPackCode.UINT: "u", v.DLPackCode.FLOAT: "f"}
        assert np.dtype(dtype.value).kind == kind.get(code, "b"), dtype
        onnx_numpy = onnx.helper.tensor_dtype_to_np_dtype(dtype.onnx_type)
        assert onnx_numpy == np.dtype(dtype.value), dtype


def test_schemas_keep_their_public_mapping() -> None:
    import teaclave_client

    assert {s.value: s.key_bytes for s in v.Schema} == teaclave_client.SCHEMAS
    assert v.DEFAULT_SCHEMA.sealed and not v.Schema.RAW.sealed


def test_every_kind_has_a_meaning_and_no_kind_is_both() -> None:
    for kind in [*v.ResultKind, *v.FailureKind, *v.Status]:
        assert kind.meaning
    assert not {k.value for k in v.ResultKind} & {k.value for k in v.FailureKind}


def test_the_web_host_enforces_its_limits_in_its_own_units() -> None:
    js = generate.render("client/web/teaclave-constants.js")
    assert f"deadlineMs: {round(v.DEADLINE_S.default * 1000)}," in js
    assert f"memoryBytes: {v.MEMORY_BYTES.default}," in js
    assert "fuel" not in js  # the web host has no fuel
