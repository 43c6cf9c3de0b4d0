"""Reporting periods: the single source of truth for period labels and boundaries.

Every number Quota Gap shows is "for a period", so the rules below decide which deals
count towards which quota. They are deliberately kept in one module so that the API,
the batch jobs and the docs (``docs/metrics.md``) cannot drift apart.

Labels (case-insensitive on input, surrounding whitespace ignored, always emitted in
the canonical form shown):

=========  ==============  ===============================================================
kind       canonical       meaning
=========  ==============  ===============================================================
week       ``2026-W48``    ISO 8601 week (Monday..Sunday), ISO week-numbering year,
                           two-digit week. ``2025-W53`` is rejected because ISO 2025 has
                           52 weeks; ``2020-W53`` and ``2026-W53`` are valid. Weeks ignore
                           the fiscal calendar entirely, so 2024-12-30 is ``2025-W01``.
month      ``2026-11``     a month, named by its calendar month (see 4-4-5 below).
quarter    ``2026-Q4``     fiscal quarter 4 of FY2026.
year       ``FY2026``      fiscal year 2026.
=========  ==============  ===============================================================

Years are exactly four digits, months and weeks exactly two; anything else (``2026-13``,
``2026-Q5``, ``26-11``, ``2026-W5``, ``FY26``, ``""``) raises :class:`PeriodError`.

Fiscal years (:class:`FiscalCalendar`):

* ``start_month`` (1..12) is the first month of the fiscal year.
* A fiscal year is named by the calendar year in which it **ends**. With
  ``start_month=1`` FY2026 is calendar 2026; with ``start_month=2`` FY2026 runs
  2025-02-01..2026-01-31; with ``start_month=10`` FY2026 runs 2025-10-01..2026-09-30.
* Quarter n of FYyyyy is the n-th block of three months from the year start, so with
  ``start_month=2`` ``2026-Q1`` is 2025-02-01..2025-04-30.

Calendar kind (``kind="calendar"``): months are calendar months; quarters and years are
built from whole calendar months as above.

4-4-5 kind (``kind="445"``):

* FYyyyy starts on the Monday nearest to the first day of the month in which the
  calendar-kind FYyyyy starts (at most 3 days either side; there are no ties), and ends
  the day before FYyyyy+1 starts. A year therefore has 52 or 53 whole weeks.
* Quarters are 13 weeks (91 days); in a 53-week year Q4 takes the extra week (98 days).
* Fiscal months within each quarter are 4, 4 and 5 weeks; the 53rd week extends the last
  month of the year (fiscal month 12) to 6 weeks.
* Month labels stay calendar-style: fiscal month k of FYyyyy is labelled with the
  calendar month that is month k of the *calendar-kind* FYyyyy (calendar month
  ``start_month + k - 1``). So with ``start_month=1`` ``2026-11`` is fiscal month 11 of
  FY2026, and with ``start_month=2`` ``2026-01`` is fiscal month 12 of FY2026. The label
  names a fiscal month; its dates are NOT that calendar month's dates.
* Weeks are still ISO weeks, and a 4-4-5 week need not align with anything else.

Relative periods:

* :func:`shift` moves by whole periods of the same kind (months by month index, so
  ``2026-12`` + 1 is ``2027-01`` in either kind; quarters roll over fiscal years).
* :func:`same_period_last_year` keeps the label and decrements the year (12 months,
  4 quarters, 1 fiscal year). For weeks it keeps the ISO week number in the previous ISO
  year; ``W53`` maps to ``W52`` when the previous ISO year has no week 53.

A :class:`Period` does not remember which calendar built it, so every function that takes
a period and a calendar re-derives the period from its label and raises
:class:`PeriodError` if the two disagree; pass the same calendar you parsed with.

Pace: :func:`elapsed_fraction` counts ``as_of`` itself as a fully elapsed day (a report run
on the last day of a month reads 100%). :func:`working_days` counts Monday..Friday in an
inclusive range, minus holidays.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final, Literal, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics._arrays import EPOCH_ORDINAL, epoch_days

__all__ = [
    "MISSING_INDEX",
    "FiscalCalendar",
    "Period",
    "PeriodError",
    "PeriodKind",
    "elapsed_fraction",
    "elapsed_working_fraction",
    "index_label",
    "label_dates",
    "parse_period",
    "period_from_index",
    "period_index",
    "period_of",
    "periods_between",
    "previous",
    "same_period_last_year",
    "shift",
    "single_kind",
    "working_days",
]

PeriodKind = Literal["week", "month", "quarter", "year"]
CalendarKind = Literal["calendar", "445"]

PERIOD_KINDS: Final[tuple[PeriodKind, ...]] = ("week", "month", "quarter", "year")
_CALENDAR_KINDS: Final[tuple[CalendarKind, ...]] = ("calendar", "445")

ACCEPTED_FORMATS: Final[str] = (
    "'YYYY-MM' (month), 'YYYY-Qn' (fiscal quarter 1-4), 'FYYYYY' (fiscal year), "
    "'YYYY-Www' (ISO week)"
)

# Week offsets (from the fiscal year start) at which each 4-4-5 fiscal month starts.
_MONTH_START_WEEKS_445: Final[tuple[int, ...]] = (0, 4, 8, 13, 17, 21, 26, 30, 34, 39, 43, 47)

_MONTH_RE: Final = re.compile(r"([0-9]{4})-([0-9]{2})")
_QUARTER_RE: Final = re.compile(r"([0-9]{4})-Q([0-9])")
_YEAR_RE: Final = re.compile(r"FY([0-9]{4})")
_WEEK_RE: Final = re.compile(r"([0-9]{4})-W([0-9]{2})")


class PeriodError(ValueError):
    """Raised for any period spec we cannot honour.

    It subclasses ValueError so API layers that already map ValueError to HTTP 400 need
    no special case, while callers that care can still catch it precisely.
    """


@dataclass(frozen=True)
class FiscalCalendar:
    """How a tenant slices time into fiscal quarters and years.

    Frozen so it can be a dict key / cache key and shared between threads.
    """

    start_month: int = 1
    kind: CalendarKind = "calendar"

    def __post_init__(self) -> None:
        # Validate eagerly: a bad calendar would otherwise surface as nonsense dates much
        # later, far from the tenant config that caused it.
        if isinstance(self.start_month, bool) or not isinstance(self.start_month, int):
            raise ValueError(f"start_month must be an int 1..12, got {self.start_month!r}")
        if not 1 <= self.start_month <= 12:
            raise ValueError(f"start_month must be 1..12, got {self.start_month!r}")
        if self.kind not in _CALENDAR_KINDS:
            raise ValueError(f"kind must be one of {_CALENDAR_KINDS}, got {self.kind!r}")


@dataclass(frozen=True, order=True)
class Period:
    """A labelled, closed date range.

    ``end`` is inclusive because that is how sales people read "Q4 ends Dec 31"; use
    :meth:`contains` rather than hand-written comparisons to avoid off-by-one errors.
    """

    kind: PeriodKind
    label: str
    start: date
    end: date

    @property
    def days(self) -> int:
        """Length in calendar days, counting both ends."""
        return (self.end - self.start).days + 1

    def contains(self, d: date) -> bool:
        """Whether ``d`` falls in the period; datetimes are judged by their date part."""
        day = _as_date(d)
        return self.start <= day <= self.end


# --------------------------------------------------------------------------- helpers


def _as_date(d: date) -> date:
    # datetime is a date subclass but refuses to compare with plain dates, and a
    # timestamp's time of day must not move it into another period.
    if isinstance(d, datetime):
        return d.date()
    if not isinstance(d, date):
        raise TypeError(f"expected a date, got {type(d).__name__}: {d!r}")
    return d


def _check_kind(kind: str) -> PeriodKind:
    if kind not in PERIOD_KINDS:
        raise PeriodError(f"unknown period kind {kind!r}; expected one of {PERIOD_KINDS}")
    return kind


def _month_start(month_index: int) -> date:
    """First day of the calendar month ``month_index`` (= year * 12 + month - 1)."""
    year, m0 = divmod(month_index, 12)
    return date(year, m0 + 1, 1)


def _fy_first_month_index(fy: int, cal: FiscalCalendar) -> int:
    """Calendar month index of the first month of calendar-kind FY ``fy``."""
    first_year = fy if cal.start_month == 1 else fy - 1
    return first_year * 12 + cal.start_month - 1


def _fiscal_of_month_index(month_index: int, cal: FiscalCalendar) -> tuple[int, int]:
    """(fiscal year, 0-based fiscal month) of a calendar month index."""
    t = month_index - (cal.start_month - 1) + (12 if cal.start_month != 1 else 0)
    fy, k = divmod(t, 12)
    return fy, k


def _snap_to_monday(d: date) -> date:
    # Offsets -3..+3: weekday <= 3 (Mon..Thu) goes back, Fri..Sun goes forward.
    return d + timedelta(days=(3 - d.weekday()) % 7 - 3)


def _start_445(fy: int, cal: FiscalCalendar) -> date:
    return _snap_to_monday(_month_start(_fy_first_month_index(fy, cal)))


def _year_bounds(fy: int, cal: FiscalCalendar) -> tuple[date, date]:
    if cal.kind == "445":
        return _start_445(fy, cal), _start_445(fy + 1, cal) - timedelta(days=1)
    first = _fy_first_month_index(fy, cal)
    return _month_start(first), _month_start(first + 12) - timedelta(days=1)


def _fiscal_month_bounds_445(fy: int, k: int, cal: FiscalCalendar) -> tuple[date, date]:
    year_start, year_end = _year_bounds(fy, cal)
    start = year_start + timedelta(weeks=_MONTH_START_WEEKS_445[k])
    if k == 11:
        return start, year_end  # the 53rd week, if any, lands here
    return start, year_start + timedelta(weeks=_MONTH_START_WEEKS_445[k + 1], days=-1)


def _month_bounds(month_index: int, cal: FiscalCalendar) -> tuple[date, date]:
    if cal.kind == "445":
        fy, k = _fiscal_of_month_index(month_index, cal)
        return _fiscal_month_bounds_445(fy, k, cal)
    return _month_start(month_index), _month_start(month_index + 1) - timedelta(days=1)


def _quarter_bounds(quarter_index: int, cal: FiscalCalendar) -> tuple[date, date]:
    fy, q0 = divmod(quarter_index, 4)
    first = _fy_first_month_index(fy, cal) + 3 * q0
    return _month_bounds(first, cal)[0], _month_bounds(first + 2, cal)[1]


def _week_label(week_index: int) -> str:
    iso = date.fromordinal(7 * week_index + 1).isocalendar()
    return f"{iso.year:04d}-W{iso.week:02d}"


def _month_label(month_index: int) -> str:
    year, m0 = divmod(month_index, 12)
    return f"{year:04d}-{m0 + 1:02d}"


def _quarter_label(quarter_index: int) -> str:
    fy, q0 = divmod(quarter_index, 4)
    return f"{fy:04d}-Q{q0 + 1}"


def _year_label(fy: int) -> str:
    return f"FY{fy:04d}"


_LABELLERS: Final[dict[PeriodKind, Callable[[int], str]]] = {
    "week": _week_label,
    "month": _month_label,
    "quarter": _quarter_label,
    "year": _year_label,
}

# Each kind is addressed by one integer "index" so that shifting is plain addition:
#   week    -> Monday's proleptic ordinal minus 1, divided by 7 (0001-01-01 is a Monday)
#   month   -> year * 12 + month - 1 of the (counterpart) calendar month
#   quarter -> fiscal year * 4 + quarter - 1
#   year    -> fiscal year


def _from_index(kind: PeriodKind, index: int, cal: FiscalCalendar) -> Period:
    try:
        if kind == "week":
            start = date.fromordinal(7 * index + 1)
            end = start + timedelta(days=6)
        elif kind == "month":
            start, end = _month_bounds(index, cal)
        elif kind == "quarter":
            start, end = _quarter_bounds(index, cal)
        else:
            start, end = _year_bounds(index, cal)
    except (ValueError, OverflowError) as exc:
        raise PeriodError(
            f"{kind} {_LABELLERS[kind](index)!r} is outside the supported date range"
        ) from exc
    return Period(kind=kind, label=_LABELLERS[kind](index), start=start, end=end)


def _fiscal_year_445(d: date, cal: FiscalCalendar) -> int:
    # The 4-4-5 year start is within 3 days of the calendar-kind one, so the answer is
    # the calendar-kind fiscal year or one of its neighbours.
    guess, _ = _fiscal_of_month_index(d.year * 12 + d.month - 1, cal)
    for fy in (guess - 1, guess, guess + 1):
        if _start_445(fy, cal) <= d < _start_445(fy + 1, cal):
            return fy
    raise AssertionError(f"no 4-4-5 fiscal year contains {d}")  # pragma: no cover


def _month_index_of(d: date, cal: FiscalCalendar) -> int:
    """(Counterpart) calendar month index of the month containing ``d``."""
    if cal.kind == "calendar":
        return d.year * 12 + d.month - 1
    fy = _fiscal_year_445(d, cal)
    week = (d - _start_445(fy, cal)).days // 7
    k = sum(1 for w in _MONTH_START_WEEKS_445 if w <= week) - 1
    return _fy_first_month_index(fy, cal) + k


def _quarter_index_of_month(month_index: int, cal: FiscalCalendar) -> int:
    fy, k = _fiscal_of_month_index(month_index, cal)
    return fy * 4 + k // 3


def _index_of_date(d: date, kind: PeriodKind, cal: FiscalCalendar) -> int:
    if kind == "week":
        return (d.toordinal() - 1) // 7
    month_index = _month_index_of(d, cal)
    if kind == "month":
        return month_index
    if kind == "quarter":
        return _quarter_index_of_month(month_index, cal)
    return _fiscal_of_month_index(month_index, cal)[0]


def _bad_label(label: object, reason: str = "") -> PeriodError:
    detail = f" ({reason})" if reason else ""
    return PeriodError(f"invalid period label {label!r}{detail}; expected {ACCEPTED_FORMATS}")


def _parse_index(label: str) -> tuple[PeriodKind, int]:
    if not isinstance(label, str):
        raise _bad_label(label, "not a string")
    text = label.strip().upper()
    kind: PeriodKind
    if m := _MONTH_RE.fullmatch(text):
        year, month = int(m[1]), int(m[2])
        if not 1 <= month <= 12:
            raise _bad_label(label, f"month {month:02d} is not 01..12")
        index, kind = year * 12 + month - 1, "month"
    elif m := _QUARTER_RE.fullmatch(text):
        fy, quarter = int(m[1]), int(m[2])
        if not 1 <= quarter <= 4:
            raise _bad_label(label, f"quarter {quarter} is not 1..4")
        index, kind = fy * 4 + quarter - 1, "quarter"
    elif m := _YEAR_RE.fullmatch(text):
        index, kind = int(m[1]), "year"
    elif m := _WEEK_RE.fullmatch(text):
        year, week = int(m[1]), int(m[2])
        try:
            monday = date.fromisocalendar(year, week, 1)
        except ValueError as exc:
            raise _bad_label(label, f"ISO year {year} has no week {week:02d}") from exc
        index, kind = (monday.toordinal() - 1) // 7, "week"
    else:
        raise _bad_label(label)
    return kind, index


def _index_of_period(p: Period, cal: FiscalCalendar) -> int:
    kind, index = _parse_index(p.label)
    if kind != p.kind or _from_index(kind, index, cal) != p:
        raise PeriodError(
            f"period {p!r} does not belong to {cal!r}; pass the calendar it was built with"
        )
    return index


# ------------------------------------------------------------------------ public API


def parse_period(label: str, cal: FiscalCalendar = FiscalCalendar()) -> Period:
    """Turn user/URL input into a canonical period, failing loudly on anything ambiguous.

    Strict formats (4-digit years, 2-digit months/weeks) are intentional: accepting
    ``26-11`` or ``2026-W5`` would invite guesses about what the user meant.
    """
    kind, index = _parse_index(label)
    try:
        return _from_index(kind, index, cal)
    except PeriodError as exc:
        raise _bad_label(label, "outside the supported date range") from exc


def period_of(d: date, kind: str, cal: FiscalCalendar = FiscalCalendar()) -> Period:
    """The period of ``kind`` containing ``d`` -- how a deal date finds its quota bucket."""
    k = _check_kind(kind)
    return _from_index(k, _index_of_date(_as_date(d), k, cal), cal)


def shift(p: Period, n: int, cal: FiscalCalendar = FiscalCalendar()) -> Period:
    """``n`` periods later (earlier if negative), by index so month lengths never drift."""
    return _from_index(p.kind, _index_of_period(p, cal) + n, cal)


def previous(p: Period, cal: FiscalCalendar = FiscalCalendar()) -> Period:
    """The period immediately before ``p``: the usual period-over-period baseline."""
    return shift(p, -1, cal)


def same_period_last_year(p: Period, cal: FiscalCalendar = FiscalCalendar()) -> Period:
    """Year-over-year baseline that keeps the label's number (Q3 -> Q3, W10 -> W10).

    For weeks the ISO week number is kept rather than stepping back 52 weeks, so that the
    comparison reads naturally in reports; W53 falls back to W52 if last year had none.
    """
    index = _index_of_period(p, cal)
    if p.kind == "month":
        return _from_index("month", index - 12, cal)
    if p.kind == "quarter":
        return _from_index("quarter", index - 4, cal)
    if p.kind == "year":
        return _from_index("year", index - 1, cal)
    iso = p.start.isocalendar()
    last_year = iso.year - 1
    weeks_last_year = date(last_year, 12, 28).isocalendar().week
    monday = date.fromisocalendar(last_year, min(iso.week, weeks_last_year), 1)
    return _from_index("week", (monday.toordinal() - 1) // 7, cal)


def periods_between(
    start: date,
    end: date,
    kind: str,
    cal: FiscalCalendar = FiscalCalendar(),
) -> list[Period]:
    """Every period of ``kind`` overlapping ``[start, end]``, in order.

    Partial periods at either edge are included because reports must show a bucket for
    every date in range; an empty range (``end < start``) yields ``[]``.
    """
    k = _check_kind(kind)
    first, last = _as_date(start), _as_date(end)
    if last < first:
        return []
    lo, hi = _index_of_date(first, k, cal), _index_of_date(last, k, cal)
    return [_from_index(k, i, cal) for i in range(lo, hi + 1)]


def _boundaries_445(
    lo_days: int, hi_days: int, cal: FiscalCalendar
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Start (epoch days) and counterpart month index of every 4-4-5 month in range."""
    lo = date.fromordinal(lo_days + EPOCH_ORDINAL)
    hi = date.fromordinal(hi_days + EPOCH_ORDINAL)
    fy_lo = _fiscal_year_445(lo, cal)
    fy_hi = _fiscal_year_445(hi, cal)
    starts: list[int] = []
    months: list[int] = []
    for fy in range(fy_lo, fy_hi + 1):
        year_start = _start_445(fy, cal).toordinal() - EPOCH_ORDINAL
        first = _fy_first_month_index(fy, cal)
        for k, week in enumerate(_MONTH_START_WEEKS_445):
            starts.append(year_start + 7 * week)
            months.append(first + k)
    return np.asarray(starts, dtype=np.int64), np.asarray(months, dtype=np.int64)


def _indices(
    days: npt.NDArray[np.int64], kind: PeriodKind, cal: FiscalCalendar
) -> npt.NDArray[np.int64]:
    """Vectorised twin of :func:`_index_of_date` for non-missing epoch days."""
    if kind == "week":
        return (days + (EPOCH_ORDINAL - 1)) // 7
    if cal.kind == "calendar":
        month_index = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
        month_index = month_index + 1970 * 12
    else:
        starts, months = _boundaries_445(int(days.min()), int(days.max()), cal)
        month_index = months[np.searchsorted(starts, days, side="right") - 1]
    if kind == "month":
        return month_index
    t = month_index - (cal.start_month - 1) + (12 if cal.start_month != 1 else 0)
    fy, k = np.divmod(t, 12)
    if kind == "quarter":
        return cast(npt.NDArray[np.int64], fy * 4 + k // 3)
    return cast(npt.NDArray[np.int64], fy)


def label_dates(
    dates: pd.Series,
    kind: str,
    cal: FiscalCalendar = FiscalCalendar(),
) -> pd.Series:
    """Label a whole column of dates at once, for group-bys over millions of rows.

    Work per row is integer arithmetic (or one ``searchsorted`` for 4-4-5); strings are
    only formatted once per distinct period and then gathered, which is what keeps this
    usable on 10M-row frames. Returns ``string`` dtype with ``<NA>`` for missing dates,
    aligned to the input's index and name. Timezone-aware values are labelled by their
    local wall-clock date; strings are parsed by ``pandas.to_datetime``.
    """
    k = _check_kind(kind)
    days, mask = epoch_days(dates)
    out = np.full(len(days), None, dtype=object)
    valid = ~mask
    if valid.any():
        codes, uniques = pd.factorize(_indices(days[valid], k, cal))
        labeller = _LABELLERS[k]
        labels = np.array([labeller(int(i)) for i in uniques], dtype=object)
        out[valid] = labels[codes]
    return pd.Series(out, index=dates.index, name=dates.name, dtype="string")


def elapsed_fraction(p: Period, as_of: date) -> float:
    """Share of the period's calendar days elapsed by the end of ``as_of``.

    ``as_of`` counts as a whole day because reports run on the day's closed books;
    clamped so pace maths never sees values outside ``[0, 1]``.
    """
    elapsed = (_as_date(as_of) - p.start).days + 1
    return min(max(elapsed, 0), p.days) / p.days


def working_days(start: date, end: date, holidays: Iterable[date] = ()) -> int:
    """Mon-Fri days in the inclusive range ``[start, end]`` that are not holidays.

    Weekend holidays and duplicates are harmless; an empty range gives 0.
    """
    first, last = _as_date(start), _as_date(end)
    if last < first:
        return 0
    hols = np.array([_as_date(h) for h in holidays], dtype="datetime64[D]")
    return int(
        np.busday_count(
            np.datetime64(first, "D"),
            np.datetime64(last + timedelta(days=1), "D"),
            holidays=hols,
        )
    )


def elapsed_working_fraction(p: Period, as_of: date, holidays: Iterable[date] = ()) -> float:
    """Like :func:`elapsed_fraction` but in selling days, for pacing against quota.

    If the period has no working days at all (e.g. a week of holidays) the calendar-day
    fraction is returned instead, so pace stays defined and monotonic.
    """
    day = _as_date(as_of)
    hols = [_as_date(h) for h in holidays]  # materialise: may be a one-shot iterator
    total = working_days(p.start, p.end, hols)
    if total == 0:
        return elapsed_fraction(p, day)
    if day < p.start:
        return 0.0
    return working_days(p.start, min(day, p.end), hols) / total


MISSING_INDEX: Final = -1


def period_index(
    dates: pd.Series, kind: str, cal: FiscalCalendar = FiscalCalendar()
) -> npt.NDArray[np.int64]:
    """Integer index of each date's period (:data:`MISSING_INDEX` for missing dates).

    The integer twin of :func:`label_dates` for group-bys on millions of rows: consecutive
    periods have consecutive indices, and :func:`index_label` turns one back into its label.
    """
    k = _check_kind(kind)
    days, mask = epoch_days(dates)
    out = np.full(len(days), MISSING_INDEX, dtype=np.int64)
    valid = ~mask
    if valid.any():
        out[valid] = _indices(days[valid], k, cal)
    return out


def single_kind(labels: pd.Series, *, reader: str) -> PeriodKind:
    """The one period kind of ``labels`` ("month" when there are none); ``reader`` names the
    function that needs it, in the error raised for a mix of kinds."""
    distinct = pd.unique(labels.dropna().astype("string"))
    if len(distinct) == 0:
        return "month"
    kinds = {parse_period(str(label)).kind for label in distinct}
    if len(kinds) != 1:
        raise ValueError(f"{reader} needs one period kind per frame, got {sorted(kinds)}")
    return kinds.pop()


def index_label(kind: str, index: int) -> str:
    """The label of the period with that index (see :func:`period_index`)."""
    return _LABELLERS[_check_kind(kind)](int(index))


def period_from_index(kind: str, index: int, cal: FiscalCalendar = FiscalCalendar()) -> Period:
    return _from_index(_check_kind(kind), int(index), cal)
