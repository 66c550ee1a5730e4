"""The builder as a model owner meets it: the CLI, its errors, the manifest, determinism, and the
teaclave profile's feature set."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import wasmtime
from helpers import assert_matches_onnxruntime, build_model, init, make_model, vi
from onnx import TensorProto as TP
from onnx import helper
from paths import REPO

from teaclave_infer.builder import codegen
from teaclave_infer.cli import main
from teaclave_infer.errors import ModelLoadError, ToolchainError, UnsupportedModelError
from teaclave_infer.executor import EngineKey, ResultKind, engine_for, run


def tiny(dims: list[int | str] | None = None, op: str = "Relu") -> onnx.ModelProto:
    w = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    return make_model(
        [
            helper.make_node(op, ["input.1"], ["r"]),
            helper.make_node("MatMul", ["r", "w"], ["scores"]),
        ],
        [vi("input.1", TP.FLOAT, dims or [1, 3])],
        [vi("scores", TP.FLOAT, None)],
        [init("w", w)],
    )


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def test_cli_builds_and_prints_each_stage_as_it_starts(tmp_path, capsys):
    """Progress on stderr: a stage's name before it runs (the first link takes 25 s), then its
    time; stdout says only what was written."""
    model = save(tiny(), tmp_path / "tiny.onnx")
    assert main(["build", str(model), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr()
    lines = [line.strip() for line in printed.err.splitlines()]
    for stage in ("load", "import", "lower", "plan", "memory", "kernels", "link", "write"):
        started = lines.index(f"{stage:<8} ...")
        assert lines[started + 1].startswith(f"{stage} ") and lines[started + 1].endswith("s")
    assert printed.out.startswith("wrote ") and len(printed.out.splitlines()) == 1
    assert (tmp_path / "out" / "tiny.wasm").exists()


def test_manifest_describes_the_function(tmp_path):
    model = tiny()
    result = build_model(tmp_path, model, "tiny", weights="separate", profile="teaclave")
    m = json.loads(result.manifest_path.read_text())
    assert m["inputs"] == [
        {"id": "input_1", "onnx_name": "input.1", "shape": [1, 3], "dtype": "float32"}
    ]
    assert m["outputs"] == [
        {"id": "scores", "onnx_name": "scores", "shape": [1, 4], "dtype": "float32"}
    ]
    assert m["profile"]["name"] == "teaclave"
    assert m["weights"] == {"mode": "separate", "input_id": "weights"}
    assert "argmax" in m["return_value"]
    assert m["error_codes"]["-5"].startswith("an input is not .npy")
    for file in ("tiny.wasm", "tiny.weights"):
        data = (result.wasm.parent / file).read_bytes()
        assert m["artifacts"][file] == {
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
        }
    assert m["memory"]["arena_bytes"] > 0
    assert set(m["tools"]) >= {"apache-tvm", "onnx", "ziglang"}


def test_build_is_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv(codegen.CACHE_VARIABLE, "off")  # both builds compile
    model = save(tiny(), tmp_path / "tiny.onnx")
    outs = []
    for n in (1, 2):
        build_model(tmp_path / f"b{n}", model, "tiny", weights="separate")
        outs.append({p.name: p.read_bytes() for p in (tmp_path / f"b{n}" / "out").iterdir()})
    assert outs[0].keys() == {"tiny.wasm", "tiny.weights", "tiny.json"}
    assert outs[0] == outs[1]


def test_kernels_compile_once_per_inputs_and_a_cache_hit_builds_the_same_bytes(
    tmp_path, monkeypatch
):
    cache = tmp_path / "cache"
    monkeypatch.setenv(codegen.CACHE_VARIABLE, str(cache))
    model = save(tiny(), tmp_path / "tiny.onnx")
    first = build_model(tmp_path / "b1", model, "tiny").wasm.read_bytes()
    assert len(list(cache.iterdir())) == 1 and cache.stat().st_mode & 0o777 == 0o700

    def compiler_gone(*args, **kw):
        raise RuntimeError("compiled although the cache holds these kernels")

    monkeypatch.setattr(codegen.tirx, "build", compiler_gone)
    assert build_model(tmp_path / "b2", model, "tiny").wasm.read_bytes() == first
    with pytest.raises(ToolchainError):  # another target is another key: a miss
        build_model(tmp_path / "b3", model, "tiny", profile="teaclave")


def test_the_kernel_cache_is_off_or_unwritable_without_failing_a_build(tmp_path, monkeypatch):
    monkeypatch.setenv(codegen.CACHE_VARIABLE, "off")
    assert codegen.kernel_cache() is None
    with monkeypatch.context() as xdg:  # only for this: zig keeps its own cache there too
        xdg.delenv(codegen.CACHE_VARIABLE)
        xdg.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert codegen.kernel_cache() == tmp_path / "xdg" / "teaclave-infer" / "kernels"
    blocked = tmp_path / "file"
    blocked.write_bytes(b"")  # a cache "folder" that is a file: nothing can be written there
    monkeypatch.setenv(codegen.CACHE_VARIABLE, str(blocked / "kernels"))
    model = save(tiny(), tmp_path / "tiny.onnx")
    assert build_model(tmp_path / "b", model, "tiny").wasm.stat().st_size > 0


def test_the_tests_name_the_builders_cache_variable():
    import conftest

    assert conftest.KERNEL_CACHE_VARIABLE == codegen.CACHE_VARIABLE


def test_input_and_output_names_can_be_chosen(tmp_path):
    model = tiny()
    result = build_model(tmp_path, model, "tiny", input_names=["pixels"], output_names=["logits"])
    assert [i["id"] for i in result.manifest["inputs"]] == ["pixels"]
    assert [o["id"] for o in result.manifest["outputs"]] == ["logits"]


def test_dynamic_shape_needs_a_shape_flag(tmp_path):
    model = tiny(["batch", 3])
    with pytest.raises(
        UnsupportedModelError, match=r"input 'input.1' has a dynamic shape.*--shape"
    ):
        build_model(tmp_path, model, "dyn")
    assert not (tmp_path / "out" / "dyn.wasm").exists()
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert_matches_onnxruntime(tmp_path, model, {"input.1": x}, shapes={"input.1": [2, 3]})


def test_teaclave_profile_runs_with_simd_and_bulk_memory_off(tmp_path):
    model = tiny()
    teaclave = build_model(tmp_path / "t", model, "t", profile="teaclave")
    fast = build_model(tmp_path / "f", model, "f", profile="fast")
    engine = engine_for(EngineKey("teaclave", fuel=False, wasm_stack_bytes=512 << 10))
    wasmtime.Module(engine, teaclave.wasm.read_bytes())  # compiles: no SIMD used
    with pytest.raises(wasmtime.WasmtimeError):  # the same engine really refuses SIMD
        wasmtime.Module(engine, fast.wasm.read_bytes())
    refused = run(fast.wasm.read_bytes(), {}, {}, profile="teaclave")
    assert refused.kind is ResultKind.INVALID_MODULE


def test_keep_leaves_the_intermediates(tmp_path):
    build_model(tmp_path, tiny(), "tiny", keep=True)
    kept = {p.name for p in (tmp_path / "out" / "tiny.build").iterdir()}
    assert {"plan.json", "kernels.o", "model.c"} <= kept


def test_malformed_onnx_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07this is not a protobuf of a model\xff\xff")
    with pytest.raises(ModelLoadError, match=r"bad\.onnx: not a valid ONNX model"):
        build_model(tmp_path, bad, "bad")


def test_unsupported_operator_is_named(tmp_path):
    model = tiny(op="Celu")
    with pytest.raises(UnsupportedModelError, match=r"unsupported ONNX operator.*Celu"):
        build_model(tmp_path, model, "celu")


def test_a_data_dependent_operator_is_named_as_in_the_model(tmp_path):
    """NonMaxSuppression is imported, then fails as Relax's `relax.tensor_to_shape`: the error
    names the ONNX operator and its node instead."""
    model = make_model(
        [
            helper.make_node("Relu", ["boxes"], ["positive"], name="relu_0"),
            helper.make_node(
                "NonMaxSuppression", ["positive", "scores", "k"], ["selected"], name="nms_1"
            ),
        ],
        [vi("boxes", TP.FLOAT, [1, 4, 4]), vi("scores", TP.FLOAT, [1, 1, 4])],
        [vi("selected", TP.INT64, None)],
        [init("k", np.array([2], dtype=np.int64))],
    )
    with pytest.raises(UnsupportedModelError) as caught:
        build_model(tmp_path, model, "nms")
    assert str(caught.value).startswith("ONNX operator NonMaxSuppression (node 'nms_1')")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: d / "missing.onnx", "missing.onnx: no such file"),
        (lambda d: (d / "bad.onnx").write_bytes(b"junk") and d / "bad.onnx", "not a valid ONNX"),
    ],
)
def test_build_model_py_errors_are_one_line(tmp_path, setup, message):
    model = setup(tmp_path)
    proc = subprocess.run(
        [sys.executable, str(REPO / "build_model.py"), str(model), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    *progress, error = proc.stderr.strip("\n").splitlines()  # the stages it began, then why
    assert error.startswith("build_model.py: error: ") and message in error
    assert all(line.startswith("  ") and line.endswith("...") for line in progress)
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()
