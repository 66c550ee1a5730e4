"""Seconds spent in each stage of a pipeline (the executor's run, a worker's task)."""

from __future__ import annotations

import time

__all__ = ["Laps"]


class Laps:
    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.clock = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.times[stage] = now - self.clock
        self.clock = now

    def milliseconds(self, suffix: str = "") -> dict[str, float]:
        return {f"{k}{suffix}": round(v * 1000, 3) for k, v in self.times.items()}
