"""Who counts for which team, and when.

A team's figures pool its whole tree: the reps on the team and on every team below it. Which
reps those are depends on the period: a rep counts for a team for the days they were on it
(:class:`~app.reps.models.TeamMembership` spans), so a move does not rewrite the figures of
the periods before it. Forward-looking figures (the open pipeline, a team's learned booking
curve) use today's teams.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from analytics.periods import FiscalCalendar, period_from_index, period_index
from app.core.periods import parse
from app.reps.models import TeamMembership
from app.teams import tree


def _up(teams: pd.DataFrame) -> pd.DataFrame:
    """(team_id, group_id): each team with itself and every team above it."""
    parent = {
        int(t): (None if pd.isna(p) else int(p))
        for t, p in zip(teams["team_id"], teams["parent_id"], strict=True)
    }
    pairs = [(team, up) for team in parent for up in tree.lineage(team, parent)]
    return pd.DataFrame(pairs, columns=["team_id", "group_id"], dtype="int64")


def membership(reps: pd.DataFrame, teams: pd.DataFrame) -> pd.DataFrame:
    """(rep_id, team_id) for each rep's current team and every team above it."""
    current = reps.loc[reps["team_id"].notna(), ["rep_id", "team_id"]].astype("int64")
    out = current.merge(_up(teams), on="team_id").drop(columns="team_id")
    return out.rename(columns={"group_id": "team_id"})[["rep_id", "team_id"]]


def _shares(
    spans: pd.DataFrame, reps: pd.DataFrame, kind: str, indices: npt.ArrayLike, cal: FiscalCalendar
) -> pd.DataFrame:
    """``rep_id, team_id, period_index, weight``: the share of each period's days a rep was on
    a team (the team itself, not those above it), where it is above 0. A rep's first span
    reaches back without limit (what a rep did before joining counts for the team they
    joined); a rep on a team with no span at all is on it throughout."""
    spans = spans[["rep_id", "team_id", "valid_from", "valid_to"]]
    missing = reps[reps["team_id"].notna() & ~reps["rep_id"].isin(spans["rep_id"])]
    if len(missing):
        open_span = pd.Series(pd.NaT, index=missing.index, dtype="datetime64[ns]")
        extra = missing[["rep_id", "team_id"]].assign(valid_from=open_span, valid_to=open_span)
        spans = pd.concat([spans, extra], ignore_index=True)
    spans = spans.sort_values(["rep_id", "valid_from"], na_position="first", kind="stable")
    never, ever = np.datetime64("1677-09-22", "D"), np.datetime64("2262-04-10", "D")
    lo = pd.to_datetime(spans["valid_from"]).to_numpy(dtype="datetime64[D]")
    lo = np.where(spans["rep_id"].duplicated().to_numpy() & ~np.isnat(lo), lo, never)
    hi = pd.to_datetime(spans["valid_to"]).to_numpy(dtype="datetime64[D]")
    hi = np.where(np.isnat(hi), ever, hi)
    index = np.unique(np.asarray(indices, dtype=np.int64))
    periods = [period_from_index(kind, int(i), cal) for i in index]
    start = np.array([p.start for p in periods], dtype="datetime64[D]")
    end = np.array([p.end for p in periods], dtype="datetime64[D]") + np.timedelta64(1, "D")
    # Days of each (span, period) overlap, as a spans x periods grid (spans are few).
    days = np.minimum(hi[:, None], end[None, :]) - np.maximum(lo[:, None], start[None, :])
    share = np.clip(days.astype(np.int64), 0, None) / (end - start).astype(np.int64)[None, :]
    s, m = np.nonzero(share > 0)
    return pd.DataFrame(
        {
            "rep_id": spans["rep_id"].to_numpy(dtype=np.int64)[s],
            "team_id": spans["team_id"].to_numpy(dtype=np.int64)[s],
            "period_index": index[m],
            "weight": share[s, m],
        }
    )


def tenure(
    spans: pd.DataFrame,
    reps: pd.DataFrame,
    teams: pd.DataFrame,
    *,
    months: npt.ArrayLike,
    cal: FiscalCalendar,
) -> pd.DataFrame:
    """``rep_id, period_index, team_id, weight``: the share of each fiscal month (by index in
    ``months``) a rep was on a team or a team below it, where it is above 0.

        weight(rep, team, m) = days of m the rep spent in team's tree / days of m

    ``spans``: ``rep_id, team_id, valid_from, valid_to`` (``[from, to)``, NaT open); see
    :func:`_shares` for a rep's first span."""
    rows = _shares(spans, reps, "month", months, cal)
    rows = rows.merge(_up(teams), on="team_id").drop(columns="team_id")
    keys = ["rep_id", "period_index", "group_id"]
    out: pd.DataFrame = rows.groupby(keys, as_index=False).agg(weight=("weight", "sum"))
    return out.rename(columns={"group_id": "team_id"})


def team_in_period(
    spans: pd.DataFrame,
    reps: pd.DataFrame,
    *,
    kind: str,
    indices: npt.ArrayLike,
    cal: FiscalCalendar,
) -> pd.DataFrame:
    """``rep_id, role, period_index, team_id``: the team each rep was on for most of each
    period (the later one on a tie; NaN for none), with the rep's role; for comparing a rep
    with the peers they had then."""
    rows = _shares(spans, reps, kind, indices, cal)
    rows = rows.iloc[::-1].sort_values(["rep_id", "period_index", "weight"], kind="stable")
    rows = rows.drop_duplicates(["rep_id", "period_index"], keep="last").drop(columns="weight")
    # Every rep in every period, on no team (NaN) where they were on none.
    grid = reps[["rep_id", "role"]].merge(
        pd.DataFrame({"period_index": np.unique(np.asarray(indices, dtype=np.int64))}),
        how="cross",
    )
    out = grid.merge(rows, on=["rep_id", "period_index"], how="left")
    out["team_id"] = out["team_id"].astype("Int64")
    return out


def teams_of_movers(
    session: Session, reps: dict[int, tuple[int | None, str]], period: str, cal: FiscalCalendar
) -> dict[int, int | None]:
    """The team of ``period`` of each rep who ever moved, by :func:`team_in_period` (the
    compute's own rule), for answers that group reps by team; ``reps``: rep id -> (today's
    team, role). The others are on today's team in every period."""
    moved = select(TeamMembership.rep_id).where(TeamMembership.valid_to.is_not(None))
    columns = ["rep_id", "team_id", "valid_from", "valid_to"]
    rows = session.execute(
        select(*(getattr(TeamMembership, c) for c in columns)).where(
            TeamMembership.rep_id.in_(moved)
        )
    ).all()
    spans = pd.DataFrame(rows, columns=columns)
    spans = spans[spans["rep_id"].isin(list(reps))]
    if spans.empty:
        return {}
    p = parse(period, cal)
    movers = pd.DataFrame(
        [(r, *reps[r]) for r in spans["rep_id"].unique()], columns=["rep_id", "team_id", "role"]
    )
    index = period_index(pd.Series([pd.Timestamp(p.start)]), p.kind, cal)
    found = team_in_period(spans, movers, kind=p.kind, indices=index, cal=cal)
    return {
        int(r): None if pd.isna(t) else int(t)
        for r, t in zip(found["rep_id"], found["team_id"], strict=True)
    }
