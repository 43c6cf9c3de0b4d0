"""Pooling for :mod:`analytics.drivers`: sums over ranges of each rep's periods, the pooled
driver values, the team peers and their medians. The formulas are in the drivers module's
docstring; this module holds the array mechanics they share.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from analytics._arrays import BoolArray, FloatArray, IntArray, safe_div

__all__ = [
    "ACTIVITY_ONLY",
    "SUMS",
    "group_sum",
    "in_identity",
    "log_or_nan",
    "peer_medians",
    "peers",
    "pooled",
    "range_sums",
    "summable",
    "tracked_rows",
]

# Pooled sums, in this column order in the cumulative-sum matrix.
SUMS: Final[tuple[str, ...]] = (
    "won_revenue",
    "won_deals",
    "closed_deals",
    "opportunities",
    "pipeline_created",
    "activities",
    "cycle_weight",
    "cycle_wins",
    "periods",
)


# Undefined without tracked activities (the pipeline identity has neither).
ACTIVITY_ONLY: Final = ("activity", "conversion")


def in_identity(driver: str, tracked: BoolArray) -> BoolArray:
    """The rows whose revenue identity has ``driver`` (the cycle: every row): activity and
    conversion on activity-tracked rows, pipeline on the others, the rest on every row."""
    if driver in ACTIVITY_ONLY:
        return tracked
    if driver == "pipeline":
        return ~tracked
    return np.ones(len(tracked), dtype=bool)


def log_or_nan(x: FloatArray) -> FloatArray:
    """Natural log, NaN (not -inf) where x is not positive: the result is served as JSON."""
    out: FloatArray = np.full(len(x), np.nan)
    np.log(x, out=out, where=x > 0)
    return out


def summable(frame: pd.DataFrame) -> dict[str, FloatArray]:
    """Each row's :data:`SUMS`, ready to be summed over any set of rows: the counts and
    amounts (missing: 0; a count column the frame lacks: 0), the cycle as its won-deal weight
    (the period's median cycle × its wins, over periods with both) and ``periods`` = 1."""
    n = len(frame)
    won = frame["won_deals"].to_numpy(dtype="float64", na_value=0.0)
    cycle_days = frame["sales_cycle_days"].to_numpy(dtype="float64", na_value=np.nan)
    has_cycle = ~np.isnan(cycle_days) & (won > 0)
    columns: dict[str, FloatArray] = {
        c: frame[c].to_numpy(dtype="float64", na_value=0.0) if c in frame else np.zeros(n)
        for c in SUMS[:6]
    }
    columns["cycle_weight"] = np.where(has_cycle, cycle_days * won, 0.0)
    columns["cycle_wins"] = np.where(has_cycle, won, 0.0)
    columns["periods"] = np.ones(n)
    return columns


def range_sums(
    frame: pd.DataFrame, keys: IntArray, ranges: dict[str, tuple[int, int]]
) -> dict[str, dict[str, FloatArray]]:
    """The :data:`SUMS` of each row over each named range of its rep's periods.

    ``frame`` is sorted by rep and period and ``keys`` increases along it, a rep's periods
    one apart. A range ``(near, far)`` covers the periods ``t − far < p ≤ t − near`` of a row
    at period t, and its sums are prefix(key − near) − prefix(key − far).
    """
    columns = summable(frame)
    matrix = np.column_stack([columns[c] for c in SUMS])
    prefix = np.vstack([np.zeros((1, len(SUMS))), np.cumsum(matrix, axis=0)])
    cache: dict[int, FloatArray] = {}

    def upto(back: int) -> FloatArray:
        """Prefix sums over each row's rep up to period_index − back (inclusive)."""
        if back not in cache:
            cache[back] = prefix[np.searchsorted(keys, keys - back, side="right")]
        return cache[back]

    out: dict[str, dict[str, FloatArray]] = {}
    for name, (near, far) in ranges.items():
        sums = upto(near) - upto(far)
        out[name] = {c: sums[:, i] for i, c in enumerate(SUMS)}
    return out


def pooled(sums: dict[str, FloatArray]) -> dict[str, FloatArray]:
    """The drivers of pooled sums (formulas: the drivers module's docstring)."""
    won_revenue, won = sums["won_revenue"], sums["won_deals"]
    closed, opps, acts = sums["closed_deals"], sums["opportunities"], sums["activities"]
    periods = sums["periods"]
    return {
        "revenue": safe_div(won_revenue, periods),
        "activity": safe_div(acts, periods),
        "conversion": safe_div(opps, acts),
        "pipeline": safe_div(opps, periods),
        "pipeline_created": safe_div(sums["pipeline_created"], periods),
        "throughput": safe_div(closed, opps),
        "win_rate": safe_div(won, closed),
        "deal_size": safe_div(won_revenue, won),
        "cycle": safe_div(sums["cycle_weight"], sums["cycle_wins"]),
    }


def peer_medians(group: IntArray, values: FloatArray, eligible: BoolArray) -> FloatArray:
    """Median of ``values`` over the eligible rows of each row's group, leaving the row out.

    Eligible, non-NaN values are sorted once per group; each row's median is then read at the
    one or two middle positions of its group, stepping over the row's own position.
    """
    n = len(values)
    out: FloatArray = np.full(n, np.nan)
    member = eligible & ~np.isnan(values) & (group >= 0)
    if n == 0 or not member.any():
        return out
    idx = np.flatnonzero(member)
    order = idx[np.lexsort((values[idx], group[idx]))]
    sorted_values = values[order]
    n_groups = int(group.max()) + 1
    size = np.bincount(group[order], minlength=n_groups)
    start = np.concatenate([[0], np.cumsum(size)[:-1]])
    rank = np.full(n, n, dtype=np.int64)  # n: beyond any position, so nothing is skipped
    rank[order] = np.arange(len(order)) - start[group[order]]
    has_group = group >= 0
    g = np.where(has_group, group, 0)
    m = np.where(has_group, size[g] - member, 0)
    k1, k2 = (m - 1) // 2, m // 2
    p1 = k1 + (k1 >= rank)
    p2 = k2 + (k2 >= rank)
    ok = m > 0
    last = len(sorted_values) - 1
    lo = sorted_values[np.clip(start[g] + p1, 0, last)]
    hi = sorted_values[np.clip(start[g] + p2, 0, last)]
    out[ok] = ((lo + hi) / 2.0)[ok]
    return out


def group_sum(group: IntArray, values: FloatArray, mask: BoolArray) -> FloatArray:
    """Σ ``values`` over the ``mask`` rows of each row's group (0 for rows without a group)."""
    n_groups = max(int(group.max()) + 1, 1) if len(group) else 1
    has = mask & (group >= 0)
    totals = np.bincount(group[has], weights=values[has], minlength=n_groups)
    out: FloatArray = np.where(group >= 0, totals[np.maximum(group, 0)], 0.0)
    return out


def peers(
    frame: pd.DataFrame,
    now: dict[str, FloatArray],
    stride: int,
    offset: IntArray,
    min_peer: int,
) -> tuple[IntArray, BoolArray, BoolArray, IntArray]:
    """(peer group, candidate peer, eligible as a peer, team_peers) of each row (the drivers
    module's docstring). Peer groups are (team, period); rows without a team have group -1 and no
    peers. A candidate is a rep (not a manager) with a team; eligible ones also have the
    periods in the window."""
    team_codes = pd.factorize(frame["team_id"])[0].astype(np.int64)
    has_team = team_codes >= 0
    raw = np.where(has_team, team_codes * stride + offset, -1)
    group = np.where(has_team, np.unique(raw, return_inverse=True)[1].reshape(-1), -1)
    group = group.astype(np.int64)
    is_rep = frame["role"].eq("rep").to_numpy(dtype=bool, na_value=False)
    candidate = is_rep & has_team
    n_groups = max(int(group.max()) + 1, 1)  # at least one slot, so lookups never go out of range
    most = np.zeros(n_groups)
    np.maximum.at(most, group[candidate], now["periods"][candidate])
    needed = np.minimum(min_peer, most[np.maximum(group, 0)])
    eligible = candidate & (now["periods"] >= needed)
    counts = np.bincount(group[eligible], minlength=n_groups)
    peers = np.where(has_team, counts[np.maximum(group, 0)] - eligible, 0).astype(np.int64)
    return group, candidate, eligible, peers


def tracked_rows(frame: pd.DataFrame, now: dict[str, FloatArray], group: IntArray) -> BoolArray:
    """Activity-tracked rows: the rep's source syncs activities and the tracking reps of the
    team logged some in the window (without a team: the rep did)."""
    if "tracks_activities" in frame:
        tracks = frame["tracks_activities"].astype("boolean").fillna(True)
        rep_tracks = tracks.to_numpy(dtype=bool)
    else:
        rep_tracks = np.ones(len(frame), dtype=bool)
    acts = now["activities"]
    team_acts = group_sum(group, acts, rep_tracks)
    logged = np.where(group >= 0, team_acts, acts) > 0
    result: BoolArray = rep_tracks & logged
    return result
