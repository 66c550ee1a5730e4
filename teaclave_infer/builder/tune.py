"""MetaSchedule tuning of the plan's kernels, every candidate timed as wasm inside wasmtime.

    tuned = tune(kernels, PROFILES["fast"], trials=64, database_dir=Path("tuning"))
    later = apply_database(kernels, PROFILES["fast"], Path("tuning"))  # no search: symbol -> func

MetaSchedule's local and RPC runners need a TVM runtime on the device, so `WasmBuilder` links each
candidate into the timing harness of `kernel_bench` and `WasmRunner` times it in-process. The
search space is TVM's default for LLVM CPUs minus everything that needs threads (no `parallel`:
the sandbox has one) or changes a kernel's arguments (no layout rewrite: the plan lays the
weights out). Records live in a JSON database per profile under `database_dir`; a workload is the
kernel under the harness's symbol, so kernels of other models with the same computation share
records.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import tvm
import tvm_ffi
from tvm import s_tir, tirx
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.builder import BuilderInput, BuilderResult, PyBuilder
from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback
from tvm.s_tir.meta_schedule.runner import (
    PyRunner,
    PyRunnerFuture,
    RunnerFuture,
    RunnerInput,
    RunnerResult,
)

from ..abi import Profile, WasmFeature
from ..errors import BuildError, TeaclaveInferError, ToolchainError
from .codegen import wasm_target
from .kernel_bench import ArgSpec, KernelBench, bench_module, build_bench, time_kernel
from .schedule import traced_default
from .tune_progress import TuneProgress

__all__ = [
    "KEEP_RECORDS",
    "TunedKernel",
    "apply_database",
    "compact",
    "lookup",
    "tune",
    "tune_target",
]

Progress = Callable[[str], None]
_NO_PARALLEL = -1  # ParallelizeVectorizeUnroll's "max_jobs_per_core" that disables `parallel`
_NO_VECTORIZE = -1  # and its "max_vectorize_extent" that disables `vectorize`
KEEP_RECORDS = 4  # per workload after tuning: the best for lookups, a few to seed a retune


@dataclass(frozen=True)
class TunedKernel:
    func: tirx.PrimFunc  # scheduled, under the kernel's own global_symbol
    seconds: float  # median seconds per call of this schedule, measured by the tuner


def tune_target(profile: Profile) -> tvm.target.Target:
    """The codegen target plus the `num-cores` MetaSchedule needs: 1, wasm has no threads here."""
    config = dict(wasm_target(profile).export())
    config["num-cores"] = 1
    return tvm.target.Target(config)


def _space(profile: Profile) -> ms.space_generator.PostOrderApply:
    """TVM's LLVM defaults (ScheduleRule/Postproc/Mutator::DefaultLLVM) without parallelism:
    AddRFactor and MutateParallel exist only to make parallel loops, and RewriteLayout would
    change the layout of weight arguments that the plan has already packed. Without SIMD128
    nothing is vectorized: LLVM would only scalarize the vectors again, and under `teaclave`
    LLVM's codegen of one candidate ran for over 5 minutes, twice (1-channel convs of cnn24
    and mnist8, each stopped by hand); without vectors their 64 trials took 33 s."""
    vectorize = 64 if WasmFeature.SIMD128 in profile.features else _NO_VECTORIZE
    rules = ms.schedule_rule
    reuse_write = rules.ReuseType(req="may", levels=[1, 2], scope="global")
    sch_rules = [
        rules.ApplyCustomRule(),
        rules.InlineConstantScalars(),
        rules.AutoInline(False, True, True, True, True, True, disallow_op=["tirx.exp"]),
        rules.MultiLevelTiling("SSRSRS", max_innermost_factor=64, reuse_write=reuse_write),
        rules.ParallelizeVectorizeUnroll(_NO_PARALLEL, vectorize, [0, 16, 64, 512], True),
        rules.RandomComputeLocation(),
    ]
    postprocs = [
        ms.postproc.DisallowDynamicLoop(),
        ms.postproc.RewriteParallelVectorizeUnroll(),
        ms.postproc.RewriteReductionBlock(),
    ]
    mutators = {
        ms.mutator.MutateTileSize(): 0.9,
        ms.mutator.MutateComputeLocation(): 0.05,
        ms.mutator.MutateUnroll(): 0.03,
    }
    return ms.space_generator.PostOrderApply(
        sch_rules=sch_rules, postprocs=postprocs, mutator_probs=mutators
    )


def _strategy(cost_model: str) -> ms.search_strategy.SearchStrategy:
    # The evolutionary search breeds candidates the cost model ranks; with random ranks it only
    # costs time (measured on MNIST, 64 trials: 2.2x the wall time of random sampling, kernels
    # no faster), so without XGBoost candidates are sampled from the space at random.
    if cost_model == "random":
        return ms.search_strategy.ReplayTrace()
    return ms.search_strategy.EvolutionarySearch()


def _error(err: Exception) -> str:
    return f"{type(err).__name__}: {err}"


@derived_object
class WasmBuilder(PyBuilder):
    """Builds each candidate into its own temporary folder (MetaSchedule removes an artifact's
    parent folder once it is measured) as a harness wasm. One at a time: threads gained under
    10% here (TVM's codegen holds the GIL), and TVM's build is not known to be thread-safe."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    def build(self, build_inputs: list[BuilderInput]) -> list[BuilderResult]:
        return [self._build_one(i) for i in build_inputs]

    def _build_one(self, build_input: BuilderInput) -> BuilderResult:
        workdir = Path(tempfile.mkdtemp(prefix="ti-tune-"))
        try:
            wasm = build_bench(build_input.mod, self.profile, workdir, build_input.target)
        except ToolchainError as err:
            shutil.rmtree(workdir, ignore_errors=True)  # no artifact: MetaSchedule would keep it
            return BuilderResult(None, _error(err))
        return BuilderResult(str(wasm), None)


@derived_object
class _Finished(PyRunnerFuture):
    """The runner times synchronously: every future is done when `run` returns."""

    def __init__(self, result: RunnerResult) -> None:
        self._result = result

    def done(self) -> bool:
        return True

    def result(self) -> RunnerResult:
        return self._result


@derived_object
class WasmRunner(PyRunner):
    """Times each built candidate in wasmtime, in this process, one after the other (so that
    candidates do not compete for the CPU). run_secs holds the median seconds per call."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile

    def run(self, runner_inputs: list[RunnerInput]) -> list[RunnerFuture]:
        return [_Finished(self._time(i)) for i in runner_inputs]

    def _time(self, runner_input: RunnerInput) -> RunnerResult:
        specs = [
            ArgSpec(str(info.dtype), tuple(int(d) for d in info.shape))
            for info in runner_input.args_info
        ]
        try:
            bench = KernelBench(Path(runner_input.artifact_path), specs, self.profile)
            return RunnerResult([bench.time()], None)
        except TeaclaveInferError as err:
            return RunnerResult(None, _error(err))


@derived_object
class _Report(PyMeasureCallback):
    """Reports each measured batch (trials of the budget, the best time so far: TuneProgress)
    and keeps each kernel's first failure, for the error raised when no candidate of a kernel
    could be measured."""

    def __init__(self, names: list[str], trials: int, progress: Progress | None) -> None:
        self.names, self.progress = names, progress
        self.counter = TuneProgress(names, trials, progress) if progress else None
        self.best: dict[str, float] = {}
        self.failures: dict[str, str] = {}

    def apply(
        self,
        task_scheduler: ms.task_scheduler.TaskScheduler,
        task_id: int,
        measure_candidates: list[ms.search_strategy.MeasureCandidate],
        builder_results: list[BuilderResult],
        runner_results: list[RunnerResult],
    ) -> None:
        name = self.names[task_id]
        for built, ran in zip(builder_results, runner_results, strict=True):
            error = built.error_msg or ran.error_msg
            if error:
                self.failures.setdefault(name, str(error))
            elif ran.run_secs:
                seconds = float(ran.run_secs[0])
                self.best[name] = min(self.best.get(name, seconds), seconds)
        if self.counter and measure_candidates:  # a task out of new candidates reports none
            self.counter.measured(name, len(measure_candidates), self.best.get(name))


def _database_files(database_dir: Path, profile: Profile) -> tuple[Path, Path]:
    # One database per profile: a schedule's time (and its SIMD) depends on the profile.
    folder = database_dir / profile.name
    return folder / "workloads.json", folder / "records.json"


def _database(database_dir: Path, profile: Profile) -> ms.database.JSONDatabase:
    workloads, records = _database_files(database_dir, profile)
    workloads.parent.mkdir(parents=True, exist_ok=True)
    try:
        return ms.database.JSONDatabase(str(workloads), str(records), allow_missing=True)
    except Exception as err:  # TVM reports a malformed file as one of several types
        raise BuildError(f"tuning database {workloads.parent} is unreadable: {err}") from err


def _workload(func: tirx.PrimFunc) -> tvm.IRModule:
    """The kernel as tune_tir normalizes it ("main", the harness's symbol) and without the
    `schedule_rule` annotations TOPI puts on some blocks (a Winograd conv's constant transform
    matrices): an annotation hands its block to the MetaSchedule rule it names alone, and TOPI's
    Winograd rules failed on our fused kernels ("The block no longer exists in the IRModule"
    while sampling); without them the generic rules see every block."""
    mod = bench_module(func)
    sch = s_tir.Schedule(mod)
    if not any("schedule_rule" in sch.get(b).annotations for b in _root_blocks(sch)):
        return mod
    # A schedule edits the blocks in place where only one function holds them, and the
    # caller's function shares them with `mod`: work on a copy.
    sch = s_tir.Schedule(tvm.ir.load_json(tvm.ir.save_json(mod)))
    for block in _root_blocks(sch):
        if "schedule_rule" in sch.get(block).annotations:
            sch.unannotate(block, "schedule_rule")
    return sch.mod


def _root_blocks(sch: s_tir.Schedule) -> list[s_tir.SBlockRV]:
    return list(sch.get_child_blocks(sch.get_sblock("root")))


def _kernel_funcs(kernels: tvm.IRModule) -> dict[str, tirx.PrimFunc]:
    """symbol -> PrimFunc, for every PrimFunc of the module."""
    funcs = {}
    for gvar, func in kernels.functions_items():
        if isinstance(func, tirx.PrimFunc):
            symbol = func.attrs.get("global_symbol") if func.attrs else None
            funcs[str(symbol or gvar.name_hint)] = func
    return funcs


def lookup(kernels: tvm.IRModule, profile: Profile, database_dir: Path) -> dict[str, TunedKernel]:
    """The best recorded schedule of each kernel that has one (no search). Raises BuildError if
    a record does not apply (a database from another TVM, say)."""
    if not all(f.exists() for f in _database_files(database_dir, profile)):
        return {}
    database, target = _database(database_dir, profile), tune_target(profile)
    found = {}
    for symbol, func in _kernel_funcs(kernels).items():
        workload = _workload(func)
        record = database.query_tuning_record(workload, target, "main")
        if record is None or not record.run_secs:
            continue
        try:
            scheduled = database.query_schedule(workload, target, "main").mod["main"]
        except Exception as err:  # replaying a trace reports TVM errors of several types
            raise BuildError(
                f"kernel {symbol}: its record in {database_dir} does not apply ({err}); "
                "remove the database or tune again with retune=True"
            ) from err
        seconds = float(record.run_secs[0])
        found[symbol] = TunedKernel(scheduled.with_attr("global_symbol", symbol), seconds)
    return found


def apply_database(
    kernels: tvm.IRModule, profile: Profile, database_dir: Path
) -> dict[str, tirx.PrimFunc]:
    """symbol -> tuned PrimFunc (its global_symbol kept) for each kernel with a record."""
    return {symbol: tuned.func for symbol, tuned in lookup(kernels, profile, database_dir).items()}


def _distinct(funcs: dict[str, tirx.PrimFunc]) -> dict[str, tirx.PrimFunc]:
    """One kernel per workload: kernels equal up to their symbol are tuned once."""
    kept: dict[str, tirx.PrimFunc] = {}
    for symbol, func in funcs.items():
        workload = _workload(func)
        if not any(tvm_ffi.structural_equal(workload, _workload(f)) for f in kept.values()):
            kept[symbol] = func
    return kept


_SEARCHES = {
    "xgb": "evolutionary, ranked by XGBoost",
    "random": 'candidates drawn at random (pip install ".[tune]" for a cost model)',
}


def _cost_model() -> str:
    # The XGBoost model learns from each batch; without xgboost MetaSchedule can only rank
    # candidates at random (the search still keeps the fastest it measured).
    return "xgb" if importlib.util.find_spec("xgboost") else "random"


@contextlib.contextmanager
def _without_tensor_intrinsics() -> Iterator[None]:
    """Every TuneContext imports tvm.s_tir.tensor_intrin, which parses ~250 TVMScript intrinsics
    (CUDA, x86, ARM, ...): over a minute here, because TVMScript's prim_func calls
    inspect.stack(), and inspect scans all of sys.modules for each import frame. Our space
    tensorizes nothing, so an empty module stands in while tune_tir runs."""
    name = "tvm.s_tir.tensor_intrin"
    if name in sys.modules:
        yield
        return
    placeholder = sys.modules[name] = types.ModuleType(name)
    try:
        yield
    finally:
        if sys.modules.get(name) is placeholder:
            del sys.modules[name]


def _search(
    funcs: dict[str, tirx.PrimFunc],
    profile: Profile,
    trials: int,
    database_dir: Path,
    report: _Report,
    seed: int | None,
) -> None:
    """One tune_tir over all the kernels: a task each, `trials` candidates at most per task."""
    mod = tvm.IRModule({symbol: _workload(f)["main"] for symbol, f in funcs.items()})
    meta_logger = logging.getLogger("tvm.s_tir.meta_schedule")
    if meta_logger.level == logging.NOTSET:
        meta_logger.setLevel(logging.WARNING)  # else MetaSchedule prints DEBUG lines to stdout
    cost_model = _cost_model()
    if report.progress:
        report.progress(f"tune     search: {_SEARCHES[cost_model]}")
    callbacks = [*ms.measure_callback.MeasureCallback.create("default"), report]
    logs = tempfile.TemporaryDirectory(prefix="ti-tune-logs-")  # MetaSchedule's, not kept
    with logs as work_dir, _without_tensor_intrinsics():
        try:
            ms.tune_tir(
                mod,
                tune_target(profile),
                work_dir,
                max_trials_global=trials * len(funcs),
                max_trials_per_task=trials,
                num_trials_per_iter=min(trials, 32),
                builder=WasmBuilder(profile),
                runner=WasmRunner(profile),
                database=_database(database_dir, profile),
                cost_model=cost_model,
                measure_callbacks=callbacks,
                space=_space(profile),
                strategy=_strategy(cost_model),
                seed=seed,
                num_tuning_cores=os.cpu_count() or 1,
            )
        except Exception as err:  # MetaSchedule's C++ errors surface as several Python types
            raise ToolchainError("MetaSchedule failed while tuning the kernels", str(err)) from err


def _record_defaults(
    funcs: dict[str, tirx.PrimFunc], profile: Profile, database_dir: Path, report: _Report
) -> None:
    """Times each kernel's default schedule in the same harness and records it as one more
    candidate, so that a lookup returns whichever of the tuned and the default is faster."""
    database, target = _database(database_dir, profile), tune_target(profile)
    for symbol, func in funcs.items():
        workload_mod = _workload(func)
        sch = traced_default(workload_mod)
        if sch is None or sch.trace is None:
            continue
        seconds = time_kernel(sch.mod["main"], profile)
        workload = database.commit_workload(workload_mod)
        args = ms.arg_info.ArgInfo.from_prim_func(workload_mod["main"])
        database.commit_tuning_record(
            ms.database.TuningRecord(sch.trace, workload, [seconds], target, args)
        )
        report.best[symbol] = min(report.best.get(symbol, seconds), seconds)
        if report.progress:
            report.progress(f"tune     {symbol}: default schedule {seconds * 1e6:.1f} us")


def compact(database_dir: Path, profile: Profile, keep: int = KEEP_RECORDS) -> None:
    """Rewrites the profile's database with the `keep` fastest valid records of each workload
    only. Loading costs about 8 ms a record (MNIST after 64 trials a kernel: 333 records,
    2.5 s, 1.4 MB), and every build loads the database."""
    database = _database(database_dir, profile)
    workloads: dict[int, ms.database.Workload] = {}
    for record in database.get_all_tuning_records():
        workloads.setdefault(tvm_ffi.structural_hash(record.workload.mod), record.workload)
    paths = _database_files(database_dir, profile)
    fresh_paths = [p.with_name(f".{p.name}.new") for p in paths]
    for path in fresh_paths:
        path.unlink(missing_ok=True)
    fresh = ms.database.JSONDatabase(*map(str, fresh_paths), allow_missing=True)
    for workload in workloads.values():
        committed = fresh.commit_workload(workload.mod)
        for r in database.get_top_k(workload, keep):
            record = ms.database.TuningRecord(r.trace, committed, r.run_secs, r.target, r.args_info)
            fresh.commit_tuning_record(record)
    for fresh_path, path in zip(fresh_paths, paths, strict=True):
        # Each file is replaced whole (TVM wrote it: teaclave_client.files cannot); the pair is
        # not atomic (records name workloads by line), so a crash between the two replaces
        # leaves a database to delete.
        os.replace(fresh_path, path)


def tune(
    kernels: tvm.IRModule,
    profile: Profile,
    trials: int,
    database_dir: Path,
    progress: Progress | None = None,
    *,
    retune: bool = False,
    seed: int | None = None,
) -> dict[str, TunedKernel]:
    """Tunes every kernel of `kernels` without a record (every one with retune=True), about
    `trials` measured candidates each, adds the records to the database in
    `database_dir/PROFILE/` (the default schedule is timed and recorded too), keeps the
    KEEP_RECORDS fastest a kernel, and returns `lookup`'s answer. Raises BuildError if no
    candidate of a kernel could be measured, the default included (the first error is given)."""
    if trials < 1:
        raise BuildError(f"trials must be at least 1, not {trials}")
    funcs = _kernel_funcs(kernels)
    known = {} if retune else lookup(kernels, profile, database_dir)
    pending = _distinct({s: f for s, f in funcs.items() if s not in known})
    if pending:
        report = _Report(sorted(pending), trials, progress)
        _search(pending, profile, trials, database_dir, report, seed)
        _record_defaults(pending, profile, database_dir, report)
        compact(database_dir, profile)
        failed = sorted(set(report.failures) - set(report.best))
        if failed:
            raise BuildError(
                f"kernel {failed[0]}: no candidate could be measured: {report.failures[failed[0]]}"
            )
    return lookup(kernels, profile, database_dir)
