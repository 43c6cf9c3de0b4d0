"""Amounts in the reporting currency: amount × rate(currency), an unknown currency an error.

Every figure in money (revenue, pipeline, deal sizes) is summed over deals in several
currencies, so each is first converted with the tenant's rates; a currency without a rate
raises :class:`UnknownCurrencyError` rather than counting as a silent zero.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics._arrays import FloatArray

__all__ = ["UnknownCurrencyError", "reporting_values", "to_reporting_currency"]


class UnknownCurrencyError(ValueError):
    pass


def _rate_lookup(
    currency: pd.Series, rates: Mapping[str, float]
) -> tuple[npt.NDArray[np.intp], FloatArray]:
    """(code per row, rate per code); a missing currency has code -1. Currencies are
    upper-cased once per distinct value, not once per row."""
    if isinstance(currency.dtype, pd.CategoricalDtype):
        codes = currency.cat.codes.to_numpy().astype(np.intp)
        uniques = list(currency.cat.categories)
    else:
        factorized, found = pd.factorize(currency)
        codes = np.asarray(factorized, dtype=np.intp)
        uniques = list(found)
    table = np.array([rates.get(str(u).upper(), np.nan) for u in uniques], dtype="float64")
    return codes, table


def reporting_values(
    amount: pd.Series,
    currency: pd.Series,
    rates: Mapping[str, float],
    rows: npt.NDArray[np.intp] | None = None,
) -> FloatArray:
    """amount × rate(currency) of the rows at positions ``rows`` (every row when None)."""
    codes, table = _rate_lookup(currency, rates)
    values = amount.to_numpy(dtype="float64", na_value=np.nan)
    if rows is not None:
        codes, values = codes[rows], values[rows]
    # A trailing NaN: code -1 (no currency) looks it up.
    rate = np.append(table, np.nan)[codes]
    missing = np.isnan(rate) & ~np.isnan(values)
    if missing.any():
        shown = currency if rows is None else currency.iloc[rows]
        bad = sorted({str(c) for c in shown[missing]})
        raise UnknownCurrencyError(f"no conversion rate for currency {', '.join(bad)}")
    out: FloatArray = values * rate
    return out


def to_reporting_currency(
    amount: pd.Series, currency: pd.Series, rates: Mapping[str, float]
) -> pd.Series:
    """amount × rates[currency]; an unknown currency is an error, not a silent zero."""
    return pd.Series(reporting_values(amount, currency, rates), index=amount.index)
