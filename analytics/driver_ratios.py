"""The driver table's ratios, derived from the figures a coaching row stores.

Every ratio of :func:`analytics.drivers.driver_table` is one division of two of its figures (or
a difference of their logs), so a coaching row stores the figures and the ratios are derived
when the row is read. The stored row is about 40% smaller, and it is what an incremental
compute writes: a deal that moves one rep's figure moves the leave-one-out team median of every
peer, so each changed deal rewrites a team's rows (docs/metrics.md, "Incremental recompute").

Formulas (the figures are described in :mod:`analytics.drivers` and
:mod:`analytics.driver_recent`):

* ``d_vs_team``           = d_value / d_team_median, for every compared and reported driver
* ``d_vs_trailing``       = d_value / d_trailing
* ``d_contribution``      = log d_value − log d_team_median, for the factors of revenue in the
  row's ``identity`` (NaN for the others)
* ``revenue_vs_team``     = revenue / reference_revenue
* ``revenue_log_ratio``   = log revenue − log reference_revenue
* ``revenue_vs_trailing`` = revenue / revenue_trailing
* ``d_recent_vs_team``    = d_recent_value / d_recent_team_median
* ``focus_value``, ``focus_team_median``, ``focus_vs_team``: ``focus_driver``'s value, team
  median and vs_team, those of the recent window when ``focus_window`` is "recent"

A division by zero or by a missing figure is NaN, and so is the log of a figure that is not
positive: the very operations of the compute (``safe_div``, ``log_or_nan``), so a derived ratio
is, bit for bit, the one the compute judged on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import pandas as pd

from analytics._arrays import FloatArray, safe_div
from analytics._driver_pool import in_identity, log_or_nan
from analytics.drivers import COMPARED_DRIVERS, FACTORS, REPORTED

__all__ = ["DERIVED", "completed", "derive", "with_ratios"]

_WINDOW_DRIVERS: Final = (*COMPARED_DRIVERS, *REPORTED)
_FOCUS: Final = ("focus_value", "focus_team_median", "focus_vs_team")
DERIVED: Final[frozenset[str]] = frozenset(
    {
        "revenue_vs_team",
        "revenue_log_ratio",
        "revenue_vs_trailing",
        *(f"{d}_{s}" for d in _WINDOW_DRIVERS for s in ("vs_team", "vs_trailing")),
        *(f"{d}_contribution" for d in FACTORS),
        *(f"{d}_recent_vs_team" for d in COMPARED_DRIVERS),
        *_FOCUS,
    }
)


def derive(figures: Mapping[str, Any], n: int) -> dict[str, FloatArray]:
    """The :data:`DERIVED` columns of ``n`` rows from their stored ``figures`` (name -> array;
    a figure missing from the mapping is NaN in every row)."""

    def num(name: str) -> FloatArray:
        if name not in figures:
            return np.full(n, np.nan)
        return np.array(figures[name], dtype=float)  # None -> NaN

    def text(name: str) -> np.ndarray:
        return np.asarray(figures[name], dtype=object) if name in figures else np.full(n, None)

    out: dict[str, FloatArray] = {}
    revenue, reference = num("revenue"), num("reference_revenue")
    out["revenue_vs_team"] = safe_div(revenue, reference)
    out["revenue_log_ratio"] = log_or_nan(revenue) - log_or_nan(reference)
    out["revenue_vs_trailing"] = safe_div(revenue, num("revenue_trailing"))
    tracked = text("identity") == "activity"
    for d in _WINDOW_DRIVERS:
        value, median = num(f"{d}_value"), num(f"{d}_team_median")
        out[f"{d}_vs_team"] = safe_div(value, median)
        out[f"{d}_vs_trailing"] = safe_div(value, num(f"{d}_trailing"))
        if d in FACTORS:
            contribution = log_or_nan(value) - log_or_nan(median)
            out[f"{d}_contribution"] = np.where(in_identity(d, tracked), contribution, np.nan)
    for d in COMPARED_DRIVERS:
        out[f"{d}_recent_vs_team"] = safe_div(
            num(f"{d}_recent_value"), num(f"{d}_recent_team_median")
        )
    driver, recent = text("focus_driver"), text("focus_window") == "recent"
    for name, suffix in zip(_FOCUS, ("value", "team_median", "vs_team"), strict=True):
        picked = np.full(n, np.nan)
        for d in COMPARED_DRIVERS:
            chosen = driver == d
            window = out[f"{d}_vs_team"] if suffix == "vs_team" else num(f"{d}_{suffix}")
            later = (
                out[f"{d}_recent_vs_team"] if suffix == "vs_team" else num(f"{d}_recent_{suffix}")
            )
            picked[chosen] = np.where(recent, later, window)[chosen]
        out[name] = picked
    return out


def with_ratios(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (stored driver figures, one row each) with its :data:`DERIVED` columns."""
    columns = {c: frame[c].to_numpy() for c in frame.columns}
    derived = pd.DataFrame(derive(columns, len(frame)), index=frame.index)
    return pd.concat(
        [frame.drop(columns=frame.columns.intersection(derived.columns)), derived], axis=1
    )


def completed(stored: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """One stored driver row as the compute made it: ``keys`` in order, the derived ones
    recomputed, those the row did not store (a null figure is not stored) None."""
    figures = {k: [v] for k, v in stored.items()}
    derived = {k: v[0] for k, v in derive(figures, 1).items()}
    row: dict[str, Any] = {}
    for k in keys:
        value = derived[k] if k in derived else stored.get(k)
        row[k] = None if isinstance(value, float) and math.isnan(value) else _plain(value)
    return row


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
