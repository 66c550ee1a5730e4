"""The function written by hand in C of docs/guide/functions.md
(functions/handwritten/line_count.c), built with the command its header gives, runs in the
executor on both profiles."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest
from paths import REPO

from teaclave_infer.executor import run

SOURCE = REPO / "functions" / "handwritten" / "line_count.c"


@pytest.fixture(scope="module")
def wasm(tmp_path_factory) -> bytes:
    header = "\n".join(
        line.lstrip(" */") for line in SOURCE.read_text().split("*/")[0].splitlines()
    )
    command = re.search(r"(python -m ziglang cc .*?line_count\.c)", header, re.S)
    assert command, "the build command is in the file's header"
    argv = shlex.split(command.group(1).replace("\\\n", " "))
    out = tmp_path_factory.mktemp("c") / "line_count.wasm"
    argv[argv.index("-o") + 1] = str(out)
    done = subprocess.run([sys.executable, *argv[1:]], cwd=SOURCE.parent, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    return out.read_bytes()


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
