"""The demo's deals: opportunities from each seller's monthly funnel, a close after a sales
cycle (pulled to quarter ends), a stage history, and the CRM noise of real data (foreign
currencies, past-due close dates, deletions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from app.demo.basis import (
    DAY,
    HOUR,
    LOST,
    NEGOTIATION,
    PIPELINE,
    STAGE_NAMES,
    STAGE_PROBS,
    WON,
    BoolArray,
    Clock,
    DemoConfig,
    FloatArray,
    IntArray,
    StrArray,
    busday,
    dates,
    ids,
    month_first_day,
    touched,
    utc,
)
from app.demo.org import Org, pick_accounts

SIZE_SIGMA: Final = 0.6
_CYCLE_SIGMA: Final = 0.45
_LOST_AT_STAGE: Final = (0.30, 0.30, 0.25, 0.15)
_REOPEN_SHARE: Final = 0.012
_DELETED_SHARE: Final = 0.01
_FOREIGN_SHARE: Final = 0.03
_PAST_DUE_SHARE: Final = 0.15

# Units of currency per USD; rough, only used to make foreign-currency deals plausible.
_FX_PER_USD: Final = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "CAD": 1.37, "AUD": 1.53}
_FOREIGN_POOL: Final = ("USD", "EUR", "GBP", "CAD", "AUD")
_DEAL_KINDS: Final = ("New Business", "Expansion", "Upsell", "Renewal", "Pilot", "Migration")
_DEAL_KIND_MIX: Final = (0.40, 0.20, 0.15, 0.12, 0.08, 0.05)


@dataclass(frozen=True)
class Grid:
    """Seller x month funnel volumes over the simulated months (warm-up included)."""

    months: IntArray
    lo_day: IntArray
    busdays: IntArray
    activities: IntArray
    opportunities: IntArray


@dataclass(frozen=True)
class Deals:
    frame: pd.DataFrame
    stages: pd.DataFrame
    seller: IntArray
    created_s: IntArray
    end_s: IntArray
    external_id: StrArray
    account: StrArray


@dataclass(frozen=True)
class _Plan:
    """The deals kept (closed in the window, or still open), in their final order, each
    with its planned stage path (``code``/``at``, ``valid`` where it happened by now)."""

    seller: IntArray
    team: IntArray
    created_s: IntArray
    close_s: IntArray
    amount: FloatArray
    current: IntArray
    last_s: IntArray
    closed: BoolArray
    code: IntArray
    valid: BoolArray
    at: IntArray
    cutoff: IntArray


def season(months: IntArray) -> FloatArray:
    # Modest end-of-quarter and Q4 lift in prospecting volume.
    month_of_year = months % 12
    lift: FloatArray = 1.0 + 0.06 * (month_of_year % 3 == 2) + 0.08 * (month_of_year >= 9)
    return lift


def build_grid(cfg: DemoConfig, rng: np.random.Generator, clock: Clock, org: Org) -> Grid:
    months = np.arange(clock.sim_start_month, clock.month_today + 1, dtype=np.int64)
    first = month_first_day(months)
    last = month_first_day(months + 1) - 1
    lo = np.maximum(first[None, :], org.start_day[:, None])
    hi = np.minimum(last[None, :], org.last_day[:, None])
    busdays = np.maximum(
        np.busday_count(lo.astype("datetime64[D]"), (hi + 1).astype("datetime64[D]")), 0
    ).astype(np.int64)
    tenure = (lo + hi) / 2.0 - org.start_day[:, None]
    # New hires build their book over their first ~3 months.
    ramp = np.clip(0.45 + 0.55 * tenure / 90.0, 0.45, 1.0)
    expected = (
        org.act_rate[:, None] / 5.0 * busdays * season(months)[None, :] * ramp * cfg.activity_scale
    )
    activities = rng.poisson(expected).astype(np.int64)
    # Opportunities follow prospecting effort, independent of activity_scale, so scaled-up
    # benchmark data keeps a realistic deal volume.
    opportunities = rng.poisson(activities / cfg.activity_scale * org.conv[:, None])
    in_window = months >= clock.window_start_month
    return Grid(
        months=months,
        lo_day=lo,
        busdays=busdays,
        activities=activities * in_window[None, :],
        opportunities=opportunities.astype(np.int64),
    )


def business_days(
    rng: np.random.Generator, grid: Grid, counts: IntArray
) -> tuple[IntArray, IntArray]:
    """Spread each cell's count over the business days the seller worked that month."""
    n_months = grid.months.size
    cell = np.repeat(np.arange(counts.size), counts.ravel())
    seller = (cell // n_months).astype(np.int64)
    offset = (rng.random(cell.size) * grid.busdays.ravel()[cell]).astype(np.int64)
    days = np.busday_offset(
        grid.lo_day.ravel()[cell].astype("datetime64[D]"), offset, roll="forward"
    ).astype(np.int64)
    return seller, days


def build_deals(
    rng: np.random.Generator, clock: Clock, org: Org, grid: Grid, accounts: StrArray
) -> Deals:
    plan = _plan_deals(rng, clock, org, grid)
    n = plan.seller.size
    external_id = ids("D", n, 6)
    currency, amount = _deal_currency(rng, org, plan)
    account = pick_accounts(rng, accounts, plan.team, org.currency.size)
    kind = np.array(_DEAL_KINDS)[rng.choice(len(_DEAL_KINDS), n, p=_DEAL_KIND_MIX)]
    name = np.char.add(np.char.add(account, " - "), kind)
    close_date = _close_dates(rng, clock, org, plan)
    is_deleted, modified_s = _last_touch(rng, plan)

    current, closed, last_s = plan.current, plan.closed, plan.last_s
    status = np.where(current == WON, "won", np.where(current == LOST, "lost", "open"))
    frame = pd.DataFrame(
        {
            "external_id": external_id,
            "owner_key": org.key[plan.seller],
            "name": name,
            "account": account,
            "amount": amount.astype(np.float64),
            "currency": currency,
            "pipeline": np.full(n, PIPELINE),
            "stage": STAGE_NAMES[current],
            "probability": STAGE_PROBS[current].astype(np.float64),
            "status": status,
            "created_at": utc(plan.created_s),
            "close_date": dates(close_date),
            "closed_at": utc(last_s, closed),
            "modified_at": utc(modified_s),
            "is_deleted": is_deleted,
        }
    )
    hist_row, hist_col = np.nonzero(plan.valid)
    stages = pd.DataFrame(
        {
            "external_id": external_id[hist_row],
            "stage": STAGE_NAMES[plan.code[hist_row, hist_col]],
            "entered_at": utc(plan.at[hist_row, hist_col]),
        }
    )
    return Deals(
        frame=frame,
        stages=stages,
        seller=plan.seller,
        created_s=plan.created_s,
        end_s=np.where(closed, last_s, plan.cutoff),
        external_id=external_id,
        account=account,
    )


def _plan_deals(rng: np.random.Generator, clock: Clock, org: Org, grid: Grid) -> _Plan:
    seller, created_day = business_days(rng, grid, grid.opportunities)
    n = seller.size
    team = org.team[seller]
    shift = org.shift_s[team]
    cutoff = org.cutoff_s[seller]
    created_s = np.minimum(created_day * DAY + rng.integers(8 * HOUR, 18 * HOUR, n) + shift, cutoff)

    amount = np.exp(rng.normal(np.log(org.size[seller]), SIZE_SIGMA))
    won = rng.random(n) < org.win[seller]
    reached = np.where(won, 3, rng.choice(4, n, p=_LOST_AT_STAGE))
    cycle_days = np.clip(np.exp(rng.normal(np.log(org.cycle[seller]), _CYCLE_SIGMA)), 5, 400)
    close_s = _close_times(rng, created_s, cycle_days, shift)
    reopen = won & (rng.random(n) < _REOPEN_SHARE) & (close_s - created_s >= 14 * DAY)
    code, valid, at = _stage_paths(rng, created_s, close_s, won, reopen, reached)
    # Whatever the plan, only what happened by now (or by the owner leaving) is recorded.
    valid &= at <= cutoff[:, None]

    last_col = 6 - np.argmax(valid[:, ::-1], axis=1)
    rows = np.arange(n)
    current = code[rows, last_col]
    last_s = at[rows, last_col]
    closed = current >= WON
    keep = ~closed | (last_s >= clock.window_start_s)
    order = np.flatnonzero(keep)
    order = order[np.lexsort((seller[order], created_s[order]))]
    return _Plan(
        seller=seller[order],
        team=team[order],
        created_s=created_s[order],
        close_s=close_s[order],
        amount=amount[order],
        current=current[order],
        last_s=last_s[order],
        closed=closed[order],
        code=code[order],
        valid=valid[order],
        at=at[order],
        cutoff=cutoff[order],
    )


def _close_times(
    rng: np.random.Generator, created_s: IntArray, cycle_days: FloatArray, shift: IntArray
) -> IntArray:
    """When each deal is planned to close: after its cycle, moved towards quarter ends."""
    n = created_s.size
    # End-of-quarter push: deals due early in a quarter are often pulled back into the
    # previous quarter's last days, deals due mid-quarter get pushed to its last two
    # weeks; both more so around Q4. Shifts stay within weeks so cycles remain credible.
    # Cycles run in business days so closes land on weekdays without piling onto Fridays.
    close_day = busday(created_s // DAY, np.rint(cycle_days * 5 / 7).astype(np.int64), "forward")
    month = close_day.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    month_first = month_first_day(month)
    month_of_year = month % 12
    month_in_q = month_of_year % 3
    pull = (
        (month_in_q == 0)
        & (close_day - month_first < 15)
        & (rng.random(n) < np.where(month_of_year == 0, 0.35, 0.25))
    )
    pull_day = busday(month_first - 1, -rng.integers(0, 8, n), "backward")
    pull &= pull_day >= created_s // DAY + 3
    push = (month_in_q == 1) & (rng.random(n) < np.where(month_of_year == 10, 0.35, 0.25))
    push_day = busday(month_first_day(month + 2) - 1, -rng.integers(0, 11, n), "backward")
    close_day = np.where(pull, pull_day, np.where(push, push_day, close_day))
    close_s = close_day * DAY + rng.integers(9 * HOUR, 18 * HOUR, n) + shift
    closes: IntArray = np.maximum(close_s, created_s + DAY)
    return closes


def _stage_paths(
    rng: np.random.Generator,
    created_s: IntArray,
    close_s: IntArray,
    won: BoolArray,
    reopen: BoolArray,
    reached: IntArray,
) -> tuple[IntArray, BoolArray, IntArray]:
    """Each deal's planned stages (``code``), which it goes through (``valid``) and when
    (``at``)."""
    n = created_s.size
    # Planned stage path per deal: four open stages, then a close; re-opened deals go
    # Closed Lost -> Negotiation -> Closed Won. Fractions are of the created..close span.
    frac = np.zeros((n, 7))
    frac[:, 1] = rng.uniform(0.10, 0.25, n)
    frac[:, 2] = rng.uniform(0.30, 0.50, n)
    frac[:, 3] = rng.uniform(0.55, 0.75, n)
    frac[:, 4] = np.where(reopen, 0.80, 1.0)
    frac[:, 5] = 0.88
    frac[:, 6] = 1.0
    code = np.tile(np.array([0, 1, 2, 3, WON, NEGOTIATION, WON], dtype=np.int64), (n, 1))
    code[:, 4] = np.where(won & ~reopen, WON, LOST)
    valid = np.zeros((n, 7), dtype=bool)
    valid[:, :4] = np.arange(4)[None, :] <= reached[:, None]
    valid[:, 4] = True
    valid[:, 5] = reopen
    valid[:, 6] = reopen
    at = created_s[:, None] + (frac * (close_s - created_s)[:, None]).astype(np.int64)
    return code, valid, at


def _deal_currency(rng: np.random.Generator, org: Org, plan: _Plan) -> tuple[StrArray, FloatArray]:
    """Each deal's currency (a few are foreign to the team) and its amount in it."""
    n = plan.seller.size
    team_currency = org.currency[plan.team]
    foreign_pick = rng.integers(0, len(_FOREIGN_POOL), n)
    pool = np.array(_FOREIGN_POOL)
    foreign_pick = np.where(
        pool[foreign_pick] == team_currency, (foreign_pick + 1) % pool.size, foreign_pick
    )
    currency = np.where(rng.random(n) < _FOREIGN_SHARE, pool[foreign_pick], team_currency)
    fx = pd.Series(currency).map(_FX_PER_USD).fillna(1.0).to_numpy(dtype=np.float64)
    team_fx = pd.Series(team_currency).map(_FX_PER_USD).fillna(1.0).to_numpy(dtype=np.float64)
    return currency, np.round(plan.amount * fx / team_fx, 2)


def _close_dates(rng: np.random.Generator, clock: Clock, org: Org, plan: _Plan) -> IntArray:
    n = plan.seller.size
    created_day = plan.created_s // DAY
    close_date = np.where(plan.closed, plan.last_s // DAY, plan.close_s // DAY)
    # CRM hygiene: some open deals keep an expected close date that has already passed.
    past_due = (
        ~plan.closed
        & org.active[plan.seller]
        & (created_day <= clock.today_day - 10)
        & (rng.random(n) < _PAST_DUE_SHARE)
    )
    stale_date = np.maximum(clock.today_day - rng.integers(1, 22, n), created_day + 1)
    dated: IntArray = np.where(past_due, stale_date, close_date)
    return dated


def _last_touch(rng: np.random.Generator, plan: _Plan) -> tuple[BoolArray, IntArray]:
    """Which deals are deleted, and when each was last modified."""
    n = plan.seller.size
    is_deleted = rng.random(n) < _DELETED_SHARE
    jitter = np.where(
        plan.closed,
        rng.integers(0, 3 * HOUR, n),
        rng.exponential(1.5 * DAY, n).astype(np.int64),
    )
    jitter = jitter + np.where(is_deleted, rng.integers(HOUR, 20 * DAY, n), 0)
    return is_deleted, touched(rng, plan.last_s, jitter, plan.cutoff)
