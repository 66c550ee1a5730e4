"""Teaclave's example functions written here in C (examples/teaclave/functions/): the committed
builds, which the fast tier registers and runs without building, are what their headers'
commands build today, and run on the `teaclave` profile as Teaclave's examples document."""

from __future__ import annotations

import pytest
from c_functions import COMMITTED, SIMPLE_ADD, build_c

from teaclave_infer.executor import run


@pytest.mark.parametrize("source", COMMITTED, ids=lambda s: s.stem)
def test_the_committed_build_is_a_fresh_one(source, tmp_path):
    fresh = build_c(source, tmp_path / source.with_suffix(".wasm").name)
    committed = source.with_suffix(".wasm").read_bytes()
    assert fresh == committed, f"{source.name} changed: rebuild with `python tests/c_functions.py`"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"adder1": "3", "adder2": "4"}, 7),  # Teaclave's example's defaults and result
        ({"adder1": "-10", "adder2": "+4"}, -6),
        ({"adder1": "1073741823", "adder2": "1073741823"}, 2**31 - 2),
        ({"adder1": "1073741824", "adder2": "0"}, -1),  # past 2^30: refused, never overflowed
        ({"adder1": "3"}, -1),
        ({"adder1": "3", "adder2": "4x"}, -1),
        ({"adder1": "", "adder2": "4"}, -1),
    ],
)
def test_simple_add_adds(arguments, expected):
    wasm = SIMPLE_ADD.with_suffix(".wasm").read_bytes()
    result = run(wasm, arguments, {}, profile="teaclave")
    assert result.ok and result.return_value == expected
