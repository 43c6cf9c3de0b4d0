"""Funnel drivers: why a rep's revenue differs from their team's, and the one skill to coach.

Input: a :func:`analytics.metrics.period_metrics` frame keyed by ``rep_id`` (one period kind:
months, quarters, weeks or fiscal years) and a reps frame ``rep_id, team_id, role`` (optional
``tracks_activities``: false for a rep whose CRM source does not sync activities).

Window. One period of one rep is far too noisy to coach on (about eight closed deals a month
at a ~30% win rate), so every figure below is pooled over the evaluation window: the period
and the ``window − 1`` periods before it. The default is a year's worth (12 months, 4 quarters,
52 weeks, 1 year). Sums run over the rep's rows in the window; ``window_periods`` counts them,
and "per period" figures divide by it, so a rep who joined or left inside the window is not
penalised for the periods they were not there.

Drivers (Σ over the window; each is NaN when its denominator is 0):

* ``activity``   = Σ activities / window_periods          (activity volume per period)
* ``conversion`` = Σ opportunities / Σ activities          (activities that become deals)
* ``pipeline``   = Σ opportunities / window_periods        (opportunities created per period)
* ``throughput`` = Σ closed_deals / Σ opportunities        (deals closed per deal created)
* ``win_rate``   = Σ won_deals / Σ closed_deals
* ``deal_size``  = Σ won_revenue / Σ won_deals
* ``cycle``      = Σ (sales_cycle_days × won_deals) / Σ won_deals over periods with a cycle
  (won-deal-weighted mean of the periods' median days from created to won; lower is better)
* ``pipeline_created`` = Σ pipeline_created / window_periods (pipeline value created per
  period; reported with its team median, never judged: it is pipeline × the deals' sizes)

Identity. ``revenue`` = Σ won_revenue / window_periods. A row is *activity-tracked* when its
rep tracks activities (``tracks_activities``, true when the column is absent) and the reps of
its team who track them logged any activity in the window (without a team: the rep did).
Then, as the funnel is observed from its first step,

    revenue = activity × conversion × throughput × win_rate × deal_size   (activity identity)

and otherwise, with activity and conversion undefined (NaN, never judged),

    revenue = pipeline × throughput × win_rate × deal_size                (pipeline identity)

``identity`` names the one that applies. With ``m_d`` the median of driver d over the rep's
team peers, for the drivers of the row's identity:

    reference_revenue = Π_d m_d
    d_contribution    = log(d_value / m_d)
    revenue_log_ratio = log(revenue / reference_revenue) = Σ_d d_contribution

Contributions are NaN for drivers outside the row's identity and when a log is undefined (a
zero or missing value or median); they then do not add up, and ``revenue_log_ratio`` is NaN
as well whenever revenue is 0. The cycle has no contribution (it is not a factor of revenue).

Team peers of a rep in a period: the other rows of the same ``team_id`` and period whose rep has
``role == "rep"`` (managers never set the bar) and at least min(``min_peer_periods``, the most
periods any rep of the team has in that window) periods in the window. The default is half the
window. Activity and conversion medians are taken over the activity-tracked peers only, so a
source without activities never drags the activity bar down, nor is held to it. The rep is
left out of their own reference. ``team_peers`` counts the peers.

Comparisons, per driver: ``d_vs_team`` = d_value / d_team_median and ``d_vs_trailing`` =
d_value / d_trailing, the trailing baseline being the same pooling over the
``trailing_periods`` periods just before the window. The baseline is NaN unless the rep has a
row in each of those periods and they start on or after the *data start*: the first period
whose tenant-wide count of opportunities, closed deals and activities reaches half the median
period's (a CRM's first months are a warm-up of a few records, and a ratio built on them
means nothing). For the cycle a ratio above 1 is worse (slower).

Coaching focus, window finding. A driver is *judged* (``d_judged``) when it belongs to the
row's identity (the cycle always does), its value and team median are known, and there is
enough evidence for a shortfall to show: the count the rep would have produced at the team's
rate is at least ``min_deals`` (expected opportunities = Σ activities × m_conversion for
conversion and window_periods × m_pipeline for pipeline, expected closes = Σ opportunities ×
m_throughput, expected wins = Σ closed × m_win_rate; deal size needs Σ won_deals ≥ min_deals,
the cycle as many wins in periods with a cycle; activity is always judged). A judged driver is
*materially below* the team when its performance ratio (d_vs_team, or 1 / cycle_vs_team) is at
most ``1 − material_shortfall``; the one with the lowest ratio is the window's finding.

Recent finding (:mod:`analytics.driver_recent`): the last ``recent_periods`` periods judged
against the rep's own level in the rest of the window and against the team, so a sudden
collapse is not averaged away by a year of history. The focus is whichever of the two findings
is further below the team: ``focus_window`` says which ("recent" or "window").

``coaching_focus`` is the focus driver mapped through :data:`FOCUS_OF_DRIVER` (what the rep
must do, :data:`COACHING_FOCI`); None when no driver is materially below. ``focus_driver``,
``focus_value``, ``focus_team_median`` and ``focus_vs_team`` are the numbers behind it (of the
recent window for a recent finding), and ``focus_reason`` says the same in words.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final, cast

import numpy as np
import pandas as pd

from analytics import driver_recent
from analytics._arrays import BoolArray, FloatArray, IntArray, ObjArray, safe_div
from analytics._driver_pool import (
    ACTIVITY_ONLY,
    in_identity,
    log_or_nan,
    peer_medians,
    pooled,
    range_sums,
    tracked_rows,
)
from analytics._driver_pool import peers as peers_of
from analytics._driver_text import reasons
from analytics.periods import PeriodKind, index_label, single_kind

__all__ = [
    "ACTIVITY_IDENTITY",
    "COACHING_FOCI",
    "COMPARED_DRIVERS",
    "DRIVERS",
    "DRIVER_TABLE_COLUMNS",
    "FACTORS",
    "FOCUS_OF_DRIVER",
    "PIPELINE_IDENTITY",
    "DriverConfig",
    "driver_table",
]

ACTIVITY_IDENTITY: Final = ("activity", "conversion", "throughput", "win_rate", "deal_size")
PIPELINE_IDENTITY: Final = ("pipeline", "throughput", "win_rate", "deal_size")
DRIVERS: Final[tuple[str, ...]] = ACTIVITY_IDENTITY  # the full funnel, kept for callers
# Drivers that can be a factor of revenue (a contribution), in judging order for ties.
FACTORS: Final = ("activity", "conversion", "pipeline", "throughput", "win_rate", "deal_size")
COMPARED_DRIVERS: Final[tuple[str, ...]] = (*FACTORS, "cycle")
# Reported against the team, never judged.
REPORTED: Final = ("pipeline_created",)
# What the rep must do, by the driver found weak (docs/metrics.md, "Coaching focus").
FOCUS_OF_DRIVER: Final[dict[str, str]] = {
    "activity": "activity",  # log more calls, emails and meetings
    "conversion": "opportunities",  # turn more of that activity into opportunities
    "pipeline": "pipeline",  # create more opportunities (prospecting)
    "throughput": "cycle",  # move created deals to a decision
    "win_rate": "win_rate",  # win more of the deals that close
    "deal_size": "deal_size",  # sell bigger deals
    "cycle": "cycle",  # close faster
}
COACHING_FOCI: Final[tuple[str, ...]] = tuple(dict.fromkeys(FOCUS_OF_DRIVER.values()))

_PERIODS_PER_YEAR: Final[dict[PeriodKind, int]] = {"week": 52, "month": 12, "quarter": 4, "year": 1}
_RECENT: Final[dict[PeriodKind, int]] = {"week": 6, "month": 3, "quarter": 1, "year": 0}
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


def _driver_columns(d: str) -> list[str]:
    cols = [f"{d}_value", f"{d}_team_median", f"{d}_vs_team", f"{d}_trailing", f"{d}_vs_trailing"]
    if d in REPORTED:
        return cols
    return [*cols, f"{d}_contribution", f"{d}_judged"] if d in FACTORS else [*cols, f"{d}_judged"]


DRIVER_TABLE_COLUMNS: Final[tuple[str, ...]] = (
    "rep_id",
    "team_id",
    "period",
    "period_index",
    "window_start",
    "window_periods",
    "team_peers",
    "identity",
    "revenue",
    "reference_revenue",
    "revenue_vs_team",
    "revenue_log_ratio",
    "revenue_trailing",
    "revenue_vs_trailing",
    *(c for d in (*COMPARED_DRIVERS, *REPORTED) for c in _driver_columns(d)),
    "recent_window_start",
    "recent_periods",
    *driver_recent.columns(COMPARED_DRIVERS),
    "coaching_focus",
    "focus_driver",
    "focus_window",
    "focus_value",
    "focus_team_median",
    "focus_vs_team",
    "focus_reason",
)
_TEXT_COLUMNS: Final = (
    "period",
    "window_start",
    "identity",
    "recent_window_start",
    "coaching_focus",
    "focus_driver",
    "focus_window",
    "focus_reason",
)
_INT_COLUMNS: Final = ("period_index", "window_periods", "team_peers", "recent_periods")


@dataclass(frozen=True)
class DriverConfig:
    """How drivers are pooled and when a shortfall counts.

    ``window``: periods pooled, ending with the evaluated one (None: a year of the frame's
    period kind). ``trailing_periods``: the rep's own baseline, just before the window.
    ``material_shortfall``: how far below the team median (as a share of it) a driver must be
    to be named; 0.33 names at least 95% of planted 0.5x weaknesses and flags at most 5% of
    healthy reps on the planted-weakness generator (tests/analytics/planted.py, docs/metrics.md).
    ``min_deals``: the evidence needed to judge a ratio (module docstring).
    ``min_peer_periods``: periods in the window a peer needs to count towards the team
    median, capped at what the team's longest-serving rep has (None: half the window, rounded
    up). ``recent_periods``: the short window judged for a recent change (None: 3 months, 6
    weeks, 1 quarter, none for years; 0: none). ``recent_z``: how many standard deviations
    below the rep's own level a recent count must fall (:mod:`analytics.driver_recent`).
    """

    window: int | None = None
    trailing_periods: int = 3
    material_shortfall: float = 0.33
    min_deals: int = 10
    min_peer_periods: int | None = None
    recent_periods: int | None = None
    recent_z: float = 3.0

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
        if self.recent_periods is not None and self.recent_periods < 0:
            raise ValueError(f"recent_periods must be >= 0, got {self.recent_periods!r}")


@dataclass(frozen=True)
class _Shape:
    """The resolved sizes of one table: period kind, window, trailing and recent periods."""

    kind: PeriodKind
    window: int
    trailing: int
    recent: int
    min_peer: int


def _shape(metrics: pd.DataFrame, config: DriverConfig) -> _Shape:
    kind = single_kind(metrics["period"], reader="driver_table")
    window = config.window if config.window is not None else _PERIODS_PER_YEAR[kind]
    recent = config.recent_periods if config.recent_periods is not None else _RECENT[kind]
    min_peer = config.min_peer_periods
    return _Shape(
        kind=kind,
        window=window,
        trailing=config.trailing_periods,
        # A recent window needs the rest of the window as the rep's own earlier level.
        recent=recent if 0 < recent < window else 0,
        min_peer=min_peer if min_peer is not None else math.ceil(window / 2),
    )


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

    Formulas, the window, the identities and the coaching-focus rule are in the module
    docstring. ``metrics`` needs ``rep_id, period, period_index, won_revenue, won_deals,
    closed_deals, opportunities, activities, sales_cycle_days`` (``pipeline_created`` is read
    when present; other columns are ignored) and holds one period kind; ``reps`` needs
    ``rep_id, team_id, role`` (optional ``tracks_activities``) with one row per rep, or, with a
    ``period_index`` column, one row per (rep, period): the team the rep was on in that
    period, whose peers they are compared with. Reps missing from ``reps`` get rows but no
    peers. ``window_start`` is the label of the window's first period (it may precede the
    rep's first row). Columns: :data:`DRIVER_TABLE_COLUMNS`, sorted by rep_id and
    period_index.
    """
    on = _join_columns(metrics, reps)
    shape = _shape(metrics, config)
    frame = _frame(metrics, reps, on)
    if frame.empty:
        return _empty_table(frame)

    rep_codes, _ = pd.factorize(frame["rep_id"])
    order = np.lexsort((frame["period_index"].to_numpy(dtype=np.int64), rep_codes))
    frame = frame.iloc[order].reset_index(drop=True)
    codes = rep_codes[order].astype(np.int64)
    pidx = frame["period_index"].to_numpy(dtype=np.int64)

    # Each rep owns a band of keys wide enough that "period index minus the whole lookback"
    # stays inside it, so one searchsorted finds range ends without crossing into another rep.
    w, t, r = shape.window, shape.trailing, shape.recent
    margin = w + t + 1
    offset = pidx - int(pidx.min()) + margin
    stride = int(offset.max()) + 1
    sums = range_sums(
        frame,
        codes * stride + offset,
        {"now": (0, w), "before": (w, w + t), "recent": (0, r), "earlier": (r, w)},
    )
    data_start = _data_start(frame, pidx)
    if periods is not None:
        # A row's peers are rows of its own period: the other periods only fed the sums.
        rows = np.flatnonzero(frame["period"].isin(list(periods)).to_numpy())
        frame, pidx, offset = frame.iloc[rows].reset_index(drop=True), pidx[rows], offset[rows]
        sums = {name: {c: v[rows] for c, v in part.items()} for name, part in sums.items()}
    now = sums["now"]
    value = pooled(now)
    baseline = _baseline(pooled(sums["before"]), sums["before"], pidx, data_start, shape)
    group, candidate, eligible, peers = peers_of(frame, now, stride, offset, shape.min_peer)
    tracked = tracked_rows(frame, now, group)
    for d in ACTIVITY_ONLY:
        value[d] = np.where(tracked, value[d], np.nan)

    out: dict[str, object] = {
        "rep_id": frame["rep_id"].array,
        "team_id": frame["team_id"].array,
        "period": frame["period"].to_numpy(dtype=object),
        "period_index": pidx,
        "window_start": _labels(shape.kind, pidx - w + 1),
        "window_periods": now["periods"].astype(np.int64),
        "team_peers": peers,
        "identity": np.where(tracked, "activity", "pipeline").astype(object),
    }
    # Activity figures set a bar only among the reps whose activities are tracked.
    medians = {
        d: peer_medians(group, value[d], eligible & (tracked | (d not in ACTIVITY_ONLY)))
        for d in (*COMPARED_DRIVERS, *REPORTED)
    }
    out.update(_revenue(value, baseline, medians, tracked))
    window = _compare(value, baseline, medians, now, tracked, config)
    performance = window.pop("performance")
    out.update(window)
    recent = driver_recent.judge(
        sums["recent"],
        sums["earlier"],
        group=group,
        candidate=candidate,
        tracked=tracked,
        periods=r,
        drivers=COMPARED_DRIVERS,
        shortfall=config.material_shortfall,
        min_deals=config.min_deals,
        z_bar=config.recent_z,
    )
    out["recent_window_start"] = (
        _labels(shape.kind, pidx - r + 1) if r else np.full(len(frame), None, dtype=object)
    )
    out["recent_periods"] = np.full(len(frame), r, dtype=np.int64)
    out.update(recent.columns)
    out.update(_focus(window, performance, recent))
    return _table(out, peers, shape=shape, config=config)


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


def _frame(metrics: pd.DataFrame, reps: pd.DataFrame, on: list[str]) -> pd.DataFrame:
    """The metrics joined with each row's team, role and activity tracking."""
    # (Without pipeline_created the pooling reads it as 0: analytics._driver_pool.summable.)
    frame = metrics[[c for c in (*_REQUIRED, "pipeline_created") if c in metrics]]
    rep_cols = [*on, "team_id", "role"]
    if "tracks_activities" in reps:
        rep_cols.append("tracks_activities")
    return frame.merge(reps[rep_cols], on=on, how="left", validate="many_to_one")


def _labels(kind: PeriodKind, indices: IntArray) -> ObjArray:
    names = {int(i): index_label(kind, int(i)) for i in np.unique(indices)}
    result: ObjArray = pd.Series(indices).map(names).to_numpy(dtype=object)
    return result


def _empty_table(frame: pd.DataFrame) -> pd.DataFrame:
    """No rows, with the columns and dtypes of a :func:`driver_table`."""
    empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in DRIVER_TABLE_COLUMNS})
    for c in ("rep_id", "team_id"):
        empty[c] = frame[c].iloc[:0].reset_index(drop=True)
    for c in _TEXT_COLUMNS:
        empty[c] = pd.Series(dtype=object)
    for c in _INT_COLUMNS:
        empty[c] = pd.Series(dtype=np.int64)
    for c in DRIVER_TABLE_COLUMNS:
        if c.endswith("_judged"):
            empty[c] = pd.Series(dtype=bool)
    return empty[list(DRIVER_TABLE_COLUMNS)]


def _data_start(frame: pd.DataFrame, pidx: IntArray) -> int:
    """The first period whose tenant-wide records reach half the median period's (the CRM's
    warm-up months before it do not make a baseline)."""
    volume = sum(
        frame[c].to_numpy(dtype="float64", na_value=0.0)
        for c in ("opportunities", "closed_deals", "activities")
    )
    first = int(pidx.min())
    per_period = np.bincount(pidx - first, weights=volume)
    present = per_period[np.unique(pidx - first)]
    full = np.flatnonzero(per_period >= np.median(present) / 2.0)
    return first + int(full[0]) if len(full) else first


def _baseline(
    baseline: dict[str, FloatArray],
    before: dict[str, FloatArray],
    pidx: IntArray,
    data_start: int,
    shape: _Shape,
) -> dict[str, FloatArray]:
    """The trailing baseline, NaN where it is not all there: a period of it missing for the
    rep, or starting before the data does (``data_start``: module docstring)."""
    starts = pidx - shape.window - shape.trailing + 1
    known = (before["periods"] == shape.trailing) & (starts >= data_start)
    return {d: np.where(known, v, np.nan) for d, v in baseline.items()}


def _revenue(
    value: dict[str, FloatArray],
    baseline: dict[str, FloatArray],
    medians: dict[str, FloatArray],
    tracked: BoolArray,
) -> dict[str, object]:
    """Revenue against the reference of the row's identity (module docstring)."""

    def product(drivers: tuple[str, ...]) -> FloatArray:
        result: FloatArray = np.prod(np.column_stack([medians[d] for d in drivers]), axis=1)
        return result

    reference = np.where(tracked, product(ACTIVITY_IDENTITY), product(PIPELINE_IDENTITY))
    return {
        "revenue": value["revenue"],
        "reference_revenue": reference,
        "revenue_vs_team": safe_div(value["revenue"], reference),
        "revenue_log_ratio": log_or_nan(value["revenue"]) - log_or_nan(reference),
        "revenue_trailing": baseline["revenue"],
        "revenue_vs_trailing": safe_div(value["revenue"], baseline["revenue"]),
    }


def _compare(
    value: dict[str, FloatArray],
    baseline: dict[str, FloatArray],
    medians: dict[str, FloatArray],
    now: dict[str, FloatArray],
    tracked: BoolArray,
    config: DriverConfig,
) -> dict[str, Any]:
    """Each driver against the team and the trailing baseline, its contribution, whether it is
    judged, and the window's finding (``finding``, ``performance``: rules in the module
    docstring)."""
    n = len(value["revenue"])
    # What the rep would have produced at the team's rate: below min_deals a shortfall is
    # indistinguishable from bad luck, so the driver is not judged.
    evidence = {
        "activity": np.full(n, np.inf),
        "conversion": now["activities"] * medians["conversion"],
        "pipeline": now["periods"] * medians["pipeline"],
        "throughput": now["opportunities"] * medians["throughput"],
        "win_rate": now["closed_deals"] * medians["win_rate"],
        "deal_size": now["won_deals"],
        "cycle": now["cycle_wins"],
    }
    out: dict[str, Any] = {}
    performance = np.full((n, len(COMPARED_DRIVERS)), np.inf)
    for d in (*COMPARED_DRIVERS, *REPORTED):
        v, m = value[d], medians[d]
        vs_team = safe_div(v, m)
        out[f"{d}_value"] = v
        out[f"{d}_team_median"] = m
        out[f"{d}_vs_team"] = vs_team
        out[f"{d}_trailing"] = baseline[d]
        out[f"{d}_vs_trailing"] = safe_div(v, baseline[d])
        if d in REPORTED:
            continue
        applies = in_identity(d, tracked)
        if d in FACTORS:
            out[f"{d}_contribution"] = np.where(applies, log_or_nan(v) - log_or_nan(m), np.nan)
        perf = safe_div(m, v) if d == "cycle" else vs_team
        judged = applies & ~np.isnan(perf) & (m > 0) & (evidence[d] >= config.min_deals)
        out[f"{d}_judged"] = judged
        below = judged & (perf <= 1.0 - config.material_shortfall)
        performance[:, COMPARED_DRIVERS.index(d)] = np.where(below, perf, np.inf)
    out["performance"] = performance
    return out


def _focus(
    window: dict[str, Any], performance: FloatArray, recent: driver_recent.Recent
) -> dict[str, object]:
    """The focus: the recent finding when there is one, else the window's (lowest performance
    ratio among materially-below drivers; ties in :data:`COMPARED_DRIVERS` order)."""
    n = len(performance)
    rows = np.arange(n)
    weakest = np.argmin(performance, axis=1)
    flagged = np.isfinite(performance[rows, weakest])
    names = np.array(COMPARED_DRIVERS, dtype=object)
    driver: ObjArray = np.full(n, None, dtype=object)
    driver[flagged] = names[weakest[flagged]]
    # The recent finding, unless the window's is further below the team.
    window_level = performance[rows, weakest]
    is_recent = (recent.driver != None) & (recent.against_team <= window_level)  # noqa: E711
    driver = np.where(is_recent, recent.driver, driver)

    def pick(suffix: str) -> FloatArray:
        at_window = np.full(n, np.nan)
        for d in COMPARED_DRIVERS:
            chosen = driver == d
            at_window[chosen] = cast(FloatArray, window[f"{d}_{suffix}"])[chosen]
        result: FloatArray = np.where(is_recent, recent.figures[suffix], at_window)
        return result

    foci = np.array([FOCUS_OF_DRIVER.get(str(d)) for d in driver], dtype=object)
    where: ObjArray = np.full(n, None, dtype=object)
    where[driver != None] = "window"  # noqa: E711
    where[is_recent] = "recent"
    return {
        "coaching_focus": foci,
        "focus_driver": driver,
        "focus_window": where,
        "focus_value": pick("value"),
        "focus_team_median": pick("team_median"),
        "focus_vs_team": pick("vs_team"),
        "_focus_own": recent.figures["own"],
        "_focus_vs_own": recent.figures["vs_own"],
    }


def _table(
    out: dict[str, object], peers: IntArray, *, shape: _Shape, config: DriverConfig
) -> pd.DataFrame:
    """The rows as a frame, with their ``focus_reason``."""
    labels = cast(ObjArray, out["period"])
    kept: dict[str, Any] = dict(out)
    kept["focus_reason"] = reasons(
        kept["focus_driver"],
        kept["focus_window"] == "recent",
        {
            "value": kept["focus_value"],
            "team_median": kept["focus_team_median"],
            "vs_team": kept["focus_vs_team"],
            "own": kept.pop("_focus_own"),
            "vs_own": kept.pop("_focus_vs_own"),
        },
        peers,
        labels,
        kind=shape.kind,
        window=shape.window,
        recent_periods=shape.recent,
        shortfall=config.material_shortfall,
    )
    table = pd.DataFrame(kept)
    # Object, not the string dtype: None must stay None (JSON null), not become NaN.
    for c in _TEXT_COLUMNS:
        table[c] = pd.Series(kept[c], dtype=object)
    return table[list(DRIVER_TABLE_COLUMNS)]
