"""Where deliveries may go: ``http(s)`` URLs only, and by default never to link-local or cloud
metadata addresses (a webhook URL is input from an admin key: it must not turn idgraph into a
way to read the instance's credentials at 169.254.169.254).

The host is checked when a webhook is created (the URL's form; a literal address) and before
every attempt (every address the name resolves to), and the attempt connects to the address
checked: a DNS answer that changes between the check and the connection cannot redirect it.
``IDGRAPH_WEBHOOK_ALLOW_HOSTS`` lists hosts and networks let through anyway.
Loopback and private networks are allowed: receivers inside the company's network are the
usual case; an egress firewall is the place for a stricter rule.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from identity.errors import InputError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200")
)
_CACHE_SECONDS = 30.0


class RefusedAddress(Exception):
    """A delivery that must not go where its URL points."""


class Unresolved(Exception):
    """A host name that does not resolve now (the attempt fails and is retried)."""


def check_url(url: str) -> str:
    """The URL, stripped, if it can be a webhook's; InputError saying why not otherwise."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a bad port raises)
    except ValueError as e:
        raise InputError(f"webhook URL {url!r} is not a URL: {e}") from e
    if parts.scheme not in ("http", "https"):
        raise InputError(f"webhook URL {url!r}: only http:// and https:// URLs are allowed")
    if not parts.hostname:
        raise InputError(f"webhook URL {url!r} has no host")
    if parts.username or parts.password:
        raise InputError(
            f"webhook URL for {parts.hostname}: credentials in the URL are refused (the "
            "signature authenticates idgraph to the receiver)"
        )
    if len(url) > 2048:
        raise InputError("webhook URL longer than 2,048 characters")
    return url


class AddressGuard:
    """Refuses link-local and metadata hosts unless allowed (``allow``: comma-separated host
    names and networks in CIDR form)."""

    def __init__(self, allow: str = "") -> None:
        names: set[str] = set()
        networks: list[Network] = []
        for item in (a.strip() for a in allow.split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                names.add(item.lower().rstrip("."))
        self._names = frozenset(names)
        self._networks = tuple(networks)
        self._resolved: dict[str, tuple[float, list[Address]]] = {}

    def _allowed(self, address: Address) -> bool:
        return any(address in n for n in self._networks)

    def refusal(self, host: str, addresses: list[Address]) -> str | None:
        """Why ``host`` (resolving to ``addresses``) is refused, or None."""
        name = host.lower().rstrip(".")
        if name in self._names:
            return None
        if name in _METADATA_HOSTS:
            return f"{host} is a cloud metadata service (IDGRAPH_WEBHOOK_ALLOW_HOSTS lets it)"
        for address in addresses:
            mapped = getattr(address, "ipv4_mapped", None) or address
            if self._allowed(mapped):
                continue
            if mapped in _METADATA_ADDRESSES:
                return (
                    f"{host} resolves to {mapped}, a cloud metadata address "
                    "(IDGRAPH_WEBHOOK_ALLOW_HOSTS lets it)"
                )
            if mapped.is_link_local or mapped.is_multicast or mapped.is_unspecified:
                return (
                    f"{host} resolves to {mapped}, a link-local, multicast or unspecified "
                    "address (IDGRAPH_WEBHOOK_ALLOW_HOSTS lets it)"
                )
        return None

    def check_literal(self, url: str) -> None:
        """At creation: InputError when the URL's host is a refused name or address."""
        host = urlsplit(url).hostname or ""
        try:
            addresses: list[Address] = [ipaddress.ip_address(host)]
        except ValueError:
            addresses = []
        reason = self.refusal(host, addresses)
        if reason:
            raise InputError(f"webhook URL refused: {reason}")

    async def check(self, url: str) -> list[Address]:
        """Before an attempt: the addresses the URL's host resolves to, all allowed;
        RefusedAddress when one is refused, Unresolved when the name does not resolve."""
        host = urlsplit(url).hostname or ""
        by_name = self.refusal(host, [])
        if by_name:
            raise RefusedAddress(by_name)
        cached = self._resolved.get(host)
        if cached and cached[0] > time.monotonic():
            addresses = cached[1]
        else:
            try:
                addresses = [ipaddress.ip_address(host)]
            except ValueError:
                loop = asyncio.get_running_loop()
                try:
                    infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
                except OSError as e:
                    raise Unresolved(f"{host} does not resolve: {e}") from e
                addresses = [ipaddress.ip_address(str(i[4][0]).split("%")[0]) for i in infos]
            if not addresses:
                raise Unresolved(f"{host} resolves to no address")
            self._resolved[host] = (time.monotonic() + _CACHE_SECONDS, addresses)
        reason = self.refusal(host, addresses)
        if reason:
            raise RefusedAddress(reason)
        return addresses

    async def pinned(self, url: str) -> tuple[str, str, dict[str, Any]]:
        """The URL to connect to, with its host replaced by a checked address, the ``Host``
        header to send and the request extensions (TLS's server name: the certificate is
        still checked against the name)."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        address = (await self.check(url))[0]
        netloc = parts.netloc.rsplit("@", 1)[-1]
        if str(address) == host.strip("[]"):
            return url, netloc, {}
        literal = f"[{address}]" if address.version == 6 else str(address)
        target = literal + (f":{parts.port}" if parts.port else "")
        extensions: dict[str, Any] = {"sni_hostname": host} if parts.scheme == "https" else {}
        return urlunsplit(parts._replace(netloc=target)), netloc, extensions
