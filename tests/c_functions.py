"""Functions written by hand in C, built with the command their header gives (so the header
stays true): one definition for every test that builds one, and for the committed builds that
the fast tier runs without building (`python tests/c_functions.py` rebuilds them)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from paths import REPO

TEACLAVE_FUNCTIONS = REPO / "examples" / "teaclave" / "functions"
SIMPLE_ADD = TEACLAVE_FUNCTIONS / "simple_add.c"
MILLIONAIRE_PROBLEM = TEACLAVE_FUNCTIONS / "millionaire_problem.c"
PSI = TEACLAVE_FUNCTIONS / "psi.c"
# The sources whose .wasm beside them is committed.
COMMITTED = (SIMPLE_ADD, MILLIONAIRE_PROBLEM, PSI)


def build_command(source: Path) -> list[str]:
    """The `python -m ziglang cc ...` command in the source's header comment, as argv."""
    comment = source.read_text().split("*/")[0]
    header = "\n".join(line.lstrip(" */") for line in comment.splitlines())
    command = re.search(rf"(python -m ziglang cc .*?{re.escape(source.name)})", header, re.S)
    assert command, f"{source.name}: the build command is in the file's header"
    return shlex.split(command.group(1).replace("\\\n", " "))


def build_c(source: Path, out: Path) -> bytes:
    """Builds `source` into `out` with its header's command; the module's bytes."""
    argv = build_command(source)
    argv[argv.index("-o") + 1] = str(out)
    done = subprocess.run([sys.executable, *argv[1:]], cwd=source.parent, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    return out.read_bytes()


def main() -> None:
    for source in COMMITTED:
        build_c(source, source.with_suffix(".wasm"))
        print(f"rebuilt {source.with_suffix('.wasm').relative_to(REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main()
