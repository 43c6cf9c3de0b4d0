"""Where a webhook really connects: IPv4 inside IPv6, and a connection pinned to the checked
address.

Two gaps the destination check (:func:`app.webhooks.service.check_destination`) alone leaves:

* **IPv6 forms that carry an IPv4 address.** ``2002:7f00:1::`` (6to4) reaches 127.0.0.1
  through a 6to4 relay, yet Python calls it global. Every form below is unwrapped and the
  IPv4 address inside is checked as well (:func:`embedded_ipv4`).
* **DNS rebinding.** Checking a name and then letting the HTTP client resolve it again lets
  a name answer a public address to the check and 127.0.0.1 to the connection.
  :class:`PinnedTransport` resolves once, checks every address, and connects to a checked
  address, while the request keeps its hostname: the ``Host`` header, TLS SNI and the
  certificate check are on the name, as with any client. A lookup that fails is a failed
  attempt (``httpx.ConnectError`` naming the host), retried on the normal schedule: the
  check fails closed.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import typing
from collections.abc import Callable

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# The check itself, and the IPv4 addresses an IPv6 address embeds, are app.core.netguard's.
from app.core.netguard import embedded_ipv4  # noqa: E402,F401  (re-exported for callers)


class DestinationRefused(httpcore.ConnectError):
    """Raised from the connection itself: httpx reports it as a ``ConnectError``."""


# Why an address may not be connected to (None: it may), from the destination check.
Refusal = Callable[[str], "str | None"]


class _PinnedBackend(httpcore.SyncBackend):
    """Connects to an address it has checked, from one lookup of the name."""

    def __init__(self, refusal: Refusal | None) -> None:
        self.refusal = refusal

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = resolve(host, port)
        if self.refusal is not None:
            for address in addresses:
                why = self.refusal(address)
                if why:
                    raise DestinationRefused(f"{host} resolves to a {why} address ({address})")
        # The checked address, not the name: nothing is resolved again after the check.
        return super().connect_tcp(
            addresses[0],
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to, or DestinationRefused naming the lookup error."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise DestinationRefused(f"DNS lookup of {host} failed: {exc}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]).split("%", 1)[0] for info in infos))
    if not addresses:
        raise DestinationRefused(f"DNS lookup of {host} found no address")
    return addresses


class PinnedTransport(httpx.HTTPTransport):
    """An httpx transport whose connections go to the checked address of the URL's host.

    ``refusal`` says why an address is refused (None: allowed); None allows every address
    (``QG_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS``) and still resolves once. TLS verification
    uses the system's CA bundle as httpx's default does; SNI and the certificate are checked
    against the hostname, since httpcore passes the URL's host to the TLS handshake."""

    def __init__(self, refusal: Refusal | None, *, ssl_context: ssl.SSLContext | None = None):
        super().__init__()
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(),
            network_backend=_PinnedBackend(refusal),
        )
