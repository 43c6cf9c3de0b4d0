"""Stored CRM credentials cannot be redirected into the service's own network (SSRF).

Every CRM URL (base or instance URL, Salesforce login URL, OAuth token endpoint, the API domain
or instance URL a token answer names) goes through the webhook destination guard: at creation
and PATCH (422 naming the field), and again, resolved, before each request of a sync.
``QG_SOURCE_ALLOW_PRIVATE_DESTINATIONS`` allows loopback for a sandbox CRM.
"""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from sqlalchemy.orm import object_session

from app.core import secrets
from app.pipeline import sync as engine
from app.sources.models import Source

PUBLIC = "93.184.216.34"  # what the fake DNS answers for a public CRM host


@pytest.fixture
def dns(monkeypatch):
    """Names under ``.test`` resolve to what the test says (or not at all); the rest as usual."""
    table: dict[str, str] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if isinstance(host, str) and host.endswith(".test"):
            if host not in table:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (table[host], port or 443))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


def _body(kind: str = "hubspot", **kw) -> dict:
    credentials = {
        "hubspot": {"access_token": "pat-SECRET"},
        "salesforce": {"access_token": "sf-SECRET"},
        "pipedrive": {"api_token": "pd-SECRET"},
    }[kind]
    return {"kind": kind, "name": f"{kind}-crm", "credentials": credentials, **kw}


INTERNAL = [
    "http://127.0.0.1:8080",
    "http://localhost:5432",
    "http://169.254.169.254",  # cloud metadata
    "http://[::1]:80",
    "http://2130706433",  # 127.0.0.1 as one number
    "http://10.0.0.5",
    "http://[::ffff:127.0.0.1]",
]


@pytest.mark.parametrize("url", INTERNAL)
def test_an_internal_base_url_is_refused_at_creation(client, factory, settings, url):
    r = client.post("/api/v1/sources", json=_body(base_url=url), headers=factory.key("admin"))
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["details"][0]["field"] == "base_url"
    assert "QG_SOURCE_ALLOW_PRIVATE_DESTINATIONS" in error["message"]


@pytest.mark.parametrize("url", ["http://[::1", "http://crm.example.com:99999", "http://"])
def test_a_malformed_base_url_is_a_422_not_a_500(client, factory, url):
    h = factory.key("admin")
    r = client.post("/api/v1/sources", json=_body(base_url=url), headers=h)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "base_url"
    sid = client.post("/api/v1/sources", json=_body(), headers=h).json()["id"]
    r = client.patch(f"/api/v1/sources/{sid}", json={"base_url": url}, headers=h)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "base_url"


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        ("salesforce", "instance_url"),
        ("salesforce", "login_url"),
        ("pipedrive", "token_url"),
        ("pipedrive", "api_domain"),
    ],
)
def test_internal_urls_in_credentials_are_refused(client, factory, kind, key):
    body = _body(kind, base_url="https://crm.example.com")
    body["credentials"] |= {"client_id": "c", "refresh_token": "r", key: "http://127.0.0.1:9/x"}
    r = client.post("/api/v1/sources", json=body, headers=factory.key("admin"))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["field"] == f"credentials.{key}"
    body["credentials"][key] = 42
    r = client.post("/api/v1/sources", json=body, headers=factory.key("admin"))
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == f"credentials.{key}"


def test_the_setting_allows_a_loopback_sandbox(client, factory, settings):
    settings.source_allow_private_destinations = True
    body = _body("salesforce", base_url="http://127.0.0.1:8080")
    body["credentials"]["login_url"] = "http://127.0.0.1:8080"
    r = client.post("/api/v1/sources", json=body, headers=factory.key("admin"))
    assert r.status_code == 201, r.text


def test_patch_cannot_point_a_source_at_an_internal_host(client, factory, session, settings):
    h = factory.key("admin")
    r = client.post("/api/v1/sources", json=_body(base_url="https://api-eu1.hubapi.com"), headers=h)
    sid = r.json()["id"]
    for patch in (
        {"base_url": "http://127.0.0.1:9999"},
        {"base_url": "http://169.254.169.254", "credentials": {"access_token": "t"}},
    ):
        r = client.patch(f"/api/v1/sources/{sid}", json=patch, headers=h)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"][0]["field"] == "base_url"
    assert session.get(Source, sid).base_url == "https://api-eu1.hubapi.com"


def test_a_new_host_needs_the_credentials_again(client, factory, session, settings):
    h = factory.key("admin")
    sid = client.post(
        "/api/v1/sources", json=_body(base_url="https://api-eu1.hubapi.com"), headers=h
    ).json()["id"]
    # The stored token must not follow a move to another host...
    r = client.patch(
        f"/api/v1/sources/{sid}", json={"base_url": "https://x.example.com"}, headers=h
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["field"] == "credentials"
    assert session.get(Source, sid).base_url == "https://api-eu1.hubapi.com"
    # ... the same host with another path is no move ...
    r = client.patch(
        f"/api/v1/sources/{sid}", json={"base_url": "https://api-eu1.hubapi.com/"}, headers=h
    )
    assert r.status_code == 200, r.text
    # ... and with new credentials the move is fine.
    r = client.patch(
        f"/api/v1/sources/{sid}",
        json={"base_url": "https://x.example.com", "credentials": {"access_token": "new"}},
        headers=h,
    )
    assert r.status_code == 200 and r.json()["base_url"] == "https://x.example.com"
    # A source on the CRM's default host moves too when it gets a base_url.
    pid = client.post("/api/v1/sources", json=_body("pipedrive"), headers=h).json()["id"]
    r = client.patch(
        f"/api/v1/sources/{pid}", json={"base_url": "https://x.example.com"}, headers=h
    )
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "credentials"
    r = client.patch(
        f"/api/v1/sources/{pid}", json={"base_url": "https://api.pipedrive.com"}, headers=h
    )
    assert r.status_code == 200, r.text


# -- at connect time: the sync refuses before any request leaves


class Recorder:
    """A CRM behind a mock transport that remembers every request it was sent."""

    def __init__(self, token_answer: dict | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.token_answer = token_answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if request.url.path.endswith("/oauth2/token"):
            return httpx.Response(200, json=self.token_answer or {"access_token": "fresh"})
        if request.headers.get("authorization") == "Bearer expired":
            return httpx.Response(401, json=[{"errorCode": "INVALID_SESSION_ID"}])
        return httpx.Response(500, text="not a real CRM")

    def sent(self) -> str:
        return "\n".join(f"{r.url} {dict(r.headers)} {r.content!r}" for r in self.requests)


def _stored(session, settings, base_url: str | None, **credentials) -> Source:
    # Stored as a PATCH could before the guard existed: the sync must refuse it on its own.
    source = Source(
        kind="salesforce",
        name="sf",
        base_url=base_url,
        credentials_encrypted=secrets.encrypt(settings, credentials),
    )
    session.add(source)
    session.flush()
    return source


def _sync(session_factory, settings, source, crm):
    run = engine.run_sync(
        session_factory=session_factory,
        settings=settings,
        source_id=source.id,
        transport=httpx.MockTransport(crm),
        sleep=lambda s: None,
    )
    object_session(source).expire_all()
    return run


@pytest.mark.parametrize(
    ("base_url", "address", "why"),
    [
        ("http://127.0.0.1:8123", None, "loopback"),
        ("http://169.254.169.254", None, "address (169.254.169.254)"),
        ("https://crm.test", "10.1.2.3", "private"),  # a name that resolves inside
        ("https://nowhere.test", "", "cannot resolve"),  # unresolvable: cannot be checked
    ],
)
def test_a_sync_sends_nothing_to_an_internal_host(
    session, session_factory, settings, dns, base_url, address, why
):
    if address:
        dns["crm.test"] = address
    source = _stored(session, settings, base_url, access_token="sf-SECRET")
    crm = Recorder()
    run = _sync(session_factory, settings, source, crm)
    assert run.status == "failed"
    assert "DestinationRefused" in run.error and why in run.error, run.error
    assert crm.requests == [], crm.sent()
    assert "SECRET" not in run.error and source.last_error == run.error


def test_a_sync_to_a_public_host_goes_ahead(session, session_factory, settings, dns):
    dns["crm.test"] = PUBLIC
    source = _stored(session, settings, "https://crm.test", access_token="sf-SECRET")
    crm = Recorder()
    run = _sync(session_factory, settings, source, crm)
    assert crm.requests and "DestinationRefused" not in (run.error or "")


def test_a_refresh_sends_no_client_secret_to_an_internal_login_url(
    session, session_factory, settings, dns
):
    dns["crm.test"] = PUBLIC
    source = _stored(
        session,
        settings,
        "https://crm.test",
        access_token="expired",
        client_id="qg",
        client_secret="CLIENT-SECRET",
        refresh_token="REFRESH-SECRET",
        login_url="http://127.0.0.1:8123",
    )
    crm = Recorder()
    run = _sync(session_factory, settings, source, crm)
    assert run.status == "failed" and "DestinationRefused" in run.error, run.error
    assert [r.url.host for r in crm.requests] == ["crm.test"], crm.sent()
    assert "SECRET" not in crm.sent().replace("expired", "")


@pytest.mark.parametrize("moved_to", ["http://169.254.169.254", "http://127.0.0.1:8123"])
def test_a_token_answer_cannot_move_the_instance_inside(
    session, session_factory, settings, dns, moved_to
):
    dns["crm.test"] = PUBLIC
    dns["login.test"] = PUBLIC
    source = _stored(
        session,
        settings,
        "https://crm.test",
        access_token="expired",
        client_id="qg",
        client_secret="s",
        refresh_token="old-refresh",
        login_url="https://login.test",
    )
    crm = Recorder({"access_token": "fresh", "refresh_token": "rotated", "instance_url": moved_to})
    run = _sync(session_factory, settings, source, crm)
    assert run.status == "failed" and "DestinationRefused" in run.error, run.error
    assert source.base_url == "https://crm.test"
    stored = secrets.decrypt(settings, source.credentials_encrypted)
    # The rotated tokens are kept (losing them would lock the source out); the host is not.
    assert stored["refresh_token"] == "rotated" and "instance_url" not in stored
    assert moved_to not in json.dumps(stored)
    assert all(r.url.host in ("crm.test", "login.test") for r in crm.requests), crm.sent()


def test_the_setting_lets_a_sync_reach_a_loopback_sandbox(session, session_factory, settings):
    settings.source_allow_private_destinations = True
    source = _stored(session, settings, "http://127.0.0.1:8123", access_token="sf-SECRET")
    crm = Recorder()
    run = _sync(session_factory, settings, source, crm)
    assert crm.requests and "DestinationRefused" not in (run.error or "")
