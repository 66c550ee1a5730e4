"""The ABI kept in one place: status codes agree with the C runtime, argv packing, ids."""

from __future__ import annotations

import re

import pytest
from paths import REPO

from teaclave_infer.abi import Status, pack_arguments, safe_id

RUNTIME = REPO / "teaclave_infer" / "runtime"


def test_status_codes_match_the_runtime_header():
    header = (RUNTIME / "ti_constants.h").read_text()
    in_c = {name: int(v) for name, v in re.findall(r"TI_ERR_(\w+) = (-\d+)", header)}
    assert in_c == {s.name: int(s) for s in Status}


def test_arguments_are_sorted_pairs_with_canonical_json_for_non_strings():
    argv = pack_arguments({"b": "2", "a": 1, "c": [1, "x", {"z": 1e-7, "y": "é"}]})
    assert argv == [b"a", b"1", b"b", b"2", b"c", '[1,"x",{"y":"é","z":1e-7}]'.encode()]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**53, [-(2**60)], {1: "x"}])
def test_an_argument_with_no_canonical_json_is_refused_by_name(value):
    with pytest.raises(ValueError, match=r"^argument x: "):
        pack_arguments({"a": "fine", "x": value})


@pytest.mark.parametrize(
    ("onnx_name", "ident"),
    [
        ("input_img", "input_img"),
        ("gpu_0/data_0", "gpu_0_data_0"),
        ("input.1", "input_1"),
        ("0", "_0"),
        ("weights", "weights_"),
        ("", "_"),
    ],
)
def test_safe_ids(onnx_name, ident):
    assert safe_id(onnx_name) == ident
