"""Tests for analytics.periods.

Expectations are hand-computed from a calendar (weekday of Jan 1 etc. noted inline), not
re-derived with the code under test.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from analytics import periods
from analytics.periods import (
    FiscalCalendar,
    Period,
    PeriodError,
    elapsed_fraction,
    elapsed_working_fraction,
    label_dates,
    parse_period,
    period_of,
    periods_between,
    previous,
    same_period_last_year,
    shift,
    working_days,
)

CAL1 = FiscalCalendar()
CAL2 = FiscalCalendar(start_month=2)
CAL10 = FiscalCalendar(start_month=10)
C445_1 = FiscalCalendar(start_month=1, kind="445")
C445_2 = FiscalCalendar(start_month=2, kind="445")
C445_10 = FiscalCalendar(start_month=10, kind="445")
ALL_CALS = [CAL1, CAL2, CAL10, C445_1, C445_2, C445_10]
KINDS = ["week", "month", "quarter", "year"]

D = date


def cal_id(cal: FiscalCalendar) -> str:
    return f"{cal.kind}-m{cal.start_month}"


# ------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("label", "cal", "kind", "canonical", "start", "end"),
    [
        ("2026-11", CAL1, "month", "2026-11", D(2026, 11, 1), D(2026, 11, 30)),
        ("2024-02", CAL1, "month", "2024-02", D(2024, 2, 1), D(2024, 2, 29)),
        ("2026-q4", CAL1, "quarter", "2026-Q4", D(2026, 10, 1), D(2026, 12, 31)),
        ("2026-Q1", CAL1, "quarter", "2026-Q1", D(2026, 1, 1), D(2026, 3, 31)),
        (" fy2026 ", CAL1, "year", "FY2026", D(2026, 1, 1), D(2026, 12, 31)),
        # 2026-01-01 is a Thursday, so ISO 2026-W01 starts Mon 2025-12-29; +47 weeks.
        ("2026-w48", CAL1, "week", "2026-W48", D(2026, 11, 23), D(2026, 11, 29)),
        ("2020-W53", CAL1, "week", "2020-W53", D(2020, 12, 28), D(2021, 1, 3)),
        ("2026-W53", CAL1, "week", "2026-W53", D(2026, 12, 28), D(2027, 1, 3)),
        ("2025-W01", CAL1, "week", "2025-W01", D(2024, 12, 30), D(2025, 1, 5)),
        # start_month=2: FY named by the year it ends in.
        ("FY2026", CAL2, "year", "FY2026", D(2025, 2, 1), D(2026, 1, 31)),
        ("2026-Q1", CAL2, "quarter", "2026-Q1", D(2025, 2, 1), D(2025, 4, 30)),
        ("2026-Q4", CAL2, "quarter", "2026-Q4", D(2025, 11, 1), D(2026, 1, 31)),
        ("2026-01", CAL2, "month", "2026-01", D(2026, 1, 1), D(2026, 1, 31)),
        # start_month=10
        ("FY2026", CAL10, "year", "FY2026", D(2025, 10, 1), D(2026, 9, 30)),
        ("2026-Q1", CAL10, "quarter", "2026-Q1", D(2025, 10, 1), D(2025, 12, 31)),
        ("2026-Q2", CAL10, "quarter", "2026-Q2", D(2026, 1, 1), D(2026, 3, 31)),
        ("2026-Q4", CAL10, "quarter", "2026-Q4", D(2026, 7, 1), D(2026, 9, 30)),
        # Weeks ignore the fiscal calendar.
        ("2026-W48", C445_2, "week", "2026-W48", D(2026, 11, 23), D(2026, 11, 29)),
    ],
)
def test_parse_known_labels(
    label: str, cal: FiscalCalendar, kind: str, canonical: str, start: date, end: date
) -> None:
    p = parse_period(label, cal)
    assert p == Period(kind=kind, label=canonical, start=start, end=end)  # type: ignore[arg-type]
    assert p.days == (end - start).days + 1


@pytest.mark.parametrize("cal", ALL_CALS, ids=cal_id)
@pytest.mark.parametrize("label", ["2026-11", "2026-Q3", "FY2026", "2026-W48", "2020-W53"])
def test_labels_round_trip(label: str, cal: FiscalCalendar) -> None:
    p = parse_period(label, cal)
    assert p.label == label
    assert parse_period(p.label.lower(), cal) == p
    assert period_of(p.start, p.kind, cal) == p
    assert period_of(p.end, p.kind, cal) == p
    assert period_of(p.start - timedelta(days=1), p.kind, cal) != p
    assert period_of(p.end + timedelta(days=1), p.kind, cal) != p


@pytest.mark.parametrize(
    "bad",
    [
        "2026-13",
        "2026-00",
        "2026-Q5",
        "2026-Q0",
        "2025-W53",  # 2025-01-01 is a Wednesday in a non-leap year: 52 ISO weeks
        "2026-W54",
        "2026-W00",
        "2026-W5",
        "26-11",
        "2026-1",
        "FY26",
        "FY 2026",
        "2026",
        "",
        "   ",
        "2026-11-01",
        "Q4-2026",
        "\uff12\uff10\uff12\uff16-11",  # full-width digits are not accepted
        "0000-01",
        "FY0000",
    ],
)
def test_bad_labels_raise_naming_value_and_formats(bad: str) -> None:
    with pytest.raises(PeriodError) as err:
        parse_period(bad)
    message = str(err.value)
    assert repr(bad) in message
    assert "YYYY-MM" in message and "YYYY-Qn" in message and "FYYYYY" in message
    assert "YYYY-Www" in message


def test_period_error_is_value_error() -> None:
    with pytest.raises(ValueError, match="2026-13"):
        parse_period("2026-13")


def test_non_string_label_rejected() -> None:
    with pytest.raises(PeriodError):
        parse_period(202611)  # type: ignore[arg-type]


def test_fy_before_year_one_rejected_for_offset_calendar() -> None:
    # FY0001 with start_month=2 would start in year 0.
    with pytest.raises(PeriodError, match="FY0001"):
        parse_period("FY0001", CAL2)
    assert parse_period("FY0001", CAL1).start == D(1, 1, 1)


@pytest.mark.parametrize(
    "kwargs", [{"start_month": 0}, {"start_month": 13}, {"kind": "454"}, {"start_month": True}]
)
def test_fiscal_calendar_validates(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FiscalCalendar(**kwargs)  # type: ignore[arg-type]


# ----------------------------------------------------------------------- period_of


@pytest.mark.parametrize(
    ("d", "kind", "cal", "label"),
    [
        (D(2024, 12, 30), "week", CAL1, "2025-W01"),
        (D(2021, 1, 3), "week", CAL1, "2020-W53"),
        (D(2027, 1, 1), "week", CAL1, "2026-W53"),
        (D(2023, 1, 1), "week", CAL1, "2022-W52"),
        (D(2026, 1, 15), "year", CAL2, "FY2026"),
        (D(2026, 2, 1), "year", CAL2, "FY2027"),
        (D(2025, 2, 1), "quarter", CAL2, "2026-Q1"),
        (D(2026, 1, 31), "quarter", CAL2, "2026-Q4"),
        (D(2025, 9, 30), "year", CAL10, "FY2025"),
        (D(2025, 10, 1), "year", CAL10, "FY2026"),
        (D(2026, 1, 1), "quarter", CAL10, "2026-Q2"),
        (D(2026, 9, 30), "quarter", CAL10, "2026-Q4"),
        (D(2026, 12, 31), "quarter", CAL1, "2026-Q4"),
        (D(2026, 11, 30), "month", CAL1, "2026-11"),
        # 4-4-5, start_month=1: FY2026 starts Mon 2025-12-29 (Jan 1 2026 is a Thursday).
        (D(2025, 12, 29), "year", C445_1, "FY2026"),
        (D(2025, 12, 28), "year", C445_1, "FY2025"),
        (D(2025, 12, 29), "month", C445_1, "2026-01"),
        (D(2027, 1, 3), "month", C445_1, "2026-12"),
        (D(2027, 1, 3), "quarter", C445_1, "2026-Q4"),
        (D(2026, 11, 23), "month", C445_1, "2026-12"),
        (D(2026, 11, 22), "month", C445_1, "2026-11"),
        # 4-4-5, start_month=2: FY2027 starts Mon 2026-02-02 (Feb 1 2026 is a Sunday).
        (D(2026, 2, 1), "month", C445_2, "2026-01"),
        (D(2026, 2, 1), "year", C445_2, "FY2026"),
        (D(2026, 2, 2), "year", C445_2, "FY2027"),
    ],
)
def test_period_of(d: date, kind: str, cal: FiscalCalendar, label: str) -> None:
    p = period_of(d, kind, cal)
    assert p.label == label
    assert p.contains(d)


def test_period_of_accepts_datetimes_and_timestamps() -> None:
    assert period_of(datetime(2026, 11, 30, 23, 59), "month").label == "2026-11"
    assert period_of(pd.Timestamp("2026-12-31 23:00"), "quarter").label == "2026-Q4"


def test_period_of_rejects_unknown_kind() -> None:
    with pytest.raises(PeriodError, match="fortnight"):
        period_of(D(2026, 1, 1), "fortnight")


def test_contains_and_days() -> None:
    p = parse_period("2024-02")
    assert p.days == 29
    assert p.contains(D(2024, 2, 1)) and p.contains(D(2024, 2, 29))
    assert not p.contains(D(2024, 3, 1)) and not p.contains(D(2024, 1, 31))
    assert p.contains(datetime(2024, 2, 29, 23, 59))


def test_periods_sort_chronologically_within_kind() -> None:
    labels = ["2026-W10", "2025-W52", "2026-W02"]
    assert [p.label for p in sorted(parse_period(x) for x in labels)] == [
        "2025-W52",
        "2026-W02",
        "2026-W10",
    ]


# ---------------------------------------------------------------------------- 4-4-5


@pytest.mark.parametrize(
    ("label", "cal", "start", "end"),
    [
        ("FY2026", C445_1, D(2025, 12, 29), D(2027, 1, 3)),  # 53 weeks
        ("FY2025", C445_1, D(2024, 12, 30), D(2025, 12, 28)),  # 52 weeks
        ("2026-01", C445_1, D(2025, 12, 29), D(2026, 1, 25)),
        ("2026-03", C445_1, D(2026, 2, 23), D(2026, 3, 29)),
        ("2026-Q1", C445_1, D(2025, 12, 29), D(2026, 3, 29)),
        ("2026-11", C445_1, D(2026, 10, 26), D(2026, 11, 22)),
        ("2026-12", C445_1, D(2026, 11, 23), D(2027, 1, 3)),  # 4+1 weeks + 53rd week
        ("2026-Q4", C445_1, D(2026, 9, 28), D(2027, 1, 3)),
        # start_month=2: Feb 1 2025 is a Saturday -> Mon Feb 3.
        ("FY2026", C445_2, D(2025, 2, 3), D(2026, 2, 1)),
        ("2025-02", C445_2, D(2025, 2, 3), D(2025, 3, 2)),
        ("2026-01", C445_2, D(2025, 12, 29), D(2026, 2, 1)),
        # start_month=10: Oct 1 2025 is a Wednesday -> Mon Sep 29.
        ("FY2026", C445_10, D(2025, 9, 29), D(2026, 9, 27)),
        ("2026-Q1", C445_10, D(2025, 9, 29), D(2025, 12, 28)),
    ],
)
def test_445_known_boundaries(label: str, cal: FiscalCalendar, start: date, end: date) -> None:
    p = parse_period(label, cal)
    assert (p.start, p.end) == (start, end)


@pytest.mark.parametrize("cal", [C445_1, C445_2, C445_10], ids=cal_id)
def test_445_structure(cal: FiscalCalendar) -> None:
    week_counts = set()
    prev_year: Period | None = None
    for fy in range(2010, 2041):
        year = parse_period(f"FY{fy}", cal)
        assert year.start.weekday() == 0
        nominal = D(fy if cal.start_month == 1 else fy - 1, cal.start_month, 1)
        assert abs((year.start - nominal).days) <= 3
        assert year.days % 7 == 0
        weeks = year.days // 7
        assert weeks in (52, 53)
        week_counts.add(weeks)
        if prev_year is not None:
            assert year.start == prev_year.end + timedelta(days=1)
        prev_year = year

        months = [period_of(year.start, "month", cal)]
        while months[-1].end < year.end:
            months.append(shift(months[-1], 1, cal))
        assert len(months) == 12
        assert months[0].start == year.start and months[-1].end == year.end
        for a, b in itertools.pairwise(months):
            assert b.start == a.end + timedelta(days=1)
        month_weeks = [m.days // 7 for m in months]
        assert all(m.days % 7 == 0 for m in months)
        assert month_weeks == [4, 4, 5] * 3 + [4, 4, 5 if weeks == 52 else 6]

        quarters = [parse_period(f"{fy}-Q{q}", cal) for q in (1, 2, 3, 4)]
        assert [q.days for q in quarters] == [91, 91, 91, 91 if weeks == 52 else 98]
        assert quarters[0].start == year.start and quarters[-1].end == year.end
        for qi, q in enumerate(quarters):
            assert q.start == months[3 * qi].start and q.end == months[3 * qi + 2].end
    assert week_counts == {52, 53}


def test_445_month_label_is_fiscal_month_k() -> None:
    # start_month=2: "2026-01" is the 12th fiscal month of FY2026, "2025-02" the 1st.
    year = parse_period("FY2026", C445_2)
    assert parse_period("2025-02", C445_2).start == year.start
    assert parse_period("2026-01", C445_2).end == year.end


def test_period_from_another_calendar_is_rejected() -> None:
    q = parse_period("2026-Q1", CAL2)
    with pytest.raises(PeriodError, match="does not belong"):
        shift(q, 1)  # default calendar: 2026-Q1 means something else there
    m445 = parse_period("2026-11", C445_1)
    with pytest.raises(PeriodError):
        previous(m445, CAL1)


# ------------------------------------------------------------------ shift & friends


@pytest.mark.parametrize(
    ("label", "n", "cal", "expected_label", "expected_start"),
    [
        ("2026-W53", 1, CAL1, "2027-W01", D(2027, 1, 4)),
        ("2025-W01", -1, CAL1, "2024-W52", D(2024, 12, 23)),
        ("2020-W53", 0, CAL1, "2020-W53", D(2020, 12, 28)),
        ("2026-12", 1, CAL1, "2027-01", D(2027, 1, 1)),
        ("2026-01", -1, CAL1, "2025-12", D(2025, 12, 1)),
        ("2026-11", 25, CAL1, "2028-12", D(2028, 12, 1)),
        ("2026-Q4", 1, CAL1, "2027-Q1", D(2027, 1, 1)),
        ("2026-Q1", -5, CAL1, "2024-Q4", D(2024, 10, 1)),
        ("2026-Q4", 1, CAL2, "2027-Q1", D(2026, 2, 1)),
        ("2026-Q1", -1, CAL10, "2025-Q4", D(2025, 7, 1)),
        ("FY2026", -1, CAL1, "FY2025", D(2025, 1, 1)),
        ("FY2026", 2, CAL2, "FY2028", D(2027, 2, 1)),
        ("2026-12", 1, C445_1, "2027-01", D(2027, 1, 4)),
        ("2026-Q4", 1, C445_1, "2027-Q1", D(2027, 1, 4)),
        ("FY2027", -1, C445_1, "FY2026", D(2025, 12, 29)),
    ],
)
def test_shift(
    label: str, n: int, cal: FiscalCalendar, expected_label: str, expected_start: date
) -> None:
    p = shift(parse_period(label, cal), n, cal)
    assert (p.label, p.start) == (expected_label, expected_start)
    assert shift(p, -n, cal) == parse_period(label, cal)


@pytest.mark.parametrize("cal", ALL_CALS, ids=cal_id)
@pytest.mark.parametrize("kind", KINDS)
def test_shift_by_one_is_contiguous(kind: str, cal: FiscalCalendar) -> None:
    p = period_of(D(2019, 6, 15), kind, cal)
    for _ in range(60):
        nxt = shift(p, 1, cal)
        assert nxt.start == p.end + timedelta(days=1)
        assert previous(nxt, cal) == p
        p = nxt


@pytest.mark.parametrize(
    ("label", "cal", "expected"),
    [
        ("2026-11", CAL1, "2025-11"),
        ("2026-01", CAL1, "2025-01"),
        ("2026-Q4", CAL1, "2025-Q4"),
        ("2026-Q1", CAL2, "2025-Q1"),
        ("FY2026", CAL10, "FY2025"),
        ("2026-W10", CAL1, "2025-W10"),
        ("2026-W53", CAL1, "2025-W52"),  # ISO 2025 has no W53
        ("2021-W01", CAL1, "2020-W01"),
        ("2026-11", C445_1, "2025-11"),
        ("FY2026", C445_1, "FY2025"),
    ],
)
def test_same_period_last_year(label: str, cal: FiscalCalendar, expected: str) -> None:
    p = same_period_last_year(parse_period(label, cal), cal)
    assert p == parse_period(expected, cal)


def test_same_period_last_year_w53_to_w53() -> None:
    # ISO 2015 and 2020 both have 53 weeks, but 2016..2019 do not; 2021-W53 doesn't exist.
    p = same_period_last_year(parse_period("2016-W01"))
    assert p.label == "2015-W01"
    assert same_period_last_year(parse_period("2020-W53")).label == "2019-W52"


@pytest.mark.parametrize(
    ("start", "end", "kind", "cal", "labels"),
    [
        (
            D(2026, 1, 15),
            D(2026, 4, 1),
            "month",
            CAL1,
            ["2026-01", "2026-02", "2026-03", "2026-04"],
        ),
        (D(2026, 1, 31), D(2026, 2, 1), "quarter", CAL2, ["2026-Q4", "2027-Q1"]),
        (D(2026, 12, 30), D(2027, 1, 5), "week", CAL1, ["2026-W53", "2027-W01"]),
        (D(2025, 9, 30), D(2025, 10, 1), "year", CAL10, ["FY2025", "FY2026"]),
        (D(2026, 5, 5), D(2026, 5, 5), "year", CAL1, ["FY2026"]),
        (D(2026, 11, 20), D(2026, 11, 25), "month", C445_1, ["2026-11", "2026-12"]),
        (D(2026, 5, 5), D(2026, 5, 4), "month", CAL1, []),
    ],
)
def test_periods_between(
    start: date, end: date, kind: str, cal: FiscalCalendar, labels: list[str]
) -> None:
    got = periods_between(start, end, kind, cal)
    assert [p.label for p in got] == labels
    if got:
        assert got[0].contains(start) and got[-1].contains(end)


# --------------------------------------------------------------------- label_dates


def _random_dates(seed: int, n: int = 3000) -> pd.Series:
    rng = np.random.default_rng(seed)
    base = np.datetime64("1995-01-01T00:00:00", "s")
    offsets = rng.integers(0, 45 * 366 * 86400, size=n)
    values = base + offsets.astype("timedelta64[s]")
    # Every day within 4 days of a month start, where 4-4-5 years and ISO weeks turn over:
    # random sampling would rarely hit those edges.
    edges = [
        np.datetime64(D(y, m, 1) + timedelta(days=k), "s")
        for y in (2020, 2026, 2027)
        for m in range(1, 13)
        for k in range(-4, 4)
    ]
    return pd.Series(np.concatenate([values, np.array(edges, dtype="datetime64[s]")]))


@pytest.mark.parametrize("cal", ALL_CALS, ids=cal_id)
@pytest.mark.parametrize("kind", KINDS)
def test_label_dates_matches_period_of(kind: str, cal: FiscalCalendar) -> None:
    dates = _random_dates(seed=KINDS.index(kind) * 100 + cal.start_month + len(cal.kind))
    got = label_dates(dates, kind, cal)
    expected = [period_of(ts.date(), kind, cal).label for ts in dates]
    assert got.tolist() == expected
    assert isinstance(got.dtype, pd.StringDtype)


@pytest.mark.parametrize("cal", [CAL2, C445_1], ids=cal_id)
@pytest.mark.parametrize("kind", KINDS)
def test_label_dates_nat_and_index(kind: str, cal: FiscalCalendar) -> None:
    dates = pd.Series(
        [pd.Timestamp("2026-11-23"), pd.NaT, pd.Timestamp("2025-02-01 13:45")],
        index=[10, 20, 30],
        name="closed_at",
    )
    got = label_dates(dates, kind, cal)
    assert list(got.index) == [10, 20, 30]
    assert got.name == "closed_at"
    assert got.isna().tolist() == [False, True, False]
    assert got[20] is pd.NA
    assert got[10] == period_of(D(2026, 11, 23), kind, cal).label
    assert got[30] == period_of(D(2025, 2, 1), kind, cal).label


def test_label_dates_object_dates_and_tz() -> None:
    objs = pd.Series([D(2024, 12, 30), None, D(2026, 2, 1)], dtype=object)
    assert label_dates(objs, "week").tolist() == ["2025-W01", pd.NA, "2026-W05"]
    assert label_dates(objs, "year", CAL2).tolist() == ["FY2025", pd.NA, "FY2027"]
    # 2026-01-01 01:00 in Tokyo is still 2025 in UTC; the local date wins.
    tz = pd.Series(pd.to_datetime(["2026-01-01 01:00"]).tz_localize("Asia/Tokyo"))
    assert label_dates(tz, "month").tolist() == ["2026-01"]


def test_label_dates_edge_inputs() -> None:
    empty = pd.Series([], dtype="datetime64[ns]")
    assert len(label_dates(empty, "month")) == 0
    all_nat = pd.Series([pd.NaT, pd.NaT], dtype="datetime64[ns]")
    assert label_dates(all_nat, "quarter", C445_2).isna().all()
    # Pre-epoch dates floor to the right day (numpy truncation pitfalls).
    old = pd.Series(pd.to_datetime(["1969-12-31 23:00", "1900-03-01 05:00"]))
    assert label_dates(old, "month").tolist() == ["1969-12", "1900-03"]
    with pytest.raises(PeriodError):
        label_dates(old, "day")


def test_label_dates_formats_once_per_period(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    original: Callable[[int], str] = periods._LABELLERS["month"]

    def counting(index: int) -> str:
        calls.append(index)
        return original(index)

    monkeypatch.setitem(periods._LABELLERS, "month", counting)
    dates = pd.Series(pd.date_range("2026-01-01", "2026-03-31 23:00", freq="h"))
    got = label_dates(dates, "month")
    assert got.nunique() == 3
    assert len(calls) == 3  # not one per row (2160 rows)


# ------------------------------------------------------------------ elapsed / pace


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        (D(2026, 10, 31), 0.0),
        (D(2026, 11, 1), 1 / 30),
        (D(2026, 11, 15), 0.5),
        (D(2026, 11, 29), 29 / 30),
        (D(2026, 11, 30), 1.0),
        (D(2027, 1, 5), 1.0),
        (datetime(2026, 11, 15, 8, 0), 0.5),
    ],
)
def test_elapsed_fraction(as_of: date, expected: float) -> None:
    assert elapsed_fraction(parse_period("2026-11"), as_of) == pytest.approx(expected)


THANKSGIVING = [D(2026, 11, 26), D(2026, 11, 27)]  # Thu, Fri


@pytest.mark.parametrize(
    ("start", "end", "holidays", "expected"),
    [
        # Nov 2026: the 1st is a Sunday; Mon 2..Fri 27 is 4 full weeks, plus Mon 30.
        (D(2026, 11, 1), D(2026, 11, 30), [], 21),
        (D(2026, 11, 1), D(2026, 11, 30), THANKSGIVING, 19),
        (D(2026, 11, 1), D(2026, 11, 30), [*THANKSGIVING, D(2026, 11, 28), THANKSGIVING[0]], 19),
        (D(2026, 11, 2), D(2026, 11, 2), [], 1),
        (D(2026, 11, 28), D(2026, 11, 29), [], 0),
        (D(2026, 11, 5), D(2026, 11, 4), [], 0),
        (D(2026, 12, 28), D(2027, 1, 8), [D(2027, 1, 1)], 9),
    ],
)
def test_working_days(start: date, end: date, holidays: list[date], expected: int) -> None:
    assert working_days(start, end, holidays) == expected


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [
        (D(2026, 10, 30), 0.0),
        (D(2026, 11, 1), 0.0),  # Sunday: no working day elapsed yet
        (D(2026, 11, 2), 1 / 19),
        (D(2026, 11, 13), 10 / 19),
        (D(2026, 11, 26), 18 / 19),  # holiday adds nothing
        (D(2026, 11, 29), 18 / 19),
        (D(2026, 11, 30), 1.0),
        (D(2026, 12, 15), 1.0),
    ],
)
def test_elapsed_working_fraction(as_of: date, expected: float) -> None:
    p = parse_period("2026-11")
    got = elapsed_working_fraction(p, as_of, iter(THANKSGIVING))  # one-shot iterator is fine
    assert got == pytest.approx(expected)


def test_elapsed_working_fraction_without_working_days_falls_back_to_calendar() -> None:
    week = parse_period("2026-W48")  # Mon 2026-11-23 .. Sun 11-29
    holidays = [D(2026, 11, 23) + timedelta(days=i) for i in range(5)]
    assert working_days(week.start, week.end, holidays) == 0
    assert elapsed_working_fraction(week, D(2026, 11, 25), holidays) == pytest.approx(3 / 7)
