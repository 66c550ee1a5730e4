"""The vendored JS modules of client/web/vendor: each with its licence and listed in its README at
its version; the page's import map resolves every bare import among them to the file Node
resolves; /demo serves them (JavaScript only, nothing outside vendor/) under a policy that allows
that import map and no other inline script."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import pytest
from fastapi.testclient import TestClient
from paths import WEB

from teaclave_infer.api.routes.web import IMPORT_MAP, POLICY

MODULES = WEB / "vendor" / "node_modules"
PACKAGES = ["@hpke/core", "@hpke/common", "@hpke/dhkem-x25519", "canonicalize"]
BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.S)  # their doc comments show imports too
BARE_IMPORT = re.compile(r'^(?:import|export)\s[^;"\']*?\bfrom\s*"([^"./][^"]*)"', re.M)


def package(name: str) -> dict:
    return json.loads((MODULES / name / "package.json").read_text())


def import_map() -> tuple[str, dict[str, str]]:
    (text,) = IMPORT_MAP.findall((WEB / "index.html").read_text(encoding="utf-8"))
    return text, json.loads(text)["imports"]


@pytest.mark.parametrize("name", PACKAGES)
def test_each_package_has_its_licence_and_is_listed_at_its_version(name: str) -> None:
    meta = package(name)
    assert meta["name"] == name
    assert (MODULES / name / "LICENSE").read_text().strip()
    readme = (WEB / "vendor" / "README.md").read_text()
    assert f"| `{name}` | {meta['version']} | {meta['license']} |" in readme


def test_the_import_map_resolves_every_bare_import_as_node_does() -> None:
    _, imports = import_map()
    bare = {
        spec
        for js in MODULES.rglob("*.js")
        for spec in BARE_IMPORT.findall(BLOCK_COMMENT.sub("", js.read_text(encoding="utf-8")))
    }
    assert bare == set(imports), "the import map must name exactly the bare imports in vendor/"
    for spec, target in imports.items():
        entry = package(spec)["exports"]["."]["import"]  # what Node resolves the name to
        assert (WEB / target).resolve() == (MODULES / spec / entry).resolve(), spec


def test_the_policy_allows_the_import_map_by_hash_and_no_other_inline_script() -> None:
    text, _ = import_map()
    digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    script_src = next(d for d in POLICY.split("; ") if d.startswith("script-src "))
    assert script_src == f"script-src 'self' 'wasm-unsafe-eval' 'sha256-{digest}'"


def test_the_vendored_modules_are_served_and_nothing_else(client: TestClient) -> None:
    served = client.get("/demo/vendor/node_modules/@hpke/core/esm/mod.js")
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/javascript")
    assert served.headers["content-security-policy"] == POLICY
    assert served.content == (MODULES / "@hpke/core/esm/mod.js").read_bytes()
    for path in (
        "node_modules/@hpke/core/LICENSE",
        "node_modules/@hpke/core/package.json",
        "README.md",
        "node_modules/@hpke/core/esm/missing.js",
        "..%2Fteaclave-crypto.js",
        "node_modules/..%2F..%2Fteaclave-crypto.js",
        "%2Fetc%2Fpasswd",
        "%00.js",
        "x" * 5000 + ".js",
    ):
        assert client.get(f"/demo/vendor/{path}").status_code == 404, path
