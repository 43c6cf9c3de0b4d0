"""A recent collapse: the last few periods of a rep against their own earlier level and the
team, so a sudden change is not averaged away by a year of history (used by
:func:`analytics.drivers.driver_table`; its docstring has the drivers' formulas).

Windows, for a row at period t with ``R`` = recent periods and ``W`` = the drivers' window:
the *recent* window is t − R < p ≤ t, the rep's *own earlier level* pools t − W < p ≤ t − R.
Per compared driver d:

* ``d_recent_value``       = d pooled over the recent window
* ``d_recent_team_median`` = median of the same over the team peers with a row in each of the
  recent periods (activity and conversion: the activity-tracked ones), the rep left out
* ``d_recent_vs_team``     = d_recent_value / d_recent_team_median
* ``d_recent_vs_own``      = d_recent_value / d pooled over the own earlier level

Judged when the driver belongs to the row's identity, the rep has a row in each recent period
and at least R periods in the earlier level, and there is evidence: for the count drivers the
count the rep would have produced in the recent window at their own earlier rate is
E ≥ min_deals / 2 (activity: R × earlier activity; pipeline: R × earlier pipeline;
conversion: recent activities × earlier conversion; throughput: recent opportunities ×
earlier throughput; win rate: recent closed × earlier win rate), for deal size and cycle
at least min_deals recent wins (with a cycle).

A recent finding needs all of, with performance p = ratio (1 / ratio for the cycle):

* p against the own earlier level ≤ 1 − material_shortfall, and against the recent team
  median ≤ 1 − material_shortfall (a fall that leaves the rep level with the team is not a
  collapse, and a rep always below the team is the window's finding);
* for count drivers, the observed count X is beyond noise: 2(√(X + ½) − √E) ≤ −recent_z
  (the square-root transform makes a Poisson count about normal with unit spread: with the
  default 3, about a 0.1% chance for a rep still working at their earlier rate, so that the
  five count drivers of every rep in every period do not add up to many false alarms).

Among findings the driver with the lowest p against the own level is named. It is the rep's
focus unless the window's finding is further below the team (a chronic weakness deeper than
the recent fall stays the thing to coach).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from analytics._arrays import BoolArray, FloatArray, IntArray, ObjArray, safe_div
from analytics._driver_pool import ACTIVITY_ONLY, in_identity, peer_medians, pooled

__all__ = ["Recent", "columns", "judge"]

_SUFFIXES: Final = ("recent_value", "recent_team_median", "recent_vs_team", "recent_vs_own")


def columns(drivers: tuple[str, ...]) -> list[str]:
    """The recent-window columns of each driver, in table order."""
    return [f"{d}_{s}" for d in drivers for s in _SUFFIXES]


@dataclass(frozen=True)
class Recent:
    """The recent window's columns, each row's finding (``driver``, None without one) and the
    finding's ``value, team_median, vs_team, own, vs_own`` (``figures``)."""

    columns: dict[str, FloatArray]
    driver: ObjArray
    figures: dict[str, FloatArray]
    # The finding's performance against the team (inf without one), to weigh it against the
    # window's finding.
    against_team: FloatArray


def _counts(
    recent: dict[str, FloatArray], own: dict[str, FloatArray], periods: int
) -> dict[str, tuple[FloatArray, FloatArray]]:
    """(observed, expected at the own earlier rate) of each count driver."""
    return {
        "activity": (recent["activities"], periods * own["activity"]),
        "pipeline": (recent["opportunities"], periods * own["pipeline"]),
        "conversion": (recent["opportunities"], recent["activities"] * own["conversion"]),
        "throughput": (recent["closed_deals"], recent["opportunities"] * own["throughput"]),
        "win_rate": (recent["won_deals"], recent["closed_deals"] * own["win_rate"]),
    }


def judge(
    recent: dict[str, FloatArray],
    earlier: dict[str, FloatArray],
    *,
    group: IntArray,
    candidate: BoolArray,
    tracked: BoolArray,
    periods: int,
    drivers: tuple[str, ...],
    shortfall: float,
    min_deals: int,
    z_bar: float,
) -> Recent:
    """The recent window of every row (module docstring). ``recent`` and ``earlier`` are the
    pooled sums of the two windows, ``group`` the rows' peer groups, ``candidate`` the rows
    that can be a peer, ``tracked`` the activity-tracked rows; ``periods`` = R (0: none);
    ``drivers`` the compared drivers, in tie order; ``shortfall``, ``min_deals`` and
    ``z_bar`` the DriverConfig's material_shortfall, min_deals and recent_z."""
    n = len(group)
    nan = np.full(n, np.nan)
    if periods == 0:
        figures = {k: nan for k in ("value", "team_median", "vs_team", "own", "vs_own")}
        none: ObjArray = np.full(n, None, dtype=object)
        return Recent(dict.fromkeys(columns(drivers), nan), none, figures, np.full(n, np.inf))
    value, own = pooled(recent), pooled(earlier)
    full = recent["periods"] == periods
    known = full & (earlier["periods"] >= periods)
    counts = _counts(recent, own, periods)
    bar = 1.0 - shortfall
    cols: dict[str, FloatArray] = {}
    best, team_level = np.full(n, np.inf), np.full(n, np.inf)
    chosen = np.full(n, -1, dtype=np.int64)
    for j, d in enumerate(drivers):
        needs_tracking = d in ACTIVITY_ONLY
        peers = candidate & full & (tracked if needs_tracking else True)
        v = np.where(tracked, value[d], np.nan) if needs_tracking else value[d]
        median = peer_medians(group, v, peers)
        vs_team, vs_own = safe_div(v, median), safe_div(v, own[d])
        cols.update(zip(columns((d,)), (v, median, vs_team, vs_own), strict=True))
        p_team, p_own = (safe_div(np.ones(n), r) if d == "cycle" else r for r in (vs_team, vs_own))
        applies = in_identity(d, tracked)
        flagged = applies & known & (p_own <= bar) & (p_team <= bar)
        if d in counts:
            x, e = counts[d]
            z = 2.0 * (np.sqrt(x + 0.5) - np.sqrt(np.nan_to_num(e)))
            flagged &= (e >= min_deals / 2.0) & (z <= -z_bar)
        else:
            wins = recent["won_deals"] if d == "deal_size" else recent["cycle_wins"]
            flagged &= wins >= min_deals
        better = flagged & (p_own < best)
        best = np.where(better, p_own, best)
        team_level = np.where(better, p_team, team_level)
        chosen = np.where(better, j, chosen)
    return _finding(cols, chosen, own, drivers, team_level)


def _finding(
    cols: dict[str, FloatArray],
    chosen: IntArray,
    own: dict[str, FloatArray],
    drivers: tuple[str, ...],
    against_team: FloatArray,
) -> Recent:
    """Each row's finding and its figures, from the index of the chosen driver (-1: none)."""
    n = len(chosen)
    driver: ObjArray = np.full(n, None, dtype=object)
    has = chosen >= 0
    driver[has] = np.array(drivers, dtype=object)[chosen[has]]
    figures = {k: np.full(n, np.nan) for k in ("value", "team_median", "vs_team", "own", "vs_own")}
    for j, d in enumerate(drivers):
        rows = chosen == j
        if not rows.any():
            continue
        figures["value"][rows] = cols[f"{d}_recent_value"][rows]
        figures["team_median"][rows] = cols[f"{d}_recent_team_median"][rows]
        figures["vs_team"][rows] = cols[f"{d}_recent_vs_team"][rows]
        figures["own"][rows] = own[d][rows]
        figures["vs_own"][rows] = cols[f"{d}_recent_vs_own"][rows]
    return Recent(cols, driver, figures, against_team)
