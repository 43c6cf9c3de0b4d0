"""How the page writes numbers. The exact value always goes in a ``data-value`` attribute
beside the text (``raw``), so the text can round and a reader can still check the number."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}
STATUS_LABELS = {
    "achieved": "Achieved",
    "on_track": "On track",
    "at_risk": "At risk",
    "missed": "Missed",
}


def raw(value: Any) -> str:
    """The exact number as the API's JSON writes it (shortest round-trip repr), or ''."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(float(value)) if isinstance(value, float) else str(value)
    return str(value)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def amount(value: Any, unit: str, currency: str = "USD") -> str:
    """A metric value in its unit: currency, count, ratio, days."""
    if not _finite(value):
        return "–"
    v = float(value)
    if unit in ("currency", "currency_per_day"):
        symbol = SYMBOLS.get(currency)
        digits = 0 if abs(v) >= 100 or unit == "currency" else 2
        text = f"{abs(v):,.{digits}f}"
        sign = "-" if v < 0 else ""
        return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency}"
    if unit == "ratio":
        return f"{v * 100:.1f}%"
    if unit == "days":
        return f"{v:,.1f} d"
    return f"{v:,.0f}" if v.is_integer() else f"{v:,.1f}"


def percent(value: Any) -> str:
    """Attainment and other fractions as a whole percent: 0.876 -> '88%'."""
    if not _finite(value):
        return "–"
    return f"{round(float(value) * 100):d}%"


def status(value: Any) -> str:
    return STATUS_LABELS.get(str(value), str(value or "–"))


def words(value: Any) -> str:
    """An identifier as words: 'win_rate' -> 'win rate'."""
    return str(value or "").replace("_", " ")


def when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return "–" if value is None else str(value)


FILTERS = {
    "raw": raw,
    "amount": amount,
    "percent": percent,
    "status_label": status,
    "words": words,
    "when": when,
}
