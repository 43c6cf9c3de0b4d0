"""Numbers in the plain-language reasons."""

from __future__ import annotations

import numpy as np

from analytics._text import fixed, thousands


def test_thousands_separates_and_rounds() -> None:
    assert list(thousands(np.array([1.4, 999.6, 12345.2, -2500.0]))) == [
        "1",
        "1,000",
        "12,345",
        "-2,500",
    ]


def test_a_value_that_is_not_a_number_is_not_printed_as_a_huge_negative_one() -> None:
    # Before: NaN and inf were cast to int64 and read "-9223372036854775808" in a reason.
    assert list(thousands(np.array([np.nan, np.inf, 3e20]))) == [
        "n/a",
        "n/a",
        "300,000,000,000,000,000,000",
    ]


def test_fixed_keeps_the_decimals() -> None:
    assert list(fixed(np.array([0.5, 1.0, 12.346]), 2)) == ["0.50", "1.00", "12.35"]
