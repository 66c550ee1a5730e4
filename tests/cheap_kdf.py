"""The tests' cheap password KDF, and `teaclave-infer` run with it: what the tests' served
subprocesses run. It lives with the tests, not in the package, so no deployment can select it:
production's parameters (domain/passwords.py) have no flag, setting or variable.

Run as a script: `python tests/cheap_kdf.py serve ...` is `teaclave-infer serve ...` with
Argon2id at 64 KiB and 1 pass (still 4 lanes).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from teaclave_infer.domain import passwords

CHEAP = dataclasses.replace(passwords.PARAMETERS, time_cost=1, memory_cost=64)
# serve_process's `entry`: this file as the interpreter's script.
ENTRY = (str(Path(__file__).resolve()),)

if __name__ == "__main__":
    passwords.PARAMETERS = CHEAP
    from teaclave_infer.cli import main

    sys.exit(main())
