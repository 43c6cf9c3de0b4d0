"""The compute job's fast paths against the straightforward ones they replaced.

* ``app.performance.frames``: the chunked DB-API / COPY readers against
  ``pd.read_sql_query`` through
  SQLAlchemy (the reference below), on both backends, with awkward rows (NULLs, deleted
  records, boundary timestamps, microseconds, an unusual activity type).
* the result rows written (performance, metric and coaching rows) against the
  ``to_dict("records")`` versions.
* the metrics stage: team figures rolled up from the rep rows and quarters / years from
  the months (``inputs.all_metrics``) against ``period_metrics`` run per kind on frames
  that duplicate every record per team (the reference below), under several calendars and
  timezones, on demo data with a two-level team tree.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Connection, column, delete, or_, select, table

from analytics import drivers
from analytics.driver_ratios import DERIVED
from analytics.metrics import METRIC_COLUMNS, period_metrics
from analytics.path_to_target import PATH_COLUMNS
from analytics.periods import period_from_index
from app.demo.generator import DemoConfig
from app.demo.load import load_demo
from app.performance import compute, frames, inputs, plan, results, store, versioning
from app.performance.membership import team_in_period
from app.performance.models import VERSIONING_COLUMNS, PerformanceRow
from app.reps.models import Rep, TeamMembership
from app.teams.models import Team

TODAY = date(2026, 11, 18)

# ---------------------------------------------------------------- reference: the old loader


def _utc(values: pd.Series) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    return pd.to_datetime(values, utc=True, format="ISO8601")


def _dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, format="ISO8601").astype("datetime64[ns]")


def _start(d: date) -> datetime:
    return datetime.combine(d, time.min, UTC)


def _bind(conn: Connection, value: datetime) -> Any:
    return value.replace(tzinfo=None) if conn.dialect.name == "sqlite" else value


_deals = table(
    "deals",
    *(
        column(c)
        for c in (
            "id",
            "external_id",
            "rep_id",
            "amount",
            "currency",
            "status",
            "stage",
            "probability",
            "created_at",
            "close_date",
            "closed_at",
            "is_deleted",
        )
    ),
)
_activities = table(
    "activities",
    *(column(c) for c in ("id", "rep_id", "type", "occurred_at", "deal_external_id", "is_deleted")),
)


def reference_deals(
    conn: Connection,
    *,
    since: date | None = None,
    until: date | None = None,
    status: str | None = None,
) -> pd.DataFrame:
    c = _deals.c
    stmt = select(c.id.label("deal_id"), *(col for col in c if col.name != "id")).where(
        c.rep_id.is_not(None)
    )
    if status is not None:
        stmt = stmt.where(c.status == status)
    if since is not None:
        stmt = stmt.where(or_(c.close_date >= since, c.created_at >= _bind(conn, _start(since))))
    if until is not None:
        stmt = stmt.where(
            or_(
                c.close_date <= until, c.created_at < _bind(conn, _start(until + timedelta(days=1)))
            )
        )
    frame = pd.read_sql_query(stmt, conn)
    frame["created_at"] = _utc(frame["created_at"])
    frame["closed_at"] = _utc(frame["closed_at"])
    frame["close_date"] = _dates(frame["close_date"])
    frame["amount"] = frame["amount"].astype("float64")
    frame["probability"] = frame["probability"].astype("float64")
    frame["is_deleted"] = frame["is_deleted"].astype(bool)
    return frame


def reference_activities(
    conn: Connection, *, since: date | None = None, until: date | None = None
) -> pd.DataFrame:
    c = _activities.c
    stmt = select(c.id.label("activity_id"), *(col for col in c if col.name != "id")).where(
        c.rep_id.is_not(None)
    )
    if since is not None:
        stmt = stmt.where(c.occurred_at >= _bind(conn, _start(since)))
    if until is not None:
        stmt = stmt.where(c.occurred_at < _bind(conn, _start(until + timedelta(days=1))))
    frame = pd.read_sql_query(stmt, conn)
    frame["occurred_at"] = _utc(frame["occurred_at"])
    frame["is_deleted"] = frame["is_deleted"].astype(bool)
    return frame


def _sorted(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Sorted by ``key``; timestamps in microseconds. (The reference's unit followed the data:
    seconds for a column without a value; the readers always give microseconds.)"""
    frame = frame.sort_values(key, ignore_index=True)
    for name, dtype in frame.dtypes.items():
        if isinstance(dtype, pd.DatetimeTZDtype):
            frame[name] = frame[name].dt.as_unit("us")
    return frame


def _awkward_records(factory: Any) -> None:
    rep = factory.rep()
    other = factory.rep()
    at = datetime(2026, 3, 1, tzinfo=UTC)  # a window boundary below
    factory.deal(rep_id=rep.id, created_at=at, close_date=date(2026, 3, 31), closed_at=None)
    factory.deal(
        rep_id=rep.id,
        created_at=at - timedelta(microseconds=1),
        close_date=date(2026, 2, 28),
        closed_at=datetime(2026, 2, 28, 23, 59, 59, 999_999, tzinfo=UTC),
        amount=1234.56,
        currency="eur",
        probability=0.35,
    )
    factory.deal(
        rep_id=other.id,
        status="open",
        stage=None,
        amount=None,
        probability=None,
        created_at=None,
        close_date=None,
        closed_at=None,
    )
    factory.deal(rep_id=other.id, status="lost", is_deleted=True, amount=5000)
    factory.deal(rep_id=None, status="won")  # no rep: never loaded
    factory.deal(
        rep_id=rep.id,
        status="open",
        created_at=datetime(2026, 3, 31, 23, 59, 59, 123_456, tzinfo=UTC),
        close_date=date(2026, 4, 30),
        closed_at=None,
    )
    factory.activity(rep_id=rep.id, occurred_at=at, deal_external_id="D-x")
    factory.activity(rep_id=rep.id, occurred_at=at - timedelta(microseconds=1), type="email")
    factory.activity(rep_id=other.id, type="sms", occurred_at=datetime(2026, 3, 31, 23, tzinfo=UTC))
    factory.activity(rep_id=other.id, type="meeting", is_deleted=True)
    factory.activity(rep_id=None, type="task")


WINDOWS: list[dict[str, Any]] = [
    {},
    {"since": date(2026, 3, 1)},
    {"until": date(2026, 2, 28)},
    {"since": date(2026, 3, 1), "until": date(2026, 3, 31)},
    {"since": date(2030, 1, 1)},  # nothing
]


@pytest.mark.parametrize("window", WINDOWS)
def test_deals_frame_matches_the_sqlalchemy_reader(factory, session, window):
    _awkward_records(factory)
    conn = session.connection()
    for status in (None, "won"):
        ours = frames.deals_frame(conn, status=status, **window)
        theirs = reference_deals(conn, status=status, **window)
        if theirs.empty:
            assert ours.empty
            assert list(ours.columns) == list(theirs.columns)
            continue
        pd.testing.assert_frame_equal(_sorted(ours, "deal_id"), _sorted(theirs, "deal_id"))


@pytest.mark.parametrize("window", WINDOWS)
def test_activities_frame_matches_the_sqlalchemy_reader(factory, session, window):
    _awkward_records(factory)
    conn = session.connection()
    ours = frames.activities_frame(conn, **window)
    theirs = reference_activities(conn, **window)
    if theirs.empty:
        assert ours.empty
        assert list(ours.columns) == list(theirs.columns)
        return
    pd.testing.assert_frame_equal(_sorted(ours, "activity_id"), _sorted(theirs, "activity_id"))


def test_selected_columns_and_categories(factory, session):
    _awkward_records(factory)
    conn = session.connection()
    cols = ["rep_id", "currency", "status", "created_at", "is_deleted", "deal_id"]
    ours = frames.deals_frame(conn, columns=cols, categorical=True)
    assert list(ours.columns) == cols
    assert isinstance(ours["currency"].dtype, pd.CategoricalDtype)
    assert isinstance(ours["status"].dtype, pd.CategoricalDtype)
    theirs = reference_deals(conn)[cols]
    ours = ours.astype({"currency": "str", "status": "str"})
    pd.testing.assert_frame_equal(_sorted(ours, "deal_id"), _sorted(theirs, "deal_id"))

    acts = frames.activities_frame(
        conn, columns=["rep_id", "type", "occurred_at"], categorical=True
    )
    assert isinstance(acts["type"].dtype, pd.CategoricalDtype)
    assert sorted(acts["type"].astype(str)) == sorted(reference_activities(conn)["type"])
    with pytest.raises(ValueError, match="no column"):
        frames.activities_frame(conn, columns=["nope"])


def test_chunks_concatenate(factory, session, monkeypatch):
    """Several chunks (categories differing between them) make the same frame as one."""
    _awkward_records(factory)
    conn = session.connection()
    whole = frames.activities_frame(conn, categorical=True)
    monkeypatch.setattr(frames, "CHUNK_ROWS", 1)
    chunked = frames.activities_frame(conn, categorical=True)
    pd.testing.assert_frame_equal(chunked, whole)
    deals = frames.deals_frame(conn)
    pd.testing.assert_frame_equal(
        _sorted(deals, "deal_id"), _sorted(reference_deals(conn), "deal_id")
    )


# ---------------------------------------------------------- reference: the old metrics stage


def reference_metrics(f: inputs.Frames, settings: Any, kind: str) -> pd.DataFrame:
    common: dict[str, Any] = {
        "kind": kind,
        "cal": settings.calendar,
        "rates": settings.currency_rates,
        "tz": settings.timezone,
    }
    rep = period_metrics(f.deals, f.activities, key="rep_id", **common)
    team = period_metrics(
        f.deals.merge(f.membership, on="rep_id"),
        f.activities.merge(f.membership, on="rep_id"),
        key="team_id",
        **common,
    )
    rep = rep.rename(columns={"rep_id": "subject_id"}).assign(subject_type="rep")
    team = team.rename(columns={"team_id": "subject_id"}).assign(subject_type="team")
    out = pd.concat([rep, team], ignore_index=True).assign(period_kind=kind)
    starts = {
        i: period_from_index(kind, i, settings.calendar).start
        for i in pd.unique(out["period_index"])
    }
    out["period_start"] = out["period_index"].map(starts)
    return out


@pytest.fixture
def demo_tree(session):
    load_demo(
        session=session, config=DemoConfig(seed=5, today=TODAY, teams=3, reps_per_team=4, months=15)
    )
    top = Team(name="Region")
    session.add(top)
    session.flush()
    teams = list(session.scalars(select(Team).where(Team.id != top.id)))
    for team in teams[:2]:
        team.parent_id = top.id
    # A rep never on a team counts for no team.
    rep = session.scalars(select(Rep).where(Rep.role == "rep")).first()
    assert rep is not None
    rep.team_id = None
    session.flush()
    session.execute(delete(TeamMembership).where(TeamMembership.rep_id == rep.id))


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"fiscal_year_start_month": 2},
        {"fiscal_calendar": "445", "fiscal_year_start_month": 10},
        {"timezone": "America/New_York"},
        {"timezone": "Asia/Tokyo", "fiscal_calendar": "445"},
    ],
)
def test_rolled_up_metrics_match_period_metrics_per_team_and_kind(
    demo_tree, session, settings, overrides
):
    tuned = settings.model_copy(update=overrides)
    scope = plan.scope_of(session, tuned, as_of=TODAY, full=True)
    f = inputs.load(session, scope)
    assert f.membership["team_id"].nunique() >= 4
    ours = inputs.all_metrics(f, tuned)
    for kind in plan.KINDS:
        theirs = reference_metrics(f, tuned, kind)
        assert len(theirs) > 0
        pd.testing.assert_frame_equal(ours[kind], theirs, check_exact=False, rtol=1e-12)
        cycles = ours[kind]["sales_cycle_days"].to_numpy()
        assert np.isfinite(cycles).any() and np.isnan(cycles).any()


def test_compute_loads_compact_frames(demo_tree, session, settings):
    scope = plan.scope_of(session, settings, as_of=TODAY, full=True)
    f = inputs.load(session, scope)
    assert list(f.activities.columns) == list(inputs.ACTIVITY_COLUMNS)
    assert list(f.deals.columns) == list(inputs.DEAL_COLUMNS)
    assert isinstance(f.activities["type"].dtype, pd.CategoricalDtype)
    conn = session.connection()
    full = frames.activities_frame(conn, since=scope.data_start, until=scope.data_end)
    assert len(full) == len(f.activities)


# ----------------------------------------------------- reference: the old result-row builders


def reference_performance_rows(rows: pd.DataFrame) -> list[dict[str, Any]]:
    cols = [
        c.key
        for c in PerformanceRow.__table__.columns
        if c.key not in VERSIONING_COLUMNS and c.key != "details"
    ]
    out = []
    for r in rows.to_dict("records"):
        row = {c: versioning.clean(r.get(c)) for c in cols}
        for c in ("rep_id", "team_id", "target_id"):
            row[c] = None if row[c] is None or pd.isna(row[c]) else int(row[c])
        for c in ("period_start", "period_end"):
            row[c] = pd.Timestamp(row[c]).date()
        row["consecutive_misses"] = int(row["consecutive_misses"] or 0)
        for c in ("run_rate_periods", "pipeline_periods"):
            row[c] = None if row[c] is None else int(row[c])
        path = {c: versioning.clean(r.get(f"path_{c}")) for c in PATH_COLUMNS}
        row["details"] = {"path_to_target": path} if path["path_to_target"] else {}
        out.append(row)
    return out


def reference_metric_rows(actuals: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {
            "subject_type": r["subject_type"],
            "subject_id": int(r["subject_id"]),
            "period": r["period"],
            "period_kind": r["period_kind"],
            "period_start": r["period_start"],
            "values": versioning.clean({c: r[c] for c in METRIC_COLUMNS}),
        }
        for r in actuals.to_dict("records")
    ]


def reference_coaching(*args: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for kind, frame in _reference_tables(*args):
        for r in frame.to_dict("records"):
            focus = r.get("coaching_focus")
            out.append(
                {
                    "rep_id": int(r["rep_id"]),
                    "period": r["period"],
                    "period_kind": kind,
                    "coaching_focus": None if focus is None or pd.isna(focus) else str(focus),
                    "focus_reason": versioning.clean(r.get("focus_reason")),
                    # The figures: neither the ratios (derived when read) nor null figures.
                    "drivers": {
                        k: v
                        for k, v in versioning.clean(r).items()
                        if k not in {"rep_id", "period", "coaching_focus", "focus_reason"}
                        and k not in DERIVED
                        and not k.startswith(drivers.REPORTED)  # rows of their own
                        and v is not None
                    },
                }
            )
    return out


def reference_reported(*args: Any) -> list[dict[str, Any]]:
    """One row per coaching row and reported driver, its figures null when NaN."""
    return [
        {
            "rep_id": int(r["rep_id"]),
            "period": r["period"],
            "period_kind": kind,
            "driver": d,
            **{f: versioning.clean(r[f"{d}_{f}"]) for f in ("value", "team_median", "trailing")},
        }
        for kind, frame in _reference_tables(*args)
        for d in drivers.REPORTED
        for r in frame.to_dict("records")
    ]


def _reference_tables(
    metrics: dict[str, pd.DataFrame],
    inputs: Any,
    in_scope: dict[str, set[str]],
    cal: Any,
    sources: pd.DataFrame,
) -> list[tuple[str, pd.DataFrame]]:
    out: list[tuple[str, pd.DataFrame]] = []
    # A source brings activities when any rep of it has some in the months.
    month = metrics["month"]
    busy = set(
        month.loc[(month["subject_type"] == "rep") & (month["activities"] > 0), "subject_id"]
    )
    busy_sources = set(sources.loc[sources["rep_id"].isin(busy), "source_id"])
    tracking = {
        rep: any(s in busy_sources for s in group["source_id"])
        for rep, group in sources.groupby("rep_id")
    }
    for kind in ("month", "quarter"):
        m = metrics[kind]
        rep_metrics = m[m["subject_type"] == "rep"].rename(columns={"subject_id": "rep_id"})
        reps = team_in_period(
            inputs.spans, inputs.reps, kind=kind, indices=rep_metrics["period_index"], cal=cal
        )
        reps["tracks_activities"] = reps["rep_id"].map(tracking)
        config = (
            drivers.DriverConfig() if kind == "month" else drivers.DriverConfig(trailing_periods=1)
        )
        table = drivers.driver_table(rep_metrics, reps, config=config)
        out.append((kind, table[table["period"].isin(in_scope[kind])]))
    return out


def _typed(value: Any) -> Any:
    if isinstance(value, dict):
        return [(k, _typed(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_typed(v) for v in value]
    return (type(value).__name__, repr(value))


def test_row_builders_match_the_records_versions(demo_tree, session, settings, monkeypatch):
    """On a first (full) compute every row is new, so each builder gets its whole frame."""
    built: dict[str, int] = {}
    tables: list[tuple[Any, ...]] = []
    real_table = results.coaching_table

    def table(*args: Any) -> Any:
        tables.append(args)
        return real_table(*args)

    monkeypatch.setattr(results, "coaching_table", table)

    def spy(name: str, reference: Any) -> None:
        real = getattr(store, name)

        def both(*args: Any) -> Any:
            columns = real(*args)
            ours = store.records(columns)  # the builders give columns
            from_tables = name in ("coaching_rows", "reported_rows")
            theirs = reference(*tables[-1]) if from_tables else reference(*args)
            assert _typed(ours) == _typed(theirs)  # values, their types and key order
            built[name] = len(ours)
            return columns

        monkeypatch.setattr(store, name, both)

    spy("performance_rows", reference_performance_rows)
    spy("metric_rows", reference_metric_rows)
    spy("coaching_rows", reference_coaching)
    spy("reported_rows", reference_reported)
    compute.run(session=session, settings=settings, as_of=TODAY, full=True)
    assert min(built.values()) > 0 and len(built) == 4
