"""One rep's drivers as an ordered list a person can read, from a stored driver-table row.

Each compared driver gives one entry over the evaluation window: ``driver, value,
team_median, vs_team, contribution, judged, window, reason``; a recent finding
(:mod:`analytics.driver_recent`) adds one entry over the recent window. Order: the focus
first, then by contribution, largest negative first (the factors that cost the most
revenue), then the drivers without a contribution (outside the row's identity, or the cycle)
by how far below the team they are. ``reason`` says what the numbers mean or why the driver
was not judged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from analytics._driver_pool import ACTIVITY_ONLY
from analytics._driver_text import PHRASES, format_value, gap_words
from analytics.drivers import COMPARED_DRIVERS, REPORTED

__all__ = ["ranked_drivers"]


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def _text(driver: str, x: float | None) -> str:
    return str(format_value(driver, np.array([np.nan if x is None else x])).iloc[0])


def _reason(row: Mapping[str, Any], d: str, kind: str, judged: bool) -> str:
    value, median = _number(row.get(f"{d}_value")), _number(row.get(f"{d}_team_median"))
    vs_team = _number(row.get(f"{d}_vs_team"))
    said = f"{PHRASES[d].format(kind=kind)} {_text(d, value)}"
    if median is None:
        return f"{said}; no team median to compare with"
    said += f" vs team median {_text(d, median)}"
    worse = vs_team is not None and (vs_team > 1.0 if d == "cycle" else vs_team < 1.0)
    if worse:  # how far worse than the team; a driver at or above the team needs no gap
        said += f" ({gap_words(d, np.array([vs_team])).iloc[0]})"
    if judged or d in REPORTED:
        return said
    if d in ACTIVITY_ONLY and row.get("identity") == "pipeline":
        return f"{said}; not judged: activities are not tracked for this rep's team"
    if d == "pipeline" and row.get("identity") == "activity":
        return f"{said}; not judged: activity and conversion explain it"
    return f"{said}; not judged: too few deals to tell a shortfall from chance"


def ranked_drivers(row: Mapping[str, Any], *, period: str, kind: str) -> list[dict[str, Any]]:
    """The entries of one stored driver row (``drivers`` of a coaching row), ordered (module
    docstring). ``period`` and ``kind`` name the row's period ("2026-04", "month")."""
    window = _span(row, "window_start", period, kind)
    entries = []
    for d in (*COMPARED_DRIVERS, *REPORTED):
        judged = bool(row.get(f"{d}_judged", False))
        entries.append(
            {
                "driver": d,
                "value": _number(row.get(f"{d}_value")),
                "team_median": _number(row.get(f"{d}_team_median")),
                "vs_team": _number(row.get(f"{d}_vs_team")),
                "contribution": _number(row.get(f"{d}_contribution")),
                "judged": judged,
                "window": window,
                "reason": _reason(row, d, kind, judged),
            }
        )
    entries.sort(key=_order(row))
    if row.get("focus_window") == "recent":
        d = str(row["focus_driver"])
        entries.insert(0, _recent_entry(row, d, period, kind))
    return entries


def _order(row: Mapping[str, Any]) -> Any:
    focus = row.get("focus_driver") if row.get("focus_window") == "window" else None

    def key(entry: dict[str, Any]) -> tuple[int, float]:
        if entry["driver"] == focus:
            return (0, 0.0)
        if entry["contribution"] is not None:
            return (1, entry["contribution"])
        ratio = entry["vs_team"]
        if ratio is None:
            return (3, 0.0)
        # Without a contribution: how far below the team (the cycle: above, as 1 / ratio).
        return (2, 1.0 / ratio if entry["driver"] == "cycle" and ratio else ratio)

    return key


def _span(row: Mapping[str, Any], start_key: str, period: str, kind: str) -> str:
    start = row.get(start_key)
    return f"{kind}s {start} to {period}" if start and start != period else f"{kind} {period}"


def _recent_entry(row: Mapping[str, Any], d: str, period: str, kind: str) -> dict[str, Any]:
    return {
        "driver": d,
        "value": _number(row.get(f"{d}_recent_value")),
        "team_median": _number(row.get(f"{d}_recent_team_median")),
        "vs_team": _number(row.get(f"{d}_recent_vs_team")),
        "contribution": None,
        "judged": True,
        "window": _span(row, "recent_window_start", period, kind),
        # The focus reason says it all: the fall against the own level and the team.
        "reason": str(row.get("focus_reason")),
    }
