"""Period labels as the API sees them: parsing errors become 422s naming the field."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from analytics.periods import FiscalCalendar, Period, PeriodError, parse_period
from app.core.exceptions import PeriodInputError


def parse(label: str, cal: FiscalCalendar, *, field: str = "period") -> Period:
    try:
        return parse_period(label, cal)
    except PeriodError as exc:
        raise PeriodInputError(str(exc), details=[{"field": field, "message": str(exc)}]) from exc


def utc_bounds(period: Period) -> tuple[datetime, datetime]:
    """[start, end) of a period as UTC instants, for filtering timestamps."""
    start = datetime.combine(period.start, time.min, UTC)
    return start, datetime.combine(period.end + timedelta(days=1), time.min, UTC)


def date_bounds(period: Period) -> tuple[date, date]:
    return period.start, period.end
