"""The inputs of a compute's figures: the frames a full compute reads from the records, and
what every compute derives from them (monthly rep figures, median sales cycles, open deals
due), from which every period kind's metrics are rolled up.

An incremental compute builds the same :class:`Inputs` from the stored state instead
(:mod:`app.performance.state`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy.orm import Session

from analytics.backtest import midpoint_figures
from analytics.metric_rollups import (
    cycle_medians,
    month_to_period,
    rollup_metrics,
    rollup_periods,
    won_cycles,
)
from analytics.metrics import period_metrics
from analytics.periods import FiscalCalendar, period_from_index
from app.core.config import Settings
from app.performance import frames
from app.performance.membership import membership as current_membership
from app.performance.membership import tenure as team_tenure
from app.performance.plan import KINDS, Scope


def by_team(frame: pd.DataFrame, membership: pd.DataFrame) -> pd.DataFrame:
    return frame.merge(membership, on="rep_id", how="inner")


def due_mask(deals: pd.DataFrame, as_of: date) -> npt.NDArray[np.bool_]:
    """Open, live deals with a close date on or after ``as_of``: a superset of the deals
    :func:`analytics.coverage.open_pipeline` counts in any period."""
    close = pd.to_datetime(deals["close_date"]).to_numpy(dtype="datetime64[D]")
    out: npt.NDArray[np.bool_] = (
        deals["status"].eq("open").to_numpy(dtype=bool, na_value=False)
        & ~deals["is_deleted"].to_numpy(dtype=bool)
        & ~np.isnat(close)
        & (close >= np.datetime64(as_of, "D"))
    )
    return out


@dataclass
class Frames:
    deals: pd.DataFrame
    activities: pd.DataFrame
    reps: pd.DataFrame
    teams: pd.DataFrame
    targets: pd.DataFrame
    membership: pd.DataFrame
    spans: pd.DataFrame  # team membership spans


# The columns the job reads (the frames' other columns are for other callers).
DEAL_COLUMNS = (
    "deal_id",
    "rep_id",
    "amount",
    "currency",
    "status",
    "probability",
    "created_at",
    "close_date",
    "closed_at",
    "is_deleted",
)
ACTIVITY_COLUMNS = ("rep_id", "type", "occurred_at", "is_deleted")
# What open_pipeline (and due_mask) read of a deal.
PIPELINE_COLUMNS = (
    "rep_id",
    "amount",
    "currency",
    "status",
    "probability",
    "close_date",
    "is_deleted",
)


def load(session: Session, scope: Scope) -> Frames:
    conn = session.connection()
    reps = frames.reps_frame(conn)
    teams = frames.teams_frame(conn)
    return Frames(
        deals=frames.deals_frame(
            conn,
            since=scope.data_start,
            until=scope.data_end,
            columns=DEAL_COLUMNS,
            categorical=True,
        ),
        activities=frames.activities_frame(
            conn,
            since=scope.data_start,
            until=scope.data_end,
            columns=ACTIVITY_COLUMNS,
            categorical=True,
        ),
        reps=reps,
        teams=teams,
        targets=frames.targets_frame(conn, periods=scope.target_labels),
        membership=current_membership(reps, teams),
        spans=frames.memberships_frame(conn),
    )


Cycles = dict[str, tuple[pd.DataFrame, pd.DataFrame]]


@dataclass
class Inputs:
    """What the stages after loading need: the org, the targets, every rep's monthly figures
    over the data window, the median sales cycles of quarters and years (and of team
    months), and the open deals that can count as pipeline."""

    reps: pd.DataFrame
    teams: pd.DataFrame
    targets: pd.DataFrame
    membership: pd.DataFrame  # today's (rep_id, team_id) pairs
    tenure: pd.DataFrame  # who counted for which team in each month (membership.tenure)
    spans: pd.DataFrame  # team membership spans (frames.memberships_frame)
    rep_month: pd.DataFrame
    cycles: Cycles
    due: pd.DataFrame
    # The state the next incremental compute starts from (see ComputeState).
    state: dict[str, pd.DataFrame] = field(default_factory=dict)
    deals: int = 0  # records read
    activities: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # parts of the load stage


def sales_cycles(rep_won: pd.DataFrame, tenure: pd.DataFrame, cal: FiscalCalendar) -> Cycles:
    """(rep, team) median sales cycles per period of each kind, from monthly won cycles; a
    team's are those of the deals its reps won in the months they were on it."""
    on_team = tenure[["rep_id", "period_index", "team_id"]]
    team_won = rep_won.merge(on_team, on=["rep_id", "period_index"]).drop(columns="rep_id")
    return {
        kind: (
            cycle_medians(_won_in(rep_won, kind, cal), key="rep_id"),
            cycle_medians(_won_in(team_won, kind, cal), key="team_id"),
        )
        for kind in KINDS
    }


def metrics_from(
    rep_month: pd.DataFrame, cycles: Cycles, tenure: pd.DataFrame, settings: Settings
) -> dict[str, pd.DataFrame]:
    """Rep and team metrics of every period kind, with subject_type / subject_id.

    From the monthly rep figures: quarters and years are unions of fiscal months; a team's
    month pools its members' rows for their days on it (see :func:`rollup_metrics` and
    ``tenure``), and its quarters and years are unions of its months. The median sales cycle
    comes from ``cycles`` (the won deals of each quarter, year and team) rather than the
    members' medians.
    """
    cal = settings.calendar
    out: dict[str, pd.DataFrame] = {}
    team_month = pd.DataFrame()
    for kind in KINDS:
        rep_cycles, team_cycles = cycles[kind]
        if kind == "month":
            rep = rep_month
            team = team_month = rollup_metrics(
                rep_month, tenure, kind=kind, key="rep_id", to_key="team_id", cycles=team_cycles
            )
        else:
            rep = rollup_periods(rep_month, kind=kind, cal=cal, key="rep_id", cycles=rep_cycles)
            team = rollup_periods(team_month, kind=kind, cal=cal, key="team_id", cycles=team_cycles)
        out[kind] = _with_subjects(rep, team, settings, kind)
    return out


def all_metrics(f: Frames, settings: Settings) -> dict[str, pd.DataFrame]:
    """:func:`metrics_from` the records of ``f``: one pass over them for the monthly rep
    figures, and their won deals for the cycles."""
    i = from_records(f, settings, as_of=None)
    return metrics_from(i.rep_month, i.cycles, i.tenure, settings)


def from_records(f: Frames, settings: Settings, as_of: date | None) -> Inputs:
    cal = settings.calendar
    rep_month = period_metrics(
        f.deals,
        f.activities,
        kind="month",
        cal=cal,
        rates=settings.currency_rates,
        tz=settings.timezone,
        key="rep_id",
    )
    rep_won = won_cycles(f.deals, kind="month", cal=cal, tz=settings.timezone, key="rep_id")
    rep_mid = midpoint_figures(
        f.deals, cal=cal, rates=settings.currency_rates, tz=settings.timezone, key="rep_id"
    )
    due = f.deals.iloc[:0] if as_of is None else f.deals[due_mask(f.deals, as_of)]
    tenure = team_tenure(
        f.spans, f.reps, f.teams, months=rep_month["period_index"].to_numpy(), cal=cal
    )
    return Inputs(
        reps=f.reps,
        teams=f.teams,
        targets=f.targets,
        membership=f.membership,
        tenure=tenure,
        spans=f.spans,
        rep_month=rep_month,
        cycles=sales_cycles(rep_won.drop(columns="deal_id", errors="ignore"), tenure, cal),
        due=due,
        state={
            "rep_month": rep_month,
            "won": rep_won,
            "due": due_state(due),
            "rep_mid": rep_mid,
        },
        deals=len(f.deals),
        activities=len(f.activities),
    )


# What a deal's figures depend on: period_metrics and won_cycles read these.
DELTA_COLUMNS = [c for c in DEAL_COLUMNS if c != "probability"]


def due_state(due: pd.DataFrame) -> pd.DataFrame:
    return due[["deal_id", *(c for c in PIPELINE_COLUMNS if c not in ("status", "is_deleted"))]]


def _won_in(won: pd.DataFrame, kind: str, cal: FiscalCalendar) -> pd.DataFrame:
    """A monthly :func:`won_cycles` frame with its periods mapped to ``kind``."""
    if kind == "month":
        return won
    return won.assign(period_index=month_to_period(won["period_index"].to_numpy(), kind, cal))


def _with_subjects(
    rep: pd.DataFrame, team: pd.DataFrame, settings: Settings, kind: str
) -> pd.DataFrame:
    rep = rep.rename(columns={"rep_id": "subject_id"}).assign(subject_type="rep")
    team = team.rename(columns={"team_id": "subject_id"}).assign(subject_type="team")
    out = pd.concat([rep, team], ignore_index=True).assign(period_kind=kind)
    starts = {
        i: period_from_index(kind, i, settings.calendar).start
        for i in pd.unique(out["period_index"])
    }
    out["period_start"] = out["period_index"].map(starts)
    return out
