"""ONNX model -> a Teaclave-compatible WebAssembly function (the only package importing tvm).

    result = build(Path("mnist.onnx"), Path("build/mnist"), BuildOptions(name="mnist"))

writes `mnist.wasm`, `mnist.json` (the manifest) and, with separate weights, `mnist.weights`.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import onnx
import tvm
from teaclave_client.files import write_atomic

from ..abi import PROFILES, WEIGHTS_ID, Profile, safe_id
from ..errors import BuildError, UnsupportedModelError
from .arena import ArenaLayout, plan_arena
from .blob import pack_blob
from .codegen import compile_kernels, kernel_cache, workspace_bytes
from .importer import graph_inputs, input_shapes, load_onnx, named_by_onnx, to_relax
from .link import IoIds, LinkInputs, link, model_source
from .lower import lower
from .manifest import make_manifest
from .plan import Plan, kernel_functions, read_plan
from .schedule import schedule_kernels
from .tune import TunedKernel, lookup, tune

__all__ = ["SHIPPED_TUNING", "STARTED", "BuildOptions", "BuildResult", "build"]

# Tuning records made with `--tune` for the shipped MNIST model (the command is in
# docs/guide/build.md); any model whose kernels have the same computation reuses them.
SHIPPED_TUNING = Path(__file__).resolve().parent / "tuning"

T = TypeVar("T")
STARTED = "..."  # a progress line that ends so says a stage started; its time follows
_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class BuildOptions:
    name: str | None = None  # default: the model file's stem
    profile: str = "fast"  # a key of abi.PROFILES
    weights: str = "embedded"  # or "separate"
    shapes: Mapping[str, Sequence[int]] = field(default_factory=dict)  # input name -> static shape
    input_names: Sequence[str] | None = None  # ids for the inputs, in ONNX order
    output_names: Sequence[str] | None = None
    keep: bool = False  # keep intermediates in OUT/NAME.build/
    pixel_range: tuple[float, float] | None = None  # image inputs' pixel values, for clients
    schedule: str = "default"  # "default": tuning records, else schedule.py's rules; "none"
    tune_trials: int = 0  # > 0: tune kernels without a record in tuning_db first
    tuning_db: Path | None = None  # records to use (and add to); SHIPPED_TUNING is always read
    winograd: bool = True  # 3x3 stride-1 convs that qualify (lower.py) as Winograd F(4x4, 3x3)


@dataclass(frozen=True)
class BuildResult:
    wasm: Path
    manifest_path: Path
    weights: Path | None
    manifest: dict[str, Any]


class _Stages:
    """Runs named stages, reporting each one as it starts ("link     ...": the first link takes
    25 s) and its time when it ends."""

    def __init__(self, progress: Callable[[str], None] | None) -> None:
        self.progress = progress

    def __call__(self, name: str, fn: Callable[..., T], *args: Any) -> T:
        if self.progress:
            self.progress(f"{name:<8} {STARTED}")
        start = time.perf_counter()
        result = fn(*args)
        if self.progress:
            self.progress(f"{name:<8} {time.perf_counter() - start:7.2f}s")
        return result


def build(
    model_path: Path,
    out_dir: Path,
    options: BuildOptions = BuildOptions(),
    progress: Callable[[str], None] | None = None,
) -> BuildResult:
    """Builds NAME.wasm, NAME.json (and NAME.weights) in out_dir. Raises BuildError (with a
    message naming the file, input or operator at fault); nothing is written then."""
    profile, name = _check_options(model_path, options)
    keep_dir = out_dir / f"{name}.build" if options.keep else None
    stage = _Stages(progress)
    model = stage("load", load_onnx, model_path)  # parse + onnx.checker + known operators
    io = stage("names", _io_ids, model, options)  # function-level ids of inputs and outputs
    shapes = input_shapes(model, options.shapes)  # every input dimension static
    mod = stage("import", to_relax, model, shapes)  # ONNX -> Relax
    try:
        mod = stage("lower", lower, mod, options.winograd)  # legalize + fuse -> call_tir
        plan = stage("plan", read_plan, mod)  # tensors, constants, calls, graph inputs/outputs
    except UnsupportedModelError as err:  # Relax's words: say it in the model's
        raise named_by_onnx(err, model, shapes) from err
    layout = stage("memory", plan_arena, plan)  # liveness-based offsets in one arena
    _check_fits(plan, layout, profile, io)
    blob, model_id = stage("pack", pack_blob, plan, layout)  # plan + constants, the weights
    kernels = kernel_functions(mod, plan)
    if options.tune_trials:
        stage("tune", tune, kernels, profile, options.tune_trials, options.tuning_db, progress)
    kernels = stage("schedule", _schedule, kernels, profile, options)  # tuned or default
    objects = stage("kernels", compile_kernels, kernels, profile, kernel_cache())  # TIR -> wasm32
    embedded = blob if options.weights == "embedded" else None
    workspace = workspace_bytes(kernels)
    link_in = LinkInputs(plan, io, model_id, embedded, len(blob), layout.arena_bytes, workspace)
    wasm = stage("link", _link, link_in, objects, profile, keep_dir)  # runtime + kernels -> wasm
    artifacts = {f"{name}.wasm": wasm}
    if options.weights == "separate":
        artifacts[f"{name}.weights"] = blob
    manifest = make_manifest(
        name, model_path, plan, io, profile, options.weights, layout, artifacts, options.pixel_range
    )
    return stage("write", _write, out_dir, artifacts, manifest)  # whole files or nothing


def _check_options(model_path: Path, options: BuildOptions) -> tuple[Profile, str]:
    if options.profile not in PROFILES:
        raise BuildError(f"unknown profile {options.profile!r}: choose one of {sorted(PROFILES)}")
    if options.schedule not in ("default", "none"):
        raise BuildError(f"unknown schedule {options.schedule!r}: default or none")
    if options.tune_trials < 0 or (options.tune_trials and options.schedule == "none"):
        raise BuildError("tune_trials must be >= 0, and tuning needs schedule='default'")
    if options.tune_trials and options.tuning_db is None:
        raise BuildError("tuning needs a database directory (--tuning-db) for its records")
    if options.weights not in ("embedded", "separate"):
        raise BuildError(f"unknown weights mode {options.weights!r}: embedded or separate")
    name = options.name or model_path.stem
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise BuildError(f"function name {name!r}: use letters, digits, '_', '-', '.'")
    return PROFILES[options.profile], name


def _ids(kind: str, names: list[str], given: Sequence[str] | None) -> list[tuple[str, str]]:
    ids = list(given) if given is not None else [safe_id(n) for n in names]
    if len(ids) != len(names):
        raise BuildError(f"--{kind}-names gives {len(ids)} ids for {len(names)} {kind}s")
    bad = [i for i in ids if not _ID.fullmatch(i) or i == WEIGHTS_ID]
    if bad:
        raise BuildError(f"{kind} id {bad[0]!r}: use letters, digits and '_', not {WEIGHTS_ID!r}")
    if len(set(ids)) != len(ids):
        raise BuildError(f"{kind} ids {ids} are not unique: set them with --{kind}-names")
    return list(zip(ids, names, strict=True))


def _io_ids(model: onnx.ModelProto, options: BuildOptions) -> IoIds:
    inputs = _ids("input", [i.name for i in graph_inputs(model)], options.input_names)
    outputs = _ids("output", [o.name for o in model.graph.output], options.output_names)
    io = IoIds(inputs, outputs)
    clash = set(io.input_ids) & set(io.output_ids)
    if clash:
        raise BuildError(f"ids {sorted(clash)} name both an input and an output")
    return io


def _check_fits(plan: Plan, layout: ArenaLayout, profile: Profile, io: IoIds) -> None:
    if len(plan.inputs) != len(io.inputs) or len(plan.outputs) != len(io.outputs):
        raise UnsupportedModelError(
            f"the lowered graph has {len(plan.inputs)} inputs and {len(plan.outputs)} outputs, "
            f"the ONNX graph {len(io.inputs)} and {len(io.outputs)}"
        )
    need = layout.arena_bytes + sum(plan.tensors[t].nbytes for t in plan.constants)
    if profile.heap_limit is not None and need > profile.heap_limit:
        raise UnsupportedModelError(
            f"profile {profile.name}: weights + arena need {need / 2**20:.1f} MiB, "
            f"more than its {profile.heap_limit >> 20} MiB heap"
        )


def _schedule(kernels: tvm.IRModule, profile: Profile, options: BuildOptions) -> tvm.IRModule:
    """Each kernel with its fastest recorded schedule, else the default rules' schedule."""
    if options.schedule == "none":
        return kernels
    tuned: dict[str, TunedKernel] = {}
    for database in (SHIPPED_TUNING, options.tuning_db):  # the user's records win
        if database is not None:
            tuned |= lookup(kernels, profile, database)
    return schedule_kernels(kernels, {symbol: t.func for symbol, t in tuned.items()})


def _link(inputs: LinkInputs, kernels: bytes, profile: Profile, keep_dir: Path | None) -> bytes:
    with tempfile.TemporaryDirectory(prefix="ti-build-") as tmp:
        work = keep_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        (work / "kernels.o").write_bytes(kernels)
        (work / "model.c").write_text(model_source(inputs))
        if keep_dir:
            (work / "plan.json").write_text(json.dumps(_plan_json(inputs.plan), indent=1))
        return link(work, work / "kernels.o", work / "model.c", profile, inputs.embedded_blob)


def _plan_json(plan: Plan) -> dict[str, Any]:
    return {
        "kernels": plan.kernels,
        "tensors": [
            {"shape": list(t.shape), "dtype": t.dtype, "constant": i in plan.constants}
            for i, t in enumerate(plan.tensors)
        ],
        "calls": [
            {"kernel": plan.kernels[c.kernel], "inputs": c.inputs, "outputs": c.outputs}
            for c in plan.calls
        ],
        "inputs": plan.inputs,
        "outputs": plan.outputs,
    }


def _write(out_dir: Path, artifacts: dict[str, bytes], manifest: dict[str, Any]) -> BuildResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    for file, data in artifacts.items():
        write_atomic(out_dir / file, data)
    manifest_path = out_dir / f"{manifest['name']}.json"
    write_atomic(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())
    paths = [out_dir / file for file in artifacts]
    weights = next((p for p in paths if p.suffix == ".weights"), None)
    return BuildResult(paths[0], manifest_path, weights, manifest)
