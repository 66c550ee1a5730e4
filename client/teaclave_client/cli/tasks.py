"""Tasks: `task create|assign|approve|invoke|cancel|status|result`."""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..keystore import write_private
from ..models import Task, TaskResult
from .common import Command, Output, add_command, client, pairs, plain

__all__ = ["add_commands", "owners", "report"]


def owners(items: Sequence[str], me: str) -> dict[str, list[str]]:
    """SLOT=ID[,ID]|me options as slot -> user ids."""
    return {
        slot: (users.split(",") if users != "me" else [me])
        for slot, users in pairs(items, "owner").items()
    }


def cmd_task_create(args: argparse.Namespace) -> Output:
    with client(args) as session:
        me = session.my_id()
        function = session.find_function(args.function)
        arguments = function.default_arguments() | pairs(args.arg, "--arg")
        inputs = {s["name"]: [me] for s in function.inputs} | owners(args.input_owner, me)
        outputs = {s["name"]: [me] for s in function.outputs} | owners(args.output_owner, me)
        assign = pairs(args.input, "--input"), pairs(args.output, "--output")
        if any(assign) or args.approve or args.invoke:  # the caller's steps, in one request
            task = session.submit_task(
                function.id,
                *assign,
                arguments=arguments,
                inputs_ownership=inputs,
                outputs_ownership=outputs,
                approve=args.approve or args.invoke,
                invoke=args.invoke,
            )
        else:
            task = session.create_task(function.id, arguments, inputs, outputs)
    if task.stopped and not (args.json or args.quiet):
        print(f"task {task.id}: {task.stopped}", file=sys.stderr)
    return plain(task), task.id


def cmd_task_assign(args: argparse.Namespace) -> Output:
    with client(args) as session:
        task = session.assign_data(
            args.task,
            pairs(args.input, "--input"),
            pairs(args.output, "--output"),
            approve=args.approve,
        )
    return plain(task), task.state


def _task_verb(verb: str) -> Command:
    def command(args: argparse.Namespace) -> Output:
        with client(args) as session:
            options = {"invoke": True} if getattr(args, "invoke", False) else {}
            task: Task = getattr(session, f"{verb}_task")(args.task, **options)
        return plain(task), task.state

    return command


def cmd_task_status(args: argparse.Namespace) -> Output:
    with client(args) as session:
        task = (
            session.wait(args.task, args.wait_timeout) if args.wait else session.get_task(args.task)
        )
    kind = f" ({task.result_kind})" if task.result_kind else ""
    return plain(task), f"{task.state}{kind}"


def _decoded(data: bytes) -> Any:
    """An output for --json: the array if it is a small .npy, else its size and digest."""
    try:
        array = np.load(io.BytesIO(data), allow_pickle=False)
        if array.size <= 4096:
            return {"npy": array.tolist(), "bytes": len(data)}
    except ValueError:
        pass
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def report(result: TaskResult, out_dir: Path | None) -> dict[str, Any]:
    """A verified result as --json shows it; its outputs written to `out_dir` if given."""
    if out_dir is not None:
        for slot, data in result.outputs.items():
            write_private(out_dir / f"{result.task.id}.{slot}.npy", data)
    return {
        "task_id": result.task.id,
        "return_value": result.return_value,
        "receipt_verified": True,
        "outputs": {slot: _decoded(data) for slot, data in result.outputs.items()},
        "outputs_without_key": result.missing_keys,
        "timings_ms": (result.task.result or {}).get("timings", {}),
    }


def cmd_task_result(args: argparse.Namespace) -> Output:
    with client(args) as session:
        result = session.get_task_result(args.task)
    body = report(result, args.out_dir)
    return body, f"{result.return_value}  (receipt verified)"


def _assign_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", action="append", default=[], metavar="SLOT=FILE_ID")
    parser.add_argument("--output", action="append", default=[], metavar="SLOT=FILE_ID")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    tasks = sub.add_parser("task", help="tasks").add_subparsers(required=True)
    help = "create a task (you own every slot by default)"
    p = add_command(tasks, common, "create", cmd_task_create, help)
    p.add_argument("function", help="id or name")
    p.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--input-owner", action="append", default=[], metavar="SLOT=ID[,ID]|me")
    p.add_argument("--output-owner", action="append", default=[], metavar="SLOT=ID[,ID]|me")
    _assign_options(p)
    p.add_argument("--approve", action="store_true", help="and approve (once the data is in)")
    p.add_argument("--invoke", action="store_true", help="and approve and invoke (if all did)")
    p = add_command(tasks, common, "assign", cmd_task_assign, "assign your files to a task")
    p.add_argument("task")
    _assign_options(p)
    p.add_argument("--approve", action="store_true", help="and approve, in the same request")
    for verb in ("approve", "invoke", "cancel"):
        p = add_command(tasks, common, verb, _task_verb(verb), f"{verb} a task")
        p.add_argument("task")
        if verb == "approve":
            p.add_argument("--invoke", action="store_true", help="and invoke, if yours was last")
    p = add_command(tasks, common, "status", cmd_task_status, "a task's state")
    p.add_argument("task")
    p.add_argument("--wait", action="store_true", help="until it ends")
    p.add_argument("--wait-timeout", type=float, default=300.0, metavar="S")
    help = "verify, fetch and decrypt a task's result"
    p = add_command(tasks, common, "result", cmd_task_result, help)
    p.add_argument("task")
    p.add_argument("--out-dir", type=Path, help="write the decrypted outputs here")
