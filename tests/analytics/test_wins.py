"""Tests for analytics.wins; expectations are worked out by hand in the comments."""

from __future__ import annotations

from collections.abc import Collection
from datetime import date

import numpy as np
import pandas as pd
import pytest

from analytics.currency import UnknownCurrencyError
from analytics.wins import WIN_COLUMNS, wins

RATES = {"USD": 1.0, "EUR": 2.0}


Row = tuple[str, int, float, str, str, str | None]


def deals(rows: list[Row], *, deleted: Collection[str] = ()) -> pd.DataFrame:
    frame = pd.DataFrame(
        rows, columns=["deal_id", "rep_id", "amount", "currency", "status", "close_date"]
    )
    frame["close_date"] = pd.to_datetime(frame["close_date"])
    frame["is_deleted"] = frame["deal_id"].isin(list(deleted))
    return frame


def march(n: int, *, start: float = 1000.0) -> list[Row]:
    """n won March deals of 1000, 2000, ... (rep = deal number mod 3)."""
    return [(f"M{i}", i % 3, start * i, "USD", "won", "2026-03-15") for i in range(1, n + 1)]


def test_top_percentile_of_the_period() -> None:
    # 20 deals 1000..20000: the 95th percentile (linear) is 1000 + .95 x 19 x 1000 = 19,050, so
    # only the 20,000 deal qualifies; its percentile is 100 x 20 / 20 = 100.
    out = wins(deals(march(20)), rates=RATES)
    assert list(out.columns) == ["deal_id", "rep_id", *WIN_COLUMNS]
    assert list(out["deal_id"]) == ["M20"]
    row = out.iloc[0]
    assert row["amount"] == 20_000.0
    assert row["percentile"] == 100.0
    assert row["period"] == "2026-03"
    assert row["close_date"] == date(2026, 3, 15)
    assert bool(row["top_percentile"]) and not bool(row["above_threshold"])
    assert row["reason"] == "top 5% of 2026-03 won deals (percentile 100)"


def test_lower_percentile_and_ranking_order() -> None:
    # 90th percentile of 1000..20000 = 1000 + .9 x 19000 = 18,100: the 19,000 and 20,000 deals.
    out = wins(deals(march(20)), rates=RATES, top_percentile=90.0)
    assert list(out["deal_id"]) == ["M20", "M19"]
    assert out["percentile"].tolist() == [100.0, 95.0]
    assert out["reason"].iloc[1] == "top 10% of 2026-03 won deals (percentile 95)"


def test_percentile_rule_needs_enough_deals() -> None:
    # Five deals: "top 5%" is meaningless; only the absolute threshold can name a win.
    few = deals(march(5))
    assert wins(few, rates=RATES).empty
    out = wins(few, rates=RATES, min_amount=4000.0)
    assert list(out["deal_id"]) == ["M5", "M4"]
    assert out["reason"].iloc[0] == "amount 5,000 ≥ 4,000"
    assert wins(few, rates=RATES, min_deals=5)["deal_id"].tolist() == ["M5"]


def test_both_reasons_and_currency_conversion() -> None:
    rows = march(19)
    # 10,000 EUR at 2.0 = 20,000 in reporting currency: the period's largest deal.
    rows.append(("E1", 7, 10_000.0, "EUR", "won", "2026-03-20"))
    out = wins(deals(rows), rates=RATES, min_amount=15_000.0)
    assert out["deal_id"].tolist() == ["E1", "M19", "M18", "M17", "M16", "M15"]
    first = out.iloc[0]
    assert first["amount"] == 20_000.0 and first["rep_id"] == 7
    assert first["reason"] == "amount 20,000 ≥ 15,000; top 5% of 2026-03 won deals (percentile 100)"
    assert out.iloc[1]["reason"] == "amount 19,000 ≥ 15,000"
    with pytest.raises(UnknownCurrencyError):
        wins(deals([("X", 1, 1.0, "JPY", "won", "2026-03-01")]), rates=RATES)


def test_only_won_live_deals_count_and_periods_are_separate() -> None:
    rows = march(20)
    rows += [
        ("L1", 1, 1e9, "USD", "lost", "2026-03-10"),
        ("O1", 1, 1e9, "USD", "open", "2026-03-10"),
        ("D1", 1, 1e9, "USD", "won", "2026-03-10"),
        ("N1", 1, 1e9, "USD", "won", None),
        ("A1", 2, 500.0, "USD", "won", "2026-04-02"),
    ]
    out = wins(deals(rows, deleted={"D1"}), rates=RATES, min_amount=400.0, periods=["2026-04"])
    # Only April is kept; A1 is the single April deal (percentile 100, but n < 20).
    assert out["deal_id"].tolist() == ["A1"]
    assert not bool(out.iloc[0]["top_percentile"])
    march_only = wins(deals(rows, deleted={"D1"}), rates=RATES)
    assert march_only["deal_id"].tolist() == ["M20"]


def test_quarters_pool_their_months() -> None:
    rows = march(10) + [(f"F{i}", 1, 1500.0 * i, "USD", "won", "2026-02-10") for i in range(1, 11)]
    # Q1 holds all 20 deals; its 95th percentile is 13,500 + .05 x 1,500 = 13,575 (between the
    # two largest, F9 and F10), so only F10 (15,000) qualifies.
    out = wins(deals(rows), rates=RATES, kind="quarter")
    assert out["deal_id"].tolist() == ["F10"]
    assert out.iloc[0]["period"] == "2026-Q1"
    assert np.isclose(out.iloc[0]["percentile"], 100.0)
