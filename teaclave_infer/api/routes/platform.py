"""The platform itself: its public keys, its health, its metrics (Prometheus text format)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from ... import __version__
from ...domain.errors import Unavailable
from ...domain.lifecycle import State
from ...domain.models import Task
from ..deps import PlatformDep

router = APIRouter(tags=["platform"])


@router.get("/v1/platform/keys")
def platform_keys(platform: PlatformDep) -> dict[str, Any]:
    """The X25519 key file keys are sealed to, and the Ed25519 key receipts are signed with."""
    return platform.keys.public()


@router.get("/v1/health")
def health(platform: PlatformDep) -> dict[str, Any]:
    try:
        with platform.sessions() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as err:
        raise Unavailable(f"the database does not answer: {type(err).__name__}") from None
    return {
        "status": "ok",
        "version": __version__,
        "database": "ok",
        "workers": platform.settings.workers,  # the processes `serve` supervises
    }


class TaskCollector(Collector):
    """Tasks by state and result kind, counted in the database at each scrape (so every
    worker's tasks count, wherever it runs)."""

    def __init__(self, sessions: sessionmaker[Session], workers: int) -> None:
        self.sessions, self.workers = sessions, workers

    def collect(self) -> Iterator[GaugeMetricFamily]:
        tasks = GaugeMetricFamily(
            "teaclave_tasks", "Tasks by state and result kind", labels=["state", "result_kind"]
        )
        with self.sessions() as session:
            rows = session.execute(
                select(Task.state, Task.result_kind, func.count()).group_by(
                    Task.state, Task.result_kind
                )
            ).all()
        counts = {(state, kind or ""): n for state, kind, n in rows}
        for each in State:  # every state is reported, at 0 when empty
            counts.setdefault((each.value, ""), 0)
        for (state, kind), n in sorted(counts.items()):
            tasks.add_metric([state, kind], n)
        yield tasks
        yield GaugeMetricFamily(
            "teaclave_worker_processes",
            "Worker processes the service supervises (standalone workers not counted)",
            value=self.workers,
        )


def metrics_registry(sessions: sessionmaker[Session], workers: int) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TaskCollector(sessions, workers))
    return registry


@router.get("/metrics", include_in_schema=False)
def metrics(platform: PlatformDep) -> Response:
    return Response(generate_latest(platform.metrics), media_type=CONTENT_TYPE_LATEST)
