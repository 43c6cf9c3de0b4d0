"""The dashboard page through the app (SQLite and PostgreSQL): login, scope, and the numbers.

The page puts each exact number in a ``data-value`` attribute; these tests read them back and
compare them with what the API answers for the same key. The browser test
(``test_dashboard_browser.py``) does the same through a real Chromium.
"""

from __future__ import annotations

import json
import re
from datetime import date
from html.parser import HTMLParser
from typing import Any

import pytest
from sqlalchemy import select

from app.alerts import service as alerts_service
from app.auth import service as auth_service
from app.demo.generator import DemoConfig
from app.demo.load import load_demo
from app.performance import compute
from app.pipeline import alerting
from app.teams.models import Team

TODAY = date(2026, 11, 18)
PERIOD = "2026-10"
ORIGIN = {"Origin": "http://testserver"}


class Page(HTMLParser):
    """Rows of the page keyed by their data-* id, each with its data-metric -> data-value."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.sections: dict[str, dict[str, dict[str, Any]]] = {}
        self.section: str | None = None
        self.row: dict[str, Any] | None = None
        self.attrs_of: dict[str, dict[str, str | None]] = {}
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.attrs_of[str(a["id"])] = a
        if tag == "section" and a.get("id"):
            self.section = a["id"]
            self.sections.setdefault(str(self.section), {})
        for key in ("data-rep-id", "data-team-id", "data-alert-id", "data-source-id"):
            if key in a and self.section:
                self.row = {"_attrs": a}
                self.sections[self.section][f"{key[5:]}={a[key]}"] = self.row
        if self.row is not None and "data-metric" in a:
            self.row[str(a["data-metric"])] = a.get("data-value", a.get("data-values"))

    def rows(self, section: str, kind: str = "rep-id") -> dict[int, dict[str, Any]]:
        return {
            int(k.split("=")[1]): v
            for k, v in self.sections.get(section, {}).items()
            if k.startswith(kind)
        }


def _number(text: str | None) -> float | None:
    return None if text in (None, "") else float(text)


@pytest.fixture
def demo(session, settings):
    load_demo(
        session=session, config=DemoConfig(seed=5, today=TODAY, teams=2, reps_per_team=4, months=9)
    )
    alerts_service.default_rules(session=session)
    snap = compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    alerting.evaluate(session=session, settings=settings, today=TODAY)
    session.flush()
    return snap


def _token(factory, role: str = "admin", rep_id: int | None = None) -> str:
    return factory.key(role, rep_id=rep_id)["Authorization"].removeprefix("Bearer ")


def _login(client, token: str) -> Any:
    return client.post(
        "/dashboard/login", data={"api_key": token}, headers=ORIGIN, follow_redirects=False
    )


def _page(client, **params: str) -> Page:
    r = client.get("/dashboard", params=params, follow_redirects=False)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    return Page(r.text)


def test_logged_out_is_sent_to_the_login_form(client):
    r = client.get("/dashboard", params={"period": PERIOD}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    form = client.get("/dashboard/login")
    assert form.status_code == 200
    assert 'action="/dashboard/login"' in form.text and 'method="post"' in form.text
    assert 'type="password"' in form.text


def test_a_bad_key_gets_an_error_page_and_no_cookie(client, factory):
    r = _login(client, "qg_not-a-key")
    assert r.status_code == 401
    assert "invalid API key" in r.text
    assert "set-cookie" not in r.headers
    revoked = _token(factory)
    key = auth_service.authenticate(session=factory.session, token=revoked)
    auth_service.revoke(session=factory.session, key_id=key.id)
    factory.session.flush()
    r = _login(client, revoked)
    assert r.status_code == 401 and "revoked" in r.text and "set-cookie" not in r.headers


def test_login_sets_an_httponly_strict_cookie_and_the_key_stays_out_of_urls(client, factory, demo):
    token = _token(factory, "viewer")
    r = _login(client, token)
    assert r.status_code == 303
    assert r.headers["location"] == "/dashboard"
    cookie = r.headers["set-cookie"]
    parts = [p.strip().lower() for p in cookie.split(";")]
    assert cookie.startswith("qg_dashboard=")
    assert "httponly" in parts and "samesite=strict" in parts and "path=/dashboard" in parts
    assert "secure" not in parts  # plain http here; https below
    page = client.get("/dashboard", params={"period": PERIOD})
    assert page.status_code == 200
    for response in (r, page):
        assert token not in response.headers.get("location", "")
        assert token not in str(response.url)
    assert token not in page.text  # the page never echoes the key
    # the period picker and every link on the page carry only period, metric and tv
    assert "api_key" not in page.text.split("<main")[1]


def test_the_cookie_is_secure_over_https(app, factory):
    from fastapi.testclient import TestClient

    token = _token(factory, "viewer")
    with TestClient(app, base_url="https://testserver") as c:
        r = c.post(
            "/dashboard/login",
            data={"api_key": token},
            headers={"Origin": "https://testserver"},
            follow_redirects=False,
        )
    assert r.status_code == 303
    assert "secure" in [p.strip().lower() for p in r.headers["set-cookie"].split(";")]


def test_cross_site_posts_are_refused(client, factory):
    token = _token(factory)
    for headers in ({"Origin": "https://evil.example"}, {"Referer": "http://evil/x"}, {}):
        r = client.post(
            "/dashboard/login", data={"api_key": token}, headers=headers, follow_redirects=False
        )
        assert r.status_code == 403, headers
        assert "set-cookie" not in r.headers
    # a same-site Referer (no Origin) is enough
    r = client.post(
        "/dashboard/login",
        data={"api_key": token},
        headers={"Referer": "http://testserver/dashboard/login"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    # logout from another site does not log out
    r = client.post("/dashboard/logout", headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    assert client.get("/dashboard", follow_redirects=False).status_code == 200


def test_the_page_shows_the_apis_numbers(client, factory, demo):
    token = _token(factory, "analyst")
    headers = {"Authorization": f"Bearer {token}"}
    assert _login(client, token).status_code == 303
    errors_shown = 0
    # The ended month, then the running one (only a running period shows a projection's error).
    for metric, period in (
        ("won_revenue", PERIOD),
        ("activities", PERIOD),
        ("won_revenue", "2026-11"),
    ):
        page = _page(client, period=period, metric=metric)
        assert page.attrs_of["period-label"]["data-period"] == period
        api = client.get(
            "/api/v1/performance",
            params={"period": period, "metric": metric, "limit": 500},
            headers=headers,
        ).json()
        assert int(page.attrs_of["snapshot"]["data-value"]) == api["snapshot"]["id"]
        rows = page.rows("reps")
        assert set(rows) == {i["rep_id"] for i in api["items"]} and rows
        for item in api["items"]:
            row = rows[item["rep_id"]]
            for field in ("actual", "target", "attainment", "expected_to_date", "projection"):
                assert _number(row[field]) == item[field], (item["rep_id"], field)
            assert row["status"] == item["status"]
            # how far the projection's method is usually off, and which method it is
            error = item["projection_errors"][item["projection_method"]]
            assert _number(row.get("projection_error")) == (error and error["mape"])
            assert row.get("projection_method") == (error and item["projection_method"])
            errors_shown += error is not None
        # the leaderboard, in the API's order, with its values
        board = client.get(
            "/api/v1/leaderboard", params={"period": period, "metric": metric}, headers=headers
        ).json()["items"]
        shown = page.rows("leaderboard")
        assert list(shown) == [e["rep_id"] for e in board]
        for e in board:
            assert int(shown[e["rep_id"]]["_attrs"]["data-rank"]) == e["rank"]
            assert _number(shown[e["rep_id"]]["value"]) == e["value"]
            assert _number(shown[e["rep_id"]]["attainment"]) == e["attainment"]
        # the six-period trend and the coaching focus of each rep
        for rep_id, row in rows.items():
            trend = client.get(
                f"/api/v1/reps/{rep_id}/trend",
                params={"metric": metric, "end": period},
                headers=headers,
            ).json()
            assert json.loads(row["trend"]) == trend["values"]
            coaching = client.get(
                f"/api/v1/reps/{rep_id}/coaching", params={"period": period}, headers=headers
            )
            focus = coaching.json()["coaching_focus"] if coaching.status_code == 200 else None
            assert row["coaching_focus"] == (focus or "")
        # each team's rollup
        teams = page.rows("teams", "team-id")
        assert teams
        for team_id, row in teams.items():
            rollup = client.get(
                f"/api/v1/teams/{team_id}/performance", params={"period": period}, headers=headers
            ).json()["rollup"]
            mine = next(r for r in rollup if r["metric"] == metric)
            assert _number(row["attainment"]) == mine["attainment"]
    assert errors_shown  # won_revenue's projections have a measured error
    # alerts of the period, as the API lists them
    alerts = client.get("/api/v1/alerts", params={"period": PERIOD}, headers=headers).json()
    shown_alerts = _page(client, period=PERIOD).rows("alerts", "alert-id")
    assert shown_alerts and set(shown_alerts) <= {a["id"] for a in alerts["items"]}


def test_a_manager_sees_only_their_team(client, factory, demo, session):
    team = session.scalars(select(Team).where(Team.parent_id.is_not(None))).first()
    token = _token(factory, "manager", rep_id=team.manager_id)
    headers = {"Authorization": f"Bearer {token}"}
    assert _login(client, token).status_code == 303
    page = _page(client, period=PERIOD)
    api = client.get(
        "/api/v1/performance",
        params={"period": PERIOD, "metric": "won_revenue", "limit": 500},
        headers=headers,
    ).json()["items"]
    everyone = client.get(
        "/api/v1/performance",
        params={"period": PERIOD, "metric": "won_revenue", "limit": 500},
        headers=factory.key("admin"),
    ).json()["items"]
    mine = {i["rep_id"] for i in api}
    assert mine and len(mine) < len(everyone)
    assert {i["team_id"] for i in api} == {team.id}
    assert set(page.rows("reps")) == mine
    assert set(page.rows("leaderboard")) == mine
    assert set(page.rows("teams", "team-id")) == {team.id}
    shown_alerts = page.rows("alerts", "alert-id")
    api_alerts = client.get("/api/v1/alerts", params={"period": PERIOD}, headers=headers).json()
    assert set(shown_alerts) <= {a["id"] for a in api_alerts["items"]}
    assert all(a["rep_id"] in mine or a["team_id"] == team.id for a in api_alerts["items"])


def test_a_viewer_sees_metrics_but_not_alerts_or_sync(client, factory, demo):
    assert _login(client, _token(factory, "viewer")).status_code == 303
    page = _page(client, period=PERIOD)
    assert page.rows("reps")
    assert not page.rows("alerts", "alert-id") and not page.rows("sync", "source-id")


def test_picker_offers_the_computed_periods_and_bad_input_is_explained(client, factory, demo):
    assert _login(client, _token(factory)).status_code == 303
    r = client.get("/dashboard", params={"period": PERIOD})
    assert f'<option value="{PERIOD}" selected>' in r.text
    offered = re.findall(r'<option value="([^"]+)"', r.text)
    # months with targets, newest first, then the metrics that have targets
    assert offered.index("2026-09") == offered.index(PERIOD) + 1
    assert {"won_revenue", "won_deals", "activities"} <= set(offered)
    r = client.get("/dashboard", params={"period": "2026-13", "metric": "shoe_size"})
    assert r.status_code == 200
    assert "showing the current period" in r.text and "unknown metric" in r.text


def test_logout_clears_the_cookie(client, factory, demo):
    assert _login(client, _token(factory)).status_code == 303
    assert client.get("/dashboard", follow_redirects=False).status_code == 200
    r = client.post("/dashboard/logout", headers=ORIGIN, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    cookie = r.headers["set-cookie"].lower()
    assert cookie.startswith('qg_dashboard=""') or cookie.startswith("qg_dashboard=;")
    assert "max-age=0" in cookie and "path=/dashboard" in cookie
    assert client.get("/dashboard", follow_redirects=False).status_code == 303


def test_a_revoked_key_logs_the_page_out(client, factory, demo):
    token = _token(factory)
    assert _login(client, token).status_code == 303
    key = auth_service.authenticate(session=factory.session, token=token)
    auth_service.revoke(session=factory.session, key_id=key.id)
    factory.session.flush()
    r = client.get("/dashboard", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    assert "max-age=0" in r.headers["set-cookie"].lower()


def test_the_dashboard_is_not_in_the_api_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/dashboard")]
    css = client.get("/dashboard/static/dashboard.css")
    assert css.status_code == 200 and "clamp(" in css.text
    assert client.get("/dashboard/static/../router.py").status_code == 404


def test_alerts_show_their_current_figures_and_resolved_ones_are_not_active(
    client, factory, session, settings
):
    """The issue's case: the page must not show a team at one figure next to an alert
    quoting another. Three reps with 10,000 October targets; two miss it."""
    north = factory.team(name="North")
    reps = {n: factory.rep(name=n, team_id=north.id) for n in ("Ann", "Bob", "Cy")}
    for rep in reps.values():
        factory.target(rep_id=rep.id, period=PERIOD, value=10_000)
    for name, amount in (("Ann", 12_000), ("Bob", 3_000), ("Cy", 2_000)):
        factory.won(reps[name], amount, date(2026, 10, 20))
    factory.alert_rule("target.missed")
    factory.alert_rule("team.wide_gap")
    compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    alerting.evaluate(session=session, settings=settings)
    # Bob makes October good (the team-wide gap clears with it); Cy's miss narrows.
    factory.won(reps["Bob"], 8_000, date(2026, 10, 28))
    factory.won(reps["Cy"], 4_000, date(2026, 10, 28))
    compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    alerting.evaluate(session=session, settings=settings)

    token = _token(factory, "admin")
    assert _login(client, token).status_code == 303
    page = _page(client, period=PERIOD)
    headers = {"Authorization": f"Bearer {token}"}
    api = client.get("/api/v1/alerts", params={"period": PERIOD}, headers=headers).json()
    by_id = {a["id"]: a for a in api["items"]}
    shown = page.rows("alerts", "alert-id")
    assert set(shown) == set(by_id)
    states = {by_id[i]["rep_id"] or "team": shown[i]["_attrs"]["data-state"] for i in shown}
    assert states == {reps["Bob"].id: "resolved", reps["Cy"].id: "open", "team": "resolved"}
    for alert_id, row in shown.items():
        assert row["summary"] == by_id[alert_id]["current_summary"]
    cy = next(i for i in shown if by_id[i]["rep_id"] == reps["Cy"].id)
    assert shown[cy]["state"] == "updated"
    assert "6,000 of 10,000 (60%)" in shown[cy]["summary"]
    # Open alerts come first; the resolved ones after, marked as such.
    first, *rest = shown
    assert first == cy and rest
    assert all(shown[i]["state"] == "resolved" for i in rest)


def test_at_risk_reps_and_teams_show_their_path_to_target(client, factory, demo, session, settings):
    """Each at-risk rep and team row carries the API's path_to_target sentence; no other does."""
    team_id = session.scalar(select(Team.id).order_by(Team.id))
    # A team target far out of reach this month: the team is at risk, with a path.
    factory.target(team_id=team_id, period="2026-11", value=5_000_000.0)
    compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    token = _token(factory, "analyst")
    headers = {"Authorization": f"Bearer {token}"}
    assert _login(client, token).status_code == 303
    page = _page(client, period="2026-11", metric="won_revenue")
    api = client.get(
        "/api/v1/performance",
        params={"period": "2026-11", "metric": "won_revenue", "limit": 500},
        headers=headers,
    ).json()["items"]
    rows = page.rows("reps")
    at_risk = [i for i in api if i["status"] == "at_risk" and i["path_to_target"]]
    assert at_risk, "the demo has no at-risk rep with a gap this month"
    for item in api:
        shown = rows[item["rep_id"]].get("path_to_target")
        expected = item["path_to_target"] if item in at_risk else None
        assert shown == expected, item["rep_id"]
    teams = client.get(
        "/api/v1/performance",
        params={"period": "2026-11", "metric": "won_revenue", "subject_type": "team"},
        headers=headers,
    ).json()["items"]
    (team,) = [t for t in teams if t["team_id"] == team_id]
    assert team["status"] == "at_risk" and team["path_to_target"].startswith("out of reach: ")
    shown_teams = page.rows("teams", "team-id")
    assert shown_teams[team_id]["path_to_target"] == team["path_to_target"]
    assert all("path_to_target" not in row for t, row in shown_teams.items() if t != team_id)


def test_the_coaching_record_panel_shows_the_apis_runs(client, factory, demo, session):
    """Each rep of the page with a focus named in the period, with the API's run: since when,
    the driver's ratio in each period, the verdict and how long without improving."""
    token = _token(factory)
    headers = {"Authorization": f"Bearer {token}"}
    assert _login(client, token).status_code == 303
    page = _page(client, period=PERIOD)
    reps = page.rows("reps")
    shown = page.rows("coaching-record")
    expected = {}
    for rep_id in reps:
        record = client.get(
            f"/api/v1/reps/{rep_id}/coaching/record",
            params={"end": PERIOD, "periods": 1},
            headers=headers,
        ).json()
        run = record["current_run"]
        if run is not None and run["period"] == PERIOD:
            expected[rep_id] = run
    # The demo plants weaknesses: some reps have a focus, and only they are listed.
    assert expected and set(shown) == set(expected)
    for rep_id, run in expected.items():
        row = shown[rep_id]
        assert row["coaching_record"] == run["summary"]
        assert row["_attrs"]["data-verdict"] == run["verdict"]
        assert int(row["_attrs"]["data-stalled"]) == run["stalled_periods"]
        # Flagged from 3 periods (the alert's default), and then never called improving.
        assert ("stalled_periods" in row) == (run["stalled_periods"] >= 3)
        assert run["stalled_periods"] < 3 or run["verdict"] != "improving"
        assert row["coaching_record"].startswith(
            f"{run['coaching_focus'].replace('_', ' ')} since {run['since']}: "
        )
    # The rep furthest below target first.
    reached = [reps[rep_id]["attainment"] for rep_id in shown]
    assert reached == sorted(reached, key=lambda v: float("inf") if v in ("", None) else float(v))
    # A manager sees their own team's reps only.
    team = session.scalars(select(Team).where(Team.parent_id.is_not(None))).first()
    manager = _token(factory, "manager", rep_id=team.manager_id)
    assert _login(client, manager).status_code == 303
    theirs = _page(client, period=PERIOD)
    mine = theirs.rows("coaching-record")
    assert set(mine) <= set(shown) & set(theirs.rows("reps"))
