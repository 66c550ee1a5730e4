"""Run one function invocation in a wasmtime sandbox with Teaclave's file context.

This is the executor's first cut: validation of imports, argv placement and the file context.
Limits (deadline, fuel, memory caps) and the module cache come with the executor issue.
"""

from __future__ import annotations

from ._run import Result, load, run

__all__ = ["Result", "load", "run"]
