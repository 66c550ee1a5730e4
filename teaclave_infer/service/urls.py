"""One spelling for each place a file can be registered at, so that the platform can tell when
two registrations name the same place however they spell it (`HTTP://Host:80/a/./b` and
`http://host/a/b`; `file:///r/x/../y` and `file:///r/y`)."""

from __future__ import annotations

import hashlib
import posixpath
import re
from urllib.parse import quote, unquote, urlsplit, urlunsplit

__all__ = ["UrlError", "canonical", "url_key"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# What RFC 3986 lets stay unescaped in a path; everything else is percent-encoded, in upper case.
_PATH_SAFE = "/-._~!$&'()*+,;=:@"


class UrlError(ValueError):
    """A URL the platform does not accept, with the reason."""


def _path(raw: str) -> str:
    path = posixpath.normpath("/" + unquote(raw, errors="strict"))
    path = re.sub("^/+", "/", path)  # normpath keeps a leading "//"
    return path + "/" if raw.endswith("/") and path != "/" else path


def canonical(url: str) -> str:
    """The URL in one spelling: `blob:<id>`, `file://<normalised absolute path>`, or
    `http(s)://host[:port]/path[?query]` with the host in lower case, no default port, no dot
    segments, percent-escapes normalised and no fragment. UrlError for userinfo, a file:// URL
    with a host, or anything else."""
    try:
        return _canonical(url)
    except UnicodeError:
        raise UrlError("the URL is not valid UTF-8 (percent-escapes included)") from None


def _canonical(url: str) -> str:
    if url.startswith("blob:"):
        return url.lower()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise UrlError(f"not a URL: {err}") from None
    scheme = parts.scheme.lower()
    if "@" in parts.netloc:
        raise UrlError("a URL with a user name or password is refused")
    if scheme == "file":
        if parts.hostname not in (None, "", "localhost"):
            raise UrlError("a file:// URL names a path on the worker, not a host")
        return "file://" + quote(_path(parts.path), safe=_PATH_SAFE)
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise UrlError("only blob:, file:// and http(s)://host URLs are accepted")
    host = parts.hostname.lower().rstrip(".")
    host = f"[{host}]" if ":" in host else host
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, quote(_path(parts.path), safe=_PATH_SAFE), parts.query, ""))


def url_key(url: str) -> str:
    """The index key of a URL's place: SHA-256 of its canonical spelling; "" for the blob
    store, whose places are guarded by blob ownership instead (an output's `blob:` is a fresh
    blob each time)."""
    if url.startswith("blob:"):
        return ""
    return hashlib.sha256(canonical(url).encode()).hexdigest()
