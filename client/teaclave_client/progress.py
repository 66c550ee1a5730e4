"""A progress bar on stderr, drawn only on a terminal (written here: a dozen lines, not worth a
dependency)."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """One status line on stderr, redrawn in place (only on a terminal)."""

    def __init__(self, steps: int, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.steps, self.done, self.start = max(1, steps), 0, time.monotonic()

    def __call__(self, label: str, advance: int = 1) -> None:
        self.done = min(self.steps, self.done + advance)
        if not self.enabled:
            return
        filled = round(24 * self.done / self.steps)
        bar = "#" * filled + "." * (24 - filled)
        elapsed = time.monotonic() - self.start
        sys.stderr.write(f"\r[{bar}] {label:<40.40} {elapsed:6.1f} s")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\r" + " " * 80 + "\r")
            sys.stderr.flush()
