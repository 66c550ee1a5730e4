"""The worker's address policy: which hosts an http(s):// URL of a task may make it connect to.

A task's URLs are chosen by its users, and the worker sits inside the platform's network, so
every connection made for a task's file goes through `AddressPolicy.target` and `connect`: the
URL must be http or https with no userinfo; its host is resolved once, and every address it
resolves to must be public (globally routable: not loopback, private, link-local, shared (CGNAT),
multicast, reserved or unspecified, also when wrapped in an IPv4-mapped, 6to4 or NAT64 IPv6
address) or allowed by the operator (`--allow-fetch HOST_OR_CIDR`). `connect` then dials exactly
those checked addresses, never a fresh resolution, so a DNS answer that changes between the check
and the connection (rebinding) is never used. Resolving first also makes every spelling of an
address (`127.1`, `2130706433`, `0x7f000001`) the address it means.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..domain.urls import UrlError, host_name

__all__ = ["AddressPolicy", "Refused", "Target", "connect", "is_public"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PORTS = {"http": 80, "https": 443}
# NAT64 prefixes: a gateway reaches the embedded IPv4 address on the worker's behalf.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


class Refused(OSError):
    """A URL, or an address its host resolves to, that the policy does not allow."""


@dataclass(frozen=True)
class Target:
    """A checked URL: the only addresses to connect to, and what to ask them for."""

    scheme: str
    host: str  # the URL's host: the Host header, TLS SNI and the certificate check use it
    port: int
    path: str  # the request target: path and query
    addresses: tuple[str, ...]


def is_public(address: IPAddress) -> bool:
    """Whether `address` is globally routable, looking inside IPv6 wrappings of IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _LOCAL_NAT64:
            return False
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


@dataclass(frozen=True)
class AddressPolicy:
    """Public addresses, plus the operator's allowed host names (any address, any port) and
    networks."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def allowing(cls, entries: Iterable[str]) -> AddressPolicy:
        """The policy with `entries` allowed: each a host name (`localhost`) or an address or
        CIDR (`127.0.0.1`, `10.0.0.0/8`); ValueError names an entry that is neither."""
        hosts: set[str] = set()
        networks: list[Network] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                if not entry.strip() or "/" in entry:
                    raise ValueError(f"--allow-fetch {entry!r}: not a host name or CIDR") from None
                hosts.add(_host_name(entry.strip()))
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return is_public(address) or any(
            address.version == net.version and address in net for net in self.networks
        )

    def target(self, url: str) -> Target:
        """The checked target of `url`; Refused if the URL or any address its host resolves to
        is not allowed, another OSError (socket.gaierror) if it does not resolve."""
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS:
            raise Refused(f"{parts.scheme!r}: only http and https")
        if "@" in parts.netloc:
            raise Refused("a URL with userinfo")
        if not parts.hostname:
            raise Refused("a URL with no host")
        host = _host_name(parts.hostname)
        port = parts.port or DEFAULT_PORTS[parts.scheme]
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return Target(parts.scheme, host, port, path, self._resolve(host, port))

    def _resolve(self, host: str, port: int) -> tuple[str, ...]:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise Refused(f"{host} resolves to no address")
        if host in self.hosts:
            return addresses
        refused = [a for a in addresses if not self.allows(ipaddress.ip_address(a))]
        if refused:
            raise Refused(f"{host} resolves to {', '.join(refused)}: not a public address")
        return addresses


def connect(target: Target, timeout: Callable[[], float]) -> socket.socket:
    """A TCP connection to one of the target's checked addresses, in order; `timeout()` gives
    the seconds each attempt may take (and raises once none are left)."""
    error: OSError = Refused(f"{target.host}: no address")
    for address in target.addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout())
            sock.connect((address, target.port))
            return sock
        except OSError as err:
            sock.close()
            error = err
    raise error


def _host_name(host: str) -> str:
    """The host in the one spelling the platform compares places in (service.urls)."""
    try:
        return host_name(host)
    except UrlError as err:
        raise Refused(str(err)) from None
