"""The words of :mod:`analytics.drivers`: each driver's phrase and unit, and the coaching
focus's reason, built per driver over whole columns (never per row)."""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

from analytics._arrays import FloatArray, IntArray, ObjArray
from analytics._text import fixed, thousands
from analytics.periods import PeriodKind

__all__ = ["PHRASES", "format_value", "gap_words", "reasons", "span_words"]

PHRASES: Final[dict[str, str]] = {
    "activity": "activities per {kind}",
    "conversion": "opportunities per activity",
    "pipeline": "opportunities created per {kind}",
    "pipeline_created": "pipeline created per {kind}",
    "throughput": "closed deals per opportunity",
    "win_rate": "win rate",
    "deal_size": "average deal size",
    "cycle": "sales cycle",
}


def format_value(driver: str, x: FloatArray) -> pd.Series:
    """A driver's values in its unit ("18%", "41 days", "12,400")."""
    x = np.asarray(x, dtype=np.float64)
    if driver in ("activity", "deal_size", "pipeline_created"):
        return thousands(x)
    if driver == "pipeline":
        return fixed(np.nan_to_num(x), 1).where(np.isfinite(x), "n/a")
    if driver == "conversion":
        return (fixed(np.nan_to_num(x) * 100.0, 1) + "%").where(np.isfinite(x), "n/a")
    if driver == "throughput":
        return fixed(np.nan_to_num(x), 2).where(np.isfinite(x), "n/a")
    if driver == "win_rate":
        return thousands(x * 100.0) + "%"
    return thousands(x) + " days"


def gap_words(driver: str, ratio: FloatArray, against: str = "") -> pd.Series:
    """How far worse: "40% below" ("150% longer" for the cycle, where higher is worse),
    followed by ``against`` ("own level") when given."""
    tail = f" {against}" if against else ""
    if driver == "cycle":
        return thousands((ratio - 1.0) * 100.0) + "% longer" + tail
    return thousands((1.0 - ratio) * 100.0) + "% below" + tail


def span_words(periods: ObjArray, *, kind: PeriodKind, length: int) -> pd.Series:
    """The window in words: " over the 12 months to 2026-04" (" in 2026-04" for one)."""
    lead = f" over the {length} {kind}s to " if length > 1 else " in "
    return lead + pd.Series(periods, dtype=object).astype(str).astype(object)


def reasons(
    focus_driver: ObjArray,
    recent: np.ndarray,
    figures: dict[str, FloatArray],
    peers: IntArray,
    period: ObjArray,
    *,
    kind: PeriodKind,
    window: int,
    recent_periods: int,
    shortfall: float,
) -> ObjArray:
    """Plain-language focus reasons.

    A finding of the window: "win rate 18% vs team median 30% (40% below the team) over the 12
    months to 2026-04". A recent one (``recent`` true): "win rate 4% vs 31% in the 9 months
    before (87% below own level; team median 30%) over the 3 months to 2026-04". ``figures``
    holds ``value``, ``team_median``, ``vs_team``, ``own`` and ``vs_own`` of the focus driver.
    """
    idle = f"no driver {round(shortfall * 100)}% or more below the team median"
    text = pd.Series(np.where(peers == 0, "no team peers to compare with", idle), dtype=object)
    text = text + span_words(period, kind=kind, length=window)
    before = window - recent_periods
    for driver in PHRASES:
        for is_recent in (False, True):
            rows = np.flatnonzero((focus_driver == driver) & (recent == is_recent))
            if not len(rows):
                continue
            f = {k: v[rows] for k, v in figures.items()}
            said = PHRASES[driver].format(kind=kind) + " " + format_value(driver, f["value"])
            if is_recent:
                said = (
                    said
                    + " vs "
                    + format_value(driver, f["own"])
                    + f" in the {before} {kind}s before ("
                    + gap_words(driver, f["vs_own"], "own level")
                    + "; team median "
                    + format_value(driver, f["team_median"])
                    + ")"
                    + span_words(period[rows], kind=kind, length=recent_periods)
                )
            else:
                said = (
                    said
                    + " vs team median "
                    + format_value(driver, f["team_median"])
                    + " ("
                    + gap_words(driver, f["vs_team"])
                    + ")"
                    + span_words(period[rows], kind=kind, length=window)
                )
            text.iloc[rows] = said.to_numpy(dtype=object)
    result: ObjArray = text.to_numpy(dtype=object)
    return result
