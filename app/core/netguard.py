"""Where the service may send requests of its own accord: the one guard against request
forgery (SSRF) for every URL a user can set.

Webhook URLs and CRM URLs (a source's base or instance URL, a Salesforce login URL, an OAuth
token endpoint) are chosen by whoever holds an admin or analyst key. Unchecked, they would let
that person make the service call into its own network (``http://127.0.0.1:5432``, the cloud
metadata service at ``169.254.169.254``), or carry stored CRM credentials to a listener of
theirs. A URL is refused when any address its host names is loopback, private, link-local,
carrier-grade NAT, multicast, reserved or otherwise not globally routable; each kind of URL has
a setting that allows such addresses (tests, a local sandbox CRM, a receiver on the LAN).

Webhook sends close the DNS-rebinding gap as well: they connect to an address checked from
one lookup (:class:`app.webhooks.resolve.PinnedTransport`).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from app.core.exceptions import InvalidInputError


class DestinationRefused(InvalidInputError):
    """A URL the service must not call: not http(s), or an address inside its own network."""


# Prefixes whose last 32 bits are an IPv4 address.
_LOW_32 = (
    ipaddress.ip_network("::ffff:0:0/96"),  # IPv4-mapped
    ipaddress.ip_network("::ffff:0:0:0/96"),  # IPv4-translated (SIIT, RFC 2765)
    ipaddress.ip_network("64:ff9b::/96"),  # NAT64 well-known prefix (RFC 6052)
    ipaddress.ip_network("64:ff9b:1::/48"),  # NAT64 local-use prefix (RFC 8215)
    ipaddress.ip_network("::/96"),  # IPv4-compatible (deprecated, RFC 4291)
)
_ISATAP_IID = 0x0000_5EFE  # ISATAP: the interface id is 0000:5efe:<IPv4> (RFC 5214)


def embedded_ipv4(address: str) -> list[str]:
    """The IPv4 addresses an IPv6 address carries, each of which must pass the check too.

    6to4 (``2002::/16``: bits 16-48), Teredo (``2001::/32``: the server and the obfuscated
    client), NAT64 (``64:ff9b::/96``, ``64:ff9b:1::/48``), IPv4-mapped (``::ffff:0:0/96``),
    IPv4-translated, IPv4-compatible (``::/96``) and ISATAP interface ids: the last 32 bits.
    An IPv4 address carries none."""
    ip = ipaddress.ip_address(address)
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    low = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    if any(ip in net for net in _LOW_32) or (int(ip) >> 32) & 0xFFFF_FFFF == _ISATAP_IID:
        found.append(low)
    return [str(a) for a in dict.fromkeys(found)]


def refused_reason(address: str) -> str | None:
    """Why an IP address is no place to send requests to, or None if it is public: itself,
    then each IPv4 address it embeds (6to4, NAT64, Teredo...: :func:`embedded_ipv4`)."""
    why = _own_reason(address)
    for inner in embedded_ipv4(address):
        inner_why = _own_reason(inner)
        why = why or (f"{inner_why} (embedded {inner})" if inner_why else None)
    return why


def _own_reason(address: str) -> str | None:
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
            f"{what}: DNS lookup of {host} failed: cannot resolve {host!r}, so its addresses "
            "cannot be checked",
            details=[{"field": field, "message": "host does not resolve"}],
        )
    for address in addresses:
        why = refused_reason(address)
        if why:
            raise DestinationRefused(
                f"{what} resolves to a {why} address ({address}); set {setting}=true to allow it",
                details=[{"field": field, "message": f"{why} address refused"}],
            )
