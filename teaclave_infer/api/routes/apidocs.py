"""The interactive API docs, /docs (Swagger UI) and /redoc (ReDoc), with no CDN.

FastAPI's own pages load their scripts from a CDN and set up Swagger UI with an inline script.
Here the two bundles come from the `fastapi-offline` wheel (MIT; it ships Swagger UI and ReDoc,
kept current; `swagger-ui-bundle` has no ReDoc, and vendoring the npm `swagger-ui-dist` and
`redoc` would add 2.6 MB to the repository), and the pages are ours: no inline script, so they
carry a content security policy as strict as /demo's. Only the files named here are served."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response

from ..problems import Problem

router = APIRouter(tags=["docs"], include_in_schema=False)

ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
INIT_SWAGGER = """window.ui = SwaggerUIBundle({
  url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true, validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout",
});
"""
SOURCES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
# ReDoc's styled-components writes <style> elements, and its search runs in a Worker made from a
# blob: URL; Swagger UI needs neither (both checked in Chromium). Images: the bundles' icons are
# data: URLs; ReDoc's footer logo is on its CDN, and img-src keeps the browser from fetching it.
POLICY = {
    "swagger": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:",
    "redoc": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:",
}
COMMON = "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>teaclave-infer API: {title}</title>
<link rel="icon" href="/docs/assets/favicon.png">{head}</head>
<body>{body}</body></html>
"""
SWAGGER_PAGE = PAGE.format(
    title="Swagger UI",
    head='<link rel="stylesheet" href="/docs/assets/swagger-ui.css">',
    body='<div id="swagger-ui"></div><script src="/docs/assets/swagger-ui-bundle.js"></script>'
    '<script src="/docs/assets/swagger-init.js"></script>',
)
REDOC_PAGE = PAGE.format(
    title="ReDoc",
    head="",  # ReDoc starts itself from the <redoc> element: no script of ours
    body='<redoc spec-url="/openapi.json"></redoc>'
    '<script src="/docs/assets/redoc.standalone.js"></script>',
)


def _headers(page: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": f"{POLICY[page]}; {COMMON}",
        "X-Content-Type-Options": "nosniff",
    }


@router.api_route("/docs", methods=["GET", "HEAD"])
def swagger() -> HTMLResponse:
    return HTMLResponse(SWAGGER_PAGE, headers=_headers("swagger"))


@router.api_route("/redoc", methods=["GET", "HEAD"])
def redoc() -> HTMLResponse:
    return HTMLResponse(REDOC_PAGE, headers=_headers("redoc"))


@router.api_route("/docs/assets/{name}", methods=["GET", "HEAD"])
def asset(name: str) -> Response:
    """A file of the bundles; immutable for a given fastapi-offline, so browsers may keep it."""
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=86400"}
    if name == "swagger-init.js":
        return Response(INIT_SWAGGER, media_type=SOURCES["swagger-ui-bundle.js"], headers=headers)
    if name not in SOURCES:
        raise Problem(404, "Not found", f"no docs asset {name}")
    return FileResponse(ASSETS / name, media_type=SOURCES[name], headers=headers)
