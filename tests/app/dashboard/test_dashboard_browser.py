"""The dashboard in a real browser: headless Chromium (Debian's ``chromium``) driven by
Playwright, against ``quotagap demo`` serving demo data on SQLite (a UI test: the page's
queries are the API's, which run on both backends elsewhere).

It logs in through the form, reads every number the page shows for a period and metric,
switches the period (and then the metric) with the picker, and checks each time that the
numbers equal the API's answers for the same key. It takes the README's screenshots, into
docs/ when ``QG_UPDATE_SCREENSHOTS=1`` (otherwise into a temporary directory, so a test run
does not rewrite tracked files). Chromium missing is a failure, not a skip:
``scripts/ensure-chromium`` installs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
SHOTS = (
    DOCS
    if os.environ.get("QG_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.mkdtemp(prefix="qg-screenshots-"))
)
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")

# Every row of the page: its ids, and each cell's data-metric -> exact data-value (or the
# trend's list of values), plus the cell's visible text.
READ_ROWS = """(selector) => [...document.querySelectorAll(selector)].map(row => ({
  id: row.dataset.repId || row.dataset.teamId,
  rank: row.dataset.rank,
  status: row.dataset.status,
  values: Object.fromEntries([...row.querySelectorAll('[data-metric]')].map(c =>
      [c.dataset.metric, c.dataset.values !== undefined ? c.dataset.values : c.dataset.value])),
  text: Object.fromEntries([...row.querySelectorAll('[data-metric]')].map(c =>
      [c.dataset.metric, c.innerText.trim()])),
}))"""


def _chromium() -> str:
    configured = os.environ.get("QG_CHROMIUM")
    found = configured or next(filter(None, map(shutil.which, CHROMIUM_CANDIDATES)), None)
    if not found or not Path(found).exists():
        pytest.fail(
            "Chromium is needed for the dashboard's browser test and was not found "
            "(looked for QG_CHROMIUM, chromium, chromium-browser). Install Debian's package: "
            "`apt-get install -y chromium` (scripts/ensure-chromium does it; scripts/test runs "
            "that).",
            pytrace=False,
        )
    return str(found)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`quotagap demo` in a subprocess: its URL and the admin key it prints."""
    tmp = tmp_path_factory.mktemp("dashboard-demo")
    port = _free_port()
    env = {
        **os.environ,
        "QG_DATABASE_URL": f"sqlite:///{tmp / 'demo.db'}",
        # No scheduled sync may recompute between the page and the API reads.
        "QG_SCHEDULER_ENABLED": "false",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", "demo", "--port", str(port)],
        cwd=tmp,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, key = "", None
        deadline = time.monotonic() + 180
        while key is None and time.monotonic() < deadline:
            line = proc.stdout.readline() if proc.stdout else ""
            assert line or proc.poll() is None, output
            output += line
            if m := re.search(r"API key:\s+(qg_\S+)", line):
                key = m.group(1)
        assert key, output
        url = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url, key
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, headless=True)
        yield b
        b.close()


def _api(url: str, key: str, path: str, **params: Any) -> Any:
    r = httpx.get(
        f"{url}{path}", params=params, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    return r


def _num(value: str | None) -> float | None:
    return None if value in (None, "") else float(value)


def _check_page_against_api(page: Any, url: str, key: str) -> tuple[str, str]:
    """Every number on the page equals the API's; returns the (period, metric) shown."""
    period = page.get_attribute("#period-label", "data-period")
    metric = page.eval_on_selector("#metric", "s => s.value")
    assert period and metric
    perf = _api(url, key, "/api/v1/performance", period=period, metric=metric, limit=500).json()
    assert int(page.get_attribute("#snapshot", "data-value")) == perf["snapshot"]["id"]

    rows = page.evaluate(READ_ROWS, "#reps tr[data-rep-id]")
    items = perf["items"]
    assert items, f"the demo has no {metric} targets in {period}"
    # same reps, in the API's order for sort=-attainment (the page's order)
    by_attainment = _api(
        url, key, "/api/v1/performance", period=period, metric=metric, sort="-attainment"
    ).json()["items"]
    assert [int(r["id"]) for r in rows] == [i["rep_id"] for i in by_attainment]
    api_by_rep = {i["rep_id"]: i for i in items}
    for row in rows:
        item = api_by_rep[int(row["id"])]
        for field in ("actual", "target", "attainment", "expected_to_date"):
            assert _num(row["values"][field]) == item[field], (row["id"], field)
        assert row["status"] == item["status"]
        # what a person reads: the attainment rounded to a whole percent
        assert row["text"]["attainment"] == f"{round(item['attainment'] * 100)}%"
        # the projection, and how far its method is usually off (when measured)
        assert _num(row["values"]["projection"]) == item["projection"]
        error = item["projection_errors"][item["projection_method"]]
        if error is None:
            assert "projection_error" not in row["values"]
        else:
            shown = row["text"]["projection_error"]
            assert shown.startswith(f"usually off by ±{round(error['mape'] * 100)}%"), shown
        trend = _api(url, key, f"/api/v1/reps/{row['id']}/trend", metric=metric, end=period).json()
        assert json.loads(row["values"]["trend"]) == trend["values"]
        coaching = _api(url, key, f"/api/v1/reps/{row['id']}/coaching", period=period)
        focus = coaching.json()["coaching_focus"] if coaching.status_code == 200 else None
        assert row["values"]["coaching_focus"] == (focus or "")

    # the path to target under each at-risk rep with a gap, as the API words it
    paths = page.eval_on_selector_all(
        "#reps tr.path-row",
        "rs => rs.map(r => [r.dataset.pathFor, r.querySelector('[data-metric]').dataset.value,"
        " r.innerText.trim()])",
    )
    expected = {
        str(i["rep_id"]): i["path_to_target"]
        for i in items
        if i["status"] == "at_risk" and i["path_to_target"]
    }
    assert {rep: value for rep, value, _ in paths} == expected
    assert all(text.endswith(value) for _, value, text in paths)

    board = _api(url, key, "/api/v1/leaderboard", period=period, metric=metric).json()["items"]
    shown = page.evaluate(READ_ROWS, "#leaderboard li[data-rep-id]")
    assert [(int(r["id"]), int(r["rank"])) for r in shown] == [
        (e["rep_id"], e["rank"]) for e in board
    ]
    for r, e in zip(shown, board, strict=True):
        assert _num(r["values"]["value"]) == e["value"]
        assert _num(r["values"]["attainment"]) == e["attainment"]

    for team in page.evaluate(READ_ROWS, "#teams tr[data-team-id]"):
        rollup = _api(url, key, f"/api/v1/teams/{team['id']}/performance", period=period).json()
        mine = next(r for r in rollup["rollup"] if r["metric"] == metric)
        assert _num(team["values"]["attainment"]) == mine["attainment"]
    return period, metric


def _check_record_against_api(page: Any, url: str, key: str) -> int:
    """The coaching-record panel: each listed rep's run is the API's, as a person reads it
    (the sentence with the ratios, the verdict); returns how many reps it lists."""
    period = page.get_attribute("#period-label", "data-period")
    runs = page.evaluate(READ_ROWS, "#coaching-record li[data-rep-id]")
    for row in runs:
        record = _api(
            url, key, f"/api/v1/reps/{row['id']}/coaching/record", end=period, periods=1
        ).json()
        run = record["current_run"]
        assert run is not None and run["period"] == period, row["id"]
        assert row["text"]["coaching_record"] == run["summary"]
        assert row["values"]["verdict"] == run["verdict"]
        assert row["text"]["verdict"] == run["verdict"].replace("_", " ")
        if run["stalled_periods"] >= 3:  # the alert's default; shorter stalls are not flagged
            assert run["verdict"] != "improving"  # stalled over the verdict's window
            assert row["values"]["stalled_periods"] == str(run["stalled_periods"])
    # Every rep of the page with a focus named in the period is listed.
    reps = [int(r["id"]) for r in page.evaluate(READ_ROWS, "#reps tr[data-rep-id]")]
    named = [
        r
        for r in reps
        if (
            run := _api(url, key, f"/api/v1/reps/{r}/coaching/record", end=period, periods=1)
            .json()
            .get("current_run")
        )
        and run["period"] == period
    ]
    assert sorted(int(r["id"]) for r in runs) == sorted(named)
    return len(runs)


def _pick(page: Any, select: str, value: str) -> None:
    """Choose in a picker as a person would; the page reloads with the choice."""
    with page.expect_navigation():
        page.select_option(select, value)


def test_dashboard_in_chromium_shows_the_apis_numbers(demo, browser):
    url, key = demo
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))

    # logged out: the dashboard sends the browser to the login form
    page.goto(f"{url}/dashboard")
    assert page.url == f"{url}/dashboard/login"
    page.fill("#api_key", "qg_wrong")
    page.click("button[type=submit]")
    assert "invalid API key" in page.inner_text("#login-error")
    errors.clear()  # the 401 of that answer is logged as a console error
    page.fill("#api_key", key)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url == f"{url}/dashboard"
    (cookie,) = [c for c in context.cookies() if c["name"] == "qg_dashboard"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # not readable by scripts

    first = _check_page_against_api(page, url, key)
    assert _check_record_against_api(page, url, key) > 0  # the demo plants weaknesses
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)
    assert (SHOTS / "dashboard.png").stat().st_size > 10_000

    # switch the period with the picker: the previous month
    months = page.eval_on_selector_all(
        "#period optgroup[label=Months] option", "os => os.map(o => o.value)"
    )
    assert months[0] == first[0] and len(months) >= 2
    _pick(page, "#period", months[1])
    assert f"period={months[1]}" in page.url
    assert _check_page_against_api(page, url, key) == (months[1], first[1])

    # and the metric
    other = next(
        m
        for m in page.eval_on_selector_all("#metric option", "os => os.map(o => o.value)")
        if m != first[1]
    )
    _pick(page, "#metric", other)
    assert _check_page_against_api(page, url, key) == (months[1], other)
    # the key went in a form body and a cookie, never in any URL the browser asked for
    assert requested and not [u for u in requested if key in u]

    # the wall-TV layout of the current period, for the README
    tv = browser.new_context(viewport={"width": 1920, "height": 1080})
    tv.add_cookies([cookie])
    tv_page = tv.new_page()
    tv_page.goto(f"{url}/dashboard?tv=1")
    assert tv_page.get_attribute("#period-label", "data-period") == first[0]
    assert tv_page.evaluate("document.body.classList.contains('tv')")
    tv_page.screenshot(path=str(SHOTS / "dashboard-tv.png"))
    tv.close()

    # sign out: the cookie goes and the dashboard asks for a key again
    with page.expect_navigation():
        page.click("text=Sign out")
    assert page.url == f"{url}/dashboard/login"
    assert not [c for c in context.cookies() if c["name"] == "qg_dashboard"]
    page.goto(f"{url}/dashboard")
    assert page.url == f"{url}/dashboard/login"
    assert errors == []
    context.close()


def test_a_manager_in_chromium_sees_only_their_team(demo, browser):
    url, key = demo
    teams = _api(url, key, "/api/v1/teams").json()["items"]
    team = next(t for t in teams if t["parent_id"] is not None)
    r = httpx.post(
        f"{url}/api/v1/api-keys",
        json={"role": "manager", "rep_id": team["manager_id"], "name": "browser test"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert r.status_code == 201, r.text
    manager_key = r.json()["key"]
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.goto(f"{url}/dashboard/login")
    page.fill("#api_key", manager_key)
    with page.expect_navigation():
        page.click("button[type=submit]")
    period, metric = _check_page_against_api(page, url, manager_key)
    _check_record_against_api(page, url, manager_key)
    shown = {int(r["id"]) for r in page.evaluate(READ_ROWS, "#reps tr[data-rep-id]")}
    everyone = _api(url, key, "/api/v1/performance", period=period, metric=metric).json()
    assert shown and shown < {i["rep_id"] for i in everyone["items"]}
    teams_shown = {int(t["id"]) for t in page.evaluate(READ_ROWS, "#teams tr[data-team-id]")}
    assert teams_shown == {team["id"]}
    context.close()
