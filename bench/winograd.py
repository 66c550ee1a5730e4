#!/usr/bin/env python3
"""Each conv kernel that Winograd takes, timed as wasm in wasmtime (builder/kernel_bench.py) with
its default schedule, direct and Winograd, interleaved over rounds; the best of the rounds.

    python bench/winograd.py [mnist cnn24 cnn24@64 resnet50 ...]   (MODEL[@BATCH])

GFLOP/s are the direct conv's FLOPs (2 x MACs) over each time.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "bench")]

from graphs import MODELS, with_batch  # noqa: E402

from teaclave_infer.abi import PROFILES  # noqa: E402
from teaclave_infer.builder.importer import input_shapes, to_relax  # noqa: E402
from teaclave_infer.builder.kernel_bench import KernelBench, _bench, arg_specs  # noqa: E402
from teaclave_infer.builder.lower import lower  # noqa: E402
from teaclave_infer.builder.plan import kernel_functions, read_plan  # noqa: E402
from teaclave_infer.builder.schedule import default_schedule  # noqa: E402

ROUNDS = 5


def conv_kernels(model: onnx.ModelProto, winograd: bool) -> dict[tuple, object]:
    """The conv kernels by (input shape, output shape): the same conv in both lowerings."""
    mod = lower(to_relax(model, input_shapes(model, {})), winograd=winograd)
    funcs = kernel_functions(mod, read_plan(mod))
    found = {}
    for gv, func in funcs.functions.items():
        if "conv" in gv.name_hint:
            specs = arg_specs(func)
            found[(specs[0].shape, specs[-1].shape, len(specs))] = (gv.name_hint, func)
    return found


def bench(func: object, work: Path) -> KernelBench:
    work.mkdir()
    return _bench(default_schedule(func), PROFILES["fast"], work)  # type: ignore[arg-type]


def compare(label: str, model: onnx.ModelProto) -> None:
    direct, winograd = conv_kernels(model, False), conv_kernels(model, True)
    for key, (name, func) in winograd.items():
        if "winograd" not in name or key not in direct:
            continue
        _, plain = direct[key]
        weight, out = arg_specs(plain)[1].shape, arg_specs(plain)[-1].shape
        flops = 2 * int(np.prod(out)) * int(np.prod(weight[1:]))
        with tempfile.TemporaryDirectory() as tmp:
            benches = [bench(plain, Path(tmp) / "d"), bench(func, Path(tmp) / "w")]
            times: list[list[float]] = [[], []]
            for _ in range(ROUNDS):
                for bench_, seconds in zip(benches, times, strict=True):
                    seconds.append(bench_.time())
        best = [min(t) for t in times]
        print(
            f"{label:9s} {list(weight)} -> {list(out)}: direct {best[0] * 1e3:.3f} ms "
            f"({flops / best[0] / 1e9:.1f} GFLOP/s), winograd {best[1] * 1e3:.3f} ms "
            f"({flops / best[1] / 1e9:.1f} GFLOP/s), x{best[0] / best[1]:.2f}",
            flush=True,
        )


def main() -> None:
    for arg in sys.argv[1:] or ["mnist", "cnn24", "cnn24@64"]:
        name, _, batch = arg.partition("@")
        model = MODELS[name]()
        compare(arg, with_batch(model, int(batch)) if batch else model)


if __name__ == "__main__":
    main()
