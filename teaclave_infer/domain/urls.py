"""One spelling for each place a file can be registered at, so that the platform can tell when
two registrations name the same place however they spell it (`HTTP://Host:80/a/./b` and
`http://host/a/b`; `file:///r/x/../y` and `file:///r/y`)."""

from __future__ import annotations

import hashlib
import ipaddress
import posixpath
import re
import socket
from urllib.parse import quote, unquote, urlsplit, urlunsplit

__all__ = ["UrlError", "canonical", "host_name", "url_key"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# What RFC 3986 lets stay unescaped in a path; everything else is percent-encoded, in upper case.
_PATH_SAFE = "/-._~!$&'()*+,;=:@"


class UrlError(ValueError):
    """A URL the platform does not accept, with the reason."""


_IPV4_SPELLING = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def host_name(host: str) -> str:
    """A host in the one spelling compared and resolved: lower case, no trailing dot, IDNA
    (so full-width letters are their ASCII selves), an IPv4 address in dotted decimal however it
    was spelt (`0x5db8d70e`, `127.1`, `2130706433`), an IPv6 address compressed and an
    IPv4-mapped one as its IPv4 address. UrlError for a host IDNA cannot encode or a zone id."""
    host = host.lower().rstrip(".")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise UrlError("the host name is not a valid international name") from None
    if ":" in host:
        if "%" in host:
            raise UrlError("an IPv6 address with a zone id is refused")
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError:
            raise UrlError("the host is not a valid IPv6 address") from None
        return str(address.ipv4_mapped or address.compressed)
    if _IPV4_SPELLING.match(host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            raise UrlError("the host is not a valid IPv4 address") from None
    return host


def _path(raw: str) -> str:
    path = posixpath.normpath("/" + unquote(raw, errors="strict"))
    return re.sub("^/+", "/", path)  # normpath keeps a leading "//"


def _escapes(query: str) -> str:
    """Percent-escapes of unreserved characters decoded, the others in upper case: the same
    query in one spelling (reserved ones like `&` and `=` keep their meaning)."""

    def one(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in _UNRESERVED else match.group(0).upper()

    return re.sub("%([0-9a-fA-F]{2})", one, query)


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
        return "file://" + quote(_path(parts.path), safe=_PATH_SAFE)  # no trailing "/" either
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise UrlError("only blob:, file:// and http(s)://host URLs are accepted")
    host = host_name(parts.hostname)
    host = f"[{host}]" if ":" in host else host
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = quote(_path(parts.path), safe=_PATH_SAFE)
    return urlunsplit((scheme, netloc, path, _escapes(parts.query), ""))


def url_key(url: str) -> str:
    """The index key of a URL's place: SHA-256 of its canonical spelling; "" for the blob
    store, whose places are guarded by blob ownership instead (an output's `blob:` is a fresh
    blob each time)."""
    if url.startswith("blob:"):
        return ""
    return hashlib.sha256(canonical(url).encode()).hexdigest()
