"""The page's platform client (client/web/teaclave-platform.js) under Node (>= 20: fetch and
WebCrypto) against a live service with workers: a run is six requests, the task created,
assigned, approved and invoked in one, and its end waited for with one long-poll, never a timer
loop; a task whose function needs another's approval is not run, and the page says why."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from typing import Any

import pytest
from guests import ECHO, guest
from paths import WEB
from service_helpers import ADMIN_PASSWORD, BUILDER
from teaclave_client import Client

SCRIPT = """
import { Platform } from %(module)s;
const config = JSON.parse(process.argv[1]);
const sent = [];
const fetched = globalThis.fetch;
globalThis.fetch = (url, init) => {
  sent.push(`${init?.method ?? "GET"} ${new URL(url).pathname}${new URL(url).search}`);
  return fetched(url, init);
};
const platform = new Platform(config.url);
await platform.login(config.username, config.password);
await platform.platformKeys();
const fns = await platform.functions();
const out = {};
for (const [name, id] of Object.entries(config.functions)) {
  sent.length = 0;
  const fn = fns.find((f) => f.id === id);
  try {
    const run = await platform.runTask(fn, { in: new Uint8Array([1, 2, 3]) }, ["out"]);
    out[name] = { returnValue: run.returnValue, out: Array.from(run.outputs.out), sent: [...sent] };
  } catch (err) {
    out[name] = { error: err.message, status: err.status ?? null, sent: [...sent] };
  }
}
console.log(JSON.stringify(out));
"""


def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("node (>= 20) is needed to test client/web/teaclave-platform.js: install it")
    return path


def echo(owner: Client, **spec: Any) -> str:
    return owner.register_function(
        guest(ECHO),
        {**BUILDER, "name": "echo"},
        inputs=[{"name": "in"}],
        outputs=[{"name": "out"}],
        arguments=[{"name": n, "default": n} for n in ("in", "out")],
        **spec,
    ).id


def test_a_page_run_is_six_requests_and_one_long_poll(module_service):
    suffix = secrets.token_hex(3)
    owner_name, user_name = f"web-fo-{suffix}", f"web-do-{suffix}"
    with Client(module_service) as admin, Client(module_service) as owner:
        admin.login("admin", ADMIN_PASSWORD)
        admin.register_user(owner_name, "owner-password-1", "FunctionOwner")
        user = admin.register_user(user_name, "user-password-1", "DataOwner")
        owner.login(owner_name, "owner-password-1")
        functions = {
            "public": echo(owner, public=True),
            "private": echo(owner, allowlist=[user.id]),  # its owner approves each use
        }
    config = {
        "url": module_service,
        "username": user_name,
        "password": "user-password-1",
        "functions": functions,
    }
    script = SCRIPT % {"module": json.dumps((WEB / "teaclave-platform.js").as_uri())}
    done = subprocess.run(
        [node(), "--input-type=module", "-e", script, json.dumps(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout.strip().splitlines()[-1])

    public = runs["public"]
    assert public.get("error") is None, public
    assert public["returnValue"] == 3 and public["out"] == [1, 2, 3]
    methods = [line.split(" ")[0] for line in public["sent"]]
    assert methods == ["POST", "POST", "POST", "POST", "GET", "GET"], public["sent"]
    (wait,) = [s for s in public["sent"] if s.startswith("GET /v1/tasks/")]
    assert "?wait=" in wait  # one long-poll: no timer loop of GETs

    private = runs["private"]
    assert "approval of" in private["error"], private
    assert private["sent"][-1].startswith("POST /v1/tasks") and len(private["sent"]) == 4
