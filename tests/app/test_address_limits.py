"""Rate limits per client address and on /dashboard/login and /metrics (issue 17, item 8)."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from app.http.limits import client_address, parse_networks

BOGUS = {"Authorization": "Bearer qg_not_a_key"}


@pytest.fixture
def tight(settings):
    # One token a minute: a slow machine cannot refill a bucket between two requests.
    settings.rate_limit_per_minute, settings.rate_limit_burst = 1, 3
    return settings


def _from(app, address: str) -> TestClient:
    return TestClient(app, raise_server_exceptions=False, client=(address, 40000))


@contextmanager
def _statements(engine):
    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_a_flood_of_bogus_keys_from_one_address_is_refused_before_the_lookup(app, engine, tight):
    flood = _from(app, "198.51.100.7")
    codes = [flood.get("/api/v1/reps", headers=BOGUS).status_code for _ in range(3)]
    assert codes == [401, 401, 401]
    with _statements(engine) as seen:
        r = flood.get("/api/v1/reps", headers=BOGUS)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert r.json()["error"]["code"] == "rate_limited"
    assert seen == []  # refused before the key lookup: no database work
    # Another address is not held back by this one's failures.
    assert _from(app, "198.51.100.8").get("/api/v1/reps", headers=BOGUS).status_code == 401


def test_valid_keys_do_not_spend_the_address_bucket(app, factory, tight):
    tight.rate_limit_burst = 1000  # the per-key bucket is not what this test is about
    h = factory.key("viewer")
    office = _from(app, "198.51.100.9")
    assert all(office.get("/api/v1/reps", headers=h).status_code == 200 for _ in range(5))


def test_a_trusted_proxy_forwarded_for_is_honoured(app, tight):
    tight.trusted_proxies = ["10.0.0.0/8"]
    proxy = _from(app, "10.1.2.3")
    one = {**BOGUS, "X-Forwarded-For": "203.0.113.7, 10.9.9.9"}
    codes = [proxy.get("/api/v1/reps", headers=one).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    # The same proxy forwarding another client: that client's own bucket.
    other = {**BOGUS, "X-Forwarded-For": "203.0.113.8"}
    assert proxy.get("/api/v1/reps", headers=other).status_code == 401


def test_an_untrusted_peer_forwarded_for_is_ignored(app, tight):
    tight.trusted_proxies = ["10.0.0.0/8"]
    liar = _from(app, "198.51.100.20")
    codes = [
        liar.get("/api/v1/reps", headers={**BOGUS, "X-Forwarded-For": f"203.0.113.{i}"})
        for i in range(4)
    ]
    assert [c.status_code for c in codes] == [401, 401, 401, 429]


def test_dashboard_login_attempts_are_limited(app, tight):
    browser = _from(app, "198.51.100.30")
    origin = {"Origin": "http://testserver"}
    codes = [
        browser.post("/dashboard/login", data={"api_key": "qg_guess"}, headers=origin).status_code
        for _ in range(4)
    ]
    assert codes == [401, 401, 401, 429]


def test_metrics_scrapes_are_limited_per_key(app, factory, tight):
    h = factory.key("viewer")
    scraper = _from(app, "198.51.100.40")
    codes = [scraper.get("/metrics", headers=h).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_client_address_walks_forwarded_for_from_the_right():
    nets = parse_networks(["10.0.0.0/8", "2001:db8::/32"])
    assert client_address("10.0.0.1", "203.0.113.1, 10.0.0.2", nets) == "203.0.113.1"
    assert client_address("10.0.0.1", "1.2.3.4, 203.0.113.1", nets) == "203.0.113.1"
    assert client_address("198.51.100.1", "203.0.113.1", nets) == "198.51.100.1"
    assert client_address("10.0.0.1", "garbage", nets) == "10.0.0.1"
    assert client_address("2001:db8::1", "::ffff:203.0.113.5", nets) == "203.0.113.5"
    assert client_address("10.0.0.1", None, nets) == "10.0.0.1"
