"""Prometheus metrics: the service's own health and, behind a setting, business gauges.

* **HTTP** figures are recorded by :class:`HttpMetricsMiddleware`, a pure ASGI middleware: a
  latency histogram and a request counter labelled by method, route *template*
  (``/api/v1/reps/{rep_id}``, never the raw path, so the number of series stays bounded) and
  status. It does no database work and costs a dictionary lookup and two increments.
* **Database-derived** gauges are read at scrape time by :class:`DatabaseCollector` in one
  short read-only session: per-source sync health, quarantined and synced records, recent job
  durations, the webhook outbox and the latest snapshot. With
  ``QG_METRICS_BUSINESS_GAUGES=true`` it also exports every rep's and team's attainment for
  the current month of the latest snapshot.

Each app has its own :class:`~prometheus_client.CollectorRegistry` (``app.state.telemetry``),
so several apps in one process (tests) never clash. ``GET /metrics`` serves it and, like
every endpoint except ``/health``, needs an API key (``admin``, ``analyst`` or ``viewer``).
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from time import perf_counter
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, aliased, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from analytics.periods import period_of
from app.auth.service import Principal
from app.core.config import Settings
from app.http.deps import require_roles
from app.performance.models import PerformanceRow, Snapshot
from app.performance.versioning import visible
from app.pipeline.jobs.models import JOB_STATUSES, Job
from app.reps.models import Rep
from app.sources.models import QuarantinedRecord, Source, SyncRun
from app.teams.models import Team
from app.webhooks.models import DELIVERY_STATUSES, WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

PREFIX = "quotagap"
# Finer at the low end than prometheus_client's default: most answers take milliseconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# The label of a request no route matched (a 404): raw paths would be unbounded.
UNMATCHED = "<unmatched>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Jobs are counted, and their durations summarised, over this window.
JOB_WINDOW = timedelta(hours=24)


# ---------------------------------------------------------------------------------------------
# HTTP


def route_template(scope: Scope) -> str:
    """The path template of the route that answered, e.g. ``/api/v1/reps/{rep_id}``."""
    # FastAPI (0.16x) keeps routers included with a prefix apart from the app's routes and
    # records the effective route, with its full template, in the scope.
    hint = scope.get("qg.route_hint")  # answered before routing (app.http.caching)
    if isinstance(hint, str):
        return hint
    fastapi_scope = scope.get("fastapi")
    if isinstance(fastapi_scope, dict):
        context = fastapi_scope.get("effective_route_context")
        path = getattr(context, "path_format", None)
        if isinstance(path, str) and path:
            return path
    path = getattr(scope.get("route"), "path_format", None)
    if isinstance(path, str) and path:
        return path
    return UNMATCHED


class _Series:
    """One (method, route, status): requests per latency bucket and their total time."""

    __slots__ = ("buckets", "total")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * size  # not cumulative; the last one is +Inf
        self.total = 0.0


class HttpMetrics(Collector):
    """The request histogram and counter, kept in plain lists and exported at scrape time.

    prometheus_client's own Histogram and Counter take a lock per update (several µs for
    both); here an update is a bisect and two additions. Updates come only from the event
    loop's thread (the middleware runs there), so they need no lock; a scrape, on another
    thread, copies what it reads.
    """

    LABELS = ("method", "route", "status")

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = tuple(sorted(buckets))
        self._les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        self._series: dict[tuple[str, str, int], _Series] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method if method in _METHODS else "OTHER", route, status)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(len(self.bounds) + 1)
        series.buckets[bisect_left(self.bounds, seconds)] += 1
        series.total += seconds

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        duration = HistogramMetricFamily(
            f"{PREFIX}_http_request_duration_seconds",
            "Time to answer an HTTP request, by method, route template and status.",
            labels=self.LABELS,
        )
        requests = CounterMetricFamily(
            f"{PREFIX}_http_requests",
            "HTTP requests answered, by method, route template and status.",
            labels=self.LABELS,
        )
        for (method, route, status), series in sorted(list(self._series.items())):
            labels = [method, route, str(status)]
            cumulative = list(accumulate(list(series.buckets)))
            duration.add_metric(labels, list(zip(self._les, cumulative, strict=True)), series.total)
            requests.add_metric(labels, cumulative[-1])
        yield duration
        yield requests


class HttpMetricsMiddleware:
    """Times every HTTP request; pure ASGI (no per-request task or body buffering)."""

    def __init__(self, app: ASGIApp, *, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 500  # an exception that escapes becomes a 500 further out

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.observe(
                scope["method"], route_template(scope), status, perf_counter() - started
            )


# ---------------------------------------------------------------------------------------------
# Database-derived gauges


def _ts(value: datetime) -> float:
    return value.timestamp()


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


@dataclass
class _Families:
    """The families a scrape fills in, created empty so every name is always exported."""

    families: list[Metric]

    def gauge(self, name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
        family = GaugeMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels))
        self.families.append(family)
        return family

    def counter(self, name: str, doc: str, labels: Iterable[str] = ()) -> CounterMetricFamily:
        family = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=list(labels))
        self.families.append(family)
        return family


SOURCE_LABELS = ("source_id", "kind", "name")


class DatabaseCollector(Collector):
    """Reads the service's state at scrape time: a handful of grouped, indexed queries."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.clock = clock

    def describe(self) -> Iterable[Metric]:
        # Without a describe, registering would call collect() (and query the database).
        return []

    def collect(self) -> Iterator[Metric]:
        out = _Families([])
        up = out.gauge("metrics_database_up", "1 when the scrape read the database, else 0.")
        now = self.clock()
        try:
            with self.sessions() as session:
                self._sources(session, out, now)
                self._jobs(session, out, now)
                self._webhooks(session, out, now)
                version = self._snapshot(session, out, now)
                if self.settings.metrics_business_gauges:
                    self._business(session, out, version)
        except Exception:
            log.exception("reading the database for /metrics failed")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield from out.families

    # -- sources ---------------------------------------------------------------------------

    def _sources(self, session: Session, out: _Families, now: datetime) -> None:
        labels = self._source_health(session, out, now)
        self._source_quarantine(session, out, labels)
        self._source_runs(session, out, labels)

    @staticmethod
    def _source_health(session: Session, out: _Families, now: datetime) -> dict[int, list[str]]:
        """Each source's last success, lag, failures in a row and whether it is enabled; the
        labels of every source, by id."""
        last_success = out.gauge(
            "source_last_success_timestamp_seconds",
            "When the source last synced successfully (Unix time); absent if it never did.",
            SOURCE_LABELS,
        )
        lag = out.gauge(
            "source_sync_lag_seconds",
            "Seconds since the source last synced successfully "
            "(since it was created, if it never did).",
            SOURCE_LABELS,
        )
        failures = out.gauge(
            "source_consecutive_failures",
            "Failed syncs in a row since the source's last success.",
            SOURCE_LABELS,
        )
        enabled = out.gauge("source_enabled", "1 when the source syncs on schedule.", SOURCE_LABELS)
        sources = session.execute(
            select(
                Source.id,
                Source.kind,
                Source.name,
                Source.is_enabled,
                Source.last_success_at,
                Source.consecutive_failures,
                Source.created_at,
            ).order_by(Source.id)
        ).all()
        labels = {s.id: [str(s.id), s.kind, s.name] for s in sources}
        for s in sources:
            lv = labels[s.id]
            if s.last_success_at is not None:
                last_success.add_metric(lv, _ts(s.last_success_at))
            since = s.last_success_at or s.created_at
            lag.add_metric(lv, max((now - since).total_seconds(), 0.0))
            failures.add_metric(lv, s.consecutive_failures)
            enabled.add_metric(lv, 1 if s.is_enabled else 0)
        return labels

    @staticmethod
    def _source_quarantine(session: Session, out: _Families, labels: dict[int, list[str]]) -> None:
        quarantined = out.gauge(
            "quarantined_records",
            "Records of the source held in quarantine (they could not be mapped).",
            SOURCE_LABELS,
        )
        counts = dict(
            session.execute(
                select(QuarantinedRecord.source_id, func.count()).group_by(
                    QuarantinedRecord.source_id
                )
            ).all()
        )
        for source_id, lv in labels.items():
            quarantined.add_metric(lv, counts.get(source_id, 0))

    @staticmethod
    def _source_runs(session: Session, out: _Families, labels: dict[int, list[str]]) -> None:
        """Runs by status, and the records they read and wrote by outcome."""
        synced = out.counter(
            "source_records_synced",
            "Records the source's syncs and imports have read (fetched) and written "
            "(inserted, updated, deleted), by outcome.",
            (*SOURCE_LABELS, "outcome"),
        )
        runs = out.counter(
            "source_sync_runs",
            "Sync and import runs of the source, by status.",
            (*SOURCE_LABELS, "status"),
        )
        totals: dict[int, dict[str, int]] = {}
        for row in session.execute(
            select(
                SyncRun.source_id,
                SyncRun.status,
                func.count(),
                func.coalesce(func.sum(SyncRun.fetched), 0),
                func.coalesce(func.sum(SyncRun.inserted), 0),
                func.coalesce(func.sum(SyncRun.updated), 0),
                func.coalesce(func.sum(SyncRun.deleted), 0),
            ).group_by(SyncRun.source_id, SyncRun.status)
        ):
            source_id, status, n, fetched, inserted, updated, deleted = row
            if source_id not in labels:
                continue
            runs.add_metric([*labels[source_id], status], n)
            per = totals.setdefault(source_id, {})
            for outcome, value in (
                ("fetched", fetched),
                ("inserted", inserted),
                ("updated", updated),
                ("deleted", deleted),
            ):
                per[outcome] = per.get(outcome, 0) + int(value)
        for source_id, lv in labels.items():
            for outcome, value in totals.get(source_id, {}).items():
                synced.add_metric([*lv, outcome], value)

    # -- jobs ------------------------------------------------------------------------------

    def _jobs(self, session: Session, out: _Families, now: datetime) -> None:
        counts = out.gauge(
            "jobs",
            "Jobs created in the last 24 hours, by kind and status.",
            ("kind", "status"),
        )
        last = out.gauge(
            "job_last_duration_seconds",
            "How long the latest finished job of each kind ran (last 24 hours).",
            ("kind", "status"),
        )
        longest = out.gauge(
            "job_max_duration_seconds",
            "The longest finished job of each kind in the last 24 hours.",
            ("kind",),
        )
        average = out.gauge(
            "job_avg_duration_seconds",
            "The mean duration of finished jobs of each kind in the last 24 hours.",
            ("kind",),
        )
        oldest_queued = out.gauge(
            "job_oldest_queued_age_seconds",
            "How long the oldest queued job has waited (0 when none waits).",
        )
        # The (status, created_at) index serves this: one range per status.
        rows = session.execute(
            select(Job.kind, Job.status, Job.created_at, Job.started_at, Job.finished_at).where(
                Job.status.in_(JOB_STATUSES), Job.created_at >= now - JOB_WINDOW
            )
        ).all()
        tally: dict[tuple[str, str], int] = {}
        durations: dict[str, list[tuple[datetime, str, float]]] = {}
        waiting = 0.0
        for row in rows:
            tally[(row.kind, row.status)] = tally.get((row.kind, row.status), 0) + 1
            seconds = _seconds(row.started_at or row.created_at, row.finished_at)
            if seconds is not None and row.finished_at is not None:
                durations.setdefault(row.kind, []).append((row.finished_at, row.status, seconds))
            if row.status == "queued":
                waiting = max(waiting, (now - row.created_at).total_seconds())
        for (kind, status), n in sorted(tally.items()):
            counts.add_metric([kind, status], n)
        for kind, finished in sorted(durations.items()):
            _, status, seconds = max(finished, key=lambda f: f[0])
            last.add_metric([kind, status], seconds)
            values = [f[2] for f in finished]
            longest.add_metric([kind], max(values))
            average.add_metric([kind], sum(values) / len(values))
        oldest_queued.add_metric([], max(waiting, 0.0))

    # -- webhooks --------------------------------------------------------------------------

    def _webhooks(self, session: Session, out: _Families, now: datetime) -> None:
        depth = out.gauge(
            "webhook_queue_depth", "Webhook deliveries not yet delivered nor given up on."
        )
        due = out.gauge(
            "webhook_queue_due", "Pending webhook deliveries whose next attempt is due now."
        )
        oldest = out.gauge(
            "webhook_queue_oldest_age_seconds",
            "Age of the oldest pending webhook delivery (0 when none is pending).",
        )
        by_status = out.gauge(
            "webhook_deliveries", "Webhook deliveries in the outbox, by status.", ("status",)
        )
        disabled = out.gauge(
            "webhook_endpoints_disabled", "Webhook endpoints disabled (by hand or after failing)."
        )
        failing = out.gauge(
            "webhook_endpoints_failing",
            "Enabled webhook endpoints whose latest deliveries failed.",
        )

        statuses = dict.fromkeys(DELIVERY_STATUSES, 0)
        statuses.update(
            session.execute(
                select(WebhookDelivery.status, func.count()).group_by(WebhookDelivery.status)
            ).all()
        )
        for status, n in statuses.items():
            by_status.add_metric([status], n)
        pending = session.execute(
            select(
                func.count(),
                func.min(WebhookDelivery.created_at),
                func.coalesce(
                    func.sum(case((WebhookDelivery.next_attempt_at <= now, 1), else_=0)), 0
                ),
            ).where(WebhookDelivery.status == "pending")
        ).one()
        depth.add_metric([], pending[0])
        due.add_metric([], pending[2])
        first: datetime | None = pending[1]
        oldest.add_metric([], max((now - first).total_seconds(), 0.0) if first else 0.0)

        failing_since = WebhookEndpoint.failing_since.is_not(None)
        states = session.execute(
            select(WebhookEndpoint.is_enabled, failing_since, func.count()).group_by(
                WebhookEndpoint.is_enabled, failing_since
            )
        )
        off = on_failing = 0
        for is_enabled, is_failing, n in states:
            if not is_enabled:
                off += n
            elif is_failing:
                on_failing += n
        disabled.add_metric([], off)
        failing.add_metric([], on_failing)

    # -- snapshots -------------------------------------------------------------------------

    def _snapshot(self, session: Session, out: _Families, now: datetime) -> Snapshot | None:
        version = out.gauge("snapshot_version", "The latest complete snapshot's version (id).")
        computed = out.gauge(
            "snapshot_computed_timestamp_seconds", "When the latest snapshot was computed."
        )
        age = out.gauge("snapshot_age_seconds", "Seconds since the latest snapshot was computed.")
        duration = out.gauge(
            "snapshot_compute_duration_seconds", "How long the latest snapshot took to compute."
        )
        rows = out.gauge("snapshot_rows_written", "Result rows the latest snapshot changed.")
        latest = select(Snapshot).where(Snapshot.status == "complete")
        snapshot = session.scalar(latest.order_by(Snapshot.id.desc()).limit(1))
        if snapshot is None:
            return None
        version.add_metric([], snapshot.id)
        computed.add_metric([], _ts(snapshot.computed_at))
        age.add_metric([], max((now - snapshot.computed_at).total_seconds(), 0.0))
        duration.add_metric([], snapshot.duration_ms / 1000)
        rows.add_metric([], snapshot.rows_written)
        return snapshot

    # -- business gauges -------------------------------------------------------------------

    def current_period(self, as_of: date) -> str:
        return period_of(as_of, "month", self.settings.calendar).label

    def _business(self, session: Session, out: _Families, snapshot: Snapshot | None) -> None:
        reps = out.gauge(
            "rep_attainment",
            "Each rep's actual / target for the current month of the latest snapshot.",
            ("rep_id", "rep_name", "team", "metric", "period"),
        )
        teams = out.gauge(
            "team_attainment",
            "Each team's actual / target for the current month of the latest snapshot.",
            ("team_id", "team", "metric", "period"),
        )
        if snapshot is None:
            return
        period = self.current_period(snapshot.as_of)
        row = PerformanceRow
        current = (
            visible(row, snapshot.id),
            row.period == period,
            row.attainment.is_not(None),
        )
        rep_team = aliased(Team)
        for rep_id, name, team, metric, attainment in session.execute(
            select(row.rep_id, Rep.name, rep_team.name, row.metric, row.attainment)
            .join(Rep, Rep.id == row.rep_id)
            .outerjoin(rep_team, rep_team.id == Rep.team_id)
            .where(row.subject_type == "rep", *current)
            .order_by(row.rep_id, row.metric)
        ):
            if attainment is not None:
                reps.add_metric([str(rep_id), name, team or "", metric, period], attainment)
        for team_id, name, metric, attainment in session.execute(
            select(row.team_id, Team.name, row.metric, row.attainment)
            .join(Team, Team.id == row.team_id)
            .where(row.subject_type == "team", *current)
            .order_by(row.team_id, row.metric)
        ):
            if attainment is not None:
                teams.add_metric([str(team_id), name, metric, period], attainment)


# ---------------------------------------------------------------------------------------------
# The app's registry and endpoint


class Telemetry:
    """One app's registry: its HTTP metrics and its database collector."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http = HttpMetrics()
        self.registry.register(self.http)
        self.database = DatabaseCollector(sessions, settings)
        self.registry.register(self.database)

    def render(self, accept: str | None) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


MetricsScraperKey = Annotated[Principal, Depends(require_roles("admin", "analyst", "viewer"))]

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (API key: admin, analyst or viewer)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(request: Request, _: MetricsScraperKey) -> Response:
    """The service's health (sync lag, job durations, webhook queue, HTTP latency) and, with
    `QG_METRICS_BUSINESS_GAUGES=true`, attainment per rep and team, in Prometheus' text
    format (OpenMetrics when the scraper asks for it). Scrape it with a bearer key."""
    telemetry: Telemetry = request.app.state.telemetry
    body, content_type = telemetry.render(request.headers.get("accept"))
    return Response(content=body, media_type=content_type)


def install(app: FastAPI) -> Telemetry:
    """Give ``app`` its registry, the HTTP middleware and ``GET /metrics``.

    Call it after ``app.state.settings`` and ``app.state.read_sessionmaker`` are set, and
    after any other ``add_middleware``, so that the timing covers the other middleware too.
    """
    telemetry = Telemetry(app.state.settings, app.state.read_sessionmaker)
    app.state.telemetry = telemetry
    app.add_middleware(HttpMetricsMiddleware, metrics=telemetry.http)
    # The per-key rate limit of /api/v1 applies to scrapes too: the key's check charges it
    # (app.http.deps.check_key).
    app.include_router(router)
    return telemetry
