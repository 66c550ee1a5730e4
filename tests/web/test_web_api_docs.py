"""/docs and /redoc in real headless Chromium (Debian's `chromium`, as .ci/run installs it):
under their content security policy both render the API's operations from files the service
serves, and the policy blocks nothing they need. The one violation allowed is an image from
another host (ReDoc's footer logo): the policy keeping the page from fetching it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

pytestmark = pytest.mark.slow

# Chromium words it `directive: "img-src ..."` for a fetch, `directive 'style-src ...'` inline
VIOLATION = re.compile(r"violates the following Content Security Policy directive:? [\"']([\w-]+)")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr")


def chromium() -> str:
    found = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not found:
        pytest.fail("no Chromium: install Debian's `chromium` (.ci/run does)")
    return found


def rendered(url: str) -> tuple[str, str]:
    """The page's DOM once its scripts ran, and Chromium's log (console messages included)."""
    done = subprocess.run(
        [chromium(), *FLAGS, "--virtual-time-budget=15000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


@pytest.fixture(scope="module")
def service(tmp_path_factory) -> str:
    from conftest import serving

    with serving(tmp_path_factory.mktemp("docs"), workers=0) as base:
        yield base


@pytest.mark.parametrize(("page", "drawn"), [("/docs", "opblock"), ("/redoc", "operation-")])
def test_api_docs_render_under_their_policy(service, page, drawn):
    dom, log = rendered(service + page)
    assert drawn in dom and "/v1/tasks/{task_id}/invoke" in dom  # the operations, rendered
    assert set(VIOLATION.findall(log)) <= {"img-src"}, log[-3000:]
    assert "Uncaught" not in log, log[-3000:]
