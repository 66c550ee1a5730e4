"""The pages the service serves without a login: /docs and /redoc load nothing from another host
(every asset they name is served here, under their content security policy), and every page
route answers HEAD as it answers GET, without a body."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient
from service_helpers import ADMIN_PASSWORD

from teaclave_infer.api import create_app
from teaclave_infer.domain.settings import Settings

PAGES = ("/docs", "/redoc")
ABSOLUTE = re.compile(r"(?:https?:)?//[^\s\"'<>]+", re.IGNORECASE)


class _References(HTMLParser):
    """Every URL an HTML page names in an attribute (src, href, spec-url, ...)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if v and (k in ("src", "href") or k.endswith("-url"))]


def references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    return parser.urls


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> TestClient:
    tmp = tmp_path_factory.mktemp("web")
    (tmp / "admin.txt").write_text(ADMIN_PASSWORD)
    return TestClient(
        create_app(Settings(data_dir=tmp / "data", admin_password_file=tmp / "admin.txt"))
    )


@pytest.mark.parametrize("page", PAGES)
def test_api_docs_name_no_other_host(client, page):
    r = client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert ABSOLUTE.findall(r.text) == []  # no http://, https:// or //host anywhere
    policy = r.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self';" in policy  # no inline script
    assert "<script>" not in r.text  # every script is a file, which the policy allows


@pytest.mark.parametrize("page", PAGES)
def test_api_docs_assets_are_served_here(client, page):
    urls = references(client.get(page).text)
    assert [u for u in urls if u.endswith(".js")]  # the bundle, at least
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        r = client.get(url)
        assert r.status_code == 200, url
        assert r.content, url


def test_swagger_setup_script_names_only_the_schema(client):
    """The one script of ours: it loads /openapi.json, and no validator from another host."""
    script = client.get("/docs/assets/swagger-init.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith(
        "text/javascript"
    )
    assert '"/openapi.json"' in script.text and "validatorUrl: null" in script.text
    assert ABSOLUTE.findall(script.text) == []
    assert client.get("/openapi.json").status_code == 200


@pytest.mark.parametrize(
    "name", ["nope.js", "..%2Fcore.py", "__init__.py", "core.py", "%2e%2e%2fREADME.md"]
)
def test_only_the_named_assets_are_served(client, name):
    assert client.get(f"/docs/assets/{name}").status_code == 404


@pytest.mark.parametrize(
    "path",
    ["/demo", "/demo/", "/demo/demo.js", "/docs", "/redoc", "/docs/assets/swagger-ui.css"],
)
def test_head_answers_as_get(client, path):
    get = client.get(path, follow_redirects=False)
    head = client.head(path, follow_redirects=False)
    assert head.status_code == get.status_code and get.status_code in (200, 308)
    assert head.content == b""
    for name in ("content-type", "content-security-policy", "location"):
        assert head.headers.get(name) == get.headers.get(name), name


def test_head_of_a_missing_page_file_is_404(client):
    assert client.head("/demo/nope.js").status_code == 404
