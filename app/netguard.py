"""Where the service may send requests of its own accord: the one guard against request
forgery (SSRF) for every URL a user can set.

Webhook URLs and CRM URLs (a source's base or instance URL, a Salesforce login URL, an OAuth
token endpoint) are chosen by whoever holds an admin or analyst key. Unchecked, they would let
that person make the service call into its own network (``http://127.0.0.1:5432``, the cloud
metadata service at ``169.254.169.254``), or carry stored CRM credentials to a listener of
theirs. A URL is refused when any address its host names is loopback, private, link-local,
carrier-grade NAT, multicast, reserved or otherwise not globally routable; each kind of URL has
a setting that allows such addresses (tests, a local sandbox CRM, a receiver on the LAN).

Out of scope here: DNS rebinding between this check and the connection (the HTTP client
resolves the name again).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from app.exceptions import InvalidInputError


class DestinationRefused(InvalidInputError):
    """A URL the service must not call: not http(s), or an address inside its own network."""


def refused_reason(address: str) -> str | None:
    """Why an IP address is no place to send requests to, or None if it is public."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    for label, flag in (
        ("loopback", ip.is_loopback),
        ("private", ip.is_private),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("unspecified", ip.is_unspecified),
        # Shared (carrier-grade NAT, 100.64/10), documentation, benchmarking ranges...
        ("non-public", not ip.is_global),
    ):
        if flag:
            return label
    return None


def literal_address(host: str) -> str | None:
    """The address a host names without DNS: an IP literal, or a numeric IPv4 form that
    resolvers accept (``127.1``, ``2130706433``, ``0x7f.0.0.1``)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return str(ipaddress.IPv4Address(socket.inet_aton(host)))
    except OSError:
        return None


def _addresses(host: str, port: int, *, resolve: bool) -> list[str] | None:
    """The addresses ``host`` names; None when they are unknown (not resolved, or no answer)."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    if host == "localhost" or host.endswith(".localhost"):
        return ["127.0.0.1"]  # RFC 6761: always loopback, whatever DNS says
    if not resolve:
        return None
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError:
        return None
    return [str(info[4][0]) for info in infos]


def check_url(
    url: str,
    *,
    allow_private: bool,
    resolve: bool,
    field: str,
    what: str,
    setting: str,
    unresolvable_ok: bool = False,
) -> None:
    """Raise :class:`DestinationRefused` (a 422 naming ``field``) unless ``url`` is http(s)
    with a host whose every address is public; ``allow_private`` (the ``setting``) skips the
    address check.

    ``resolve=False`` checks what needs no DNS (IP literals, ``localhost``): at creation, a
    name DNS does not know yet is accepted. With ``resolve=True`` every address the name
    resolves to must be public, so a name with one public and one private address is refused;
    a name that does not resolve is refused too unless ``unresolvable_ok``.
    """
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is no number or out of range
    except ValueError:  # e.g. "http://[::1": an unclosed IPv6 literal
        parts, port = urlsplit(""), -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        raise DestinationRefused(
            f"{what} must be http(s) with a host",
            details=[{"field": field, "message": "not an http(s) URL"}],
        )
    if allow_private:
        return
    host = parts.hostname.rstrip(".").lower()
    addresses = _addresses(host, port or (443 if parts.scheme == "https" else 80), resolve=resolve)
    if addresses is None:
        if not resolve or unresolvable_ok:
            return
        raise DestinationRefused(
            f"{what}: cannot resolve {host!r}, so its addresses cannot be checked",
            details=[{"field": field, "message": "host does not resolve"}],
        )
    for address in addresses:
        why = refused_reason(address)
        if why:
            raise DestinationRefused(
                f"{what} resolves to a {why} address ({address}); set {setting}=true to allow it",
                details=[{"field": field, "message": f"{why} address refused"}],
            )
