"""Conditional GETs: a repeated poll is a 304 with no body until the data it shows changes."""

from __future__ import annotations

import csv
import io
from datetime import date

from sqlalchemy import select

from app.alerts.models import Alert
from app.core.versions import DataVersion
from app.performance import compute

AS_OF = date(2026, 2, 20)


def _setup(factory, session, settings):
    team = factory.team()
    rep = factory.rep(team_id=team.id)
    factory.target(rep_id=rep.id, period="2026-02", value=5_000)
    factory.deal(rep_id=rep.id, amount=2_000)
    compute.run(session=session, settings=settings, as_of=AS_OF, full=True)
    session.commit()
    return rep


def test_second_identical_poll_is_a_304_with_no_body(client, factory, session, settings):
    _setup(factory, session, settings)
    h = factory.key("viewer")
    session.commit()
    url = "/api/v1/performance?period=2026-02&metric=won_revenue"
    first = client.get(url, headers=h)
    assert first.status_code == 200 and first.json()["items"]
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert first.headers["cache-control"].startswith("private, max-age=")
    again = client.get(url, headers={**h, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    # Weak comparison and lists of tags match too; another tag does not.
    assert client.get(url, headers={**h, "If-None-Match": f'"x", W/{etag}'}).status_code == 304
    assert client.get(url, headers={**h, "If-None-Match": '"other"'}).status_code == 200
    assert client.get(url, headers={**h, "If-Modified-Since": modified}).status_code == 304
    # Another query is another representation.
    other = client.get(url + "&limit=1", headers=h)
    assert other.status_code == 200 and other.headers["etag"] != etag


def test_a_recompute_changes_the_etag(client, factory, session, settings):
    rep = _setup(factory, session, settings)
    h = factory.key("viewer")
    session.commit()
    url = "/api/v1/performance?period=2026-02&metric=won_revenue"
    before = client.get(url, headers=h)
    factory.deal(rep_id=rep.id, amount=1_000)  # written directly: no dirty day, so full
    compute.run(session=session, settings=settings, as_of=AS_OF, full=True)
    session.commit()
    after = client.get(url, headers={**h, "If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert after.headers["etag"] != before.headers["etag"]
    assert after.json()["items"][0]["actual"] == 3_000


def test_etags_follow_only_the_data_a_route_shows(client, factory, session, settings):
    rep = _setup(factory, session, settings)
    h = factory.key("admin")
    session.commit()
    perf = client.get("/api/v1/performance?period=2026-02", headers=h).headers["etag"]
    targets = client.get("/api/v1/targets", headers=h).headers["etag"]
    r = client.post(
        "/api/v1/targets",
        json={"rep_id": rep.id, "metric": "won_deals", "period": "2026-03", "value": 3},
        headers=h,
    )
    assert r.status_code == 201
    # A new target shows in /targets at once; the figures change only at the next compute.
    assert client.get("/api/v1/targets", headers=h).headers["etag"] != targets
    r = client.get("/api/v1/performance?period=2026-02", headers={**h, "If-None-Match": perf})
    assert r.status_code == 304


def test_a_rolled_back_write_changes_nothing(client, factory, session, settings):
    _setup(factory, session, settings)
    h = factory.key("admin")
    session.commit()
    version = session.scalar(select(DataVersion.version).where(DataVersion.scope == "config"))
    r = client.post(
        "/api/v1/targets",
        json={"rep_id": 10**9, "metric": "won_deals", "period": "2026-03", "value": 3},
        headers=h,
    )
    assert r.status_code in (404, 422)
    session.expire_all()
    assert (
        session.scalar(select(DataVersion.version).where(DataVersion.scope == "config")) == version
    )


def test_each_key_has_its_own_etag(client, factory, session, settings):
    _setup(factory, session, settings)
    a, b = factory.key("viewer"), factory.key("viewer")
    session.commit()
    url = "/api/v1/leaderboard?period=2026-02&metric=won_revenue"
    etag = client.get(url, headers=a).headers["etag"]
    assert client.get(url, headers={**b, "If-None-Match": etag}).status_code == 200


def test_cache_control_follows_the_schedule(client, factory, session, settings):
    h = factory.key("admin")
    factory.source(kind="hubspot", schedule={"interval_seconds": 20})
    session.commit()
    r = client.get("/api/v1/reps", headers=h)
    assert r.headers["cache-control"] == "private, max-age=20, must-revalidate"
    # Job progress moves by the second: always revalidate.
    assert client.get("/api/v1/jobs", headers=h).headers["cache-control"] == "private, no-cache"


def test_writes_answer_without_validators_and_unauthenticated_polls_are_401(client, factory):
    h = factory.key("admin")
    r = client.post("/api/v1/teams", json={"name": "North"}, headers=h)
    assert r.status_code == 201 and "etag" not in r.headers
    r = client.get("/api/v1/reps", headers={"If-None-Match": "*"})
    assert r.status_code == 401


def test_every_list_answers_csv(client, factory, session, settings):
    rep = _setup(factory, session, settings)
    factory.rep(name='Ann "The Closer", Jr.')
    h = factory.key("admin")
    session.commit()
    r = client.get("/api/v1/performance?period=2026-02&format=csv", headers=h)
    assert r.status_code == 200 and r.headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        r.headers["etag"]
        != client.get("/api/v1/performance?period=2026-02", headers=h).headers["etag"]
    )
    rows = list(csv.DictReader(io.StringIO(r.text)))
    won = next(row for row in rows if row["metric"] == "won_revenue")
    assert (int(won["rep_id"]), float(won["actual"])) == (rep.id, 2_000.0)
    # Nested objects become dotted columns; commas and quotes survive the round trip.
    reps = client.get("/api/v1/reps", headers={**h, "Accept": "text/csv"})
    names = [row["name"] for row in csv.DictReader(io.StringIO(reps.text))]
    assert 'Ann "The Closer", Jr.' in names
    # Paging: the next cursor travels in headers.
    first = client.get("/api/v1/reps?limit=1&format=csv", headers=h)
    assert first.headers["x-next-cursor"] and 'rel="next"' in first.headers["link"]
    nxt = first.headers["link"].split(">")[0].lstrip("<")
    assert "cursor=" in nxt and "format=csv" in nxt
    assert client.get(nxt, headers=h).text != first.text
    # Errors keep the JSON error shape.
    bad = client.get("/api/v1/reps/999999?format=csv", headers=h)
    assert bad.status_code == 404 and bad.json()["error"]["code"] == "not_found"


def test_summary_for_a_wallboard(client, factory, session, settings):
    team = factory.team(name="North")
    ann, bob = factory.rep(name="Ann", team_id=team.id), factory.rep(name="Bob", team_id=team.id)
    for rep in (ann, bob):
        factory.target(rep_id=rep.id, period="2026-02", value=10_000)
    factory.deal(rep_id=ann.id, amount=11_000)
    factory.deal(rep_id=bob.id, amount=1_000)
    factory.source(kind="hubspot", name="HubSpot EU")
    compute.run(session=session, settings=settings, as_of=date(2026, 3, 2), full=True)
    h = factory.key("viewer")
    session.commit()
    r = client.get("/api/v1/summary", params={"period": "2026-02"}, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["totals"]["actual"] == 12_000 and body["totals"]["target"] == 20_000
    assert body["totals"]["attainment"] == 0.6 and body["totals"]["reps_below_target"] == 1
    assert body["attainment_distribution"]["100-120%"] == 1
    assert body["attainment_distribution"]["<50%"] == 1
    assert [(t["team_name"], t["reps_below_target"]) for t in body["teams"]] == [("North", 1)]
    (risk,) = body["at_risk"]
    assert (risk["rep_name"], risk["status"], risk["gap"]) == ("Bob", "missed", 9_000)
    assert [s["name"] for s in body["sources"]][-1] == "HubSpot EU"
    again = client.get(
        "/api/v1/summary",
        params={"period": "2026-02"},
        headers={**h, "If-None-Match": r.headers["etag"]},
    )
    assert again.status_code == 304


def test_if_none_match_star_never_skips_the_checks(client, factory, session):
    viewer = factory.key("viewer")
    session.commit()
    # Without "*", a 304 can only answer a tag the key was once given for that very URL.
    r = client.get("/api/v1/api-keys", headers={**viewer, "If-None-Match": "*"})
    assert r.status_code == 403
    r = client.get("/api/v1/reps/987654", headers={**viewer, "If-None-Match": "*"})
    assert r.status_code == 404


def test_the_fast_304_checks_the_key_afresh(client, factory, session, settings):
    from app.auth import service as auth_service

    _setup(factory, session, settings)
    key, token = auth_service.create(session=session, role="viewer")
    session.commit()
    h = {"Authorization": f"Bearer {token}"}
    url = "/api/v1/summary?period=2026-02"
    etag = client.get(url, headers=h).headers["etag"]
    assert client.get(url, headers={**h, "If-None-Match": etag}).status_code == 304
    auth_service.revoke(session=session, key_id=key.id)
    session.commit()
    r = client.get(url, headers={**h, "If-None-Match": etag})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"


def test_a_change_left_for_the_commit_to_flush_still_counts(client, factory, session):
    rep = factory.rep(name="Ann")
    h = factory.key("viewer")
    session.commit()
    first = client.get(f"/api/v1/reps/{rep.id}", headers=h)
    rep.name = "Ann Lee"  # not flushed: the commit writes it
    session.commit()
    again = client.get(
        f"/api/v1/reps/{rep.id}", headers={**h, "If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 200 and again.json()["name"] == "Ann Lee"


def test_a_managers_tag_follows_their_team_tree(client, factory, session, settings):
    boss = factory.rep(role="manager")
    north = factory.team(name="North", manager_id=boss.id)
    ann = factory.rep(name="Ann", team_id=north.id)
    south = factory.team(name="South")
    bob = factory.rep(name="Bob", team_id=south.id)
    session.add_all(
        [
            Alert(
                event_id=f"alrt_{r.id}",
                event_type="target.missed",
                subject_type="rep",
                subject_id=r.id,
                rep_id=r.id,
                team_id=r.team_id,
                summary=r.name,
            )
            for r in (ann, bob)
        ]
    )
    h = factory.key("manager", rep_id=boss.id)
    session.commit()
    first = client.get("/api/v1/alerts", headers=h)
    assert [a["summary"] for a in first.json()["items"]] == ["Ann"]
    assert (
        client.get(
            "/api/v1/alerts", headers={**h, "If-None-Match": first.headers["etag"]}
        ).status_code
        == 304
    )
    # Bob joins North: no alert changed, but what this manager may see did.
    bob.team_id = north.id
    session.commit()
    again = client.get("/api/v1/alerts", headers={**h, "If-None-Match": first.headers["etag"]})
    assert again.status_code == 200
    assert [a["summary"] for a in again.json()["items"]] == ["Ann", "Bob"]
