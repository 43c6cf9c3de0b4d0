"""The ``quotagap`` command line."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.core.config import get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from app.pipeline.jobs.models import Job

cli = typer.Typer(
    help="Quota Gap: sales performance against target.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals can hold credentials
)


def _database() -> sessionmaker[Session]:
    """Sessions on the configured database, brought to the latest schema first."""
    from app.core.db import make_sessionmaker
    from app.core.migrate import upgrade
    from app.pipeline.records import open_engine

    settings = get_settings()
    engine = open_engine(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    upgrade(engine)
    return make_sessionmaker(engine)


def _run_job(
    factory: sessionmaker[Session],
    *,
    kind: str,
    source_id: int | None = None,
    params: dict[str, Any] | None = None,
) -> Job:
    """Run a job here as the API or the scheduler would (recorded in the job history, the
    whole chain: sync, compute, alerts), with a progress bar fed from the job's own row."""
    import threading

    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

    from app.core.db import transaction
    from app.pipeline.jobs import service as jobs_service

    jobs_service.sweep(factory, get_settings())  # a run this re-runs may have been killed
    with transaction(factory) as session:
        job_id = jobs_service.create(
            session=session, kind=kind, source_id=source_id, trigger="cli", params=params
        ).id
    done: list[Job] = []
    runner = threading.Thread(
        target=lambda: done.append(
            jobs_service.run(session_factory=factory, settings=get_settings(), job_id=job_id)
        ),
        name="job",
    )
    runner.start()
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description:<8}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%  {task.fields[detail]}"),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(kind, total=None, detail="")
        while runner.is_alive():
            runner.join(0.25)
            with factory() as session:
                job = jobs_service.get(session=session, job_id=job_id)
                stage, progress = job.stage or job.status, dict(job.progress)
            percent = progress.get("percent")
            detail = (
                f"{progress.get('records', 0):,} records, {progress.get('pages', 0):,} pages"
                if stage == "sync"
                else ""
            )
            bar.update(
                task,
                description=stage,
                total=100 if percent is not None else None,
                completed=percent or 0,
                detail=detail,
            )
        bar.update(task, total=100, completed=100, description="done")
    if not done:
        raise typer.Exit(1)
    return done[0]


def _print_result(job: Job) -> None:
    result = job.result
    if "sync" in result:
        r = result["sync"]
        typer.echo(
            f"sync run {r['run']} {r['status']}: {r['fetched']} fetched, {r['inserted']} "
            f"inserted, {r['updated']} updated, {r['deleted']} deleted, "
            f"{r['quarantined']} quarantined, {r['pages']} pages"
        )
        for stream, count in r.get("reconciled", {}).items():
            typer.echo(f"resync: {count} {stream} no longer in the CRM, marked deleted")
        for notice in r.get("notices", []):
            typer.echo(f"note: {notice}", err=True)
    if "compute" in result:
        c = result["compute"]
        typer.echo(
            f"snapshot {c['snapshot']}: {c['periods']} periods, {c['rows_written']} rows "
            f"changed in {c['duration_ms']} ms"
        )
        if "alerts" in c:
            a = c["alerts"]
            typer.echo(
                f"alerts: {a['created']} new, {a.get('updated', 0)} updated, "
                f"{a.get('resolved', 0)} resolved from {a['rules']} rules, "
                f"{a['deliveries']} webhook deliveries queued"
            )
    if job.status == "paused":  # what was read is stored and computed: not a failure
        typer.echo(f"job {job.id} {job.error}", err=True)
    elif job.status != "succeeded":
        typer.echo(f"job {job.id} failed: {job.error}", err=True)
        raise typer.Exit(1)


def _recompute(
    factory: sessionmaker[Session], *, full: bool = False, as_of: date | None = None
) -> Job:
    params: dict[str, Any] = {"full": full}
    if as_of is not None:
        params["as_of"] = as_of.isoformat()
    job = _run_job(factory, kind="compute", params=params)
    _print_result(job)
    return job


def _serve(host: str | None, port: int | None, workers: int = 1) -> None:
    import os

    import uvicorn

    if workers > 1:
        # Each worker would start a scheduler and run every job several times: leave the
        # scheduler to `quotagap worker` (the lease would also stop all but one, but why try).
        os.environ["QG_SCHEDULER_ENABLED"] = "false"
        get_settings.cache_clear()
        typer.echo("several workers: the scheduler is off here; run `quotagap worker` too")
    settings = get_settings()
    uvicorn.run(
        "app.http.main:create_service_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_level=settings.log_level,
    )


@cli.command()
def migrate() -> None:
    """Bring the database to the latest schema (safe to run at any time)."""
    factory = _database()
    url = factory.kw["bind"].url.render_as_string(hide_password=True)
    typer.echo(f"database at head: {url}")


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address")] = None,
    port: Annotated[int | None, typer.Option(help="Port")] = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1,
) -> None:
    """Migrate the database, then serve the API."""
    _database()
    _serve(host, port, workers)


@cli.command("create-api-key")
def create_api_key(
    role: Annotated[str, typer.Option(help="admin, analyst, manager or viewer")],
    rep: Annotated[int | None, typer.Option(help="The manager's rep id (role manager)")] = None,
    name: Annotated[str, typer.Option(help="A label for the key")] = "",
    expires_days: Annotated[int | None, typer.Option(help="Expire after N days")] = None,
) -> None:
    """Create an API key and print it (it is shown only once)."""
    from datetime import timedelta

    from app.auth import service as auth_service
    from app.core.db import transaction

    factory = _database()
    expires = datetime.now(UTC) + timedelta(days=expires_days) if expires_days else None
    with transaction(factory) as session:
        key, token = auth_service.create(
            session=session, role=role, name=name, rep_id=rep, expires_at=expires
        )
        typer.echo(f"created {key.role} key #{key.id} ({key.prefix}...). Store it now:")
    typer.echo(token)


quarantine_cli = typer.Typer(help="Records a source could not load: list and replay them.")
cli.add_typer(quarantine_cli, name="quarantine")


@quarantine_cli.command("replay")
def quarantine_replay(source_id: Annotated[int, typer.Argument(help="The source's id")]) -> None:
    """Replay the quarantine: records of an owner now known, and records the mapping rejected
    mapped again with the CRM's catalogs read now; those stored leave quarantine and the next
    compute counts them."""
    from app.pipeline.sync import replay_now
    from app.sources.models import Source

    factory = _database()
    with factory() as session:
        if session.get(Source, source_id) is None:
            typer.echo(f"no source {source_id}", err=True)
            raise typer.Exit(1)
    run = replay_now(session_factory=factory, settings=get_settings(), source_id=source_id)
    for notice in run.details.get("notices", []):
        typer.echo(f"note: {notice}", err=True)
    typer.echo(
        f"replayed {run.details['replayed']} record(s) of source {source_id}: "
        f"{run.inserted} inserted, {run.updated} updated; "
        f"{run.details['still_quarantined']} still quarantined"
    )


@cli.command("list-api-keys")
def list_api_keys() -> None:
    """List API keys (id, role, name, prefix, expiry, revocation); never the keys themselves."""
    from app.auth import service as auth_service

    factory = _database()
    with factory() as session:
        for key in auth_service.list_keys(session=session):
            state = (
                f"revoked {key.revoked_at:%Y-%m-%d}"
                if key.revoked_at
                else f"expires {key.expires_at:%Y-%m-%d %H:%M}"
                if key.expires_at
                else "active"
            )
            typer.echo(f"#{key.id:<5} {key.role:<8} {key.prefix}...  {key.name}  ({state})")


@cli.command("revoke-api-key")
def revoke_api_key(key_id: Annotated[int, typer.Argument(help="The key's id")]) -> None:
    """Revoke a key at once."""
    from app.auth import service as auth_service
    from app.core.db import transaction

    with transaction(_database()) as session:
        key = auth_service.revoke(session=session, key_id=key_id)
        typer.echo(f"revoked {key.role} key #{key.id} ({key.prefix}...)")


@cli.command("rotate-api-key")
def rotate_api_key(
    key_id: Annotated[int, typer.Argument(help="The key to replace")],
    grace_hours: Annotated[
        float, typer.Option(help="Keep the old key working this long (0: revoke now)")
    ] = 0,
) -> None:
    """Replace a key with a new one of the same role and scope; print the new key once."""
    from datetime import timedelta

    from app.auth import service as auth_service
    from app.auth.models import ApiKey
    from app.core.base import utcnow
    from app.core.db import transaction

    with transaction(_database()) as session:
        old = session.get(ApiKey, key_id)
        if old is None or old.revoked_at is not None:
            typer.echo(f"error: no active API key #{key_id}", err=True)
            raise typer.Exit(2)
        key, token = auth_service.create(
            session=session,
            role=old.role,
            name=old.name,
            rep_id=old.rep_id,
            expires_at=old.expires_at,
        )
        if grace_hours:
            until = utcnow() + timedelta(hours=grace_hours)
            old.expires_at = min(old.expires_at, until) if old.expires_at else until
            typer.echo(f"key #{key_id} keeps working until {old.expires_at:%Y-%m-%d %H:%M} UTC")
        else:
            auth_service.revoke(session=session, key_id=key_id)
            typer.echo(f"key #{key_id} revoked")
        typer.echo(f"new {key.role} key #{key.id} ({key.prefix}...). Store it now:")
    typer.echo(token)


@cli.command("rotate-secrets")
def rotate_secrets() -> None:
    """Re-encrypt every stored secret (CRM credentials, OAuth tokens, webhook secrets) under the
    first key of QG_SECRET_KEY. Rotation: put the new key first (`new,old`), run this, then
    drop the old key."""
    from sqlalchemy import select

    from app.core import secrets
    from app.core.db import transaction
    from app.sources.models import Source
    from app.webhooks.models import WebhookEndpoint

    settings = get_settings()
    with transaction(_database()) as session:
        sources = hooks = 0
        for source in session.scalars(select(Source)):
            if source.credentials_encrypted:
                source.credentials_encrypted = secrets.rotate(
                    settings, source.credentials_encrypted
                )
                sources += 1
        for hook in session.scalars(select(WebhookEndpoint)):
            hook.secret_encrypted = secrets.rotate(settings, hook.secret_encrypted)
            hooks += 1
    typer.echo(f"re-encrypted the credentials of {sources} sources and {hooks} webhook secrets")


@cli.command("import")
def import_(
    mapping: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Mapping YAML")],
    reps: Annotated[Path | None, typer.Option(exists=True, dir_okay=False)] = None,
    deals: Annotated[Path | None, typer.Option(exists=True, dir_okay=False)] = None,
    activities: Annotated[Path | None, typer.Option(exists=True, dir_okay=False)] = None,
    strict: Annotated[bool, typer.Option(help="Refuse everything if any row is bad")] = False,
    recompute: Annotated[
        bool, typer.Option("--compute/--no-compute", help="Recompute the touched periods after")
    ] = True,
) -> None:
    """Import reps/teams, deals and activities from CSV files through a column mapping."""
    from app.core.db import transaction
    from app.core.exceptions import InvalidInputError
    from app.pipeline import ingest
    from app.pipeline.imports import service
    from app.pipeline.imports.mapping import Mapping

    factory = _database()
    frames = {
        name: service.read_csv(path.read_bytes(), name=name, max_rows=10_000_000)
        for name, path in (("reps", reps), ("deals", deals), ("activities", activities))
        if path is not None
    }
    try:
        with transaction(factory) as session:
            result = service.run_import(
                session=session, mapping=Mapping.load(mapping), strict=strict, **frames
            )
    except InvalidInputError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        for d in exc.details[:50]:
            typer.echo(f"  {json.dumps(d)}", err=True)
        if len(exc.details) > 50:
            typer.echo(f"  ... and {len(exc.details) - 50} more", err=True)
        raise typer.Exit(2) from exc
    for name in ("reps", "deals", "activities"):
        part = getattr(result, name)
        if part is None:
            continue
        typer.echo(
            f"{name}: {part.rows} rows, {part.inserted} inserted, {part.updated} updated, "
            f"{part.unchanged} unchanged, {part.quarantined} quarantined"
        )
        for err in part.errors[:10]:
            typer.echo(f"  row {err['row']}: {err['message']}")
    notice = ingest.horizon_notice(get_settings(), result.earliest)
    if notice:
        typer.echo(f"note: {notice}", err=True)
    if recompute:
        _recompute(factory)


@cli.command()
def compute(
    full: Annotated[bool, typer.Option(help="Recompute every period, not only dirty ones")] = False,
    as_of: Annotated[str | None, typer.Option(help="Compute as if today were YYYY-MM-DD")] = None,
) -> None:
    """Compute gaps, pacing and coaching into a new snapshot, then evaluate the alert rules."""
    _recompute(_database(), full=full, as_of=date.fromisoformat(as_of) if as_of else None)


@cli.command()
def sync(
    source_id: Annotated[int, typer.Argument(help="The source to sync (see GET /api/v1/sources)")],
    recompute: Annotated[
        bool,
        typer.Option("--compute/--no-compute", help="Recompute the touched periods (and alerts)"),
    ] = True,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Full resync: re-read everything, then mark deleted what the CRM no longer "
            "returns (safe while the service serves)",
        ),
    ] = False,
) -> None:
    """Sync one CRM source now, page by page, then recompute what changed and raise alerts."""
    factory = _database()
    params = {"compute": recompute, **({"resync": True} if full else {})}
    job = _run_job(factory, kind="sync", source_id=source_id, params=params)
    _print_result(job)


@cli.command()
def worker() -> None:
    """Run the scheduler alone (with `QG_SCHEDULER_ENABLED=false` on the API processes).
    Several workers may run: one leads, the others take over if it dies."""
    from app.pipeline.scheduler import Scheduler

    factory = _database()
    typer.echo("scheduler worker started; waiting for leadership")
    Scheduler(factory, get_settings()).run_forever()


@cli.command("sandbox-crm")
def sandbox_crm(
    kind: Annotated[str, typer.Option(help="hubspot, salesforce or pipedrive")],
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8801,
    host: Annotated[str, typer.Option(help="Bind address")] = "127.0.0.1",
    seed: Annotated[int, typer.Option(help="Seed of the demo data it serves")] = 42,
) -> None:
    """Run a local CRM that speaks HubSpot's, Salesforce's or Pipedrive's wire format, with
    demo data, paging, rate limits and switchable faults (see connectors/sandbox/common.py).
    It accepts the token `sandbox-token` (and the refresh token `sandbox-refresh`)."""
    from app.demo.sandbox import sandbox_state
    from connectors import registry
    from connectors.sandbox.common import serve

    app = registry.sandbox_app(kind, sandbox_state(seed=seed))
    typer.echo(f"{kind} sandbox on http://{host}:{port} (token: sandbox-token)")
    serve(app, host=host, port=port)


@cli.command()
def demo(
    port: Annotated[int | None, typer.Option(help="Port to serve on")] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the generated data")] = 42,
    via_crm: Annotated[
        bool,
        typer.Option(
            "--via-crm/--direct",
            help="Sync deals from a local sandbox CRM, or load them straight into the database",
        ),
    ] = True,
    serve_api: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve after loading")
    ] = True,
) -> None:
    """Realistic demo data (18 months up to today) through the whole path: a sandbox CRM,
    a sync, the gaps computed, the API served. Prints an admin key."""
    from app.alerts import service as alerts_service
    from app.auth import service as auth_service
    from app.core.db import transaction
    from app.demo.load import allow_sandbox_destination, load_demo, sandbox_source

    if via_crm:  # the sandbox CRM is on loopback, which CRM URLs may not be by default
        typer.echo(allow_sandbox_destination())
    settings = get_settings()
    factory = _database()
    with transaction(factory) as session:
        summary = load_demo(session=session, seed=seed, records=not via_crm)
        alerts_service.default_rules(session=session)
    sandbox = None
    if via_crm:
        from app.demo.sandbox import sandbox_state
        from app.pipeline import sync as sync_engine
        from connectors import registry
        from connectors.sandbox.common import ServerThread

        app = registry.sandbox_app("salesforce", sandbox_state(seed=seed), page_size=2000)
        sandbox = ServerThread(app).__enter__()  # lives as long as the demo process
        with transaction(factory) as session:
            source_id = sandbox_source(session=session, url=sandbox.url)
        typer.echo(f"sandbox CRM (Salesforce wire format) on {sandbox.url}; syncing...")
        run = sync_engine.run_sync(session_factory=factory, settings=settings, source_id=source_id)
        typer.echo(
            f"sync {run.status}: {run.fetched} records in {run.pages} pages, "
            f"{run.inserted} new, {run.quarantined} quarantined"
        )
    _recompute(factory, full=True)
    with transaction(factory) as session:
        _, token = auth_service.create(session=session, role="admin", name="demo")
    port = port or settings.port
    url = f"http://{settings.host}:{port}"
    typer.echo(f"demo data: {summary}")
    typer.echo(f"API:      {url}/docs")
    typer.echo(f"API key:  {token}")
    typer.echo(f'try:      curl -H "Authorization: Bearer {token}" {url}/api/v1/reps')
    if serve_api:
        _serve(settings.host, port)
    if sandbox is not None:
        sandbox.__exit__(None, None, None)


def main() -> None:
    cli()
