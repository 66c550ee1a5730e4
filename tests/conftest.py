"""The test tiers, and the fixtures the packages' tests share: a fresh service on SQLite (and on
PostgreSQL too when TEACLAVE_TEST_POSTGRES_URL is set) and the committed MNIST builds.

Two tiers: `--tier fast` collects no test that builds a function (tests/builder, tests/runtime
and whatever is marked `build`), runs none marked `slow` and none on PostgreSQL, and refuses any
import of TVM; the default, `--tier full`, runs everything.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cheap_kdf import CHEAP, ENTRY
from fastapi.testclient import TestClient
from prebuilt import Prebuilt, prebuilt
from service_helpers import ADMIN_PASSWORD, DATABASES, fresh_postgres, login

from teaclave_infer.api import create_app
from teaclave_infer.domain.settings import Settings
from teaclave_infer.local import local_service

# Test folders whose every test builds a function (with TVM, or zig for the C runtime).
BUILD_FOLDERS = ("builder", "runtime")
TESTS = Path(__file__).resolve().parent
# The builder's kernel cache (teaclave_infer.builder.codegen.CACHE_VARIABLE, which this module
# cannot import: the fast tier has no TVM): one per run, shared by its workers and the processes
# they start, so that a run neither reads nor fills the user's cache.
KERNEL_CACHE_VARIABLE = "TEACLAVE_KERNEL_CACHE"
_RUN_CACHE: list[str] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--tier",
        choices=("fast", "full"),
        default="full",
        help="fast: no test that builds a function or is slow, SQLite only, no TVM import; "
        "full (default): every test",
    )


def fast_tier(config: pytest.Config) -> bool:
    return bool(config.getoption("--tier") == "fast")


class _NoTvm:
    """An import hook of the fast tier: TVM (and so the builder) is not there."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "tvm" or name.startswith("tvm."):
            raise ImportError(f"the fast tier imports no TVM (a test needs {name}: mark it build)")


def pytest_configure(config: pytest.Config) -> None:
    if fast_tier(config):
        sys.meta_path.insert(0, _NoTvm())
    if not hasattr(config, "workerinput"):  # the controller: xdist's workers inherit it
        _RUN_CACHE.append(tempfile.mkdtemp(prefix="teaclave-test-kernels-"))
        os.environ[KERNEL_CACHE_VARIABLE] = _RUN_CACHE[0]


def pytest_unconfigure(config: pytest.Config) -> None:
    for folder in _RUN_CACHE:
        shutil.rmtree(folder, ignore_errors=True)


def _in_build_folder(path: Path) -> bool:
    parts = path.relative_to(TESTS).parts if path.is_relative_to(TESTS) else ()
    return bool(parts) and parts[0] in BUILD_FOLDERS


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    return True if fast_tier(config) and _in_build_folder(collection_path) else None


def _full_tier_only(item: pytest.Item) -> bool:
    """Builds a function, takes long, or runs on PostgreSQL (the fast tier's storage is SQLite)."""
    if any(item.get_closest_marker(mark) for mark in ("build", "slow")):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and "postgresql" in callspec.params.values()


def _cost(item: pytest.Item) -> int:
    """0 for the slowest kind of test, then 1, 2: run first, they leave no worker idle at the
    end of a run while another finishes a minute-long build."""
    if item.get_closest_marker("slow"):
        return 0
    return 1 if item.get_closest_marker("build") or _in_build_folder(item.path) else 2


def _shares_a_fixture(item: pytest.Item) -> bool:
    """Whether the test uses a fixture its module's tests share: module-scoped (a live service,
    builds), or session-scoped and defined in the module (the web host's Node run)."""
    info = getattr(item, "_fixtureinfo", None)
    defs = [d[-1] for d in info.name2fixturedefs.values() if d] if info is not None else []
    module = item.nodeid.split("::")[0]
    return any(d.scope == "module" or (d.scope == "session" and d.baseid == module) for d in defs)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # xdist (--dist loadgroup) runs a group on one worker, so that its shared fixture is made
    # once, not on each worker; a group keeps pytest's order (which makes a parametrized module
    # fixture once per parameter) and takes its slowest test's place in the run.
    groups = {i.nodeid: i.path.stem for i in items if _shares_a_fixture(i)}
    group_cost: dict[str, int] = {}
    for item in items:
        if (group := groups.get(item.nodeid)) is not None:
            item.add_marker(pytest.mark.xdist_group(group))
            group_cost[group] = min(group_cost.get(group, 2), _cost(item))
    # stable: each kind keeps its order
    items.sort(key=lambda i: group_cost[groups[i.nodeid]] if i.nodeid in groups else _cost(i))
    if fast_tier(config):
        left_out = [i for i in items if _full_tier_only(i)]
        if left_out:
            config.hook.pytest_deselected(items=left_out)
            items[:] = [i for i in items if not _full_tier_only(i)]


@pytest.fixture(autouse=True)
def cheap_password_kdf(monkeypatch) -> None:
    """Argon2id at 64 KiB and 1 pass (still 4 lanes) in the tests' own process, as in the
    services they serve (tests/cheap_kdf.py). Only the tests reach these parameters."""
    from teaclave_infer.domain import passwords

    monkeypatch.setattr(passwords, "PARAMETERS", CHEAP)


@pytest.fixture(scope="session")
def migrated(tmp_path_factory) -> dict[str, Path | str]:
    """An empty database at the newest revision per database kind, made once per test process
    and copied for each test: migrating costs 0.1 s a test on SQLite, 0.2 s on PostgreSQL.
    (The migrations themselves are tested from an empty database in tests/domain.)"""
    from teaclave_infer.domain.db import make_engine, migrate

    sqlite = tmp_path_factory.mktemp("migrated") / "teaclave.db"
    made = {"sqlite": sqlite}
    if "postgresql" in DATABASES:
        made["postgresql"] = fresh_postgres(os.environ["TEACLAVE_TEST_POSTGRES_URL"], "migrated")
    for kind, where in made.items():
        engine = make_engine(f"sqlite:///{where}" if kind == "sqlite" else str(where))
        migrate(engine)
        engine.dispose()  # the last connection: SQLite folds its WAL in, PostgreSQL may copy
    assert not sqlite.with_name("teaclave.db-wal").exists()
    return made


@pytest.fixture(params=DATABASES)
def settings(request, tmp_path, migrated) -> Settings:
    (tmp_path / "admin.txt").write_text(ADMIN_PASSWORD + "\n")
    db = None
    if request.param == "postgresql":
        url = os.environ["TEACLAVE_TEST_POSTGRES_URL"]
        db = fresh_postgres(url, template=str(migrated["postgresql"]))
    else:
        (tmp_path / "data").mkdir(mode=0o700)
        shutil.copyfile(migrated["sqlite"], tmp_path / "data" / "teaclave.db")
    return Settings(
        data_dir=tmp_path / "data", db_url=db, admin_password_file=tmp_path / "admin.txt"
    )


@pytest.fixture
def client(settings) -> TestClient:
    return TestClient(create_app(settings))


@pytest.fixture
def admin(client) -> dict[str, str]:
    return login(client, "admin", ADMIN_PASSWORD)


@pytest.fixture(scope="session")
def mnist_build() -> Prebuilt:
    """The MNIST function with separate weights (inputs `input_img` and `weights`), prebuilt."""
    return prebuilt("separate")


@pytest.fixture(scope="session")
def mnist_embedded() -> Prebuilt:
    """MNIST with its weights inside and its pixel range in the manifest (what `infer` runs),
    prebuilt."""
    return prebuilt("embedded")


@pytest.fixture(scope="session")
def mnist(mnist_build) -> tuple[bytes, bytes]:
    """The MNIST function's wasm and manifest, for registering."""
    return mnist_build.wasm.read_bytes(), mnist_build.manifest_path.read_bytes()


@contextmanager
def serving(tmp_path: Path, workers: int) -> Iterator[str]:
    """`teaclave-infer serve` as its own process on a free loopback port; yields its URL. Its
    JSON log is tmp_path / "live" / "serve.log"."""
    (tmp_path / "admin.txt").write_text(ADMIN_PASSWORD)
    with local_service(tmp_path / "live", tmp_path / "admin.txt", workers, entry=ENTRY) as base:
        yield base


@pytest.fixture(scope="module")
def module_service(tmp_path_factory) -> Iterator[str]:
    """One service with two worker processes for a whole test module (the client tests share
    it)."""
    with serving(tmp_path_factory.mktemp("service"), workers=2) as base:
        yield base


@pytest.fixture
def live_service(tmp_path) -> Iterator[str]:
    """The service with no workers (tasks stay Staged)."""
    with serving(tmp_path, workers=0) as base:
        yield base


@pytest.fixture
def live_service_with_workers(tmp_path) -> Iterator[str]:
    """The service with two worker processes; its JSON log (theirs too) is
    tmp_path / "live" / "serve.log"."""
    with serving(tmp_path, workers=2) as base:
        yield base
