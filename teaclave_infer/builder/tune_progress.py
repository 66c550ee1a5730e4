"""The tuner's progress as lines of text: a bar of the trials measured out of the search's
budget, each kernel's trials and best time so far, the time spent and an estimate of the rest.

    tune     [########------------] 128/320 trials, 41 s, about 61 s left: fused_conv2d_add_relu
             32/64, best 41.3 us

(one line). MetaSchedule stops a kernel early when its search space has no new candidates, so a
search may end before the bar is full.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["BAR_WIDTH", "TuneProgress"]

BAR_WIDTH = 20


class TuneProgress:
    """Counts the trials of a search over `names`, `trials` at most each, and reports a line to
    `report` after every measured batch. `clock` gives seconds (injected by tests)."""

    def __init__(
        self,
        names: list[str],
        trials: int,
        report: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.trials, self.total = trials, trials * len(names)
        self.report, self.clock = report, clock
        self.done = dict.fromkeys(names, 0)
        self.start = clock()

    def measured(self, name: str, count: int, best_seconds: float | None) -> None:
        """`count` more candidates of kernel `name` were measured; the fastest valid so far took
        `best_seconds` (None: none was valid yet)."""
        self.done[name] += count
        self.report(self.line(name, best_seconds))

    def line(self, name: str, best_seconds: float | None) -> str:
        done = sum(self.done.values())
        filled = min(BAR_WIDTH, BAR_WIDTH * done // max(1, self.total))
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        elapsed = self.clock() - self.start
        left = ""
        if 0 < done < self.total:
            left = f", about {elapsed / done * (self.total - done):.0f} s left"
        best = f"best {best_seconds * 1e6:.1f} us" if best_seconds is not None else "none valid yet"
        return (
            f"tune     [{bar}] {done}/{self.total} trials, {elapsed:.0f} s{left}: "
            f"{name} {self.done[name]}/{self.trials}, {best}"
        )
