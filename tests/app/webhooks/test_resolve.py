"""Webhook destinations at send time: IPv4 inside IPv6, DNS errors, DNS rebinding (issue 17,
item 5)."""

from __future__ import annotations

import socket

import pytest

from app.core.exceptions import InvalidInputError
from app.webhooks import service as webhooks_service
from app.webhooks.dispatcher import Dispatcher
from app.webhooks.resolve import embedded_ipv4
from tests.app.webhooks.conftest import raise_alerts
from tests.app.webhooks.test_dispatcher import _delivery

PUBLIC = "93.184.216.34"


def fake_dns(monkeypatch, answers):
    """``socket.getaddrinfo`` answering ``answers[host]``, one list per call (the last one
    repeats; an exception is raised); other hosts resolve for real. Returns the call log."""
    real = socket.getaddrinfo
    calls: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        seen = calls.count(host)
        calls.append(host)
        answer = answers[host][min(seen, len(answers[host]) - 1)]
        if isinstance(answer, Exception):
            raise answer
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0))
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answer
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


@pytest.mark.parametrize(
    "url",
    [
        "http://[2002:7f00:1::]/h",  # 6to4 of 127.0.0.1
        "http://[2002:a9fe:a9fe::1]/h",  # 6to4 of 169.254.169.254
        "http://[64:ff9b::7f00:1]/h",  # NAT64 of 127.0.0.1
        "http://[64:ff9b::a00:1]/h",  # NAT64 of 10.0.0.1
        "http://[::ffff:0:7f00:1]/h",  # IPv4-translated
        "http://[::7f00:1]/h",  # IPv4-compatible
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/h",  # Teredo, client 127.0.0.1
        "http://[::ffff:127.0.0.1]/h",  # IPv4-mapped
    ],
)
def test_ipv6_forms_that_embed_a_private_ipv4_are_refused(settings, url):
    with pytest.raises(InvalidInputError) as refused:
        webhooks_service.check_destination(url, settings=settings)
    assert refused.value.details[0]["field"] == "url"


def test_ipv6_forms_of_a_public_ipv4_are_accepted(settings):
    webhooks_service.check_destination("http://[2002:5db8:d822::1]/h", settings=settings)
    assert embedded_ipv4("2002:5db8:d822::1") == [PUBLIC]
    assert embedded_ipv4("64:ff9b::5db8:d822") == [PUBLIC]
    assert embedded_ipv4(PUBLIC) == []


def test_a_dns_error_at_send_time_is_a_refusal(settings, monkeypatch):
    fake_dns(monkeypatch, {"gone.example": [socket.gaierror(-2, "Name or service not known")]})
    with pytest.raises(InvalidInputError, match=r"DNS lookup of gone\.example failed"):
        webhooks_service.check_destination("https://gone.example/h", settings=settings)
    # At creation the name may not exist yet: accepted, checked again at send time.
    webhooks_service.check_destination("https://gone.example/h", settings=settings, resolve=False)


@pytest.fixture
def strict_settings(settings):
    settings.webhook_allow_private_destinations = False
    settings.webhook_senders = 1
    return settings


def test_a_delivery_whose_host_does_not_resolve_fails_and_is_retried(
    session, session_factory, strict_settings, factory, clock, monkeypatch
):
    fake_dns(monkeypatch, {"gone.example": [socket.gaierror(-2, "Name or service not known")]})
    endpoint, _ = factory.webhook(strict_settings, "https://gone.example/h")
    [alert] = raise_alerts(session, strict_settings)
    with Dispatcher(session_factory, strict_settings, clock=clock) as dispatcher:
        dispatcher.run_once()
    delivery = _delivery(session, alert, endpoint)
    assert delivery.status == "pending" and delivery.attempts == 1
    assert "DNS lookup of gone.example failed" in delivery.last_error
    assert delivery.next_attempt_at > clock.now


def test_dns_rebinding_between_check_and_connect_is_refused(
    session, session_factory, strict_settings, factory, receiver, clock, monkeypatch
):
    # The name answers a public address to the check, then loopback (the receiver).
    calls = fake_dns(monkeypatch, {"rebind.example": [[PUBLIC], ["127.0.0.1"]]})
    url = f"http://rebind.example:{receiver.port}/a"
    endpoint, secret = factory.webhook(strict_settings, url)
    receiver.add("/a", secret)
    [alert] = raise_alerts(session, strict_settings)
    with Dispatcher(session_factory, strict_settings, clock=clock) as dispatcher:
        dispatcher.run_once()
    assert receiver.received == []  # nothing reached the loopback listener
    delivery = _delivery(session, alert, endpoint)
    assert delivery.status == "pending" and "loopback" in delivery.last_error
    assert calls == ["rebind.example", "rebind.example"]


def test_the_connection_goes_to_the_resolved_address_with_the_hostname_kept(
    session, session_factory, loopback_settings, factory, receiver, clock, monkeypatch
):
    calls = fake_dns(monkeypatch, {"hooks.example": [["127.0.0.1"]]})
    url = f"http://hooks.example:{receiver.port}/a"
    endpoint, secret = factory.webhook(loopback_settings, url)
    receiver.add("/a", secret)
    [alert] = raise_alerts(session, loopback_settings)
    with Dispatcher(session_factory, loopback_settings, clock=clock) as dispatcher:
        dispatcher.run_once()
    [got] = receiver.received
    assert got.verified and got.headers["host"] == f"hooks.example:{receiver.port}"
    assert calls == ["hooks.example"]  # one lookup: the connection did not resolve again
    assert _delivery(session, alert, endpoint).status == "succeeded"
