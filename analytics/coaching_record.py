"""The coaching record: did the coaching work? Each focus named, and how the named driver moved.

Input: a history frame, one row per (rep, period) of one period kind, with ``rep_id``,
``period``, ``period_index``, ``coaching_focus``, ``focus_driver`` (the driver behind the
focus, null when none was named) and, per driver ``d``, the flat keys of
:data:`analytics.drivers.DRIVER_TABLE_COLUMNS`: ``{d}_vs_team`` and, where the driver table has
it, ``{d}_recent_vs_team`` (a short window, which moves faster than the year-long one). Any
column ending in ``_vs_team`` names a driver, so a driver added to the table is followed
without a change here.

Ratios. The named driver's ratio to the team in a period is

    vs_team     = {d}_recent_vs_team, or {d}_vs_team where that is missing
    performance = vs_team, or 1 / vs_team for drivers where lower is better
                  (:data:`LOWER_IS_BETTER`: the sales cycle)

so performance < 1 is always "below the team". The same measure is read in the period the
focus was named and after it, so a change compares like with like.

Entries: one per (rep, period t) with a focus named. ``after_{k}_*`` (k = 1 .. horizon) are the
period t + k (by period index: a gap in the rep's periods is a slot with no figure, not a
skipped period), the named driver's ``vs_team`` and ``performance`` there; periods after the
rep's last row have not happened yet and are null. With ``p0`` the performance at t and ``pk``
the last known one among the following periods:

    followed  = following periods with a figure
    change    = pk − p0
    verdict   = too_early      followed = 0, or p0 unknown
                resolved       pk > resolved_above (no longer materially below the team:
                               1 − the drivers' material shortfall, 0.67)
                improving      change ≥ noise
                worsening      change ≤ −noise
                not_improving  otherwise (|change| < noise: within the noise of the ratio)

Runs: per row with a focus named, the run ending there is the longest stretch of consecutive
periods (no gap) of that rep ending at the row, with the same ``focus_driver`` named in each.
``run_start`` is its first period and ``run_periods`` its length. Where the driver went
lately is judged over the run's last w = max(horizon, 2) periods (all of it when shorter):
``run_change`` = performance now − performance w − 1 periods before (or at ``run_start``), and
``run_verdict`` the rule above applied to that change (``too_early`` for a run of one period).
A rise long ago does not make a run "improving" when it has been flat since. The stall, the
alert's input:

    stalled_periods = the largest k such that performance_i − performance_j < noise for
                      every period j of the run among the last k (i − k < j ≤ i): the driver
                      is no better now than in any of them; 0 when performance_i is unknown
                      or above resolved_above
    stalled_since   = the period i − k + 1

so "named k periods in a row without improving" is ``stalled_periods ≥ k``: the same focus
was named in each of the last k periods and the driver improved since none of them. A period
from which it did improve (a dip it recovered from) ends the count, and so does one without a
figure (no evidence either way). As k ≥ the verdict window implies no improvement over it, a
run stalled that long is never judged "improving".

Summaries are sentences with the numbers, e.g. "pipeline named in 2026-03; opportunities per
month 0.52× team in 2026-03, 0.71× in 2026-04, 0.93× in 2026-05: improving", and for the run
"pipeline since 2026-03: 0.52× → 0.71× → 0.93×, improving" (with ", ... over the last 3
months" when the run is longer than that).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from analytics._arrays import BoolArray, FloatArray, IntArray, ObjArray, safe_div
from analytics.drivers import DriverConfig
from analytics.periods import PeriodKind, index_label, single_kind

__all__ = [
    "LOWER_IS_BETTER",
    "RECORD_COLUMNS",
    "VERDICTS",
    "RecordConfig",
    "coaching_record",
    "current_runs",
]

LOWER_IS_BETTER: Final[frozenset[str]] = frozenset({"cycle"})
VERDICTS: Final[tuple[str, ...]] = (
    "improving",
    "not_improving",
    "worsening",
    "resolved",
    "too_early",
)
_VERDICT_WORDS: Final[dict[str, str]] = {
    "improving": "improving",
    "not_improving": "not improving",
    "worsening": "worsening",
    "resolved": "resolved (no longer materially below the team)",
    "too_early": "too early to tell",
}
_PHRASES: Final[dict[str, str]] = {
    "activity": "activities per {kind}",
    "conversion": "opportunities per activity",
    "throughput": "closed deals per opportunity",
    "win_rate": "win rate",
    "deal_size": "average deal size",
    "cycle": "sales cycle",
    "pipeline": "opportunities per {kind}",
}
# How many of a run's ratios a run summary spells out (the latest ones).
RUN_SHOWN: Final[int] = 6
_TEXT: Final[tuple[str, ...]] = (
    "period",
    "coaching_focus",
    "focus_driver",
    "verdict",
    "summary",
    "run_start",
    "run_verdict",
    "run_summary",
    "stalled_since",
)
_SUFFIX: Final[str] = "_vs_team"
_RECENT: Final[str] = "_recent_vs_team"
_REQUIRED: Final[tuple[str, ...]] = (
    "rep_id",
    "period",
    "period_index",
    "coaching_focus",
    "focus_driver",
)


@dataclass(frozen=True)
class RecordConfig:
    """``horizon``: following periods an entry looks at. ``noise``: the smallest change of
    the performance ratio that counts as a move (a ratio of a rep's rates to the team's moves
    by a few hundredths from one period to the next without anything changing).
    ``resolved_above``: the performance above which the driver is no longer materially below
    the team (1 − :attr:`DriverConfig.material_shortfall`, so the focus rule's threshold)."""

    horizon: int = 3
    noise: float = 0.05
    resolved_above: float = 1.0 - DriverConfig.material_shortfall

    def __post_init__(self) -> None:
        if self.horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {self.horizon!r}")
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise!r}")
        if self.resolved_above <= 0:
            raise ValueError(f"resolved_above must be > 0, got {self.resolved_above!r}")


def _after_columns(k: int) -> list[str]:
    return [f"after_{k}_period", f"after_{k}_vs_team", f"after_{k}_performance"]


def record_columns(horizon: int) -> tuple[str, ...]:
    """The columns of :func:`coaching_record` for a horizon."""
    return (
        "rep_id",
        "period",
        "period_index",
        "coaching_focus",
        "focus_driver",
        "vs_team",
        "performance",
        *(c for k in range(1, horizon + 1) for c in _after_columns(k)),
        "followed",
        "latest_performance",
        "change",
        "verdict",
        "summary",
        "run_start",
        "run_start_index",
        "run_periods",
        "run_change",
        "run_verdict",
        "run_summary",
        "stalled_periods",
        "stalled_since",
    )


RECORD_COLUMNS: Final[tuple[str, ...]] = record_columns(RecordConfig().horizon)


# --------------------------------------------------------------------------- helpers


def _drivers(history: pd.DataFrame) -> list[str]:
    """The drivers with a ``{d}_vs_team`` column (not the recent window's own columns)."""
    return [
        str(c)[: -len(_SUFFIX)]
        for c in history.columns
        if str(c).endswith(_SUFFIX) and not str(c).endswith(_RECENT)
    ]


def _ratio_table(history: pd.DataFrame) -> pd.Series:
    """vs_team of every (rep_id, period_index, driver): the recent window's, else the year's."""
    parts = []
    for d in _drivers(history):
        ratio = pd.to_numeric(history[f"{d}{_SUFFIX}"], errors="coerce").astype("float64")
        if f"{d}{_RECENT}" in history:
            recent = pd.to_numeric(history[f"{d}{_RECENT}"], errors="coerce").astype("float64")
            ratio = recent.where(recent.notna(), ratio)
        parts.append(
            pd.DataFrame(
                {
                    "rep_id": history["rep_id"].to_numpy(),
                    "period_index": history["period_index"].to_numpy(dtype=np.int64),
                    "driver": d,
                    "vs_team": ratio.to_numpy(),
                }
            )
        )
    if not parts:
        empty = pd.MultiIndex.from_arrays([[], [], []], names=["rep_id", "period_index", "driver"])
        return pd.Series(dtype="float64", index=empty)
    long = pd.concat(parts, ignore_index=True)
    return long.set_index(["rep_id", "period_index", "driver"])["vs_team"]


def _lookup(table: pd.Series, reps: np.ndarray, index: IntArray, drivers: ObjArray) -> FloatArray:
    """The ratios of (rep, period index, driver) triples; NaN where there is none."""
    if not len(reps):
        return np.empty(0)
    keys = pd.MultiIndex.from_arrays([reps, index, drivers])
    at = table.index.get_indexer(keys)
    values = table.to_numpy(dtype="float64")
    out: FloatArray = np.where(at >= 0, values[np.maximum(at, 0)], np.nan)
    return out


def _performance(vs_team: FloatArray, drivers: ObjArray) -> FloatArray:
    """vs_team, or 1 / vs_team where lower is better."""
    lower = np.isin(drivers, list(LOWER_IS_BETTER))
    out: FloatArray = np.where(lower, safe_div(np.ones(len(vs_team)), vs_team), vs_team)
    return out


def _verdict(then: FloatArray, now: FloatArray, config: RecordConfig) -> ObjArray:
    """The module docstring's verdict rule, over whole columns."""
    change = now - then
    out: ObjArray = np.select(
        [
            np.isnan(then) | np.isnan(now),
            now > config.resolved_above,
            change >= config.noise,
            change <= -config.noise,
        ],
        ["too_early", "resolved", "improving", "worsening"],
        default="not_improving",
    ).astype(object)
    return out


def _ratio_text(x: FloatArray) -> pd.Series:
    """Ratios as "0.52×", "n/a" where unknown."""
    finite = np.isfinite(x)
    scaled = np.round(np.where(finite, x, 0.0) * 100).astype(np.int64)
    whole = pd.Series(scaled // 100).astype(str)
    fraction = pd.Series(scaled % 100).astype(str).str.zfill(2)
    text = (whole + "." + fraction + "×").to_numpy(dtype=object)
    text[~finite] = "n/a"
    return pd.Series(text, dtype=object)


def _phrases(drivers: ObjArray, kind: PeriodKind) -> pd.Series:
    names = pd.Series(drivers, dtype=object)
    known = {d: p.format(kind=kind) for d, p in _PHRASES.items()}
    fallback = names.astype(str).str.replace("_", " ", regex=False)
    return names.map(known).where(names.isin(list(known)), fallback).astype(object)


def _labels(kind: PeriodKind, index: IntArray, keep: BoolArray) -> ObjArray:
    """The labels of period indices, None where not ``keep``."""
    names = {int(i): index_label(kind, int(i)) for i in np.unique(index[keep])}
    out: ObjArray = np.full(len(index), None, dtype=object)
    out[keep] = pd.Series(index[keep]).map(names).to_numpy(dtype=object)
    return out


def _words(values: pd.Series) -> pd.Series:
    return values.astype(str).str.replace("_", " ", regex=False)


# ------------------------------------------------------------------------ public API


def coaching_record(
    history: pd.DataFrame, *, config: RecordConfig = RecordConfig()
) -> pd.DataFrame:
    """One row per (rep_id, period) of ``history`` with a focus named: the named driver then
    and over the ``config.horizon`` following periods, the verdict, and the run of the same
    focus ending there (formulas in the module docstring). Columns: :func:`record_columns`,
    sorted by rep_id and period_index."""
    missing = [c for c in _REQUIRED if c not in history]
    if missing:
        raise ValueError(f"coaching_record: missing columns {', '.join(missing)}")
    if history.duplicated(["rep_id", "period_index"]).any():
        raise ValueError("coaching_record: more than one row for a (rep_id, period_index)")
    columns = list(record_columns(config.horizon))
    if history.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    kind = single_kind(history["period"], reader="coaching_record")
    frame = history.sort_values(["rep_id", "period_index"], kind="stable").reset_index(drop=True)
    reps = frame["rep_id"].to_numpy()
    pidx = frame["period_index"].to_numpy(dtype=np.int64)
    driver = frame["focus_driver"].to_numpy(dtype=object)
    named = pd.notna(frame["focus_driver"]).to_numpy()
    table = _ratio_table(frame)
    lookup_driver = np.where(named, driver, "").astype(object)
    vs_team = np.where(named, _lookup(table, reps, pidx, lookup_driver), np.nan)
    perf = _performance(vs_team, lookup_driver)

    out = _runs(frame, named, vs_team, perf, kind=kind, config=config)
    out["vs_team"], out["performance"] = vs_team, perf
    last = frame.groupby("rep_id", sort=False)["period_index"].transform("max").to_numpy()
    latest = np.full(len(frame), np.nan)
    followed = np.zeros(len(frame), dtype=np.int64)
    for k in range(1, config.horizon + 1):
        ahead = pidx + k
        happened = ahead <= last
        ratio = np.where(happened, _lookup(table, reps, ahead, lookup_driver), np.nan)
        after = _performance(ratio, lookup_driver)
        out[f"after_{k}_period"] = _labels(kind, ahead, happened)
        out[f"after_{k}_vs_team"], out[f"after_{k}_performance"] = ratio, after
        known = ~np.isnan(after)
        latest = np.where(known, after, latest)
        followed += known
    out["followed"], out["latest_performance"] = followed, latest
    out["change"] = latest - perf
    out["verdict"] = np.where(followed > 0, _verdict(perf, latest, config), "too_early")
    for c in ("rep_id", "period", "period_index", "coaching_focus", "focus_driver"):
        out[c] = frame[c].to_numpy()
    keep = np.flatnonzero(named)
    record = pd.DataFrame({c: np.asarray(v)[keep] for c, v in out.items()})
    # Object, not the string dtype: None must stay None (JSON null), not become NaN.
    for c in _TEXT:
        if c in out:
            record[c] = pd.Series(np.asarray(out[c], dtype=object)[keep], dtype=object)
    for k in range(1, config.horizon + 1):
        c = f"after_{k}_period"
        record[c] = pd.Series(np.asarray(out[c], dtype=object)[keep], dtype=object)
    record["summary"] = _summary(record, kind=kind, horizon=config.horizon)
    return record[columns]


def _runs(
    frame: pd.DataFrame,
    named: BoolArray,
    vs_team: FloatArray,
    perf: FloatArray,
    *,
    kind: PeriodKind,
    config: RecordConfig,
) -> dict[str, object]:
    """Per row of ``frame`` (sorted by rep and period), the run of the same focus ending
    there and its stall (module docstring)."""
    n = len(frame)
    pidx = frame["period_index"].to_numpy(dtype=np.int64)
    driver = frame["focus_driver"].astype(object).where(pd.Series(named), "").to_numpy()
    rep_codes = pd.factorize(frame["rep_id"])[0]
    same_rep = np.r_[False, rep_codes[1:] == rep_codes[:-1]]
    next_period = np.r_[False, pidx[1:] == pidx[:-1] + 1]
    same_focus = np.r_[False, driver[1:] == driver[:-1]]
    breaks = ~(same_rep & next_period & same_focus & named & np.r_[False, named[:-1]])
    run_id = np.cumsum(breaks)
    first = np.flatnonzero(breaks)
    start_pos = first[run_id - 1]
    position = np.arange(n) - start_pos
    # Judged over the run's last ``horizon`` periods: what a manager acts on is where the
    # driver went lately, not that it rose a year ago (the stall says that).
    window = np.minimum(position, max(config.horizon - 1, 1))
    base = np.arange(n) - window
    run_change = perf - perf[base]
    run_verdict = np.where(window > 0, _verdict(perf[base], perf, config), "too_early")

    stalled = np.where(~np.isnan(perf) & (perf <= config.resolved_above) & named, 1, 0)
    held = stalled > 0
    for lag in range(1, int(position.max(initial=0)) + 1):
        back = np.maximum(np.arange(n) - lag, 0)
        # Every period back to this one must be no worse than now (less the noise); NaN
        # compares False: an unknown period ends the count.
        held &= (position >= lag) & (perf[back] > perf - config.noise)
        stalled = np.where(held, lag + 1, stalled)
    stalled_since = _labels(kind, pidx - stalled + 1, stalled > 0)
    run_start = frame["period"].astype(str).to_numpy(dtype=object)[start_pos]
    # The run's ratios, oldest first, the latest RUN_SHOWN of them.
    ratios = _ratio_text(vs_team).to_numpy(dtype=object)
    trend = ratios.copy()
    for lag in range(1, min(int(position.max(initial=0)), RUN_SHOWN - 1) + 1):
        back = np.maximum(np.arange(n) - lag, 0)
        trend = np.where(position >= lag, ratios[back] + " → " + trend, trend)
    trend = np.where(position >= RUN_SHOWN, "… → " + trend, trend)
    verdict_words = pd.Series(run_verdict, dtype=object).map(_VERDICT_WORDS)
    focus = _words(frame["coaching_focus"].fillna(frame["focus_driver"]))
    lately = pd.Series(
        np.where(window < position, f" over the last {max(config.horizon, 2)} {kind}s", ""),
        dtype=object,
    )
    summary = focus + " since " + run_start + ": " + trend + ", " + verdict_words + lately
    # (Rows with no focus named get figures too; coaching_record drops them.)
    return {
        "run_start": run_start,
        "run_start_index": pidx[start_pos],
        "run_periods": (position + 1).astype(np.int64),
        "run_change": run_change,
        "run_verdict": run_verdict.astype(object),
        "run_summary": summary.to_numpy(dtype=object),
        "stalled_periods": stalled.astype(np.int64),
        "stalled_since": stalled_since,
    }


def _summary(record: pd.DataFrame, *, kind: PeriodKind, horizon: int) -> pd.Series:
    """ "pipeline named in 2026-03; opportunities per month 0.52× team in 2026-03, 0.71× in
    2026-04, 0.93× in 2026-05: improving" for each entry, built over whole columns."""
    if record.empty:
        return pd.Series(dtype=object)
    period = record["period"].astype(str)
    then = _ratio_text(record["vs_team"].to_numpy(dtype="float64"))
    then = then.where(then == "n/a", then + " team").str.replace("n/a", "no figure")
    text = (
        _words(record["coaching_focus"].fillna(record["focus_driver"]))
        + " named in "
        + period
        + "; "
        + _phrases(record["focus_driver"].to_numpy(dtype=object), kind)
        + " "
        + then
        + " in "
        + period
    )
    for k in range(1, horizon + 1):
        label = record[f"after_{k}_period"]
        value = _ratio_text(record[f"after_{k}_vs_team"].to_numpy(dtype="float64"))
        value = value.str.replace("n/a", "no figure")
        text = text.where(label.isna(), text + ", " + value + " in " + label.astype(str))
    verdict = record["verdict"].map(_VERDICT_WORDS)
    return pd.Series((text + ": " + verdict).to_numpy(dtype=object), dtype=object)


def current_runs(history: pd.DataFrame, record: pd.DataFrame) -> pd.DataFrame:
    """Each rep's record row at the rep's last period of ``history``: the run going on now.
    Reps with no focus named in their last period have none (no row)."""
    last = history.groupby("rep_id", sort=False)["period_index"].max()
    at = record["period_index"].to_numpy() == record["rep_id"].map(last).to_numpy()
    runs: pd.DataFrame = record[at].reset_index(drop=True)
    return runs
