"""The web page at /demo: static files from client/web, no CDN, none of them generated.

Only the files named here are served (not the tests beside them), each with a content security
policy that allows this origin only, plus compiling WebAssembly (`'wasm-unsafe-eval'`)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from ..problems import Problem

router = APIRouter(tags=["web"], include_in_schema=False)

WEB = Path(__file__).resolve().parent.parent / "web"  # a link to client/web in the source tree
FILES = {  # served as /demo/NAME
    "index.html", "demo.css", "demo.js", "digit-image.js", "teaclave-abi.js",
    "teaclave-crypto.js", "teaclave-host.js", "teaclave-host-worker.js", "teaclave-platform.js",
}  # fmt: skip
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}
POLICY = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; "
    "img-src 'self' data: blob:; style-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


# Each route answers HEAD as GET, without the body: link checkers and monitors ask with HEAD.
@router.api_route("/demo", methods=["GET", "HEAD"])
def demo() -> RedirectResponse:
    return RedirectResponse("/demo/", status_code=308)


@router.api_route("/demo/", methods=["GET", "HEAD"])
def demo_index() -> FileResponse:
    return demo_file("index.html")


@router.api_route("/demo/{name}", methods=["GET", "HEAD"])
def demo_file(name: str) -> FileResponse:
    if name not in FILES or not (WEB / name).is_file():
        raise Problem(404, "Not found", f"no page file {name}")
    headers = {"Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff"}
    return FileResponse(WEB / name, media_type=TYPES[(WEB / name).suffix], headers=headers)
