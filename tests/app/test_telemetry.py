"""GET /metrics: the service's health and, behind a setting, attainment, for Prometheus; and
the example Grafana dashboard, which may only chart metrics the service exports."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.http.main import create_app
from app.http.telemetry import UNMATCHED, HttpMetrics
from app.performance import compute
from app.pipeline.jobs.models import Job
from app.sources.models import QuarantinedRecord, SyncRun
from app.webhooks.models import WebhookDelivery

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"

Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(client: TestClient, headers: dict[str, str]) -> tuple[Samples, set[str]]:
    """Every sample by name, and every metric name the exposition declares."""
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    names: set[str] = set()
    for family in text_string_to_metric_families(r.text):
        names.add(family.name)
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_count", "_sum"),
            "summary": ("_count", "_sum"),
        }.get(family.type, ())
        names.update(family.name + s for s in suffixes)
        for s in family.samples:
            names.add(s.name)
            samples.setdefault(s.name, []).append((s.labels, s.value))
    return samples, names


def value(samples: Samples, name: str, /, **labels: str) -> float:
    found = [v for lv, v in samples.get(name, []) if labels.items() <= lv.items()]
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]


@pytest.fixture
def fixed_clock(app):
    app.state.telemetry.database.clock = lambda: NOW
    return NOW


def test_metrics_needs_a_key_of_a_role_that_reads_metrics(client, factory):
    r = client.get("/metrics")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    # A manager sees only their own team tree; the gauges span every team.
    manager = factory.rep(role="manager")
    assert (
        client.get("/metrics", headers=factory.key("manager", rep_id=manager.id)).status_code == 403
    )
    for role in ("admin", "analyst", "viewer"):
        samples, _ = scrape(client, factory.key(role))
        assert value(samples, "quotagap_metrics_database_up") == 1


def test_metrics_is_documented_under_operations(client):
    operation = client.get("/openapi.json").json()["paths"]["/metrics"]["get"]
    assert operation["tags"] == ["operations"]


def test_http_latency_is_labelled_by_route_template_never_the_raw_path(client, factory):
    headers = factory.key("viewer")
    rep = factory.rep(name="Latency Larry")
    for _ in range(3):
        assert client.get(f"/api/v1/reps/{rep.id}", headers=headers).status_code == 200
    assert client.get("/api/v1/reps/987654", headers=headers).status_code == 404
    assert client.get("/no/such/page/31337").status_code == 404

    samples, _ = scrape(client, headers)
    count = "quotagap_http_request_duration_seconds_count"
    template = "/api/v1/reps/{rep_id}"
    assert value(samples, count, method="GET", route=template, status="200") == 3
    assert value(samples, count, method="GET", route=template, status="404") == 1
    assert value(samples, "quotagap_http_requests_total", route=template, status="200") == 3
    assert value(samples, count, route=UNMATCHED, status="404") == 1
    buckets = [
        lv
        for lv, _ in samples["quotagap_http_request_duration_seconds_bucket"]
        if lv["route"] == template and lv["status"] == "200"
    ]
    assert {lv["le"] for lv in buckets} >= {"0.005", "0.1", "+Inf"}
    routes = {lv["route"] for lvs in samples.values() for lv, _ in lvs if "route" in lv}
    assert routes == {template, UNMATCHED}
    assert not any(f"/reps/{rep.id}" in r or "987654" in r or "31337" in r for r in routes)


def test_source_gauges_show_sync_health_records_and_quarantine(
    client, factory, session, fixed_clock
):
    crm = factory.source(
        kind="hubspot",
        name="HubSpot EU",
        last_success_at=NOW - timedelta(hours=2),
        consecutive_failures=3,
        created_at=NOW - timedelta(days=30),
    )
    never = factory.source(name="never synced", created_at=NOW - timedelta(minutes=10))
    for status, fetched, inserted, updated in (("succeeded", 120, 100, 5), ("failed", 7, 0, 0)):
        session.add(
            SyncRun(
                source_id=crm.id,
                status=status,
                fetched=fetched,
                inserted=inserted,
                updated=updated,
                deleted=2,
                started_at=NOW - timedelta(hours=3),
            )
        )
    for i in range(4):
        session.add(
            QuarantinedRecord(
                source_id=crm.id,
                object_type="deal",
                external_id=f"bad-{i}",
                record_key=f"bad-{i}",
                reason="unknown owner",
                payload={"id": f"bad-{i}"},
            )
        )
    session.flush()

    samples, _ = scrape(client, factory.key("viewer"))
    ids = {"source_id": str(crm.id), "kind": "hubspot", "name": "HubSpot EU"}
    assert value(samples, "quotagap_source_last_success_timestamp_seconds", **ids) == (
        (NOW - timedelta(hours=2)).timestamp()
    )
    assert value(samples, "quotagap_source_sync_lag_seconds", **ids) == 7200
    assert value(samples, "quotagap_source_consecutive_failures", **ids) == 3
    assert value(samples, "quotagap_source_enabled", **ids) == 1
    assert value(samples, "quotagap_quarantined_records", **ids) == 4
    synced = "quotagap_source_records_synced_total"
    assert value(samples, synced, outcome="fetched", **ids) == 127
    assert value(samples, synced, outcome="inserted", **ids) == 100
    assert value(samples, synced, outcome="updated", **ids) == 5
    assert value(samples, synced, outcome="deleted", **ids) == 4
    runs = "quotagap_source_sync_runs_total"
    assert value(samples, runs, status="failed", **ids) == 1
    assert value(samples, runs, status="succeeded", **ids) == 1

    # A source that never succeeded: lag since it was created, no last-success sample.
    other = {"source_id": str(never.id)}
    assert value(samples, "quotagap_source_sync_lag_seconds", **other) == 600
    assert value(samples, "quotagap_quarantined_records", **other) == 0
    assert not [
        lv
        for lv, _ in samples.get("quotagap_source_last_success_timestamp_seconds", [])
        if lv["source_id"] == str(never.id)
    ]


def test_job_gauges_count_recent_jobs_and_their_durations(client, factory, session, fixed_clock):
    def job(kind: str, status: str, ago: timedelta, seconds: float | None) -> None:
        started = NOW - ago
        session.add(
            Job(
                kind=kind,
                status=status,
                created_at=started - timedelta(seconds=1),
                started_at=started if status != "queued" else None,
                finished_at=started + timedelta(seconds=seconds) if seconds is not None else None,
            )
        )

    job("compute", "succeeded", timedelta(hours=5), 40)
    job("compute", "succeeded", timedelta(hours=1), 20)  # the latest
    job("sync", "failed", timedelta(hours=2), 5)
    job("sync", "queued", timedelta(minutes=3), None)
    job("sync", "succeeded", timedelta(days=3), 999)  # outside the 24-hour window
    session.flush()

    samples, _ = scrape(client, factory.key("viewer"))
    assert value(samples, "quotagap_jobs", kind="compute", status="succeeded") == 2
    assert value(samples, "quotagap_jobs", kind="sync", status="failed") == 1
    assert value(samples, "quotagap_jobs", kind="sync", status="queued") == 1
    assert not [
        lv for lv, _ in samples["quotagap_jobs"] if lv == {"kind": "sync", "status": "succeeded"}
    ]
    assert value(samples, "quotagap_job_last_duration_seconds", kind="compute") == 20
    assert value(samples, "quotagap_job_last_duration_seconds", kind="sync", status="failed") == 5
    assert value(samples, "quotagap_job_max_duration_seconds", kind="compute") == 40
    assert value(samples, "quotagap_job_avg_duration_seconds", kind="compute") == 30
    assert value(samples, "quotagap_job_oldest_queued_age_seconds") == 181


def test_webhook_gauges_count_the_outbox(client, factory, session, settings, fixed_clock):
    endpoint, _ = factory.webhook(settings, "https://hooks.example.com/a")
    factory.webhook(
        settings, "https://hooks.example.com/b", is_enabled=False, disabled_reason="gone"
    )
    factory.webhook(settings, "https://hooks.example.com/c", failing_since=NOW - timedelta(hours=1))

    numbers = itertools.count(1)

    def delivery(status: str, created_ago: timedelta, next_in: timedelta | None) -> None:
        session.add(
            WebhookDelivery(
                endpoint_id=endpoint.id,
                message_id=f"msg_{next(numbers)}",
                event_type="target.missed",
                body="{}",
                status=status,
                created_at=NOW - created_ago,
                next_attempt_at=NOW + next_in if next_in is not None else None,
            )
        )
        session.flush()

    delivery("pending", timedelta(minutes=30), timedelta(minutes=-1))  # due
    delivery("pending", timedelta(minutes=5), timedelta(minutes=10))  # waits for a retry
    delivery("pending", timedelta(minutes=1), timedelta(0))  # due now
    delivery("succeeded", timedelta(hours=2), None)
    delivery("failed", timedelta(days=1), None)

    samples, _ = scrape(client, factory.key("viewer"))
    assert value(samples, "quotagap_webhook_queue_depth") == 3
    assert value(samples, "quotagap_webhook_queue_due") == 2
    assert value(samples, "quotagap_webhook_queue_oldest_age_seconds") == 1800
    assert value(samples, "quotagap_webhook_deliveries", status="pending") == 3
    assert value(samples, "quotagap_webhook_deliveries", status="succeeded") == 1
    assert value(samples, "quotagap_webhook_deliveries", status="failed") == 1
    assert value(samples, "quotagap_webhook_endpoints_disabled") == 1
    assert value(samples, "quotagap_webhook_endpoints_failing") == 1


AS_OF = date(2026, 11, 15)


@pytest.fixture
def north(factory, session, settings):
    """Team North: Ann has won 6,000 and Bob 12,000 of 10,000 each in November 2026, the
    team 18,000 of 20,000; both reps also had an October target."""
    north = factory.team(name="North")
    ann = factory.rep(name="Ann", team_id=north.id)
    bob = factory.rep(name="Bob", team_id=north.id)
    for rep in (ann, bob):
        for month in ("2026-10", "2026-11"):
            factory.target(rep_id=rep.id, period=month, value=10_000)
    factory.target(team_id=north.id, period="2026-11", value=20_000)
    factory.won(ann, 9_000, date(2026, 10, 20))
    factory.won(ann, 6_000, date(2026, 11, 3))
    factory.won(bob, 12_000, date(2026, 11, 4))
    snapshot = compute.run(session=session, settings=settings, as_of=AS_OF, full=True)
    return {"team": north, "Ann": ann, "Bob": bob, "snapshot": snapshot}


def test_snapshot_gauges_name_the_latest_version(client, factory, north, fixed_clock):
    samples, _ = scrape(client, factory.key("viewer"))
    snapshot = north["snapshot"]
    assert value(samples, "quotagap_snapshot_version") == snapshot.id
    assert value(samples, "quotagap_snapshot_computed_timestamp_seconds") == (
        snapshot.computed_at.timestamp()
    )
    assert value(samples, "quotagap_snapshot_rows_written") == snapshot.rows_written > 0


def test_business_gauges_are_off_by_default(client, factory, north):
    samples, names = scrape(client, factory.key("viewer"))
    assert "quotagap_rep_attainment" not in names
    assert "quotagap_team_attainment" not in names
    assert not any("Ann" in str(lv) for lvs in samples.values() for lv, _ in lvs)


@pytest.fixture
def business_client(settings, engine, session_factory):
    app = create_app(
        settings.model_copy(update={"metrics_business_gauges": True}),
        engine=engine,
        session_factory=session_factory,
        run_jobs_inline=True,
    )
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_business_gauges_give_the_current_months_attainment(
    business_client, client, factory, north
):
    headers = factory.key("viewer")
    samples, _ = scrape(business_client, headers)
    ann, bob, team = north["Ann"], north["Bob"], north["team"]
    rep = "quotagap_rep_attainment"
    labels = {"metric": "won_revenue", "period": "2026-11", "team": "North"}
    assert value(samples, rep, rep_id=str(ann.id), rep_name="Ann", **labels) == pytest.approx(0.6)
    assert value(samples, rep, rep_id=str(bob.id), rep_name="Bob", **labels) == pytest.approx(1.2)
    # Only the current month of the latest snapshot, never October.
    assert {lv["period"] for lv, _ in samples[rep]} == {"2026-11"}

    api = client.get(
        "/api/v1/performance",
        params={"period": "2026-11", "subject_type": "team", "metric": "won_revenue"},
        headers=headers,
    ).json()["items"]
    expected = next(i["attainment"] for i in api if i["team_id"] == team.id)
    assert expected == pytest.approx(0.9)
    got = value(
        samples,
        "quotagap_team_attainment",
        team_id=str(team.id),
        team="North",
        metric="won_revenue",
    )
    assert got == pytest.approx(expected)


def _exprs(panels: list[dict]) -> list[tuple[str, str]]:
    out = []
    for panel in panels:
        out.extend(_exprs(panel.get("panels", [])))
        out.extend((panel["title"], t["expr"]) for t in panel.get("targets", []))
    return out


def test_the_grafana_dashboard_charts_only_metrics_the_service_exports(
    business_client, factory, north
):
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"

    headers = factory.key("viewer")
    business_client.get(f"/api/v1/reps/{north['Ann'].id}", headers=headers)
    _, exported = scrape(business_client, headers)

    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) >= 10
    referenced: set[str] = set()
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel.get("targets"), panel["title"]
    queries = _exprs(dashboard["panels"]) + [
        ("variable " + v["name"], v["definition"]) for v in variables.values() if "definition" in v
    ]
    for title, expr in queries:
        names = set(re.findall(r"\bquotagap_[a-z0-9_]+", expr))
        assert names, (title, expr)
        missing = names - exported
        assert not missing, f"panel {title!r} charts {missing}, which /metrics does not export"
        referenced |= names

    # Every part of the brief has a panel.
    for name in (
        "quotagap_source_sync_lag_seconds",
        "quotagap_source_last_success_timestamp_seconds",
        "quotagap_source_consecutive_failures",
        "quotagap_quarantined_records",
        "quotagap_job_last_duration_seconds",
        "quotagap_webhook_queue_depth",
        "quotagap_webhook_deliveries",
        "quotagap_http_request_duration_seconds_bucket",
        "quotagap_http_requests_total",
        "quotagap_rep_attainment",
        "quotagap_team_attainment",
    ):
        assert name in referenced, name
    latency = [e for _, e in _exprs(dashboard["panels"]) if "histogram_quantile" in e]
    assert any("0.5," in e for e in latency) and any("0.99," in e for e in latency)


def test_latency_buckets_are_cumulative_and_a_bound_counts_in_its_own_bucket():
    from prometheus_client import CollectorRegistry, generate_latest

    metrics = HttpMetrics(buckets=(0.01, 0.1, 1.0))
    registry = CollectorRegistry()
    registry.register(metrics)
    for seconds in (0.005, 0.01, 0.05, 0.5, 3.0):
        metrics.observe("GET", "/x/{id}", 200, seconds)
    metrics.observe("BREW", "/x/{id}", 418, 0.2)  # an unknown method is "OTHER"

    samples: Samples = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            samples.setdefault(s.name, []).append((s.labels, s.value))
    bucket = "quotagap_http_request_duration_seconds_bucket"
    ok = {"method": "GET", "route": "/x/{id}", "status": "200"}
    assert [value(samples, bucket, le=le, **ok) for le in ("0.01", "0.1", "1.0", "+Inf")] == [
        2,
        3,
        4,
        5,
    ]
    assert value(samples, "quotagap_http_request_duration_seconds_count", **ok) == 5
    assert value(samples, "quotagap_http_request_duration_seconds_sum", **ok) == pytest.approx(
        3.565
    )
    assert value(samples, "quotagap_http_requests_total", **ok) == 5
    assert value(samples, "quotagap_http_requests_total", method="OTHER", status="418") == 1


def test_an_unhandled_error_is_counted_as_a_500(app, client, factory):
    @app.get("/boom/{n}")
    def boom(n: int) -> None:
        raise RuntimeError("boom")

    assert client.get("/boom/7").status_code == 500
    samples, _ = scrape(client, factory.key("viewer"))
    assert value(samples, "quotagap_http_requests_total", route="/boom/{n}", status="500") == 1
