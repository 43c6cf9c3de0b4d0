"""Tests for analytics.hygiene; expectations are worked out by hand in the comments.

as_of = Wednesday 2026-05-20 (ISO 2026-W21, Monday 05-18). Stale cutoff: 2026-04-20 00:00
(as_of − 30 days). Last complete ISO week: W20 (05-11..05-17); four weeks: W17 (04-20)..W20.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
import pytest

from analytics.currency import UnknownCurrencyError
from analytics.hygiene import HYGIENE_COLUMNS, hygiene

AS_OF = date(2026, 5, 20)
RATES = {"USD": 1.0, "EUR": 2.0}


def deal(
    ext: str,
    created: str,
    close: str,
    *,
    rep: int = 1,
    amount: float = 100.0,
    currency: str = "USD",
    status: str = "open",
    deleted: bool = False,
) -> dict[str, Any]:
    return {
        "external_id": ext,
        "rep_id": rep,
        "amount": amount,
        "currency": currency,
        "status": status,
        "created_at": pd.Timestamp(created, tz="UTC"),
        "close_date": pd.Timestamp(close),
        "is_deleted": deleted,
    }


def act(rep: int, when: str, ext: str | None = None, *, deleted: bool = False) -> dict[str, Any]:
    return {
        "rep_id": rep,
        "occurred_at": pd.Timestamp(when, tz="UTC"),
        "deal_external_id": ext,
        "is_deleted": deleted,
    }


DEALS = pd.DataFrame(
    [
        deal("D1", "2026-01-10", "2026-06-30"),  # touched 05-01: fine
        deal("D2", "2026-01-10", "2026-05-10"),  # past due; last touch 04-19 23:00: stale
        deal("D3", "2026-05-15", "2026-06-30", amount=50, currency="EUR"),  # touched before
        # it was created only: stale, amount 50 EUR = 100
        deal("D4", "2026-05-19", "2026-06-30"),  # brand new, never touched: stale
        deal("D5", "2026-03-01", "2026-05-20"),  # due today (not past due); touched after as_of
        deal("D6", "2026-01-10", "2026-04-01", status="won"),  # closed: ignored
        deal("D7", "2026-01-10", "2026-04-01", deleted=True),  # deleted: ignored
        deal("D8", "2026-05-21", "2026-04-01"),  # created after as_of: ignored
        deal("D9", "2026-01-10", "2026-06-30"),  # only a deleted activity: stale
        deal("D10", "2026-04-01", "2026-06-30"),  # touched exactly at the cutoff: fine
    ]
)
ACTS = pd.DataFrame(
    [
        act(1, "2026-05-01 10:00", "D1"),  # W18
        act(1, "2026-04-19 23:00", "D2"),  # W16: outside the four weeks
        act(1, "2026-05-10 12:00", "D3"),  # Sunday of W19
        act(1, "2026-05-21 09:00", "D5"),  # after as_of: ignored
        act(1, "2026-05-01 11:00", "D9", deleted=True),
        act(1, "2026-04-20 00:00", "D10"),  # first moment of W17
        *(act(2, "2026-05-12 10:00") for _ in range(4)),  # W20
        act(2, "2026-05-18 03:00"),  # W21 in UTC (current, incomplete); W20 in New York
    ]
)


def by_rep(frame: pd.DataFrame, rep: int) -> pd.Series:
    return frame[frame["rep_id"] == rep].iloc[0]


def test_past_due_and_stale_deals() -> None:
    out = hygiene(DEALS, ACTS, as_of=AS_OF, rates=RATES)
    assert list(out.columns) == ["rep_id", *HYGIENE_COLUMNS]
    r1 = by_rep(out, 1)
    # Open: D1 D2 D3 D4 D5 D9 D10 = 7 deals, 6 x 100 + D3 (100 after conversion) = 700.
    assert (r1["open_deals"], r1["open_amount"]) == (7, pytest.approx(700.0))
    assert (r1["past_due_deals"], r1["past_due_amount"]) == (1, pytest.approx(100.0))
    # Stale: D2, D3, D4, D5, D9.
    assert (r1["stale_deals"], r1["stale_amount"]) == (5, pytest.approx(500.0))


def test_activities_per_week_over_complete_iso_weeks() -> None:
    out = hygiene(DEALS, ACTS, as_of=AS_OF, rates=RATES)
    r1 = by_rep(out, 1)
    # W17..W20: 04-20 00:00, 05-01 10:00, 05-10 12:00 (the deleted one does not count).
    assert r1["activities_in_weeks"] == 3
    assert r1["activities_per_week"] == pytest.approx(0.75)
    assert (r1["weeks_from"], r1["weeks_to"]) == ("2026-W17", "2026-W20")
    r2 = by_rep(out, 2)
    assert r2["activities_in_weeks"] == 4
    assert r2["open_deals"] == 0 and r2["stale_amount"] == 0.0


def test_sunday_completes_its_week() -> None:
    out = hygiene(DEALS, ACTS, as_of=date(2026, 5, 24), rates=RATES)
    r2 = by_rep(out, 2)
    # W18..W21 now: the 05-12 and 05-18 activities all count.
    assert (r2["weeks_from"], r2["weeks_to"]) == ("2026-W18", "2026-W21")
    assert r2["activities_in_weeks"] == 5


def test_local_time_decides_the_day() -> None:
    out = hygiene(DEALS, ACTS, as_of=AS_OF, rates=RATES, tz="America/New_York")
    # 2026-05-18 03:00 UTC is 05-17 23:00 in New York (EDT, UTC-4): inside W20.
    assert by_rep(out, 2)["activities_in_weeks"] == 5
    r1 = by_rep(out, 1)
    # D10's touch at 04-20 00:00 UTC is 04-19 20:00 local: before the cutoff, so D10 is stale.
    # D8, created 05-21 00:00 UTC = 05-20 20:00 local, now exists by as_of: open, untouched and
    # due 04-01, so it is past due and stale too.
    assert r1["open_deals"] == 8
    assert r1["past_due_deals"] == 2
    assert r1["stale_deals"] == 7


def test_reps_frame_sets_the_rows_and_window_lengths() -> None:
    reps = pd.DataFrame({"rep_id": [1, 3]})
    out = hygiene(DEALS, ACTS, as_of=AS_OF, rates=RATES, reps=reps, stale_days=40, weeks=2)
    assert out["rep_id"].tolist() == [1, 3]
    r3 = by_rep(out, 3)
    assert (r3["open_deals"], r3["activities_per_week"]) == (0, 0.0)
    r1 = by_rep(out, 1)
    # Cutoff 04-10: D2's 04-19 touch is recent enough now -> stale D3, D4, D5, D9.
    assert r1["stale_deals"] == 4
    # Two weeks W19..W20: only the 05-10 activity.
    assert (r1["weeks_from"], r1["activities_in_weeks"]) == ("2026-W19", 1)
    assert r1["activities_per_week"] == pytest.approx(0.5)


def test_unknown_currency_is_an_error() -> None:
    bad = pd.DataFrame([deal("X", "2026-05-01", "2026-06-01", currency="JPY")])
    with pytest.raises(UnknownCurrencyError):
        hygiene(bad, ACTS, as_of=AS_OF, rates=RATES)
