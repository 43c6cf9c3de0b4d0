"""Numbers as text for the plain-language reasons (drivers' coaching focus, wins), vectorised."""

from __future__ import annotations

import numpy as np
import pandas as pd

from analytics._arrays import FloatArray

__all__ = ["fixed", "thousands"]


def thousands(x: FloatArray) -> pd.Series:
    """Whole numbers with thousands separators ("12,345"): the few of four digits or more
    through Python's format, the rest (percentages, days) as the array's text. A value that
    is not a number reads "n/a" (an int64 cast would print it as -9223372036854775808)."""
    x = np.asarray(x, dtype=np.float64)
    plain = np.isfinite(x) & (np.abs(x) < 1e15)
    whole = np.round(np.where(plain, x, 0.0)).astype(np.int64)
    text = whole.astype(str).astype(object)
    wide = np.flatnonzero(plain & (np.abs(whole) >= 1000))
    text[wide] = [f"{v:,}" for v in whole[wide].tolist()]
    other = np.flatnonzero(~plain)
    text[other] = [f"{v:,.0f}" if np.isfinite(v) else "n/a" for v in x[other].tolist()]
    return pd.Series(text, dtype=object)


def fixed(x: FloatArray, decimals: int) -> pd.Series:
    """Non-negative numbers with exactly ``decimals`` decimals, vectorised ("0.50")."""
    scale = 10**decimals
    scaled = np.round(x * scale).astype(np.int64)
    whole = pd.Series(scaled // scale, dtype=np.int64).astype(str)
    fraction = pd.Series(scaled % scale, dtype=np.int64).astype(str).str.zfill(decimals)
    return (whole + "." + fraction).astype(object)
