"""Proration and ramp: how much of a full target a rep who started recently is held to.

The factors of :func:`analytics.gaps.compute_gaps` (formulas in :mod:`analytics.gaps`):
``proration_factor`` for the rep's days in the period, ``ramp_factor`` for the ramp schedule of
their first months, and the ``target_note`` that says both in words.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics._arrays import BoolArray, FloatArray, IntArray, as_int64, epoch_day, epoch_days
from analytics.periods import FiscalCalendar, period_from_index, period_index

__all__ = ["target_factors"]


def _dates(days: IntArray) -> pd.Series:
    return pd.Series(days.astype("datetime64[D]").astype("datetime64[ns]"))


def _month_index_of_days(days: IntArray, cal: FiscalCalendar) -> IntArray:
    return period_index(_dates(days), "month", cal)


def _ramp(
    first: IntArray,
    last: IntArray,
    rep_start: IntArray,
    schedule: tuple[float, ...],
    cal: FiscalCalendar,
) -> tuple[FloatArray, IntArray, IntArray]:
    """Σ ramp share over the days [first, last] of reps who started on ``rep_start``.

    Returns that sum and the ramp month numbers of ``first`` and ``last`` (1 = start month).
    Month k of employment runs from the start of fiscal month m0 + k − 1 to the day before
    month m0 + k, so the sum is a handful of interval overlaps per target.
    """
    n = len(first)
    total = np.zeros(n)
    if n == 0:
        return total, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    m0 = _month_index_of_days(rep_start, cal)
    k_first = _month_index_of_days(first, cal) - m0 + 1
    k_last = _month_index_of_days(last, cal) - m0 + 1
    steps = len(schedule)
    month_ids = m0[:, None] + np.arange(1, steps + 1)[None, :]
    # Month starts are looked up once per distinct month (4-4-5 months need the calendar).
    uniq, inverse = np.unique(month_ids, return_inverse=True)
    month_start = np.array(
        [epoch_day(period_from_index("month", int(m), cal).start) for m in uniq], dtype=np.int64
    )
    bounds = month_start[inverse.reshape(month_ids.shape)]
    seg_lo = rep_start
    for k in range(steps):
        seg_hi = bounds[:, k] - 1
        overlap = np.clip(np.minimum(last, seg_hi) - np.maximum(first, seg_lo) + 1, 0, None)
        total += schedule[k] * overlap
        seg_lo = bounds[:, k]
    total += np.clip(last - np.maximum(first, seg_lo) + 1, 0, None)
    return total, k_first.astype(np.int64), k_last.astype(np.int64)


def _pct(values: FloatArray) -> npt.NDArray[np.str_]:
    return np.char.mod("%g", np.round(values * 100, 1))


def _rep_starts(t: pd.DataFrame, reps: pd.DataFrame) -> tuple[IntArray, BoolArray]:
    """Each target's rep's ``start_date`` in epoch days, and where it has none."""
    if reps["rep_id"].duplicated().any():
        raise ValueError("reps frame has more than one row for the same rep_id")
    start_of = pd.Series(
        pd.to_datetime(reps["start_date"]).to_numpy(dtype="datetime64[ns]"),
        index=as_int64(reps["rep_id"]),
    )
    rep_start_raw = pd.Series(
        start_of.reindex(as_int64(t["rep_id"])).to_numpy(dtype="datetime64[ns]")
    )
    return epoch_days(rep_start_raw)


def target_factors(
    t: pd.DataFrame,
    *,
    scalable: BoolArray,
    start: IntArray,
    end: IntArray,
    reps: pd.DataFrame,
    schedule: tuple[float, ...],
    cal: FiscalCalendar,
) -> tuple[FloatArray, FloatArray, pd.Series, IntArray]:
    """(proration_factor, ramp_factor, target_note, pace start) of each target of ``t``.

    ``scalable``: the rep targets of additive metrics (the others keep factors 1). With the
    period's days [start, end] (N of them) and the rep's first day s inside it:

    * proration_factor = (end − max(start, s) + 1) / N, clipped at 0
    * ramp_factor = Σ ramp share of each employed day / employed days (:func:`_ramp`)
    * pace start = max(start, s) for a rep who joined inside the period, else start
    """
    n = len(t)
    pace_start = start.copy()
    proration = np.ones(n)
    ramp = np.ones(n)
    note = pd.Series([""] * n, dtype="object")
    rep_start, no_start = _rep_starts(t, reps)
    scaled = scalable & ~no_start
    if not scaled.any():
        return proration, ramp, note, pace_start
    ndays = end - start + 1
    first = np.maximum(start, rep_start)
    employed = np.clip(end - first + 1, 0, None)
    proration = np.where(scaled, employed / ndays, 1.0)
    # A rep who joined mid-period is paced over the days they were there, not the whole period.
    pace_start = np.where(scaled & (employed > 0), first, start)

    s = np.flatnonzero(scaled & (employed > 0))
    ramp_sum, k_first, k_last = _ramp(first[s], end[s], rep_start[s], schedule, cal)
    ramp[s] = ramp_sum / employed[s]

    prorated = scaled & (rep_start > start) & (employed > 0)
    after = scaled & (employed == 0)
    in_ramp = np.zeros(n, dtype=bool)
    in_ramp[s] = k_first <= len(schedule)
    kf = np.zeros(n, dtype=np.int64)
    kl = np.zeros(n, dtype=np.int64)
    kf[s], kl[s] = k_first, k_last
    noted = np.flatnonzero(prorated | after | in_ramp)
    texts = _notes(noted, ramp, rep_start, employed, ndays, prorated, after, in_ramp, kf, kl)
    note.iloc[noted] = pd.Series(texts, index=note.index[noted], dtype=object)
    return proration, ramp, note, pace_start


def _notes(
    noted: IntArray,
    ramp: FloatArray,
    rep_start: IntArray,
    employed: IntArray,
    ndays: IntArray,
    prorated: BoolArray,
    after: BoolArray,
    in_ramp: BoolArray,
    kf: IntArray,
    kl: IntArray,
) -> list[str]:
    """The ``target_note`` of the rows ``noted``: proration and ramp in words.

    The notes are text: written for the few rows that get one, not for every row.
    """
    pct = _pct(ramp[noted])
    texts: list[str] = []
    for i, p in zip(noted.tolist(), pct.tolist(), strict=True):
        started = str(np.datetime64(int(rep_start[i]), "D"))
        if prorated[i]:
            base = f"prorated: started {started} ({employed[i]} of {ndays[i]} days)"
        elif after[i]:
            base = f"prorated: starts {started}, after the period (factor 0)"
        else:
            base = ""
        if not in_ramp[i]:
            ramp_text = ""
        elif kf[i] == kl[i]:
            ramp_text = f"ramp month {kf[i]}: {p}% of full target"
        else:
            ramp_text = f"ramp months {kf[i]}-{kl[i]}: {p}% of full target (day-weighted)"
        texts.append("; ".join(t for t in (base, ramp_text) if t))
    return texts
