"""The FastAPI application factory."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import Depends, FastAPI
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from app.core.config import Settings, get_settings
from app.core.db import make_sessionmaker
from app.core.exceptions import ServiceUnavailableError, database_error, install_handlers
from app.core.migrate import alembic_config
from app.core.watch import CommitWatch
from app.dashboard.router import router as dashboard_router
from app.http import params
from app.http.api import api_router
from app.http.caching import KnownKeys, RepresentationCache
from app.http.exports import CSVExportMiddleware
from app.http.exports import document as document_csv
from app.http.limits import AddressLimitMiddleware, BodyLimitMiddleware
from app.http.telemetry import install as install_telemetry
from app.pipeline.jobs.runner import JobRunner
from app.pipeline.records import open_engine
from app.pipeline.scheduler import Scheduler

DESCRIPTION = """
Quota Gap compares every sales rep with their targets, explains the gap, and names the skill
to coach.

**Authentication**: every endpoint except `/health` needs an API key in the `Authorization`
header: `Authorization: Bearer qg_...`. Create one with `quotagap create-api-key --role admin`
(or `quotagap demo`, which prints one). In this page, press **Authorize** and paste the key.
Roles: `admin` (everything), `analyst` (read all; write targets, alert rules and webhooks;
recompute), `manager` (read own team tree), `viewer` (read metrics).

**Polling**: every GET answers with `ETag` and `Last-Modified`; send them back as
`If-None-Match` / `If-Modified-Since` and an unchanged answer is a `304` with no body.

**CSV**: every GET under `/api/v1` also answers `text/csv` (`?format=csv` or
`Accept: text/csv`); the next page's cursor is in the `X-Next-Cursor` and `Link` headers.

**Limits**: requests per minute per key (`/metrics` too), and failed authentications and
dashboard logins per client address (429 with `Retry-After`); body size (413).

**Strict input**: a query parameter an operation does not declare is a 422
(`unknown_parameter`, naming it, with `did_you_mean` when a declared one is close); a value
outside an enum is a 422 listing the valid ones; an id in a filter naming no visible record is
a 404, as in the path; a range that ends before it starts is a 422 (`inverted_range`).

**Two dates**: `computed_on` (read endpoints) answers with the figures as computed on that
date, 404 before the first snapshot; `as_of` (only in `POST /api/v1/compute`) computes as if
today were that date. An answer without figures says why in `reason`.

**Errors** share one shape: `{"error": {"code", "message", "details"}}`.

Every figure is defined in `docs/metrics.md`; alerts and webhooks in `docs/alerts.md`.
"""


OPENAPI_TAGS = [
    {"name": "reps", "description": "People, their team and manager."},
    {"name": "teams", "description": "Teams and their managers."},
    {"name": "targets", "description": "Goals per rep or team, metric and period."},
    {"name": "records", "description": "Deals and activities behind every number."},
    {
        "name": "sources",
        "description": "CRM connections, their sync health, runs and quarantined records.",
    },
    {"name": "imports", "description": "CSV imports with a column mapping."},
    {
        "name": "performance",
        "description": "Gaps, pacing, coaching focus, rankings; "
        "every figure comes from a named snapshot and is defined in docs/metrics.md.",
    },
    {"name": "jobs", "description": "Runs of the pipeline: stage, progress, outcome."},
    {
        "name": "alerts",
        "description": "Alert rules and the alerts they raised, each with its numbers.",
    },
    {
        "name": "webhooks",
        "description": "Endpoints that receive signed alerts; deliveries and attempts.",
    },
    {"name": "api keys", "description": "Keys and roles (admin only)."},
    {"name": "audit", "description": "Every change to configuration (admin only)."},
    {"name": "operations", "description": "Prometheus metrics."},
    {"name": "health", "description": "Liveness (no key)."},
]


def create_app(
    settings: Settings | None = None,
    engine: Engine | None = None,
    session_factory: sessionmaker[Session] | None = None,
    run_jobs_inline: bool = False,
    start_scheduler: bool = False,
) -> FastAPI:
    settings = settings or get_settings()
    engine = engine or open_engine(
        settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms
    )
    factory = session_factory or make_sessionmaker(engine)
    jobs = JobRunner(factory, settings, inline=run_jobs_inline)
    scheduler = Scheduler(factory, settings) if start_scheduler else None
    # Only with the app's own engine: sessions bound to an outer transaction (tests) see
    # writes no commit announces.
    watch = CommitWatch(engine) if session_factory is None else None

    app = FastAPI(
        lifespan=_lifespan(scheduler, jobs, watch),
        # Every operation, /health and /metrics included: a query parameter it does not
        # declare is a 422 before anything else runs, the key included (app.http.params).
        dependencies=[Depends(params.reject_unknown), Depends(params.reject_nul)],
        title="Quota Gap",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_tags=OPENAPI_TAGS,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = factory
    # GETs only read: on SQLite they must not queue behind writers (see app.core.db).
    app.state.read_sessionmaker = (
        factory
        if session_factory is not None
        else make_sessionmaker(engine.execution_options(read_only=True))
    )
    app.state.jobs = jobs
    app.state.known_keys = KnownKeys(watch) if watch is not None else None
    install_handlers(app)
    _add_middleware(app, settings)
    document_csv(app)
    app.include_router(api_router)
    app.include_router(dashboard_router)  # HTML at /dashboard, outside the OpenAPI schema
    _add_health(app, engine)
    # Last, so its timing covers every other middleware: GET /metrics and HTTP latency.
    install_telemetry(app)
    return app


def _lifespan(
    scheduler: Scheduler | None, jobs: JobRunner, watch: CommitWatch | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Jobs a previous run of this service left "running" are failed with the reason (in a
        # thread: a database round trip has no place on the event loop).
        await run_in_threadpool(jobs.sweep)
        if scheduler is not None:
            scheduler.start()
        if watch is not None:
            watch.start()
        yield
        if scheduler is not None:
            scheduler.stop()
        jobs.shutdown()
        if watch is not None:
            watch.close()

    return lifespan


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    """The middleware, innermost first."""
    app.add_middleware(CSVExportMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        max_json_bytes=settings.max_json_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    # Outermost of the three: an unchanged GET is answered from memory (app.http.caching).
    app.add_middleware(RepresentationCache)
    # Outside the cache too: an address refused for failed authentications gets nothing else.
    app.add_middleware(AddressLimitMiddleware, settings=settings)


def _add_health(app: FastAPI, engine: Engine) -> None:
    """``/health/live``: the process answers (restart it when not). ``/health/ready``: the
    database answers and its schema is current (send it traffic only then); ``/health`` is
    the same as ready. No key needed (load balancers, orchestrators' probes)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()

    @app.get("/health/live", tags=["health"], summary="The process is up (no auth)")
    def live() -> dict[str, str]:
        """The process answers, whatever the database's state: a failure means restart it."""
        return {"status": "ok"}

    @app.get("/health/ready", tags=["health"], summary="Ready for traffic (no auth)")
    def ready() -> dict[str, str]:
        """A database round trip and the schema's revision: 503 `database_unavailable` while
        the database is away, 503 `service_unavailable` while migrations are pending."""
        try:
            with engine.execution_options(read_only=True).connect() as conn:
                current = MigrationContext.configure(conn).get_current_revision()
        except OperationalError as exc:
            raise database_error(exc) from exc
        if current != head:
            raise ServiceUnavailableError(
                f"the database schema is at {current}, the code needs {head}: run "
                "`quotagap migrate`"
            )
        return {"status": "ok"}

    app.get("/health", tags=["health"], summary="Ready for traffic (no auth): as /health/ready")(
        ready
    )


def create_service_app() -> FastAPI:
    """The app ``quotagap serve`` runs: with the scheduler, unless QG_SCHEDULER_ENABLED=false
    (set it when a separate ``quotagap worker`` runs, or with several uvicorn workers)."""
    settings = get_settings()
    app = create_app(settings, start_scheduler=settings.scheduler_enabled)
    # The imports and the app are long-lived: keep them out of every future collection, and
    # collect the young generation less often. A full collection over pandas' and FastAPI's
    # objects is a pause of tens of milliseconds that lands in some unlucky request's latency.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    return app
