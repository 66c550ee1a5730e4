"""`teaclave-infer run`: the MNIST function on a local file, and failures as exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from guests import OUT, guest
from helpers import npy
from paths import MNIST, REPO
from teaclave_client.images import prepare_image
from teaclave_client.vocabulary import ResultKind

from teaclave_infer.cli import main


@pytest.fixture(scope="module")
def mnist_wasm(mnist_embedded) -> Path:
    return Path(mnist_embedded.wasm)


def test_mnist_through_the_cli(tmp_path, mnist_wasm, capsys):
    labels = json.loads((MNIST / "samples" / "labels.json").read_text())
    name, label = sorted(labels.items())[5]
    image = tmp_path / "digit.npy"
    image.write_bytes(npy(prepare_image(MNIST / "samples" / name, (1, 1, 28, 28))))
    scores = tmp_path / "scores.npy"
    argv = [
        "run",
        str(mnist_wasm),
        "--input",
        f"input_img={image}",
        "--output",
        f"scores={scores}",
        "--json",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "ok" and report["return_value"] == label
    assert report["outputs"]["scores"]["bytes"] == scores.stat().st_size
    assert int(np.argmax(np.load(scores))) == label
    assert main(argv[:-3]) == 0  # plain output: the return value alone
    assert capsys.readouterr().out.strip() == str(label)
    assert list((tmp_path / "cache").glob("*.cwasm"))


def test_a_trap_is_one_line_and_no_output(tmp_path, capsys):
    wasm = tmp_path / "trap.wasm"
    wasm.write_bytes(guest(f"(drop (call $create (i32.const {OUT}))) (unreachable)"))
    out = tmp_path / "out.bin"
    assert main(["run", str(wasm), "--output", f"out={out}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "trap" in err[0] and "unreachable" in err[0]
    assert not out.exists()


def test_a_timeout_names_its_kind(tmp_path, capsys):
    wasm = tmp_path / "loop.wasm"
    wasm.write_bytes(guest("(loop (br 0)) (i32.const 0)"))
    assert main(["run", str(wasm), "--timeout", "0.2"]) == 2
    assert ResultKind.TIMEOUT in capsys.readouterr().err


def test_a_missing_input_file_is_an_error(tmp_path, capsys):
    wasm = tmp_path / "ok.wasm"
    wasm.write_bytes(guest("(i32.const 0)"))
    assert main(["run", str(wasm), "--input", f"x={tmp_path / 'none.npy'}"]) == 1
    assert "none.npy" in capsys.readouterr().err


def test_the_documented_example_writes_only_into_a_temp_folder(tmp_path, mnist_wasm):
    """docs/guide/run.md's commands, run verbatim by bash in a stand-in for the repository:
    they classify the sample and leave nothing in the working directory."""
    page = (REPO / "docs" / "guide" / "run.md").read_text()
    script = page.split("```sh\n", 1)[1].split("```", 1)[0]
    repo, temp = tmp_path / "repo", tmp_path / "tmp"
    (repo / "build" / "mnist").mkdir(parents=True)
    temp.mkdir()
    for name in ("mnist.wasm", "mnist.json"):
        shutil.copy(mnist_wasm.parent / name, repo / "build" / "mnist" / name)
    (repo / "functions").symlink_to(MNIST.parent)
    before = sorted(repo.rglob("*"))
    bin_dir = Path(sys.executable).parent  # the console scripts of this environment
    env = {**os.environ, "TMPDIR": str(temp), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    report = done.stdout[done.stdout.index("\n{") + 1 :]  # after prepare-image's line
    assert json.loads(report)["return_value"] == 7, done.stdout  # digit_7_a.png
    assert sorted(repo.rglob("*")) == before
    (scores,) = temp.glob("*/scores.npy")
    assert int(np.argmax(np.load(scores))) == 7


def test_a_negative_return_value_is_explained_by_the_manifest_and_fails(tmp_path, capsys):
    """A function's own error code is not `ok`: the manifest's `error_codes` say what it means,
    the exit status is not 0, and no output is written."""
    wasm = tmp_path / "neg.wasm"
    wasm.write_bytes(guest(f"(drop (call $create (i32.const {OUT}))) (i32.const -6)"))
    codes = {"-6": "the weights file is missing (as this function's manifest words it)"}
    (tmp_path / "neg.json").write_text(json.dumps({"name": "neg", "error_codes": codes}))
    out = tmp_path / "out.bin"
    argv = ["run", str(wasm), "--output", f"out={out}"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert captured.out == "" and len(err) == 1
    assert "-6" in err[0] and codes["-6"] in err[0] and "function_error" in err[0]
    assert main([*argv, "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "function_error" and report["return_value"] == -6
    assert codes["-6"] in report["message"] and report["outputs"] == {}
    assert not out.exists()


def test_a_negative_return_value_without_a_manifest_still_fails(tmp_path, capsys):
    wasm = tmp_path / "bare.wasm"
    wasm.write_bytes(guest("(i32.const -5)"))
    assert main(["run", str(wasm)]) == 2
    err = capsys.readouterr().err
    assert "returned -5" in err and "not .npy" in err  # this version's meaning of -5
