"""`teaclave-infer`: build a function from an ONNX model, run one, serve the platform, run a
worker, or run the MNIST demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from teaclave_client.vocabulary import DEADLINE_S, MEMORY_BYTES, MIB, OUTPUT_BYTES

from .abi import DEFAULT_PROFILE, PROFILES
from .errors import TeaclaveInferError
from .serve import add_serve_arguments, add_worker_arguments, run_serve, run_worker

__all__ = ["main"]


def _shape(text: str) -> tuple[str, list[int]]:
    name, sep, dims = text.rpartition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, [int(d) for d in dims.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected NAME=D1,D2,... e.g. x=1,3,224,224"
        ) from None


def _range(text: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LO,HI e.g. 0,1") from None
    return low, high


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",")]


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="the ONNX model file")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--name", help="function name (default: the model file's stem)")
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default=DEFAULT_PROFILE.name,
        help="wasm features: fast (SIMD) or teaclave (runs on Teaclave's WAMR)",
    )
    parser.add_argument(
        "--weights",
        choices=["embedded", "separate"],
        default="embedded",
        help="weights inside the wasm, or in NAME.weights read as input 'weights'",
    )
    parser.add_argument(
        "--shape",
        type=_shape,
        action="append",
        default=[],
        metavar="NAME=DIMS",
        help="fix a dynamic input shape, e.g. data=1,3,224,224 (repeatable)",
    )
    parser.add_argument("--input-names", type=_names, help="ids of the inputs, in ONNX order: a,b")
    parser.add_argument("--output-names", type=_names, help="ids of the outputs, in ONNX order")
    parser.add_argument(
        "--pixel-range",
        type=_range,
        metavar="LO,HI",
        help="image inputs take pixels scaled to [LO, HI] (recorded in the manifest for "
        "clients' prepare-image), e.g. 0,1",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep intermediates (plan.json, kernels.o, model.c) in OUT/NAME.build",
    )
    parser.add_argument(
        "--schedule",
        choices=["default", "none"],
        default="default",
        help="kernel loop nests: the default rules and tuning records, or TIR as lowered",
    )
    parser.add_argument(
        "--no-winograd",
        dest="winograd",
        action="store_false",
        help="every conv direct: no Winograd F(4x4, 3x3) for 3x3 stride-1 convs of >= 16 "
        "channels (its results differ from the direct conv's by float rounding)",
    )
    parser.add_argument(
        "--tune",
        type=int,
        default=0,
        metavar="TRIALS",
        help="tune each kernel without a record in --tuning-db (MetaSchedule, about TRIALS "
        "candidates a kernel, each timed as wasm in wasmtime), then build with the records",
    )
    parser.add_argument(
        "--tuning-db",
        type=Path,
        metavar="DIR",
        help="a tuning database to use (and, with --tune, to add to); the records shipped "
        "with teaclave-infer are always used too",
    )


def build_progress(line: str) -> None:
    """A build's progress on stderr (stdout says what was written): each stage as it starts,
    then its time, over the same line on a terminal."""
    from .builder import STARTED

    started = line.endswith(STARTED)
    overwrite = started and sys.stderr.isatty()
    print(f"  {line}", end="\r" if overwrite else "\n", file=sys.stderr, flush=True)


def run_build(args: argparse.Namespace) -> int:
    from .builder import BuildOptions, build  # imports TVM: only when building

    options = BuildOptions(
        name=args.name,
        profile=args.profile,
        weights=args.weights,
        shapes=dict(args.shape),
        input_names=args.input_names,
        output_names=args.output_names,
        keep=args.keep,
        pixel_range=args.pixel_range,
        schedule=args.schedule,
        tune_trials=args.tune,
        tuning_db=args.tuning_db,
        winograd=args.winograd,
    )
    result = build(args.model, args.out, options, progress=build_progress)
    memory = result.manifest["memory"]
    print(
        f"wrote {result.wasm} ({result.wasm.stat().st_size} bytes), {result.manifest_path}"
        + (f", {result.weights}" if result.weights else "")
        + f"; arena {memory['arena_bytes']} bytes"
    )
    return 0


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    return key, value


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("function", type=Path, help="the function's .wasm")
    parser.add_argument(
        "--arg",
        type=_pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a task argument (repeatable)",
    )
    parser.add_argument(
        "--input",
        type=_pair,
        action="append",
        default=[],
        metavar="FID=PATH",
        help="grant the file PATH as input FID; also passes the argument FID=FID",
    )
    parser.add_argument(
        "--output",
        type=_pair,
        action="append",
        default=[],
        metavar="FID=PATH",
        help="declare output FID, written to PATH if the call succeeds",
    )
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        help="wasm features (default: from NAME.json beside the wasm, else fast)",
    )
    parser.add_argument("--timeout", type=float, default=DEADLINE_S.default, metavar="S")
    parser.add_argument(
        "--memory-limit", type=int, default=MEMORY_BYTES.default // MIB, metavar="MIB"
    )
    parser.add_argument(
        "--output-limit", type=int, default=OUTPUT_BYTES.default // MIB, metavar="MIB"
    )
    parser.add_argument("--fuel", type=int, metavar="N", help="instruction budget (off by default)")
    parser.add_argument("--cache-dir", type=Path, help="keep compiled modules here")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run_function(args: argparse.Namespace) -> int:
    from .localrun import run_local

    return run_local(args)


def run_demo(args: argparse.Namespace) -> int:
    # The demo is an example (examples/teaclave_examples, in this wheel), not the library.
    from teaclave_examples.mnist.local import run_demo as demo

    return demo(
        args.model,
        args.images,
        args.out,
        args.url,
        args.admin_password_file,
        args.workers,
        args.web,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="teaclave-infer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add_build_arguments(sub.add_parser("build", help="build a WebAssembly function from ONNX"))
    add_run_arguments(sub.add_parser("run", help="run a function once in the sandbox"))
    add_serve_arguments(sub.add_parser("serve", help="start the platform service (HTTP)"))
    add_worker_arguments(
        sub.add_parser(
            "worker",
            help="run tasks from the platform's database; needs its URL, the platform's key "
            "files (--keys) and its blobs (a shared data dir, or --platform URL)",
        )
    )
    demo = sub.add_parser(
        "demo",
        help="build the MNIST function, start a local service and classify the sample digits "
        "as encrypted tasks",
    )
    demo.add_argument("--model", type=Path, default=Path("functions/mnist/mnist.onnx"))
    demo.add_argument(
        "--images",
        type=Path,
        default=Path("functions/mnist/samples"),
        help="a folder of digit images (labels from labels.json or the file names)",
    )
    demo.add_argument("--out", type=Path, default=Path("build/mnist-demo"))
    demo.add_argument("--url", help="use this running service instead of starting one")
    demo.add_argument("--admin-password-file", type=Path, help="its admin's (with --url)")
    demo.add_argument("--workers", type=int, default=2, help="of the local service")
    demo.add_argument(
        "--web", action="store_true", help="then keep the service up for the /demo page (Ctrl-C)"
    )
    return parser


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Runs a command; a TeaclaveInferError is one line on stderr and exit status 1."""
    parser = _parser()
    if prog:
        parser.prog = prog
    args = parser.parse_args(argv)
    try:
        commands = {
            "build": run_build,
            "run": run_function,
            "serve": run_serve,
            "worker": run_worker,
            "demo": run_demo,
        }
        return commands[args.command](args)
    except TeaclaveInferError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
