"""Imports go one way: cli → api | worker → domain → (the client's protocol); the worker and the
API never import each other, and the domain knows neither HTTP nor wasm. Everything may import
`teaclave_client.vocabulary`, the bottom layer, which imports only the standard library.

Every import statement counts, also one inside a function: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest
from paths import REPO

ROOT = REPO

# What each package may not import (prefixes of module names).
FORBIDDEN = {
    "teaclave_infer.domain": (
        "teaclave_infer.api",
        "teaclave_infer.worker",
        "teaclave_infer.executor",
        "teaclave_infer.builder",
        "teaclave_infer.cli",
        "teaclave_examples",
        "teaclave_infer.local",
        "fastapi",
        "starlette",
        "wasmtime",
        "tvm",
    ),
    "teaclave_infer.api": (
        "teaclave_infer.worker",
        "teaclave_infer.builder",
        "teaclave_infer.cli",
        "teaclave_examples",
        "tvm",
    ),
    "teaclave_infer.worker": (
        "teaclave_infer.api",
        "teaclave_infer.builder",
        "teaclave_infer.cli",
        "teaclave_examples",
        "fastapi",
        "starlette",
        "tvm",
    ),
    "teaclave_infer.executor": (
        "teaclave_infer.domain",
        "teaclave_infer.api",
        "teaclave_infer.worker",
        "teaclave_infer.builder",
        "teaclave_client",
        "tvm",
        "sqlalchemy",
    ),
    # A process supervisor knows processes, not what runs in them.
    "teaclave_infer.supervisor": (
        "teaclave_infer.api",
        "teaclave_infer.worker",
        "teaclave_infer.domain",
        "teaclave_infer.executor",
        "fastapi",
        "sqlalchemy",
    ),
    "teaclave_client": ("teaclave_infer", "teaclave_examples"),
}
# Exceptions to FORBIDDEN, which every layer may import (they import only the standard library):
# the one definition of the names every layer shares, and the one atomic write.
ALLOWED = ("teaclave_client.vocabulary", "teaclave_client.files")


# Where each top-level package's sources are (the repository root for the others).
SOURCE_ROOTS = {"teaclave_client": ROOT / "client", "teaclave_examples": ROOT / "examples"}


def _module_name(path: Path) -> str:
    base = next((b for b in SOURCE_ROOTS.values() if path.is_relative_to(b)), ROOT)
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str) -> set[str]:
    """Every module that `path` (module `name`) imports, relative imports resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _sources(package: str) -> list[Path]:
    base = SOURCE_ROOTS.get(package.split(".")[0], ROOT)
    path = base / package.replace(".", "/")
    module = path.with_suffix(".py")  # a module, or a package's directory
    return [module] if module.is_file() else sorted(path.rglob("*.py"))


def _hits(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_go_one_way(package: str) -> None:
    sources = _sources(package)
    assert sources, f"no sources for {package}"
    wrong = {
        f"{_module_name(path)} imports {module}"
        for path in sources
        for module in imports_of(path, _module_name(path))
        if _hits(module, FORBIDDEN[package]) and not _hits(module, ALLOWED)
    }
    assert not wrong, "\n".join(sorted(wrong))


@pytest.mark.parametrize("shared", ALLOWED)
def test_what_every_layer_may_import_imports_only_the_standard_library(shared: str) -> None:
    sources = _sources(shared)
    assert sources, f"no sources for {shared}"
    wrong = {
        f"{_module_name(path)} imports {module}"
        for path in sources
        for module in imports_of(path, _module_name(path))
        if module.split(".")[0] not in sys.stdlib_module_names | {"__future__"}
        and not _hits(module, (shared,))
    }
    assert not wrong, "\n".join(sorted(wrong))


def test_the_checker_sees_relative_and_lazy_imports(tmp_path: Path) -> None:
    """The test above could pass by seeing nothing: it must see a lazy relative import."""
    path = tmp_path / "probe.py"
    path.write_text("def f():\n    from ..worker import task\n    import fastapi\n")
    found = imports_of(path, "teaclave_infer.domain.probe")
    assert "teaclave_infer.worker" in found
    assert "fastapi" in found


def test_each_file_is_owned_by_one_wheel() -> None:
    """The main package depends on the client's wheel instead of shipping its files."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"teaclave-client' in pyproject
    assert '"teaclave_client*"' not in pyproject


@pytest.mark.parametrize("pyproject", ["pyproject.toml", "client/pyproject.toml"])
def test_the_build_backend_reads_the_license_field(pyproject: str) -> None:
    """`license = "Apache-2.0"` is a PEP 639 expression: setuptools reads it from 77 on, and an
    older one (allowed by a lower minimum) refuses to build the wheel."""
    config = tomllib.loads((ROOT / pyproject).read_text())
    assert isinstance(config["project"]["license"], str)
    (requirement,) = [r for r in config["build-system"]["requires"] if r.startswith("setuptools")]
    minimum = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", requirement)
    assert minimum is not None and int(minimum.group(1)) >= 77, requirement
