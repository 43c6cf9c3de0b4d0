"""Seeded synthetic CRM data for ``quotagap demo``, the test-suite and the sandbox CRM.

The data is built the way a sales-ops analyst reads a funnel: activities create
opportunities, opportunities close at a win rate after a sales cycle, and won deals carry
a deal size. Every rep inherits their team's funnel with mild noise; a share of reps get
exactly one planted weakness, so a driver analysis run on this data has a known answer
(``reps.planted_weakness``).

The generator is pure: one ``numpy.random.Generator`` seeded from the config drives every
draw, there is no I/O, and the clock is ``DemoConfig.today`` (end of that day, UTC).
Internally times are int64 seconds and dates int64 day numbers since the Unix epoch, so
the per-deal and per-activity work is vectorised; Python loops only run over reps,
teams and months.

Its parts, in the order they draw: :mod:`app.demo.org` (teams and reps),
:mod:`app.demo.deals` (the monthly funnel and the deals), :mod:`app.demo.activities`, then
the targets here; :mod:`app.demo.basis` holds the config, the clock and the helpers they
share. The order of the draws is the data: a step moved between them changes every frame.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from app.demo.activities import build_activities
from app.demo.basis import (
    ACTIVITY_TYPES,
    PIPELINE,
    STAGES,
    WEAKNESSES,
    Clock,
    DemoConfig,
    DemoData,
)
from app.demo.deals import SIZE_SIGMA, build_deals, build_grid, season
from app.demo.org import Org, account_names, build_org

__all__ = [
    "ACTIVITY_TYPES",
    "PIPELINE",
    "STAGES",
    "WEAKNESSES",
    "DemoConfig",
    "DemoData",
    "generate",
]


def generate(config: DemoConfig | None = None) -> DemoData:
    """Build a full demo CRM data set. The same config always yields identical frames."""
    cfg = config if config is not None else DemoConfig()
    rng = np.random.default_rng(cfg.seed)
    clock = Clock.of(cfg)
    accounts = account_names(rng)
    org = build_org(cfg, rng, clock)
    grid = build_grid(cfg, rng, clock, org)
    deals = build_deals(rng, clock, org, grid, accounts)
    activities = build_activities(rng, org, grid, deals, accounts)
    return DemoData(
        teams=org.teams,
        reps=org.reps,
        deals=deals.frame,
        deal_stages=deals.stages,
        activities=activities,
        targets=_build_targets(cfg, rng, clock, org),
        stages=_stages_frame(),
    )


def _build_targets(
    cfg: DemoConfig, rng: np.random.Generator, clock: Clock, org: Org
) -> pd.DataFrame:
    # Quotas are planned a quarter at a time: through the end of the current (calendar)
    # quarter, so the quarter under way has its months' targets and rolls up (issue 16).
    plan_end = clock.month_today + 2 - clock.month_today % 3
    months = np.arange(clock.window_start_month, plan_end + 1, dtype=np.int64)
    start_month = org.start_day.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    last_month = org.last_day.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    # A rep still here has the quarter's plan; one who left has quota to their last month.
    last_month = np.where(last_month >= clock.month_today, plan_end, last_month)
    employed = (months[None, :] >= start_month[:, None]) & (months[None, :] <= last_month[:, None])
    seller, month_idx = np.nonzero(employed)
    team = org.team[seller]

    # Quota is set from what a typical rep in the team produces (expected value of the
    # team funnel, with the average seasonal lift), not from the rep's own history, so
    # reps with a weakness tend to miss.
    lift = float(season(np.arange(12, dtype=np.int64)).mean())
    acts = org.team_act_rate * 52.0 / 12.0 * lift
    won_deals = acts * org.team_conv * org.team_win
    won_revenue = won_deals * org.team_size * math.exp(SIZE_SIGMA**2 / 2.0)
    stretch = rng.uniform(1.0, 1.1, (org.key.size, 3))[seller]
    values = np.stack(
        [
            np.round(won_revenue[team] * stretch[:, 0], -2),
            np.round(acts[team] * cfg.activity_scale * stretch[:, 1] / 5.0) * 5.0,
            np.maximum(np.round(won_deals[team] * stretch[:, 2]), 1.0),
        ],
        axis=1,
    )
    metrics = np.array(["won_revenue", "activities", "won_deals"])
    periods = np.datetime_as_string(months.astype("datetime64[M]"), unit="M")
    return pd.DataFrame(
        {
            "rep_key": np.repeat(org.key[seller], 3),
            "metric": np.tile(metrics, seller.size),
            "period": np.repeat(periods[month_idx], 3),
            "value": values.ravel().astype(np.float64),
        }
    )


def _stages_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pipeline": [PIPELINE] * len(STAGES),
            "stage": [s[0] for s in STAGES],
            "order": list(range(1, len(STAGES) + 1)),
            "probability": [s[1] for s in STAGES],
            "status": [s[2] for s in STAGES],
        }
    )
