"""MkDocs hook: the CLI reference, generated from the commands' own `--help`.

A page holding `<!-- cli-help: PROGRAM -->` gets, in its place, the help of PROGRAM and of
every subcommand under it, each found in the usage line's `{a,b,c}`. The programs are the
installed console scripts, called in this process (no subprocess: seconds for all of them), so
the reference follows the parsers wherever the code that builds them moves."""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

MARKER = re.compile(r"<!-- cli-help: ([\w-]+) -->")
CHOICES = re.compile(r"^\s+\{([\w,-]+)\}", re.MULTILINE)  # a subparsers' positional line


def help_text(program: str, main: Callable[..., Any], argv: list[str]) -> str:
    """What `PROGRAM *argv --help` prints, read from this process's stdout."""
    out, named = io.StringIO(), sys.argv[0]
    sys.argv[0] = program  # argparse names the program after it (else: "mkdocs")
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            main([*argv, "--help"])
    finally:
        sys.argv[0] = named
    return out.getvalue()


def section(program: str, main: Callable[..., Any], argv: list[str]) -> list[str]:
    text = help_text(program, main, argv)
    if not text:
        raise ValueError(f"{program} {' '.join(argv)} --help printed nothing")
    level = "#" * min(2 + len(argv), 4)
    lines = [f"{level} `{' '.join([program, *argv])}`", "", "```text", text.rstrip(), "```", ""]
    if found := CHOICES.search(text):
        for choice in found.group(1).split(","):
            lines += section(program, main, [*argv, choice])
    return lines


def reference(program: str) -> str:
    (script,) = entry_points(group="console_scripts", name=program)
    os.environ["COLUMNS"] = "100"  # argparse wraps to it: the same text on every machine
    return "\n".join(section(program, script.load(), []))


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return MARKER.sub(lambda m: reference(m.group(1)), markdown)
