"""The function written by hand in C of docs/guide/functions.md
(functions/handwritten/line_count.c), built with the command its header gives, runs in the
executor on both profiles."""

from __future__ import annotations

import pytest
from c_functions import build_c
from paths import REPO

from teaclave_infer.executor import run

SOURCE = REPO / "functions" / "handwritten" / "line_count.c"


@pytest.fixture(scope="module")
def wasm(tmp_path_factory) -> bytes:
    return build_c(SOURCE, tmp_path_factory.mktemp("c") / "line_count.wasm")


@pytest.mark.parametrize("profile", ["fast", "teaclave"])
def test_the_hand_written_function_counts_lines(wasm, profile):
    text = b"one\ntwo\nthree\n" * 2000  # several reads of 4 KiB
    result = run(wasm, {"text": "t", "report": "r"}, {"t": text}, ["r"], profile=profile)
    assert result.ok and result.return_value == 6000
    assert result.outputs == {"r": b"6000"}
    without_report = run(wasm, {"text": "t"}, {"t": b"x\n"}, profile=profile)
    assert without_report.return_value == 1 and without_report.outputs == {}
    assert run(wasm, {}, {}, profile=profile).return_value == -2  # no `text` argument
    assert run(wasm, {"text": "missing"}, {}, profile=profile).return_value == -3
