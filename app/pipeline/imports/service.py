"""CSV import of reps/teams, deals and activities through a column mapping.

Every row is validated; rows that fail are quarantined with their reason (or, with
``strict``, the whole import is refused with a 422 listing each one). Loaded rows are upserted
by (source, external id), so importing the same file twice changes nothing.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.activities.models import Activity
from app.core.base import utcnow
from app.core.exceptions import InvalidInputError
from app.deals.models import Deal
from app.pipeline import ingest
from app.pipeline.imports.mapping import (
    ActivitiesMapping,
    DealsMapping,
    Mapping,
    RepsMapping,
    evaluate,
    missing_columns,
)
from app.reps import service as reps_service
from app.reps.models import Rep
from app.sources.models import Source, SyncRun
from app.teams import service as teams_service
from connectors.base import clean_text

MAX_AMOUNT = 1e12
# Dates outside these years are refused, as the CRM connectors refuse them.
PLAUSIBLE_YEARS = (1990, 2100)


# Column widths of what an import stores (ids and names longer than these cannot be stored).
ID_LENGTH = 200
NAME_LENGTH = 200


def _clean(limit: int) -> Any:
    """Names may carry markup or control characters (NUL cannot even be stored): keep
    printable plain text, as the CRM connectors do, cut to the column's width."""
    return lambda value: clean_text(value, limit) or ""


def _bad_id(values: pd.Series) -> pd.Series:
    """Ids that cannot be stored as they are: too long, or holding control characters."""
    return (values.str.len() > ID_LENGTH) | values.map(
        lambda v: any(not ch.isprintable() for ch in v)
    )


def _storable(value: object) -> str:
    # PostgreSQL text and JSON cannot hold NUL; the quarantine keeps everything else as is.
    return str(value).replace("\x00", "\ufffd")


@dataclass
class ObjectResult:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    earliest: date | None = None  # the earliest day whose figures the rows moved


@dataclass
class ImportResult:
    source_id: int
    run_id: int
    reps: ObjectResult | None = None
    deals: ObjectResult | None = None
    activities: ObjectResult | None = None

    @property
    def earliest(self) -> date | None:
        parts = (self.reps, self.deals, self.activities)
        return ingest.earliest(*(p.earliest for p in parts if p is not None))


# A CRM export has tens of columns; 100k of them (a hostile file) cost pandas seconds and
# hundreds of MB before any row is read.
MAX_CSV_COLUMNS = 500


def _header_columns(content: bytes) -> int:
    first = content.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace")
    return len(next(csv.reader([first]), []))


def read_csv(content: bytes, *, name: str, max_rows: int) -> pd.DataFrame:
    columns = _header_columns(content)
    if columns > MAX_CSV_COLUMNS:
        raise InvalidInputError(
            f"{name}: {columns} columns, more than {MAX_CSV_COLUMNS}",
            details=[{"field": name, "message": f"at most {MAX_CSV_COLUMNS} columns"}],
        )
    try:
        frame = pd.read_csv(
            io.BytesIO(content),
            dtype=str,
            keep_default_na=False,
            encoding="utf-8-sig",
            skipinitialspace=True,
        )
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InvalidInputError(
            f"{name}: not a readable CSV file", details=[{"field": name, "message": str(exc)}]
        ) from exc
    if len(frame) > max_rows:
        raise InvalidInputError(
            f"{name}: more than {max_rows} rows",
            details=[{"field": name, "message": f"at most {max_rows} rows per file"}],
        )
    frame.columns = [str(c).strip() for c in frame.columns]
    stripped: pd.DataFrame = frame.apply(lambda col: col.str.strip())
    return stripped


def source_for(session: Session, name: str) -> Source:
    source = session.scalar(select(Source).where(Source.name == name))
    if source is None:
        source = Source(kind="csv", name=name)
        session.add(source)
        session.flush()
    elif source.kind != "csv":
        raise InvalidInputError(
            f"source {name!r} is a {source.kind} connection, not a CSV source",
            details=[{"field": "mapping.source", "message": "name a CSV source"}],
        )
    return source


def run_import(
    *,
    session: Session,
    mapping: Mapping,
    reps: pd.DataFrame | None = None,
    deals: pd.DataFrame | None = None,
    activities: pd.DataFrame | None = None,
    strict: bool = False,
) -> ImportResult:
    """Import whatever files are given, reps first so deals can find their owners."""
    _check_columns(mapping, reps=reps, deals=deals, activities=activities)
    source = source_for(session, mapping.source)
    run = SyncRun(source_id=source.id, kind="import", status="running")
    session.add(run)
    session.flush()
    result = ImportResult(source_id=source.id, run_id=run.id)
    if reps is not None and mapping.reps is not None:
        result.reps = _import_reps(session, source, mapping, mapping.reps, reps)
    if deals is not None and mapping.deals is not None:
        result.deals = _import_deals(session, source, mapping, mapping.deals, deals, strict)
    if activities is not None and mapping.activities is not None:
        result.activities = _import_activities(
            session, source, mapping, mapping.activities, activities, strict
        )
    parts = [p for p in (result.reps, result.deals, result.activities) if p is not None]
    run.status = "succeeded"
    run.finished_at = utcnow()
    run.fetched = sum(p.rows for p in parts)
    run.inserted = sum(p.inserted for p in parts)
    run.updated = sum(p.updated for p in parts)
    run.quarantined = sum(p.quarantined for p in parts)
    run.pages = len(parts)
    return result


def _check_columns(mapping: Mapping, **files: pd.DataFrame | None) -> None:
    details: list[dict[str, Any]] = []
    for name, frame in files.items():
        section = getattr(mapping, name)
        if frame is None:
            continue
        if section is None:
            details.append({"field": name, "message": f"the mapping has no {name} section"})
            continue
        for col in missing_columns(section, list(frame.columns)):
            details.append({"field": name, "message": f"missing column {col!r}"})
    if details:
        raise InvalidInputError("the files do not match the mapping", details=details)


def _import_reps(
    session: Session, source: Source, mapping: Mapping, m: RepsMapping, frame: pd.DataFrame
) -> ObjectResult:
    """People and teams. Managers named in the file become reps with role ``manager``."""
    out = ObjectResult(rows=len(frame))
    names = evaluate(frame, m.name).map(_clean(NAME_LENGTH))
    emails = evaluate(frame, m.email)
    managers = evaluate(frame, m.manager).map(_clean(NAME_LENGTH))
    manager_emails = evaluate(frame, m.manager_email)
    teams = evaluate(frame, m.team).map(_clean(NAME_LENGTH))
    parents = evaluate(frame, m.parent_team).map(_clean(NAME_LENGTH))
    bad_email = _bad_id(emails) | _bad_id(manager_emails)
    raw_starts = evaluate(frame, m.start_date)
    starts = _dates(raw_starts, mapping.date_format)
    active = evaluate(frame, m.active).str.lower()
    before = session.scalar(select(Rep.id).order_by(Rep.id.desc()).limit(1)) or 0
    new_agents = 0
    for i in frame.index:
        row_no = int(i) + 1
        if not names[i]:
            out.errors.append({"row": row_no, "field": m.name, "message": "missing name"})
            continue
        if bad_email[i]:
            message = f"bad email {emails[i]!r} or manager email {manager_emails[i]!r}"
            out.errors.append({"row": row_no, "field": m.email, "message": message})
            continue
        if m.start_date and pd.isna(starts[i]) and str(raw_starts[i]).strip():
            message = f"bad start date {raw_starts[i]!r}"[:300]
            out.errors.append({"row": row_no, "field": m.start_date, "message": message})
            continue
        rep = _person(session, source, mapping, names[i], emails[i], role="rep")
        new_agents += rep.id > before
        if m.start_date and not pd.isna(starts[i]):
            rep.start_date = starts[i].date()
        if m.active and active[i]:
            rep.is_active = active[i] in {"1", "true", "yes", "y", "active"}
        manager = None
        if managers[i]:
            manager = _person(
                session, source, mapping, managers[i], manager_emails[i], role="manager"
            )
            rep.manager_id = manager.id
        if teams[i]:
            team = teams_service.get_or_create(session=session, name=teams[i])
            rep.team_id = team.id
            if manager is not None:
                team.manager_id = manager.id
                manager.team_id = manager.team_id or team.id
            if parents[i]:
                team.parent_id = teams_service.get_or_create(session=session, name=parents[i]).id
    session.flush()
    after = session.scalar(select(Rep.id).order_by(Rep.id.desc()).limit(1)) or 0
    out.inserted = after - before  # people created, managers included
    out.unchanged = out.rows - len(out.errors) - new_agents
    _quarantine(session, source, "rep", frame, out.errors)
    out.quarantined = len(out.errors)
    return out


def _person(
    session: Session, source: Source, mapping: Mapping, name: str, email: str, *, role: str
) -> Rep:
    key = _owner_key(mapping, email or name if mapping.owner_key == "email" else name)
    rep = reps_service.resolve_identity(
        session=session,
        source_id=source.id,
        external_id=key,
        name=name,
        email=email or None,
        role=role,
    )
    if role == "manager" and rep.role != "manager":
        rep.role = "manager"
    return rep


def _parse(values: pd.Series, fmt: str | None) -> pd.Series:
    """Parse a column; unparseable non-empty values become NaT and are reported by the caller.

    The result is naive when no value carries a UTC offset and UTC-aware when any does (a
    column mixing offsets, or offsets and none, is parsed value by value; naive values are
    then marked with the ``NaT``-free wall clock they were written in, see ``_timestamps``).
    """
    blanked = values.where(values != "")
    try:
        parsed = pd.to_datetime(blanked, format=fmt or "ISO8601", errors="coerce")
    except (ValueError, TypeError):
        # Mixed offsets, or offsets and naive values, in one column.
        return pd.Series([_parse_one(v, fmt) for v in blanked], index=values.index, dtype=object)
    # Year 1 or 9999 is a typo or a placeholder, not a deal date (and overflows time zones).
    plausible = parsed.dt.year.between(*PLAUSIBLE_YEARS)
    return parsed.where(plausible | parsed.isna())


def _parse_one(value: object, fmt: str | None) -> pd.Timestamp | None:
    if not isinstance(value, str):
        return None
    try:
        stamp = pd.to_datetime(value, format=fmt or "ISO8601")
    except (ValueError, TypeError, OverflowError):
        return None
    if pd.isna(stamp) or not PLAUSIBLE_YEARS[0] <= stamp.year <= PLAUSIBLE_YEARS[1]:
        return None
    return stamp


def _dates(values: pd.Series, fmt: str | None) -> pd.Series:
    """Calendar dates (naive midnight timestamps, NaT when unparseable). A value written with
    a UTC offset keeps the date it was written with."""
    parsed = _parse(values, fmt)
    if parsed.dtype == object:
        parsed = pd.to_datetime(
            parsed.map(lambda t: None if t is None else t.tz_localize(None)), errors="coerce"
        )
    elif parsed.dt.tz is not None:
        parsed = parsed.dt.tz_localize(None)
    dates: pd.Series = parsed.dt.normalize()
    return dates


def _timestamps(values: pd.Series, fmt: str | None, tz: str) -> pd.Series:
    """Instants in UTC: naive values are in the mapping's timezone, others carry an offset."""
    parsed = _parse(values, fmt)
    if parsed.dtype == object:
        mixed: pd.Series = pd.to_datetime(
            parsed.map(lambda t: None if t is None else _to_utc(t, tz)), utc=True, errors="coerce"
        )
        return mixed
    if parsed.dt.tz is None:
        parsed = parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    utc: pd.Series = parsed.dt.tz_convert("UTC")
    return utc


def _to_utc(stamp: pd.Timestamp, tz: str) -> pd.Timestamp | None:
    if stamp.tzinfo is None:
        local = stamp.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
        if not isinstance(local, pd.Timestamp):
            return None  # a wall-clock time that does not exist (or is ambiguous) there
        stamp = local
    return stamp.tz_convert("UTC")


class _Problems:
    """Collects the first reason each row fails, vectorised column by column."""

    def __init__(self, index: pd.Index) -> None:
        self.reason = pd.Series("", index=index, dtype="object")

    def flag(self, mask: pd.Series, message: str | pd.Series) -> None:
        fresh = mask & (self.reason == "")
        if isinstance(message, pd.Series):
            self.reason[fresh] = message[fresh]
        else:
            self.reason[fresh] = message

    @property
    def bad(self) -> pd.Series:
        return self.reason != ""


def _owner_key(mapping: Mapping, value: str) -> str:
    # Emails are matched case-insensitively, as mail systems do.
    return value.strip().lower() if mapping.owner_key == "email" else value


def _owners(session: Session, mapping: Mapping, source: Source, owners: pd.Series) -> pd.Series:
    ids = reps_service.identity_map(session=session, source_id=source.id)
    keys = owners.str.strip().str.lower() if mapping.owner_key == "email" else owners
    return keys.map(ids)


def _import_deals(
    session: Session,
    source: Source,
    mapping: Mapping,
    m: DealsMapping,
    frame: pd.DataFrame,
    strict: bool,
) -> ObjectResult:
    p = _Problems(frame.index)
    ext = evaluate(frame, m.id)
    owner = evaluate(frame, m.owner)
    stage = evaluate(frame, m.stage)
    amount_raw = evaluate(frame, m.amount).str.replace(",", "", regex=False)
    amount = pd.to_numeric(amount_raw.where(amount_raw != ""), errors="coerce")
    currency = evaluate(frame, m.currency).str.upper()
    created = _timestamps(evaluate(frame, m.created), mapping.date_format, mapping.timezone)
    close = _dates(evaluate(frame, m.close_date), mapping.date_format)
    closed_at = _timestamps(evaluate(frame, m.closed_at), mapping.date_format, mapping.timezone)
    modified = _timestamps(evaluate(frame, m.modified), mapping.date_format, mapping.timezone)
    deleted = evaluate(frame, m.deleted).str.lower().isin({"1", "true", "yes", "y"})
    rules = {k.strip().lower(): v for k, v in m.stages.items()}
    status = stage.str.lower().map({k: r.status for k, r in rules.items()})
    prob = stage.str.lower().map({k: r.probability for k, r in rules.items()})
    rep_id = _owners(session, mapping, source, owner)

    p.flag(ext == "", "missing id")
    p.flag(_bad_id(ext), "id too long or with control characters " + ext.map(repr))
    p.flag(ext.duplicated(keep="last"), "duplicate id in file (a later row wins)")
    p.flag(owner == "", "missing owner")
    p.flag(rep_id.isna(), "unknown owner " + owner.map(repr))
    p.flag(status.isna(), "unknown stage " + stage.map(repr))
    p.flag(amount_raw.ne("") & amount.isna(), "bad amount " + amount_raw.map(repr))
    p.flag(amount.abs() > MAX_AMOUNT, "implausible amount " + amount_raw)
    p.flag(amount < 0, "negative amount " + amount_raw)
    p.flag(~currency.str.fullmatch(r"[A-Z]{3}"), "bad currency " + currency.map(repr))
    for parsed, spec in (
        (created, m.created),
        (close, m.close_date),
        (closed_at, m.closed_at),
        (modified, m.modified),
    ):
        raw = evaluate(frame, spec)
        p.flag(raw.ne("") & parsed.isna(), f"bad date in {spec}: " + raw.map(repr))
    closed = status.isin(["won", "lost"])
    p.flag(closed & close.isna() & closed_at.isna(), "closed deal without a close date")
    p.flag((status == "won") & amount.isna(), "won deal without an amount")

    # A closed deal's closing instant defaults to the start of its close date.
    closed_at = closed_at.where(
        closed_at.notna() | ~closed, close.dt.tz_localize("UTC") if len(close) else closed_at
    )
    close = close.where(close.notna(), closed_at.dt.tz_convert(None).dt.normalize())
    good = ~p.bad
    records = pd.DataFrame(
        {
            "external_id": ext,
            "rep_id": rep_id.astype("Int64"),
            "owner_external_id": owner,
            "name": evaluate(frame, m.name).map(_clean(500)).replace("", None),
            "account": evaluate(frame, m.account).map(_clean(500)).replace("", None),
            "amount": amount,
            "currency": currency,
            "stage": stage,
            "pipeline": evaluate(frame, m.pipeline).map(_clean(200)).replace("", None),
            "probability": prob.where(status == "open", (status == "won").astype(float)),
            "status": status,
            "created_at": created,
            "close_date": close.dt.date,
            "closed_at": closed_at.where(closed, pd.NaT),
            "source_modified_at": modified,
            "is_deleted": deleted,
        }
    )[good]
    return _finish(session, source, Deal, "deal", frame, ext, p, records, strict)


def _import_activities(
    session: Session,
    source: Source,
    mapping: Mapping,
    m: ActivitiesMapping,
    frame: pd.DataFrame,
    strict: bool,
) -> ObjectResult:
    p = _Problems(frame.index)
    ext = evaluate(frame, m.id)
    owner = evaluate(frame, m.owner)
    raw_type = evaluate(frame, m.type)
    kind = raw_type.str.lower().map({k.lower(): v for k, v in m.types.items()})
    occurred_raw = evaluate(frame, m.occurred_at)
    occurred = _timestamps(occurred_raw, mapping.date_format, mapping.timezone)
    modified = _timestamps(evaluate(frame, m.modified), mapping.date_format, mapping.timezone)
    rep_id = _owners(session, mapping, source, owner)
    deal_ids = evaluate(frame, m.deal_id)
    p.flag(ext == "", "missing id")
    p.flag(_bad_id(ext), "id too long or with control characters " + ext.map(repr))
    p.flag(ext.duplicated(keep="last"), "duplicate id in file (a later row wins)")
    p.flag(owner == "", "missing owner")
    p.flag(rep_id.isna(), "unknown owner " + owner.map(repr))
    p.flag(kind.isna(), "unknown activity type " + raw_type.map(repr))
    p.flag(_bad_id(deal_ids), "deal id too long or with control characters " + deal_ids.map(repr))
    p.flag(occurred.isna(), "bad or missing date " + occurred_raw.map(repr))
    records = pd.DataFrame(
        {
            "external_id": ext,
            "rep_id": rep_id.astype("Int64"),
            "owner_external_id": owner,
            "type": kind,
            "subject": evaluate(frame, m.subject).map(_clean(500)).replace("", None),
            "occurred_at": occurred,
            "deal_external_id": deal_ids.replace("", None),
            "source_modified_at": modified,
            "is_deleted": False,
        }
    )[~p.bad]
    return _finish(session, source, Activity, "activity", frame, ext, p, records, strict)


def _finish(
    session: Session,
    source: Source,
    model: type[Deal] | type[Activity],
    object_type: str,
    frame: pd.DataFrame,
    ext: pd.Series,
    p: _Problems,
    records: pd.DataFrame,
    strict: bool,
) -> ObjectResult:
    out = ObjectResult(rows=len(frame))
    out.errors = [
        {"row": int(i) + 1, "external_id": ext[i] or None, "message": p.reason[i]}
        for i in frame.index[p.bad.to_numpy()]
    ]
    if strict and out.errors:
        raise InvalidInputError(
            f"{len(out.errors)} bad {object_type} row(s); nothing was written",
            details=out.errors,
        )
    rows = ingest.records_from_frame(records)
    counts = ingest.upsert_records(session, model, source.id, rows)
    out.inserted, out.updated, out.unchanged = counts.inserted, counts.updated, counts.unchanged
    out.earliest = counts.earliest
    ingest.release(session, source.id, object_type, [r["external_id"] for r in rows])
    _quarantine(session, source, object_type, frame, out.errors)
    out.quarantined = len(out.errors)
    return out


def _quarantine(
    session: Session,
    source: Source,
    object_type: str,
    frame: pd.DataFrame,
    errors: list[dict[str, Any]],
) -> None:
    items = [
        (
            _quarantine_id(e.get("external_id")),
            _storable(e["message"]),
            {_storable(k): _storable(v) for k, v in frame.loc[e["row"] - 1].items()},
        )
        for e in errors
    ]
    ingest.quarantine(session, source.id, object_type, items)


def _quarantine_id(external_id: str | None) -> str | None:
    # An id that cannot be stored is kept in the payload; the record is keyed by its content.
    if not external_id or len(external_id) > ID_LENGTH:
        return None
    return None if any(not ch.isprintable() for ch in external_id) else external_id
