"""The polling fast path: answers from the representation cache, keys checked on every request."""

from __future__ import annotations

from datetime import date

import pytest

from app.auth import service as auth_service
from app.performance import compute
from app.performance import service as performance_service

AS_OF = date(2026, 2, 20)
URL = "/api/v1/performance?period=2026-02&metric=won_revenue"


@pytest.fixture
def rep(factory, session, settings):
    team = factory.team()
    rep = factory.rep(team_id=team.id)
    factory.target(rep_id=rep.id, period="2026-02", value=5_000)
    factory.deal(rep_id=rep.id, amount=2_000)
    compute.run(session=session, settings=settings, as_of=AS_OF, full=True)
    session.commit()
    return rep


@pytest.fixture
def route_runs(monkeypatch):
    """How many times the /performance route actually computed its answer."""
    calls: list[int] = []
    real = performance_service.list_performance

    def counted(**kw):
        calls.append(1)
        return real(**kw)

    monkeypatch.setattr(performance_service, "list_performance", counted)
    return calls


def test_an_unchanged_get_is_answered_from_memory(client, factory, session, rep, route_runs):
    h = factory.key("viewer")
    session.commit()
    first = client.get(URL, headers=h)
    again = client.get(URL, headers=h)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again.json()["items"]
    assert again.headers["etag"] == first.headers["etag"]
    assert again.headers["content-type"] == "application/json"
    assert again.headers["cache-control"] == first.headers["cache-control"]
    assert len(route_runs) == 1
    # A 304 still wins when the client has the copy.
    etag = first.headers["etag"]
    assert client.get(URL, headers={**h, "If-None-Match": etag}).status_code == 304
    # Another query, format or key is another representation: the route runs.
    assert client.get(URL + "&format=csv", headers=h).text.startswith(("rep_id", "subject"))
    client.get(URL, headers=factory.key("viewer"))
    session.commit()
    assert len(route_runs) == 3


def test_a_committed_write_is_seen_at_once(client, factory, session, settings, rep, route_runs):
    h = factory.key("viewer")
    session.commit()
    assert client.get(URL, headers=h).json()["items"][0]["actual"] == 2_000
    factory.deal(rep_id=rep.id, amount=1_000)
    compute.run(session=session, settings=settings, as_of=AS_OF, full=True)
    session.commit()
    after = client.get(URL, headers=h)
    assert after.json()["items"][0]["actual"] == 3_000
    assert len(route_runs) == 2


def test_uncommitted_writes_on_the_connection_bypass_the_cache(
    client, factory, session, settings, rep, route_runs
):
    # The tests share one connection with the app: a flushed, uncommitted write is visible
    # to the next request before any version counts it. Nothing may come from memory then.
    h = factory.key("viewer")
    session.commit()
    first = client.get(URL, headers=h)
    factory.deal(rep_id=rep.id, amount=1_000)
    compute.run(session=session, settings=settings, as_of=AS_OF, full=True)
    session.flush()
    r = client.get(URL, headers={**h, "If-None-Match": first.headers["etag"]})
    assert r.status_code == 200 and r.json()["items"][0]["actual"] == 3_000
    assert len(route_runs) == 2


def test_a_revoked_key_is_refused_at_once_even_with_an_answer_in_memory(
    client, factory, session, rep
):
    admin = factory.key("admin")
    key, token = auth_service.create(session=session, role="viewer")
    session.commit()
    h = {"Authorization": f"Bearer {token}"}
    etag = client.get(URL, headers=h).headers["etag"]
    assert client.get(URL, headers=h).status_code == 200  # from memory
    assert client.delete(f"/api/v1/api-keys/{key.id}", headers=admin).status_code == 200
    for headers in (h, {**h, "If-None-Match": etag}):
        r = client.get(URL, headers=headers)
        assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


def test_a_revoked_key_is_refused_before_the_commit_is_counted(client, factory, session, rep):
    # Revoked in the shared connection and only flushed: no data version moved, yet the key
    # is read afresh on every request.
    key, token = auth_service.create(session=session, role="viewer")
    session.commit()
    h = {"Authorization": f"Bearer {token}"}
    assert client.get(URL, headers=h).status_code == 200
    auth_service.revoke(session=session, key_id=key.id)
    session.flush()
    assert client.get(URL, headers=h).status_code == 401


def test_unknown_and_missing_keys_get_nothing_from_memory(client, factory, session, rep):
    h = factory.key("viewer")
    session.commit()
    etag = client.get(URL, headers=h).headers["etag"]
    assert client.get(URL, headers={"If-None-Match": etag}).status_code == 401
    bad = {"Authorization": "Bearer qg_not-a-key", "If-None-Match": etag}
    assert client.get(URL, headers=bad).status_code == 401


def test_a_viewer_never_gets_records_from_memory(client, factory, session, rep):
    admin, viewer = factory.key("admin"), factory.key("viewer")
    session.commit()
    assert client.get("/api/v1/deals", headers=admin).status_code == 200
    assert client.get("/api/v1/deals", headers=admin).status_code == 200
    assert client.get("/api/v1/deals", headers=viewer).status_code == 403
    assert client.get("/api/v1/deals", headers=viewer).status_code == 403
