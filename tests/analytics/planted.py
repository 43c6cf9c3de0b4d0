"""A generator of per-rep monthly metrics with planted weaknesses, to measure how well
:func:`analytics.drivers.driver_table` names them.

Each team has its own funnel (closed deals per rep and month drawn from 8 to 40, win rate,
deal size, cycle); healthy reps differ from it by a log-normal spread of 10% per driver, and
every month is drawn with sampling noise: Poisson activities and opportunities, binomial
conversion and wins, log-normal deal sizes (σ 0.7) summed per win, the month's median cycle
with the spread a median of that many wins has, a shared team-month swing of ±10% on volume.
A quarter of the reps carry one planted weakness of about half the team's level (a cycle 2.5x
as long) over the whole history; with ``collapse``, another tenth of the reps are healthy
until the last 3 months, when one driver falls to a ``collapse_factor`` of their level.

Run ``python -m tests.analytics.planted`` for the confusion matrices in docs/metrics.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from analytics.drivers import FOCUS_OF_DRIVER, DriverConfig, driver_table
from analytics.periods import index_label, period_index

WITH_ACTIVITIES = ("activity", "conversion", "win_rate", "deal_size", "cycle")
WITHOUT_ACTIVITIES = ("pipeline", "win_rate", "deal_size", "cycle")
FIRST = int(period_index(pd.Series(pd.to_datetime(["2025-01-15"])), "month")[0])


@dataclass(frozen=True)
class Org:
    seed: int
    activities: bool
    teams: int = 6
    reps_per_team: int = 8
    months: int = 15
    weak_share: float = 0.25
    collapse: bool = False
    collapse_factor: float = 0.15
    collapse_months: int = 3


def _multipliers(org: Org, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The reps (with ``planted`` and ``collapsed`` drivers) and each driver's multiplier."""
    n = org.teams * org.reps_per_team
    kinds = WITH_ACTIVITIES if org.activities else WITHOUT_ACTIVITIES
    order = rng.permutation(n)
    n_weak = round(n * org.weak_share)
    planted = np.full(n, None, dtype=object)
    planted[order[:n_weak]] = rng.choice(kinds, n_weak)
    collapsed = np.full(n, None, dtype=object)
    if org.collapse:
        n_col = round(n * 0.1)
        collapsed[order[n_weak : n_weak + n_col]] = rng.choice(kinds, n_col)
    spread = {d: np.exp(rng.normal(0.0, 0.10, n)) for d in (*kinds, "pipeline", "activity")}
    for d in kinds:
        factor = 2.5 if d == "cycle" else 0.5
        spread[d] = np.where(planted == d, spread[d] * factor, spread[d])
    reps = pd.DataFrame(
        {
            "rep_id": [f"R{i:03d}" for i in range(n)],
            "team_id": [f"T{i // org.reps_per_team}" for i in range(n)],
            "role": "rep",
            "planted": planted,
            "collapsed": collapsed,
        }
    )
    return reps, spread


def metrics(org: Org) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(monthly metrics keyed by rep_id, reps with their planted weakness)."""
    rng = np.random.default_rng(org.seed)
    reps, mult = _multipliers(org, rng)
    n, months = len(reps), org.months
    team = np.arange(n) // org.reps_per_team
    closed_base = rng.uniform(8, 40, org.teams)[team]
    win_base = rng.uniform(0.25, 0.40, org.teams)[team]
    size_base = rng.uniform(5_000, 30_000, org.teams)[team]
    cycle_base = rng.uniform(20, 60, org.teams)[team]
    throughput, conversion = 0.85, 0.08
    shape = (n, months)
    swing = np.exp(rng.normal(0.0, 0.10, (org.teams, months)))[team]
    late = np.arange(months) >= months - org.collapse_months

    def factor(driver: str) -> np.ndarray:
        fall = (reps["collapsed"].to_numpy() == driver)[:, None] & late[None, :]
        f = 1.0 / org.collapse_factor if driver == "cycle" else org.collapse_factor
        return np.where(fall, f, 1.0) * mult.get(driver, np.ones(n))[:, None]

    opps_rate = closed_base[:, None] / throughput * swing
    if org.activities:
        acts = rng.poisson(opps_rate / conversion * factor("activity"))
        opps = rng.binomial(acts, np.clip(conversion * factor("conversion"), 0, 1))
    else:
        acts = np.zeros(shape, dtype=np.int64)
        opps = rng.poisson(opps_rate * factor("pipeline"))
    closed = rng.poisson(np.maximum(opps, 0.5) * throughput * factor("throughput"))
    won = rng.binomial(closed, np.clip(win_base[:, None] * factor("win_rate"), 0, 1))
    size = size_base[:, None] * factor("deal_size")
    revenue = _sum_of_lognormals(won, size, rng)
    cycle = cycle_base[:, None] * factor("cycle")
    cycle_days = cycle * np.exp(rng.normal(0.0, 0.6 / np.sqrt(np.maximum(won, 1))))
    frame = pd.DataFrame(
        {
            "rep_id": np.repeat(reps["rep_id"].to_numpy(), months),
            "period_index": np.tile(FIRST + np.arange(months), n),
            "won_revenue": revenue.ravel(),
            "won_deals": won.ravel(),
            "closed_deals": closed.ravel(),
            "opportunities": opps.ravel(),
            "pipeline_created": (opps * size).ravel(),
            "activities": acts.ravel(),
            "sales_cycle_days": np.where(won > 0, cycle_days, np.nan).ravel(),
        }
    )
    frame["period"] = [index_label("month", int(i)) for i in frame["period_index"]]
    return frame, reps


def _sum_of_lognormals(count: np.ndarray, mean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Σ of ``count`` log-normal deal sizes with the given mean (σ 0.7) per cell."""
    flat, means = count.ravel(), np.broadcast_to(mean, count.shape).ravel()
    sigma = 0.7
    draws = rng.lognormal(np.repeat(np.log(means) - sigma**2 / 2, flat), sigma)
    ends = np.cumsum(flat)
    totals = np.add.reduceat(np.append(draws, 0.0), np.append(0, ends[:-1])) if len(draws) else 0
    return np.where(flat > 0, totals, 0.0).reshape(count.shape)


def named(org: Org, config: DriverConfig = DriverConfig()) -> pd.DataFrame:
    """Each rep's planted (or collapsed) weakness and the focus the drivers name in the last
    month: ``rep_id, truth, expected, focus, focus_window``."""
    frame, reps = metrics(org)
    last = frame["period"].iloc[org.months - 1]
    table = driver_table(frame, reps[["rep_id", "team_id", "role"]], config=config, periods=[last])
    out = table[["rep_id", "coaching_focus", "focus_window"]].merge(reps, on="rep_id")
    truth = out["planted"].where(out["planted"].notna(), out["collapsed"])
    return pd.DataFrame(
        {
            "rep_id": out["rep_id"],
            "truth": truth.fillna("healthy"),
            "collapse": out["collapsed"].notna(),
            "expected": truth.map(FOCUS_OF_DRIVER),
            "focus": out["coaching_focus"],
            "focus_window": out["focus_window"],
        }
    )


def trial(*, activities: bool, collapse: bool = False, seeds: range = range(24)) -> pd.DataFrame:
    return pd.concat(
        [named(Org(seed=s, activities=activities, collapse=collapse)) for s in seeds],
        ignore_index=True,
    )


def confusion(results: pd.DataFrame) -> pd.DataFrame:
    """Rows: the planted truth; columns: the focus named (``none`` when none)."""
    return pd.crosstab(results["truth"], results["focus"].fillna("none"))


def _markdown(table: pd.DataFrame) -> str:
    head = "| planted \\ named | " + " | ".join(map(str, table.columns)) + " |"
    rule = "|---" * (len(table.columns) + 1) + "|"
    rows = [
        f"| {i} | " + " | ".join(map(str, r)) + " |"
        for i, r in zip(table.index, table.values, strict=True)
    ]
    return "\n".join([head, rule, *rows])


if __name__ == "__main__":
    for acts in (True, False):
        for col in (False, True):
            r = trial(activities=acts, collapse=col)
            print(f"\nactivities={acts} collapse={col} ({len(r)} rep-periods)")
            print(_markdown(confusion(r)))
