"""Writing a compute's results: the snapshot's versioned result rows (performance, metric and
coaching rows: :mod:`app.performance.versioning`), the state the next incremental compute
starts from, and the marks and changes it has now read."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from analytics.driver_ratios import DERIVED
from analytics.drivers import DRIVER_TABLE_COLUMNS, REPORTED
from analytics.metrics import METRIC_COLUMNS
from app.core.config import Settings
from app.performance import versioning
from app.performance.inputs import Inputs
from app.performance.models import (
    VERSIONING_COLUMNS,
    CoachingRow,
    DealChange,
    DirtyDay,
    MetricRow,
    PerformanceRow,
    ReportedDriverRow,
    Snapshot,
)
from app.performance.plan import Scope, stored_months
from app.performance.results import PATH_FIELDS
from app.performance.state import save_state
from app.performance.timing import timed


def write(
    session: Session,
    *,
    settings: Settings,
    snapshot: Snapshot,
    scope: Scope,
    inputs: Inputs,
    gap_rows: pd.DataFrame,
    actuals: pd.DataFrame,
    coaching: pd.DataFrame,
    timings: dict[str, float],
) -> tuple[int, tuple[int, int], int | None]:
    """Store the snapshot's rows and state, clear the marks and changes it read, purge the
    versions past retention; each part timed into ``timings``. Returns the rows written, the
    months the state is exact for, and the first version kept."""
    version = snapshot.id
    with timed(timings, "write.performance"):
        perf_key = ("subject_type", "rep_id", "team_id", "metric", "period")
        written = versioning.write(
            session,
            PerformanceRow,
            version=version,
            key=perf_key,
            frame=gap_rows,
            fields=[
                *(c for c in PERFORMANCE_FIELDS if c in gap_rows and c not in perf_key),
                *(c for c in PATH_FIELDS if c in gap_rows),
            ],
            build=performance_rows,
            scope=PerformanceRow.period.in_(scope.labels),
        )
    with timed(timings, "write.metrics"):
        written += versioning.write(
            session,
            MetricRow,
            version=version,
            key=("subject_type", "subject_id", "period"),
            frame=actuals,
            fields=["period_kind", "period_start", *METRIC_COLUMNS],
            build=metric_rows,
            scope=MetricRow.period.in_(scope.labels),
        )
    with timed(timings, "write.coaching"):
        written += versioning.write(
            session,
            CoachingRow,
            version=version,
            key=("rep_id", "period"),
            frame=coaching,
            fields=coaching_figures(coaching.columns),
            build=coaching_rows,
            scope=CoachingRow.period.in_(scope.labels),
        )
    with timed(timings, "write.reported"):
        written += versioning.write(
            session,
            ReportedDriverRow,
            version=version,
            key=("rep_id", "period", "driver"),
            frame=reported_frame(coaching),
            fields=["period_kind", *REPORTED_FIGURES],
            build=reported_rows,
            scope=ReportedDriverRow.period.in_(scope.labels),
        )
    with timed(timings, "write.state"):
        months = stored_months(scope, settings.calendar)
        save_state(session, version, _state_kept(inputs, scope, months))
    # Every mark and change there is was read by this compute: no other writer can add one
    # meanwhile (app.performance.compute locks them on PostgreSQL; SQLite's write
    # transactions begin IMMEDIATE).
    session.execute(delete(DealChange))
    session.execute(delete(DirtyDay))
    return written, months, _purge(session, settings, snapshot, scope)


def _state_kept(inputs: Inputs, scope: Scope, months: tuple[int, int]) -> dict[str, pd.DataFrame]:
    """The state to store: the open deals due by the end of the scope, the rest in ``months``."""
    return {
        name: frame[
            frame["close_date"] <= pd.Timestamp(scope.data_end)
            if name == "due"
            else frame["period_index"].between(months[0], months[1])
        ]
        for name, frame in inputs.state.items()
    }


def _purge(session: Session, settings: Settings, snapshot: Snapshot, scope: Scope) -> int | None:
    """Purge the versions computed before the retention window; the first version kept."""
    keep = session.scalar(
        select(Snapshot.id)
        .where(
            Snapshot.computed_at
            >= snapshot.computed_at - timedelta(days=settings.snapshot_retention_days)
        )
        .order_by(Snapshot.id)
    )
    # Rows closed since the last purge have valid_to above its point: purging to the same
    # point again would find nothing (and scan the tables to find it).
    if keep is not None and scope.previous.get("purged_to") != keep:
        versioning.purge(session, keep_from_version=keep)
    return keep


def clean_columns(frame: pd.DataFrame, columns: Sequence[str]) -> dict[str, list[Any]]:
    """Each column's values as ``versioning.clean`` makes them (numpy -> Python, NaN -> None),
    as ``clean(record.get(column))`` over ``frame.to_dict("records")`` would give them, but
    converted a column at a time (``tolist``) rather than value by value."""
    n = len(frame)
    out: dict[str, list[Any]] = {}
    for name in columns:
        if name not in frame:
            out[name] = [None] * n
            continue
        series = frame[name]
        kind = series.dtype.kind if isinstance(series.dtype, np.dtype) else "O"
        if kind == "f":
            array = series.to_numpy()
            values = array.tolist()
            for i in np.flatnonzero(np.isnan(array)).tolist():
                values[i] = None
        elif kind in "iub":
            values = series.tolist()
        elif pd.api.types.infer_dtype(series, skipna=True) in ("string", "empty"):
            # Text (the focus, its reason, labels): nothing to convert but missing values.
            values = series.tolist()
            for i in np.flatnonzero(series.isna().to_numpy()).tolist():
                values[i] = None
        else:  # objects and extension types: to_dict boxes a missing pd.NA as None
            values = [None if v is pd.NA else versioning.clean(v) for v in series.tolist()]
        out[name] = values
    return out


def records(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


PERFORMANCE_FIELDS = [
    c.key
    for c in PerformanceRow.__table__.columns
    if c.key not in VERSIONING_COLUMNS and c.key != "details"
]


# The row builders give ``versioning.write`` database columns (name -> values), not rows:
# it inserts a column at a time.


def performance_rows(rows: pd.DataFrame) -> dict[str, list[Any]]:
    values = clean_columns(rows, PERFORMANCE_FIELDS)
    for c in ("rep_id", "team_id", "target_id"):
        values[c] = [None if v is None or pd.isna(v) else int(v) for v in values[c]]
    for c in ("period_start", "period_end"):
        days = {v: pd.Timestamp(v).date() for v in set(values[c])}
        values[c] = [days[v] for v in values[c]]
    values["consecutive_misses"] = [int(v or 0) for v in values["consecutive_misses"]]
    for c in ("run_rate_periods", "pipeline_periods"):
        values[c] = [None if v is None else int(v) for v in values[c]]
    values["details"] = path_details(rows)
    return values


def path_details(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Each row's ``details``: ``{"path_to_target": {...}}`` (the figures of
    :mod:`analytics.path_to_target`, unprefixed) for a row with a path, ``{}`` otherwise."""
    if "path_path_to_target" not in rows:
        return [{} for _ in range(len(rows))]
    names = [c.removeprefix("path_") for c in PATH_FIELDS]
    columns = clean_columns(rows, PATH_FIELDS)
    path = [
        dict(zip(names, figures, strict=True)) for figures in zip(*columns.values(), strict=True)
    ]
    # A row has a path exactly when it has its sentence (analytics.path_to_target).
    return [{"path_to_target": p} if p["path_to_target"] else {} for p in path]


def metric_rows(actuals: pd.DataFrame) -> dict[str, list[Any]]:
    return {
        "subject_type": actuals["subject_type"].tolist(),
        "subject_id": [int(v) for v in actuals["subject_id"].tolist()],
        "period": actuals["period"].tolist(),
        "period_kind": actuals["period_kind"].tolist(),
        "period_start": actuals["period_start"].tolist(),
        "values": records(clean_columns(actuals, METRIC_COLUMNS)),
    }


# The columns of a coaching row besides ``drivers`` (and ``period_kind``).
COACHING_COLUMNS = frozenset({"rep_id", "period", "coaching_focus", "focus_reason"})
# The keys of a coaching row's ``drivers`` as read: the driver table's columns but these.
DRIVER_KEYS = tuple(c for c in DRIVER_TABLE_COLUMNS if c not in COACHING_COLUMNS)
# What a reported driver row holds of its driver ``d`` (the driver table's ``d_value``...).
REPORTED_FIGURES = ("value", "team_median", "trailing")
_REPORTED_COLUMNS = frozenset(f"{d}_{f}" for d in REPORTED for f in REPORTED_FIGURES)


def coaching_figures(columns: Iterable[Any]) -> list[str]:
    """The driver table's columns a coaching row stores besides its key: not the ratios
    (derived when read: :mod:`analytics.driver_ratios`), nor the reported drivers' figures
    (their own rows: :func:`reported_frame`)."""
    skip = {"rep_id", "period", *DERIVED, *_REPORTED_COLUMNS}
    return [str(c) for c in columns if c not in skip]


def coaching_rows(table: pd.DataFrame) -> dict[str, list[Any]]:
    """The rows' columns; ``drivers`` holds the :func:`coaching_figures` that are not null:
    the reader derives the ratios and fills in the rest
    (:func:`analytics.driver_ratios.completed`)."""
    names = [
        "rep_id",
        "period",
        *(c for c in coaching_figures(table.columns) if c != "period_kind"),
    ]
    values = clean_columns(table, names)
    figures = [k for k in values if k not in COACHING_COLUMNS]
    driver_values = [
        {k: v for k, v in zip(figures, row, strict=True) if v is not None}
        for row in zip(*(values[k] for k in figures), strict=True)
    ]
    if not figures:  # no driver columns at all: one empty dict per row
        driver_values = [{} for _ in range(len(table))]
    return {
        "rep_id": [int(v) for v in table["rep_id"].tolist()],
        "period": table["period"].tolist(),
        "period_kind": table["period_kind"].tolist(),
        "coaching_focus": [
            None if focus is None or pd.isna(focus) else str(focus)
            for focus in values["coaching_focus"]
        ],
        "focus_reason": values["focus_reason"],
        "drivers": driver_values,
    }


def reported_frame(coaching: pd.DataFrame) -> pd.DataFrame:
    """One row per coaching row and reported driver: ``rep_id, period, period_kind, driver``
    and the driver's :data:`REPORTED_FIGURES`."""
    key = coaching[["rep_id", "period", "period_kind"]]
    parts = [
        key.assign(
            driver=d, **{f: coaching[f"{d}_{f}"].to_numpy(dtype=float) for f in REPORTED_FIGURES}
        )
        for d in REPORTED
        if f"{d}_value" in coaching
    ]
    if not parts:
        return key.assign(driver="", **dict.fromkeys(REPORTED_FIGURES, 0.0)).iloc[:0]
    return pd.concat(parts, ignore_index=True)


def reported_rows(frame: pd.DataFrame) -> dict[str, list[Any]]:
    values = clean_columns(frame, ["period", "period_kind", "driver", *REPORTED_FIGURES])
    return {"rep_id": [int(v) for v in frame["rep_id"].tolist()], **values}
