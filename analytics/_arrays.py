"""Array aliases and the small array helpers several analytics modules share.

Declared once here so that a helper (and its formula) has one definition, not one per module.
"""

from __future__ import annotations

from datetime import date
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "EPOCH_ORDINAL",
    "BoolArray",
    "FloatArray",
    "IntArray",
    "ObjArray",
    "as_int64",
    "epoch_day",
    "epoch_days",
    "floats",
    "safe_div",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ObjArray = npt.NDArray[np.object_]

# date.toordinal() of 1970-01-01, to move between numpy epoch days and Python ordinals.
EPOCH_ORDINAL: Final[int] = date(1970, 1, 1).toordinal()


def epoch_day(d: date) -> int:
    """Days from 1970-01-01 to ``d``."""
    return d.toordinal() - EPOCH_ORDINAL


def epoch_days(values: pd.Series) -> tuple[IntArray, BoolArray]:
    """Days since 1970-01-01 (floored) and a missing-value mask (0 where missing), without a
    Python loop; strings are parsed by ``pandas.to_datetime``."""
    series = (
        values if pd.api.types.is_datetime64_any_dtype(values.dtype) else pd.to_datetime(values)
    )
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        # Keep the wall-clock date in the column's own zone: that is the date the rep saw.
        series = series.dt.tz_localize(None)
    as_days = series.to_numpy().astype("datetime64[D]")
    missing = np.isnat(as_days)
    return np.where(missing, 0, as_days.astype(np.int64)), missing


def as_int64(values: pd.Series) -> pd.Series:
    """Ids as nullable integers, so that ids compare as numbers whatever their dtype."""
    return pd.Series(values, copy=False).astype("Int64")


def floats(values: pd.Series) -> FloatArray:
    """A column as float64, NaN for missing values."""
    return values.to_numpy(dtype="float64", na_value=np.nan)


def safe_div(num: FloatArray, den: FloatArray) -> FloatArray:
    """num / den, NaN where den is 0 or NaN."""
    out: FloatArray = np.full(len(num), np.nan)
    np.divide(num, den, out=out, where=(den != 0) & ~np.isnan(den))
    return out
