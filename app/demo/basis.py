"""What every part of the demo generator shares: the config, the clock, the pipeline's
stages, and the vectorised date and id helpers (times are int64 seconds, dates int64 day
numbers since the Unix epoch; see :mod:`app.demo.generator`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
StrArray = npt.NDArray[np.str_]
ObjArray = npt.NDArray[np.object_]

WEAKNESSES: Final = ("activity", "opportunities", "win_rate", "deal_size", "cycle")
PIPELINE: Final = "default"
# (stage, probability, status) in the order a deal moves through the pipeline.
STAGES: Final = (
    ("Prospecting", 0.1, "open"),
    ("Qualification", 0.2, "open"),
    ("Proposal", 0.5, "open"),
    ("Negotiation", 0.8, "open"),
    ("Closed Won", 1.0, "won"),
    ("Closed Lost", 0.0, "lost"),
)
ACTIVITY_TYPES: Final = ("call", "email", "meeting", "task")

DAY: Final = 86_400
HOUR: Final = 3_600
WON, LOST, NEGOTIATION = 4, 5, 3
STAGE_NAMES: Final = np.array([s[0] for s in STAGES])
STAGE_PROBS: Final = np.array([s[1] for s in STAGES])

# Deals created this many months before the window still close inside it, so the first
# months of history are not artificially empty.
_WARMUP_MONTHS: Final = 4


def _utc_today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True)
class DemoConfig:
    seed: int = 42
    today: date = field(default_factory=_utc_today)
    months: int = 18
    teams: int = 4
    reps_per_team: int = 6
    weak_share: float = 0.35
    currencies: tuple[str, ...] = ("USD", "USD", "USD", "EUR", "GBP")
    activity_scale: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.today, datetime):
            # datetime subclasses date; day arithmetic below needs the bare calendar day.
            object.__setattr__(self, "today", self.today.date())
        if self.months < 1:
            raise ValueError("months must be >= 1")
        if self.teams < 1 or self.reps_per_team < 1:
            raise ValueError("teams and reps_per_team must be >= 1")
        if not 0.0 <= self.weak_share <= 1.0:
            raise ValueError("weak_share must be within 0..1")
        if not self.currencies:
            raise ValueError("currencies must not be empty")
        if not self.activity_scale > 0:
            raise ValueError("activity_scale must be > 0")


@dataclass(frozen=True)
class DemoData:
    teams: pd.DataFrame
    reps: pd.DataFrame
    deals: pd.DataFrame
    deal_stages: pd.DataFrame
    activities: pd.DataFrame
    targets: pd.DataFrame
    stages: pd.DataFrame


@dataclass(frozen=True)
class Clock:
    today_day: int
    month_today: int
    window_start_month: int
    sim_start_month: int
    window_start_s: int

    @classmethod
    def of(cls, cfg: DemoConfig) -> Clock:
        today_day = int(np.datetime64(cfg.today, "D").astype(np.int64))
        month_today = int(np.datetime64(cfg.today, "M").astype(np.int64))
        window_start_month = month_today - (cfg.months - 1)
        return cls(
            today_day=today_day,
            month_today=month_today,
            window_start_month=window_start_month,
            sim_start_month=window_start_month - _WARMUP_MONTHS,
            window_start_s=month_first_day(np.array([window_start_month]))[0] * DAY,
        )


def month_first_day(months: IntArray) -> IntArray:
    return months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)


def utc(seconds: IntArray, valid: BoolArray | None = None) -> pd.DatetimeIndex:
    stamps = seconds.astype("datetime64[s]")
    if valid is not None:
        stamps = np.where(valid, stamps, np.datetime64("NaT", "s"))
    return pd.DatetimeIndex(stamps).tz_localize("UTC").as_unit("us")


def dates(days: IntArray, valid: BoolArray | None = None) -> ObjArray:
    out: ObjArray = days.astype("datetime64[D]").astype(object)
    if valid is not None:
        out[~valid] = None
    return out


def ids(prefix: str, n: int, width: int) -> StrArray:
    if n == 0:  # np.char.zfill cannot size an empty array
        return np.array([], dtype=f"<U{width + len(prefix)}")
    return np.char.add(prefix, np.char.zfill(np.arange(1, n + 1).astype(str), width))


def touched(rng: np.random.Generator, start: IntArray, gap: IntArray, cutoff: IntArray) -> IntArray:
    """``start + gap``, or a random moment before ``cutoff`` when that would be later.

    Plain clipping would stamp many records with exactly the cutoff second.
    """
    room = np.maximum(cutoff - start, 0)
    squeezed = start + (rng.random(start.size) * room).astype(np.int64)
    return np.where(gap <= room, start + gap, squeezed)


def busday(days: IntArray, offset: IntArray, roll: Literal["forward", "backward"]) -> IntArray:
    moved = np.busday_offset(days.astype("datetime64[D]"), offset, roll=roll)
    return moved.astype(np.int64)
