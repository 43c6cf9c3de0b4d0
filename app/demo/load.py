"""Write the demo generator's frames into storage, idempotently (``quotagap demo``)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from app.activities.models import Activity
from app.core.config import get_settings
from app.deals.models import Deal, DealStageChange
from app.demo.generator import DemoConfig, DemoData, generate
from app.pipeline import ingest
from app.reps import service as reps_service
from app.sources.models import Source
from app.targets import service as targets_service
from app.teams import service as teams_service

SOURCE_NAME = "demo"


def load_demo(
    *,
    session: Session,
    seed: int = 42,
    today: date | None = None,
    config: DemoConfig | None = None,
    records: bool = True,
) -> str:
    """People, teams and targets, and (unless ``records`` is False, when a sandbox CRM will
    deliver them through a sync) the deals and activities too."""
    if config is None:
        config = DemoConfig(seed=seed) if today is None else DemoConfig(seed=seed, today=today)
    data = generate(config)
    source = session.scalar(select(Source).where(Source.name == SOURCE_NAME))
    if source is None:
        source = Source(kind="csv", name=SOURCE_NAME, config={"generator_seed": config.seed})
        session.add(source)
        session.flush()
    rep_ids = load_people(session=session, source_id=source.id, data=data)
    deals = (
        load_records(session=session, source_id=source.id, data=data, rep_ids=rep_ids)
        if records
        else len(data.deals)
    )
    rows = [
        {
            "rep_id": rep_ids[t["rep_key"]],
            "metric": t["metric"],
            "period": t["period"],
            "value": t["value"],
        }
        for t in _plain(data.targets)
    ]
    valid = targets_service.validate_rows(session=session, rows=rows, cal=get_settings().calendar)
    targets_service.upsert_many(session=session, rows=valid)
    n_reps = sum(1 for role in data.reps["role"] if role == "rep")
    return (
        f"{len(data.teams)} teams, {n_reps} reps, {deals} deals, "
        f"{len(data.activities)} activities, {len(rows)} targets"
    )


def load_people(*, session: Session, source_id: int, data: DemoData) -> dict[str, int]:
    """Teams, managers and reps; returns rep_key -> rep id."""
    reps = _plain(data.reps)
    teams = _plain(data.teams)
    rep_ids: dict[str, int] = {}
    for r in reps:
        rep = reps_service.resolve_identity(
            session=session,
            source_id=source_id,
            external_id=r["rep_key"],
            name=r["name"],
            email=r["email"],
            role=r["role"],
        )
        rep.role = r["role"]
        rep.start_date = r["start_date"]
        rep.is_active = bool(r["is_active"])
        rep_ids[r["rep_key"]] = rep.id
    team_ids: dict[str, int] = {}
    for t in teams:
        team = teams_service.get_or_create(session=session, name=t["name"])
        team.manager_id = rep_ids.get(t["manager_key"] or "")
        team_ids[t["team_key"]] = team.id
    for t in teams:
        team = teams_service.get(session=session, team_id=team_ids[t["team_key"]])
        team.parent_id = team_ids.get(t["parent_team_key"] or "")
    for r in reps:
        rep = reps_service.get(session=session, rep_id=rep_ids[r["rep_key"]])
        rep.team_id = team_ids.get(r["team_key"] or "")
        rep.manager_id = rep_ids.get(r["manager_key"] or "")
    session.flush()
    return rep_ids


def _plain(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Small frames as dicts of plain values, missing values as None."""
    return ingest.records_from_frame(frame)


_DEAL_FIELDS: tuple[str, ...] = ("name", "account", "amount", "currency", "stage", "pipeline")
_DEAL_FIELDS += ("probability", "status", "created_at", "close_date", "closed_at", "is_deleted")
_ACTIVITY_FIELDS = ("type", "subject", "occurred_at", "deal_external_id")


def _owned(frame: pd.DataFrame, rep_ids: dict[str, int], fields: tuple[str, ...]) -> pd.DataFrame:
    """The generator's rows as records: their external id, owner (the rep and the CRM's
    owner key), ``fields`` as generated, and the CRM's modification time."""
    return pd.DataFrame(
        {
            "external_id": frame["external_id"],
            "rep_id": frame["owner_key"].map(rep_ids).astype("Int64"),
            "owner_external_id": frame["owner_key"],
            **{name: frame[name] for name in fields},
            "source_modified_at": frame["modified_at"],
        }
    )


def load_records(
    *, session: Session, source_id: int, data: DemoData, rep_ids: dict[str, int]
) -> int:
    deals = _owned(data.deals, rep_ids, _DEAL_FIELDS)
    ingest.upsert_records(session, Deal, source_id, ingest.records_from_frame(deals))
    activities = _owned(data.activities, rep_ids, _ACTIVITY_FIELDS).assign(is_deleted=False)
    ingest.upsert_records(session, Activity, source_id, ingest.records_from_frame(activities))
    _load_stage_history(session, source_id, data.deal_stages)
    return len(deals)


def _load_stage_history(session: Session, source_id: int, stages: pd.DataFrame) -> None:
    already = session.scalar(
        select(func.count())
        .select_from(DealStageChange)
        .join(Deal)
        .where(Deal.source_id == source_id)
    )
    if already:
        return  # history is append-only and the demo's is complete once written
    ids = {
        external_id: deal_id
        for external_id, deal_id in session.execute(
            select(Deal.external_id, Deal.id).where(Deal.source_id == source_id)
        )
    }
    frame = pd.DataFrame(
        {
            "deal_id": stages["external_id"].map(ids).astype("Int64"),
            "stage": stages["stage"],
            "entered_at": stages["entered_at"],
        }
    ).dropna(subset=["deal_id"])
    rows = ingest.records_from_frame(frame)
    if rows:
        session.execute(insert(DealStageChange).execution_options(render_nulls=True), rows)


SANDBOX_SOURCE = "Sandbox Salesforce"
ALLOW_SANDBOX = "QG_SOURCE_ALLOW_PRIVATE_DESTINATIONS"


def allow_sandbox_destination() -> str:
    """Let this process (the demo's sync and the service it serves, whose scheduler syncs
    again) send CRM requests to loopback: the demo's CRM is a sandbox on 127.0.0.1, which the
    address guard refuses by default. Returns the line the demo prints to say so."""
    import os

    os.environ[ALLOW_SANDBOX] = "true"
    get_settings.cache_clear()
    return (
        f"{ALLOW_SANDBOX}=true for this demo: its sandbox CRM listens on 127.0.0.1 "
        "(leave it off in production)"
    )


def sandbox_source(*, session: Session, url: str) -> int:
    """The demo's CRM connection: the local Salesforce sandbox (OAuth, like a real org)."""
    from app.core import secrets

    settings = get_settings()
    credentials = {
        "client_id": "quotagap-demo",
        "client_secret": "demo",
        "refresh_token": "sandbox-refresh",
        "access_token": "sandbox-token",
        "login_url": url,
    }
    source = session.scalar(select(Source).where(Source.name == SANDBOX_SOURCE))
    if source is None:
        source = Source(kind="salesforce", name=SANDBOX_SOURCE, schedule={"interval_minutes": 15})
        session.add(source)
    # The sandbox listens on a new port each time the demo starts.
    source.base_url = url
    source.credentials_encrypted = secrets.encrypt(settings, credentials)
    session.flush()
    return source.id
