"""Node's test runner under pytest, one pytest case per Node test.

A suite's test names are listed at collection by running it with a name pattern nothing matches
(Node then reports every test as skipped, and runs none); the suite itself runs once per module,
in TAP, and each pytest case checks its own test's line. A suite that names fixtures is listed
with a plan of them (what the names depend on) and run with the real ones.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from paths import REPO

# Node 20 is the first with WebCrypto's X25519 and Ed25519 and a stable `node --test`.
NODE_MAJOR = 20
FIXTURES_ENV = "TEACLAVE_WEB_FIXTURES"
NOTHING = "^$^"  # a --test-name-pattern no test name matches
_LINE = re.compile(r"^(not )?ok \d+ - (.*?)(?: # (SKIP|TODO)\b.*)?$")


def node() -> str | None:
    """Node's path when it is new enough, else None (the suites' cases then fail, saying so)."""
    path = shutil.which("node")
    if path is None:
        return None
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    major = version.stdout.strip().lstrip("v").split(".")[0]
    return path if major.isdigit() and int(major) >= NODE_MAJOR else None


def require_node() -> str:
    path = node()
    if path is None:
        pytest.fail(f"node >= {NODE_MAJOR} is needed for the web host's tests: install it")
    return path


@dataclass(frozen=True)
class Outcome:
    ok: bool
    directive: str | None  # SKIP or TODO
    details: str  # TAP's YAML block: the failure's message and stack


def _tap(output: str) -> dict[str, Outcome]:
    """The top-level tests of a TAP stream by name (subtests are indented and belong to theirs)."""
    found: dict[str, Outcome] = {}
    lines = output.splitlines()
    for i, line in enumerate(lines):
        match = _LINE.match(line)
        if not match:
            continue
        details = []
        for following in lines[i + 1 :]:
            if _LINE.match(following) or following.startswith("#"):
                break
            details.append(following)
        name = match.group(2).replace("\\#", "#").replace("\\\\", "\\")
        found[name] = Outcome(match.group(1) is None, match.group(3), "\n".join(details))
    return found


def _node_test(suite: Path, fixtures: Path | None, *extra: str) -> str:
    path = require_node()
    env = {k: v for k, v in os.environ.items() if k != FIXTURES_ENV}
    if fixtures is not None:
        env[FIXTURES_ENV] = str(fixtures)
    command = [path, "--test", "--test-reporter=tap", *extra, str(suite)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=REPO, check=False)
    return done.stdout + done.stderr


def listed(suite: Path, plan: Path | None = None) -> list[str]:
    """The suite's test names (with the planned fixtures), or one placeholder when Node is
    missing, so that the missing Node fails a case instead of leaving none."""
    if node() is None:
        return ["node is missing"]
    return sorted(_tap(_node_test(suite, plan, f"--test-name-pattern={NOTHING}")))


class SuiteRun:
    """One run of a suite; `check(name)` is one pytest case's assertion."""

    def __init__(self, suite: Path, fixtures: Path | None = None) -> None:
        self.suite = suite
        self.output = _node_test(suite, fixtures)
        self.outcomes = _tap(self.output)

    def check(self, name: str) -> None:
        require_node()
        outcome = self.outcomes.get(name)
        assert outcome is not None, f"{self.suite.name}: no test {name!r} ran:\n{self.output}"
        assert outcome.directive is None, f"{self.suite.name}: {name!r} was {outcome.directive}"
        assert outcome.ok, f"{self.suite.name}: {name!r} failed:\n{outcome.details}"

    def check_all_listed(self, names: list[str]) -> None:
        """Node ran exactly the listed tests (none was added by the real fixtures alone)."""
        assert sorted(self.outcomes) == sorted(names), self.output
