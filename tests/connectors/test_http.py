"""The shared CRM client: OAuth refresh as an ``httpx.Auth`` flow, one builder for every CRM."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from connectors import registry
from connectors.http import (
    BearerAuth,
    CrmAuthError,
    CrmClient,
    HeaderTokenAuth,
    OAuth2RefreshAuth,
    RetryableError,
)

OAuth2 = OAuth2RefreshAuth
BASE = "https://crm.test"
TOKEN_URL = "https://login.test/token"


class Crm:
    """A CRM accepting one access token at a time; its token endpoint rotates both tokens."""

    def __init__(self, *, token_status: int = 200) -> None:
        self.valid = "fresh-1"
        self.refresh = "refresh-1"
        self.token_status = token_status
        self.seen: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(f"{request.method} {request.url}")
        if str(request.url) == TOKEN_URL:
            form = parse_qs(request.content.decode())
            if self.token_status != 200 or form["refresh_token"] != [self.refresh]:
                return httpx.Response(self.token_status or 400, json={"error": "invalid_grant"})
            n = int(self.valid.rsplit("-", 1)[1]) + 1
            self.valid, self.refresh = f"fresh-{n}", f"refresh-{n}"
            return httpx.Response(
                200, json={"access_token": self.valid, "refresh_token": self.refresh}
            )
        if request.headers.get("Authorization") != f"Bearer {self.valid}":
            return httpx.Response(401, json={"error": "expired"})
        return httpx.Response(200, json={"ok": True})


def client(crm: Crm, stored: list[dict[str, Any]], **auth: Any) -> CrmClient:
    oauth = OAuth2RefreshAuth(
        token_url=TOKEN_URL,
        client_id="cid",
        client_secret="secret",
        refresh_token="refresh-1",
        access_token="stale",
        on_refresh=stored.append,
        **auth,
    )
    return CrmClient(BASE, oauth, transport=httpx.MockTransport(crm), sleep=lambda _: None)


def test_oauth_refresh_is_an_httpx_auth_flow_that_rotates_tokens() -> None:
    crm, stored = Crm(), []
    with client(crm, stored) as c:
        assert isinstance(c.http.auth, httpx.Auth)
        assert c.get_json("/a") == {"ok": True}
        assert crm.seen == [f"GET {BASE}/a", f"POST {TOKEN_URL}", f"GET {BASE}/a"]
        assert stored == [{"access_token": "fresh-2", "refresh_token": "refresh-2"}]
        # The new token is used from then on; the next expiry refreshes with the ROTATED one.
        crm.valid = "fresh-5"
        crm.refresh = "refresh-2"
        assert c.get_json("/b") == {"ok": True}
        assert stored[-1] == {"access_token": "fresh-6", "refresh_token": "refresh-6"}


def test_a_refused_refresh_is_an_auth_error_naming_the_crm_request() -> None:
    crm, stored = Crm(token_status=400), []
    with client(crm, stored) as c, pytest.raises(CrmAuthError) as raised:
        c.get_json("/a")
    assert raised.value.status == 401
    assert "GET /a" in str(raised.value)
    assert crm.seen == [f"GET {BASE}/a", f"POST {TOKEN_URL}"]
    assert stored == []


def test_a_token_endpoint_outage_is_retried() -> None:
    crm, stored = Crm(token_status=503), []
    with client(crm, stored) as c, pytest.raises(RetryableError, match="token refresh"):
        c.get_json("/a")
    # Every attempt asked for a refresh: an outage is waited out, not taken as a refusal.
    assert crm.seen.count(f"POST {TOKEN_URL}") == c.max_attempts


def test_the_request_guard_sees_the_token_refresh() -> None:
    crm, stored = Crm(), []
    checked: list[str] = []
    with client(crm, stored) as c:
        c.guard_requests(checked.append)
        c.get_json("/a")
    assert checked == [f"{BASE}/a", TOKEN_URL, f"{BASE}/a"]


@pytest.mark.parametrize(
    ("kind", "credentials", "auth_type"),
    [
        ("hubspot", {"access_token": "t"}, BearerAuth),
        (
            "hubspot",
            {"client_id": "c", "refresh_token": "r", "access_token": "t"},
            OAuth2RefreshAuth,
        ),
        ("salesforce", {"access_token": "t"}, BearerAuth),
        ("salesforce", {"client_id": "c", "refresh_token": "r"}, OAuth2RefreshAuth),
        ("pipedrive", {"api_token": "t", "client_id": "c", "refresh_token": "r"}, HeaderTokenAuth),
        ("pipedrive", {"client_id": "c", "refresh_token": "r"}, OAuth2RefreshAuth),
    ],
)
def test_one_builder_picks_each_crms_auth(
    kind: str, credentials: dict[str, str], auth_type: type[httpx.Auth]
) -> None:
    built = registry.module(kind).build_client(base_url=BASE, credentials=credentials)
    assert type(built.http.auth) is auth_type


@pytest.mark.parametrize("kind", ["hubspot", "salesforce", "pipedrive"])
def test_credentials_without_auth_are_refused_naming_the_crm(kind: str) -> None:
    with pytest.raises(ValueError, match="(?i)" + kind):
        registry.module(kind).build_client(base_url=BASE, credentials={})
