"""The result frames of a compute, from its metrics: each subject's figures against target
(gaps, pacing, pipeline, streaks of misses) and each rep's coaching table (funnel drivers)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics import coverage, drivers, gaps, pacing, path_to_target, trends
from analytics.currency import to_reporting_currency
from analytics.periods import FiscalCalendar, shift
from analytics.targets import derive_rollup_targets
from app.core.config import Settings
from app.performance import frames
from app.performance.inputs import Inputs, by_team
from app.performance.membership import team_in_period
from app.performance.models import PerformanceRow
from app.performance.plan import WIN_RATE_MONTHS, Scope
from app.reps.models import RepIdentity


def actuals(metrics: dict[str, pd.DataFrame], in_scope: dict[str, set[str]]) -> pd.DataFrame:
    """The metrics of the periods in scope, every kind in one frame."""
    return pd.concat([m[m["period"].isin(in_scope[k])] for k, m in metrics.items()])


def gap_rows(
    session: Session,
    settings: Settings,
    scope: Scope,
    inputs: Inputs,
    metrics: dict[str, pd.DataFrame],
    figures: pd.DataFrame,
    as_of: date,
) -> pd.DataFrame:
    """Each subject's figures of the periods in scope (``figures``: :func:`actuals`) against
    their targets, with the open pipeline, the trailing win rates, the path to target
    (:data:`PATH_FIELDS`) and the runs of misses."""
    cal = settings.calendar
    all_periods = [p for ps in scope.periods.values() for p in ps]
    # Only open deals due from as_of on can count (open_pipeline's own rule): the team
    # merge then copies those few rather than every deal.
    due = inputs.due
    rep_pipeline = coverage.open_pipeline(
        due, periods=all_periods, as_of=as_of, rates=settings.currency_rates, key="rep_id"
    )
    team_pipeline = coverage.open_pipeline(
        by_team(due, inputs.membership),
        periods=all_periods,
        as_of=as_of,
        rates=settings.currency_rates,
        key="team_id",
    )
    pipeline = _subjects(rep_pipeline, team_pipeline)
    monthly = metrics["month"]
    win_rates = _subjects(
        coverage.trailing_win_rate(
            monthly[monthly["subject_type"] == "rep"].rename(columns={"subject_id": "rep_id"}),
            as_of=as_of,
            months=WIN_RATE_MONTHS,
            key="rep_id",
        ),
        coverage.trailing_win_rate(
            monthly[monthly["subject_type"] == "team"].rename(columns={"subject_id": "team_id"}),
            as_of=as_of,
            months=WIN_RATE_MONTHS,
            key="team_id",
        ),
    )
    config = gaps.GapConfig(
        as_of=as_of,
        cal=cal,
        pacing=settings.pacing,
        holidays=tuple(settings.holidays),
        on_track_min=settings.status_on_track_min,
        ramp_schedule=tuple(settings.ramp_schedule),
    )
    seasonal = settings.pacing == "seasonal"
    shares = _seasonal_shares(session, settings, inputs, as_of) if seasonal else None
    rows = gaps.compute_gaps(
        derive_rollup_targets(
            inputs.targets, periods=scope.labels, reps=inputs.reps, config=config
        ),
        figures,
        reps=inputs.reps,
        pipeline=pipeline,
        win_rates=win_rates,
        config=config,
        shares=shares,
    )
    rows = _with_path(rows, monthly, pipeline, settings, as_of)
    return _with_streaks(session, rows, scope, cal)


# The path to target's columns in the gap rows (stored in PerformanceRow.details).
PATH_FIELDS = tuple(f"path_{c}" for c in path_to_target.PATH_COLUMNS)


def _with_path(
    rows: pd.DataFrame,
    monthly: pd.DataFrame,
    pipeline: pd.DataFrame,
    settings: Settings,
    as_of: date,
) -> pd.DataFrame:
    """The gap rows with their path to target (:mod:`analytics.path_to_target`): the rates
    pooled from the same monthly frame as the drivers, the pipeline of the gaps."""
    rates = path_to_target.pooled_rates(monthly, as_of=as_of, cal=settings.calendar)
    path = path_to_target.path_to_target(
        rows,
        rates,
        pipeline,
        as_of=as_of,
        cal=settings.calendar,
        holidays=tuple(settings.holidays),
    )
    return pd.concat([rows, path.add_prefix("path_")], axis=1)


def _seasonal_shares(session: Session, settings: Settings, f: Inputs, as_of: date) -> pd.DataFrame:
    """Each team's learned booking curve, from two years of its won deals; a rep is paced on
    their team's curve (one rep's own history is too thin to learn a shape from)."""
    since = as_of - timedelta(days=2 * 366 + 92)
    won = frames.deals_frame(
        session.connection(),
        since=since,
        until=as_of,
        status="won",
        columns=("rep_id", "amount", "currency", "close_date", "is_deleted"),
        categorical=True,
    )
    won = won[~won["is_deleted"]]
    won = won.assign(
        value=to_reporting_currency(won["amount"], won["currency"], settings.currency_rates)
    )
    won = by_team(won, f.membership)[["team_id", "close_date", "value"]]
    curves = pd.concat(
        [
            pacing.seasonal_shares(
                won, kind=kind, cal=settings.calendar, as_of=as_of, key="team_id"
            )
            for kind in ("month", "quarter")
        ],
        ignore_index=True,
    )
    team_curves = curves.rename(columns={"team_id": "subject_id"}).assign(subject_type="team")
    rep_teams = f.reps[["rep_id", "team_id"]].dropna()
    rep_curves = rep_teams.merge(curves, on="team_id").drop(columns="team_id")
    rep_curves = rep_curves.rename(columns={"rep_id": "subject_id"}).assign(subject_type="rep")
    return pd.concat([team_curves, rep_curves], ignore_index=True)


def _subjects(rep: pd.DataFrame, team: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(
        [
            rep.rename(columns={"rep_id": "subject_id"}).assign(subject_type="rep"),
            team.rename(columns={"team_id": "subject_id"}).assign(subject_type="team"),
        ],
        ignore_index=True,
    )


def _with_streaks(
    session: Session, rows: pd.DataFrame, scope: Scope, cal: FiscalCalendar
) -> pd.DataFrame:
    """consecutive_misses per row, continuing the runs stored for the periods before scope."""
    rows = rows.copy()
    if rows.empty:
        return rows.assign(consecutive_misses=pd.Series(dtype="int64"))
    cols = ["subject_type", "rep_id", "team_id", "metric", "period", "status"]
    prior = _prior_runs(session, scope, cal, cols)
    history = pd.concat([prior, rows[cols]], ignore_index=True)
    for col in ("rep_id", "team_id"):
        history[col] = history[col].astype("Int64")
    streak = trends.misses_by_period(history, key=["subject_type", "rep_id", "team_id"])
    rows["consecutive_misses"] = streak.to_numpy()[len(prior) :]
    return rows


def _prior_runs(
    session: Session, scope: Scope, cal: FiscalCalendar, cols: list[str]
) -> pd.DataFrame:
    """The stored rows of the period just before the scope, of each kind, a missed one
    preceded by the missed periods of its stored run: the history a run into the scope
    continues, without reading every stored period (a run is broken by any other row, or
    by a period without one)."""
    before = {kind: shift(ps[0], -1, cal) for kind, ps in scope.periods.items() if ps}
    stored = pd.DataFrame(
        session.execute(
            select(
                *(getattr(PerformanceRow, c) for c in cols), PerformanceRow.consecutive_misses
            ).where(
                PerformanceRow.valid_to.is_(None),
                PerformanceRow.period.in_([p.label for p in before.values()]),
            )
        ).all(),
        columns=[*cols, "run"],
    )
    if stored.empty:
        return stored[cols]
    missed = stored["status"].eq("missed").to_numpy(dtype=bool)
    run = stored["run"].fillna(0).to_numpy(dtype=np.int64)
    copies = np.where(missed, np.maximum(run, 1), 1)
    longest = int(copies.max())
    back = {p.label: [shift(p, -j, cal).label for j in range(longest)] for p in before.values()}
    out = stored.loc[stored.index.repeat(copies), cols].reset_index(drop=True)
    ends = np.cumsum(copies)
    # Position of each copy from its row's last one: 0 is the period just before the scope.
    step = ends[np.repeat(np.arange(len(copies)), copies)] - 1 - np.arange(int(ends[-1]))
    out["period"] = [back[label][k] for label, k in zip(out["period"], step.tolist(), strict=True)]
    return out


def rep_sources(session: Session) -> pd.DataFrame:
    """``rep_id, source_id``: the sources each rep's records come from (their identities)."""
    rows = session.execute(select(RepIdentity.rep_id, RepIdentity.source_id)).all()
    return pd.DataFrame(rows, columns=["rep_id", "source_id"])


def tracks_activities(rep_month: pd.DataFrame, sources: pd.DataFrame) -> pd.DataFrame:
    """``rep_id, tracks_activities`` for the reps known to come from a source: true when one
    of their sources brought any activity, for any of its reps, in the monthly history.

    A source that does not sync activities (an opportunities-only CSV, a CRM whose activities
    are not read) must not make its reps look idle next to those of one that does; the
    drivers then judge them on pipeline generation (analytics.drivers). Reps without a source
    are left to the drivers' own rule (their team's activities in the window)."""
    active = rep_month.loc[rep_month["activities"].fillna(0) > 0, "rep_id"].unique()
    with_activities = sources.loc[sources["rep_id"].isin(active), "source_id"].unique()
    tracked = sources.assign(tracks_activities=sources["source_id"].isin(with_activities))
    any_source: pd.DataFrame = tracked.groupby("rep_id", as_index=False).agg(
        tracks_activities=("tracks_activities", "any")
    )
    return any_source


def coaching_table(
    metrics: dict[str, pd.DataFrame],
    inputs: Inputs,
    in_scope: dict[str, set[str]],
    cal: FiscalCalendar,
    sources: pd.DataFrame,
) -> pd.DataFrame:
    """The driver tables of the months and quarters in scope, with ``period_kind``; a rep is
    compared with the team they were on in each period, and judged on activities only when
    their source tracks them (:func:`tracks_activities`; ``sources``: :func:`rep_sources`)."""
    tables: list[pd.DataFrame] = []
    month = metrics["month"]
    tracking = tracks_activities(
        month[month["subject_type"] == "rep"].rename(columns={"subject_id": "rep_id"}), sources
    )
    for kind in ("month", "quarter"):
        m = metrics[kind]
        rep_metrics = m[m["subject_type"] == "rep"].rename(columns={"subject_id": "rep_id"})
        reps = team_in_period(
            inputs.spans, inputs.reps, kind=kind, indices=rep_metrics["period_index"], cal=cal
        ).merge(tracking, on="rep_id", how="left")
        # Quarters: a year of quarters against the quarter before it, within 15 months of data.
        config = (
            drivers.DriverConfig() if kind == "month" else drivers.DriverConfig(trailing_periods=1)
        )
        table = drivers.driver_table(rep_metrics, reps, config=config, periods=in_scope[kind])
        tables.append(table.assign(period_kind=kind))
    return pd.concat(tables, ignore_index=True)
