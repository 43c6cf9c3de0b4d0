"""Funnel drivers: why a rep's revenue differs from their team's, and the one skill to coach.

Input: a :func:`analytics.metrics.period_metrics` frame keyed by ``rep_id`` (one period kind:
months, quarters, weeks or fiscal years) and a reps frame ``rep_id, team_id, role``.

Window. One period of one rep is far too noisy to coach on (about eight closed deals a month
at a ~30% win rate), so every figure below is pooled over the evaluation window: the period
and the ``window − 1`` periods before it. The default is a year's worth (12 months, 4 quarters,
52 weeks, 1 year): a win rate estimated from ~100 closed deals is the least that tells a 0.45x
weakness from bad luck; on the demo data a 6-month window still gets about one rep in ten
wrong, 12 months about one in forty.
Sums run over the rep's rows in the window; ``window_periods`` counts them, and "per period"
figures divide by it, so a rep who joined or left inside the window is not penalised for the
periods they were not there. The trailing baseline is the same pooling over the
``trailing_periods`` periods immediately before the window (the rep's own earlier level).

Drivers (Σ over the window; each is NaN when its denominator is 0):

* ``activity``   = Σ activities / window_periods          (activity volume per period)
* ``conversion`` = Σ opportunities / Σ activities          (activities that become deals)
* ``throughput`` = Σ closed_deals / Σ opportunities        (deals closed per deal created)
* ``win_rate``   = Σ won_deals / Σ closed_deals
* ``deal_size``  = Σ won_revenue / Σ won_deals
* ``cycle``      = Σ (sales_cycle_days × won_deals) / Σ won_deals over periods with a cycle
  (won-deal-weighted mean of the periods' median days from created to won; lower is better)

Identity. ``revenue`` = Σ won_revenue / window_periods = activity × conversion × throughput ×
win_rate × deal_size, so with ``m_d`` the median of driver d over the rep's team peers:

    reference_revenue = Π_d m_d                     (the five identity drivers)
    d_contribution    = log(d_value / m_d)
    revenue_log_ratio = log(revenue / reference_revenue) = Σ_d d_contribution
                                                    (exactly, up to float rounding)

Contributions are NaN when a log is undefined (a zero or missing value or median); they then
do not add up, and ``revenue_log_ratio`` is NaN as well whenever revenue is 0. The sales cycle
is compared with the team too, but is not a factor of revenue and has no contribution.

Team peers of a rep in a period: the other rows of the same ``team_id`` and period whose rep has
``role == "rep"`` (managers never set the bar) and at least min(``min_peer_periods``, the most
periods any rep of the team has in that window) periods in the window. The default is half the
window, so a new hire's first months do not drag the median around, while a tenant with only a
few months of history still gets a reference. The rep is left out of their own reference.
``team_peers`` counts them.

Comparisons, per driver: ``d_vs_team`` = d_value / d_team_median and ``d_vs_trailing`` =
d_value / d_trailing. For the cycle a ratio above 1 is worse (slower).

Coaching focus. A driver is *judged* when its value and team median are known and there is
enough evidence for a shortfall to show: the count the rep would have produced at the team's
rate is at least ``min_deals`` (expected opportunities = Σ activities × m_conversion, expected
closes = Σ opportunities × m_throughput, expected wins = Σ closed × m_win_rate; deal size
needs Σ won_deals ≥ min_deals, the cycle as many wins in periods with a cycle; activity is
always judged). A judged driver is *materially
below* the team when its performance ratio (d_vs_team, or 1 / cycle_vs_team) is at most
``1 − material_shortfall``. ``coaching_focus`` names the materially-below driver with the
lowest performance ratio (ties: the order of :data:`COMPARED_DRIVERS`), mapped through
:data:`FOCUS_OF_DRIVER`: conversion is coached as "opportunities" and throughput (deals that do
not close) as "cycle". None when no driver is materially below. ``focus_driver``,
``focus_value``, ``focus_team_median`` and ``focus_vs_team`` are the numbers behind it, and
``focus_reason`` says the same in words.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final, cast

import numpy as np
import pandas as pd

from analytics._arrays import BoolArray, FloatArray, IntArray, ObjArray, safe_div
from analytics._text import fixed, thousands
from analytics.periods import PeriodKind, index_label, parse_period

__all__ = [
    "COACHING_FOCI",
    "COMPARED_DRIVERS",
    "DRIVERS",
    "DRIVER_TABLE_COLUMNS",
    "FOCUS_OF_DRIVER",
    "DriverConfig",
    "driver_table",
]

DRIVERS: Final[tuple[str, ...]] = ("activity", "conversion", "throughput", "win_rate", "deal_size")
COMPARED_DRIVERS: Final[tuple[str, ...]] = (*DRIVERS, "cycle")
COACHING_FOCI: Final[tuple[str, ...]] = (
    "activity",
    "opportunities",
    "win_rate",
    "deal_size",
    "cycle",
)
FOCUS_OF_DRIVER: Final[dict[str, str]] = {
    "activity": "activity",
    "conversion": "opportunities",
    "throughput": "cycle",
    "win_rate": "win_rate",
    "deal_size": "deal_size",
    "cycle": "cycle",
}

_PERIODS_PER_YEAR: Final[dict[PeriodKind, int]] = {"week": 52, "month": 12, "quarter": 4, "year": 1}
_REQUIRED: Final[tuple[str, ...]] = (
    "rep_id",
    "period",
    "period_index",
    "won_revenue",
    "won_deals",
    "closed_deals",
    "opportunities",
    "activities",
    "sales_cycle_days",
)
# Pooled sums, in this column order in the cumulative-sum matrix.
_SUMS: Final[tuple[str, ...]] = (
    "won_revenue",
    "won_deals",
    "closed_deals",
    "opportunities",
    "activities",
    "cycle_weight",
    "cycle_wins",
    "periods",
)


def _driver_columns(d: str) -> list[str]:
    cols = [f"{d}_value", f"{d}_team_median", f"{d}_vs_team", f"{d}_trailing", f"{d}_vs_trailing"]
    return [*cols, f"{d}_contribution"] if d in DRIVERS else cols


DRIVER_TABLE_COLUMNS: Final[tuple[str, ...]] = (
    "rep_id",
    "team_id",
    "period",
    "period_index",
    "window_start",
    "window_periods",
    "team_peers",
    "revenue",
    "reference_revenue",
    "revenue_vs_team",
    "revenue_log_ratio",
    "revenue_trailing",
    "revenue_vs_trailing",
    *(c for d in COMPARED_DRIVERS for c in _driver_columns(d)),
    "coaching_focus",
    "focus_driver",
    "focus_value",
    "focus_team_median",
    "focus_vs_team",
    "focus_reason",
)


@dataclass(frozen=True)
class DriverConfig:
    """How drivers are pooled and when a shortfall counts.

    ``window``: periods pooled, ending with the evaluated one (None: a year of the frame's
    period kind). ``trailing_periods``: the rep's own baseline, just before the window.
    ``material_shortfall``: how far below the team median (as a share of it) a driver must be
    to be named; 0.35 separates the demo's planted 0.45x weaknesses from the ±12% spread of
    healthy reps with roughly equal error on both sides. ``min_deals``: the evidence needed to
    judge a ratio (see the module docstring). ``min_peer_periods``: periods in the window a
    peer needs to count towards the team median, capped at what the team's longest-serving rep
    has (None: half the window, rounded up).
    """

    window: int | None = None
    trailing_periods: int = 3
    material_shortfall: float = 0.35
    min_deals: int = 10
    min_peer_periods: int | None = None

    def __post_init__(self) -> None:
        if self.window is not None and self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window!r}")
        if self.trailing_periods < 1:
            raise ValueError(f"trailing_periods must be >= 1, got {self.trailing_periods!r}")
        if not 0.0 < self.material_shortfall < 1.0:
            raise ValueError(
                f"material_shortfall must be within (0, 1), got {self.material_shortfall!r}"
            )
        if self.min_deals < 0:
            raise ValueError(f"min_deals must be >= 0, got {self.min_deals!r}")
        if self.min_peer_periods is not None and self.min_peer_periods < 1:
            raise ValueError(f"min_peer_periods must be >= 1, got {self.min_peer_periods!r}")


# --------------------------------------------------------------------------- helpers


def _log(x: FloatArray) -> FloatArray:
    """Natural log, NaN (not -inf) where x is not positive: the result is served as JSON."""
    out: FloatArray = np.full(len(x), np.nan)
    np.log(x, out=out, where=x > 0)
    return out


def _kind_of(periods: pd.Series) -> PeriodKind:
    labels = pd.unique(periods.dropna().astype("string"))
    if len(labels) == 0:
        return "month"
    kinds = {parse_period(str(label)).kind for label in labels}
    if len(kinds) != 1:
        raise ValueError(f"driver_table needs one period kind per frame, got {sorted(kinds)}")
    return kinds.pop()


def _peer_medians(group: IntArray, values: FloatArray, eligible: BoolArray) -> FloatArray:
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


def _pooled(sums: dict[str, FloatArray]) -> dict[str, FloatArray]:
    won_revenue, won = sums["won_revenue"], sums["won_deals"]
    closed, opps, acts = sums["closed_deals"], sums["opportunities"], sums["activities"]
    return {
        "revenue": safe_div(won_revenue, sums["periods"]),
        "activity": safe_div(acts, sums["periods"]),
        "conversion": safe_div(opps, acts),
        "throughput": safe_div(closed, opps),
        "win_rate": safe_div(won, closed),
        "deal_size": safe_div(won_revenue, won),
        "cycle": safe_div(sums["cycle_weight"], sums["cycle_wins"]),
    }


_PHRASES: Final[dict[str, str]] = {
    "activity": "activities per {kind}",
    "conversion": "opportunities per activity",
    "throughput": "closed deals per opportunity",
    "win_rate": "win rate",
    "deal_size": "average deal size",
    "cycle": "sales cycle",
}


def _format_value(driver: str, x: FloatArray) -> pd.Series:
    if driver in ("activity", "deal_size"):
        return thousands(x)
    if driver == "conversion":
        return fixed(x * 100.0, 1) + "%"
    if driver == "throughput":
        return fixed(x, 2)
    if driver == "win_rate":
        return thousands(x * 100.0) + "%"
    return thousands(x) + " days"


def _reasons(
    focus_driver: ObjArray,
    value: FloatArray,
    median: FloatArray,
    vs_team: FloatArray,
    peers: IntArray,
    period: ObjArray,
    *,
    kind: PeriodKind,
    window: int,
    shortfall: float,
) -> ObjArray:
    """Plain-language focus reasons, e.g. "win rate 18% vs team median 30% (40% below) over
    the 12 months to 2026-04"; built per driver over whole columns, never per row."""
    lead = f" over the {window} {kind}s to " if window > 1 else " in "
    span = lead + pd.Series(period, dtype=object).astype(str).astype(object)
    idle = f"no driver {round(shortfall * 100)}% or more below the team median"
    text = pd.Series(np.where(peers == 0, "no team peers to compare with", idle), dtype=object)
    for driver in COMPARED_DRIVERS:
        rows = np.flatnonzero(focus_driver == driver)
        if not len(rows):
            continue
        v, m, r = value[rows], median[rows], vs_team[rows]
        if driver == "cycle":
            gap = thousands((r - 1.0) * 100.0) + "% longer"
        else:
            gap = thousands((1.0 - r) * 100.0) + "% below"
        said = (
            _PHRASES[driver].format(kind=kind)
            + " "
            + _format_value(driver, v)
            + " vs team median "
            + _format_value(driver, m)
            + " ("
            + gap
            + ")"
        )
        text.iloc[rows] = said.to_numpy(dtype=object)
    result: ObjArray = (text + span).to_numpy(dtype=object)
    return result


# ------------------------------------------------------------------------ public API


def driver_table(
    metrics: pd.DataFrame,
    reps: pd.DataFrame,
    *,
    config: DriverConfig = DriverConfig(),
    periods: Collection[str] | None = None,
) -> pd.DataFrame:
    """One row per (rep_id, period) of ``metrics``: pooled funnel drivers against the team.

    ``periods``: only the rows of these period labels (the other rows of ``metrics`` still
    count, as the windows, the trailing periods and the peers they are).

    Formulas, the window, the identity Σ d_contribution = log(revenue / reference_revenue) and
    the coaching-focus rule are in the module docstring. ``metrics`` needs ``rep_id, period,
    period_index, won_revenue, won_deals, closed_deals, opportunities, activities,
    sales_cycle_days`` (other columns are ignored) and holds one period kind; ``reps`` needs
    ``rep_id, team_id, role`` with one row per rep, or, with a ``period_index`` column, one
    row per (rep, period): the team the rep was on in that period, whose peers they are
    compared with. Reps missing from ``reps`` get rows but no peers. ``window_start`` is the
    label of the window's first period (it may precede the rep's first row). Columns:
    :data:`DRIVER_TABLE_COLUMNS`, sorted by rep_id and period_index.
    """
    on = _join_columns(metrics, reps)
    kind = _kind_of(metrics["period"])
    window = config.window if config.window is not None else _PERIODS_PER_YEAR[kind]
    trailing = config.trailing_periods
    min_peer = (
        config.min_peer_periods if config.min_peer_periods is not None else math.ceil(window / 2)
    )

    frame = metrics[list(_REQUIRED)].merge(
        reps[[*on, "team_id", "role"]], on=on, how="left", validate="many_to_one"
    )
    if frame.empty:
        return _empty_table(frame)

    rep_codes, _ = pd.factorize(frame["rep_id"])
    order = np.lexsort((frame["period_index"].to_numpy(dtype=np.int64), rep_codes))
    frame = frame.iloc[order].reset_index(drop=True)
    codes = rep_codes[order].astype(np.int64)
    pidx = frame["period_index"].to_numpy(dtype=np.int64)

    # Each rep owns a band of keys wide enough that "period index minus the whole lookback"
    # stays inside it, so one searchsorted finds range ends without crossing into another rep.
    margin = window + trailing + 1
    offset = pidx - int(pidx.min()) + margin
    stride = int(offset.max()) + 1
    now, before = _window_sums(frame, codes * stride + offset, window, trailing)
    value, baseline = _pooled(now), _pooled(before)
    group, eligible, peers = _peers(frame, now, stride, offset, min_peer)

    starts = pidx - window + 1
    start_labels = {int(i): index_label(kind, int(i)) for i in np.unique(starts)}
    out: dict[str, object] = {
        "rep_id": frame["rep_id"].array,
        "team_id": frame["team_id"].array,
        "period": frame["period"].to_numpy(dtype=object),
        "period_index": pidx,
        "window_start": pd.Series(starts).map(start_labels).to_numpy(dtype=object),
        "window_periods": now["periods"].astype(np.int64),
        "team_peers": peers,
    }
    medians = {d: _peer_medians(group, value[d], eligible) for d in COMPARED_DRIVERS}
    reference = np.prod(np.column_stack([medians[d] for d in DRIVERS]), axis=1)
    out["revenue"] = value["revenue"]
    out["reference_revenue"] = reference
    out["revenue_vs_team"] = safe_div(value["revenue"], reference)
    out["revenue_log_ratio"] = _log(value["revenue"]) - _log(reference)
    out["revenue_trailing"] = baseline["revenue"]
    out["revenue_vs_trailing"] = safe_div(value["revenue"], baseline["revenue"])
    out.update(_compare(value, baseline, medians, now, config))
    return _table(out, peers, periods, kind=kind, window=window, config=config)


def _join_columns(metrics: pd.DataFrame, reps: pd.DataFrame) -> list[str]:
    """The columns ``reps`` joins on (``rep_id``, and ``period_index`` when dated), after
    checking both frames have what :func:`driver_table` reads."""
    missing = [c for c in _REQUIRED if c not in metrics]
    missing += [f"reps.{c}" for c in ("rep_id", "team_id", "role") if c not in reps]
    if missing:
        raise ValueError(f"driver_table: missing columns {', '.join(missing)}")
    on = ["rep_id", "period_index"] if "period_index" in reps else ["rep_id"]
    if reps.duplicated(on).any():
        raise ValueError(f"driver_table: reps has more than one row for a {', '.join(on)}")
    return on


def _empty_table(frame: pd.DataFrame) -> pd.DataFrame:
    """No rows, with the columns and dtypes of a :func:`driver_table`."""
    empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in DRIVER_TABLE_COLUMNS})
    for c in ("rep_id", "team_id"):
        empty[c] = frame[c].iloc[:0].reset_index(drop=True)
    for c in ("period", "window_start", "coaching_focus", "focus_driver", "focus_reason"):
        empty[c] = pd.Series(dtype=object)
    for c in ("period_index", "window_periods", "team_peers"):
        empty[c] = pd.Series(dtype=np.int64)
    return empty[list(DRIVER_TABLE_COLUMNS)]


def _window_sums(
    frame: pd.DataFrame, keys: IntArray, window: int, trailing: int
) -> tuple[dict[str, FloatArray], dict[str, FloatArray]]:
    """The :data:`_SUMS` of each row's window and of the trailing periods before it.

    ``frame`` is sorted by rep and period and ``keys`` increases along it, a rep's periods
    one apart: Σ over the window = prefix(key) − prefix(key − window), the trailing sums
    prefix(key − window) − prefix(key − window − trailing).
    """
    won = frame["won_deals"].to_numpy(dtype="float64", na_value=0.0)
    cycle_days = frame["sales_cycle_days"].to_numpy(dtype="float64", na_value=np.nan)
    has_cycle = ~np.isnan(cycle_days) & (won > 0)
    columns: dict[str, FloatArray] = {
        c: frame[c].to_numpy(dtype="float64", na_value=0.0)
        for c in ("won_revenue", "won_deals", "closed_deals", "opportunities", "activities")
    }
    columns["cycle_weight"] = np.where(has_cycle, cycle_days * won, 0.0)
    columns["cycle_wins"] = np.where(has_cycle, won, 0.0)
    columns["periods"] = np.ones(len(frame))
    matrix = np.column_stack([columns[c] for c in _SUMS])
    prefix = np.vstack([np.zeros((1, len(_SUMS))), np.cumsum(matrix, axis=0)])

    def upto(back: int) -> FloatArray:
        """Prefix sums over each row's rep up to period_index - back (inclusive)."""
        pos = np.searchsorted(keys, keys - back, side="right")
        result: FloatArray = prefix[pos]
        return result

    at_t, at_w, at_wt = upto(0), upto(window), upto(window + trailing)
    now = {c: (at_t - at_w)[:, i] for i, c in enumerate(_SUMS)}
    before = {c: (at_w - at_wt)[:, i] for i, c in enumerate(_SUMS)}
    return now, before


def _peers(
    frame: pd.DataFrame,
    now: dict[str, FloatArray],
    stride: int,
    offset: IntArray,
    min_peer: int,
) -> tuple[IntArray, BoolArray, IntArray]:
    """(peer group, eligible as a peer, team_peers) of each row (module docstring).

    Peer groups are (team, period); rows without a team have group -1 and no peers.
    """
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
    return group, eligible, peers


def _compare(
    value: dict[str, FloatArray],
    baseline: dict[str, FloatArray],
    medians: dict[str, FloatArray],
    now: dict[str, FloatArray],
    config: DriverConfig,
) -> dict[str, object]:
    """Each driver against the team and the trailing baseline, its contribution, and the
    coaching focus (rules in the module docstring)."""
    n = len(value["revenue"])
    out: dict[str, object] = {}
    # What the rep would have produced at the team's rate: below min_deals a shortfall is
    # indistinguishable from bad luck, so the driver is not judged.
    evidence = {
        "activity": np.full(n, np.inf),
        "conversion": now["activities"] * medians["conversion"],
        "throughput": now["opportunities"] * medians["throughput"],
        "win_rate": now["closed_deals"] * medians["win_rate"],
        "deal_size": now["won_deals"],
        "cycle": now["cycle_wins"],
    }
    shape = (n, len(COMPARED_DRIVERS))
    performance, values, team_medians, ratios = (np.full(shape, np.inf) for _ in range(4))
    for j, d in enumerate(COMPARED_DRIVERS):
        v, m = value[d], medians[d]
        vs_team = safe_div(v, m)
        out[f"{d}_value"] = v
        out[f"{d}_team_median"] = m
        out[f"{d}_vs_team"] = vs_team
        out[f"{d}_trailing"] = baseline[d]
        out[f"{d}_vs_trailing"] = safe_div(v, baseline[d])
        if d in DRIVERS:
            out[f"{d}_contribution"] = _log(v) - _log(m)
        perf = safe_div(m, v) if d == "cycle" else vs_team
        judged = ~np.isnan(perf) & (m > 0) & (evidence[d] >= config.min_deals)
        below = judged & (perf <= 1.0 - config.material_shortfall)
        performance[:, j] = np.where(below, perf, np.inf)
        values[:, j], team_medians[:, j], ratios[:, j] = v, m, vs_team

    rows = np.arange(n)
    weakest = np.argmin(performance, axis=1)
    flagged = np.isfinite(performance[rows, weakest])
    names = np.array(COMPARED_DRIVERS, dtype=object)
    foci = np.array([FOCUS_OF_DRIVER[d] for d in COMPARED_DRIVERS], dtype=object)
    focus_driver: ObjArray = np.full(n, None, dtype=object)
    focus_driver[flagged] = names[weakest[flagged]]
    coaching_focus: ObjArray = np.full(n, None, dtype=object)
    coaching_focus[flagged] = foci[weakest[flagged]]
    out["coaching_focus"] = coaching_focus
    out["focus_driver"] = focus_driver
    out["focus_value"] = np.where(flagged, values[rows, weakest], np.nan)
    out["focus_team_median"] = np.where(flagged, team_medians[rows, weakest], np.nan)
    out["focus_vs_team"] = np.where(flagged, ratios[rows, weakest], np.nan)
    return out


def _table(
    out: dict[str, object],
    peers: IntArray,
    periods: Collection[str] | None,
    *,
    kind: PeriodKind,
    window: int,
    config: DriverConfig,
) -> pd.DataFrame:
    """The rows of ``periods`` (all when None) as a frame, with their ``focus_reason``."""
    labels = cast(ObjArray, out["period"])
    keep = (
        np.arange(len(labels))
        if periods is None
        else np.flatnonzero(np.isin(labels, list(periods)))
    )
    kept: dict[str, Any] = {k: v[keep] for k, v in out.items()}  # type: ignore[index]
    # (The reasons are text, the costliest column: written for the rows kept only.)
    kept["focus_reason"] = _reasons(
        kept["focus_driver"],
        kept["focus_value"],
        kept["focus_team_median"],
        kept["focus_vs_team"],
        peers[keep],
        labels[keep],
        kind=kind,
        window=window,
        shortfall=config.material_shortfall,
    )
    table = pd.DataFrame(kept)
    # Object, not the string dtype: None must stay None (JSON null), not become NaN.
    for c in ("period", "window_start", "coaching_focus", "focus_driver", "focus_reason"):
        table[c] = pd.Series(kept[c], dtype=object)
    return table[list(DRIVER_TABLE_COLUMNS)]
