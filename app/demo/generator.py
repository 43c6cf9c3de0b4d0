"""Seeded synthetic CRM data for ``quotagap demo``, the test-suite and the sandbox CRM.

The data is built the way a sales-ops analyst reads a funnel: activities create
opportunities, opportunities close at a win rate after a sales cycle, and won deals carry
a deal size. Every rep inherits their team's funnel with mild noise; a share of reps get
exactly one planted weakness, so a driver analysis run on this data has a known answer
(``reps.planted_weakness``).

The module is pure: one ``numpy.random.Generator`` seeded from the config drives every
draw, there is no I/O, and the clock is ``DemoConfig.today`` (end of that day, UTC).
Internally times are int64 seconds and dates int64 day numbers since the Unix epoch, so
the per-deal and per-activity work is vectorised; Python loops only run over reps,
teams and months.
"""

from __future__ import annotations

import math
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

_DAY: Final = 86_400
_HOUR: Final = 3_600
_WON, _LOST, _NEGOTIATION = 4, 5, 3
_STAGE_NAMES: Final = np.array([s[0] for s in STAGES])
_STAGE_PROBS: Final = np.array([s[1] for s in STAGES])

# Deals created this many months before the window still close inside it, so the first
# months of history are not artificially empty.
_WARMUP_MONTHS: Final = 4
_WEAK_FACTOR: Final = 0.45
_SLOW_CYCLE_FACTOR: Final = 2.2
# Healthy reps differ from their team by at most this much per driver; small enough that
# a 0.45x / 2.2x weakness stands out against the team median.
_REP_SPREAD: Final = 0.12
_SIZE_SIGMA: Final = 0.6
_CYCLE_SIGMA: Final = 0.45
_ACTIVITY_MIX: Final = (0.42, 0.30, 0.16, 0.12)
# Meetings are the activities most often logged against a specific opportunity.
_LINK_SHARE: Final = (0.45, 0.55, 0.85, 0.60)
_LOST_AT_STAGE: Final = (0.30, 0.30, 0.25, 0.15)
_REOPEN_SHARE: Final = 0.012
_DELETED_SHARE: Final = 0.01
_FOREIGN_SHARE: Final = 0.03
_PAST_DUE_SHARE: Final = 0.15

# Units of currency per USD; rough, only used to make foreign-currency deals plausible.
_FX_PER_USD: Final = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "CAD": 1.37, "AUD": 1.53}
_FOREIGN_POOL: Final = ("USD", "EUR", "GBP", "CAD", "AUD")
# Hours added to local business time to get UTC. Only offsets that keep 08:00-18:00 local
# on the same UTC calendar day, so "weekday" means the same thing locally and in UTC.
_UTC_SHIFT_HOURS: Final = {"USD": 5, "CAD": 5, "EUR": -1, "GBP": 0}


def _words(text: str, sep: str | None = None) -> tuple[str, ...]:
    return tuple(text.split(sep))


_TEAM_NAMES: Final = {
    "USD": ("Americas East", "Americas West", "US Central", "US Enterprise", "US Commercial"),
    "EUR": ("DACH", "Benelux", "France", "Southern Europe", "Nordics"),
    "GBP": ("UK & Ireland", "UK Enterprise", "UK Commercial"),
    "CAD": ("Canada",),
    "AUD": ("ANZ",),
}
_FIRST_NAMES: Final = _words(
    "Olivia Liam Emma Noah Ava Ethan Sophia Mason Isabella Lucas Mia Logan Amelia "
    "James Harper Benjamin Evelyn Elijah Abigail Henry Emily Alexander Ella Daniel "
    "Grace Samuel Chloe David Zoe Joseph Nora Owen Lily Gabriel Hannah Julian Priya "
    "Arjun Mei Kenji Sofia Mateo Fatima Omar Ingrid Lars Aisha Diego",
)
_LAST_NAMES: Final = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez "
    "Hernandez Lopez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Thompson "
    "White Harris Clark Lewis Robinson Walker Young Allen King Wright Scott Green "
    "Baker Adams Nelson Hill Campbell Mitchell Carter Patel Nguyen Kim Schmidt Muller "
    "Rossi Dubois Novak",
)
_ACCOUNT_STEMS: Final = _words(
    "Acme,Globex,Initech,Umbrella,Stark,Wayne,Wonka,Hooli,Vandelay,Soylent,Tyrell,"
    "Cyberdyne,Aperture,Massive,Gringotts,Oscorp,Nakatomi,Dunder,Pied Piper,Monarch,"
    "Blue Sun,Gekko,Sterling,Prestige,Bluth,Northwind,Contoso,Fabrikam,Tailspin,"
    "Litware,Adventure,Woodgrove,Lamna,Proseware,Trey,Wingtip,Alpine,Coho,"
    "Fourth Coffee,Margie",
    sep=",",
)
_ACCOUNT_SUFFIXES: Final = (
    "Corp",
    "Inc",
    "Labs",
    "Group",
    "Systems",
    "Holdings",
    "Logistics",
    "Health",
    "Energy",
    "Retail",
)
_DEAL_KINDS: Final = ("New Business", "Expansion", "Upsell", "Renewal", "Pilot", "Migration")
_DEAL_KIND_MIX: Final = (0.40, 0.20, 0.15, 0.12, 0.08, 0.05)
_SUBJECTS: Final = (
    ("Discovery call", "Follow-up call", "Cold call", "Check-in call"),
    ("Intro email", "Follow-up email", "Pricing details", "Case study sent"),
    ("Product demo", "Discovery meeting", "Negotiation meeting", "Executive briefing"),
    ("Update opportunity", "Prepare proposal", "Send contract", "Research account"),
)


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
class _Clock:
    today_day: int
    month_today: int
    window_start_month: int
    sim_start_month: int
    window_start_s: int

    @classmethod
    def of(cls, cfg: DemoConfig) -> _Clock:
        today_day = int(np.datetime64(cfg.today, "D").astype(np.int64))
        month_today = int(np.datetime64(cfg.today, "M").astype(np.int64))
        window_start_month = month_today - (cfg.months - 1)
        return cls(
            today_day=today_day,
            month_today=month_today,
            window_start_month=window_start_month,
            sim_start_month=window_start_month - _WARMUP_MONTHS,
            window_start_s=_month_first_day(np.array([window_start_month]))[0] * _DAY,
        )


@dataclass(frozen=True)
class _Org:
    teams: pd.DataFrame
    reps: pd.DataFrame
    # Per seller (non-manager rep); all arrays aligned.
    key: StrArray
    team: IntArray
    start_day: IntArray
    last_day: IntArray
    cutoff_s: IntArray
    active: BoolArray
    act_rate: FloatArray
    conv: FloatArray
    win: FloatArray
    size: FloatArray
    cycle: FloatArray
    # Per team.
    currency: StrArray
    shift_s: IntArray
    team_act_rate: FloatArray
    team_conv: FloatArray
    team_win: FloatArray
    team_size: FloatArray


@dataclass(frozen=True)
class _Grid:
    """Seller x month funnel volumes over the simulated months (warm-up included)."""

    months: IntArray
    lo_day: IntArray
    busdays: IntArray
    activities: IntArray
    opportunities: IntArray


@dataclass(frozen=True)
class _Deals:
    frame: pd.DataFrame
    stages: pd.DataFrame
    seller: IntArray
    created_s: IntArray
    end_s: IntArray
    external_id: StrArray
    account: StrArray


def generate(config: DemoConfig | None = None) -> DemoData:
    """Build a full demo CRM data set. The same config always yields identical frames."""
    cfg = config if config is not None else DemoConfig()
    rng = np.random.default_rng(cfg.seed)
    clock = _Clock.of(cfg)
    accounts = _account_names(rng)
    org = _build_org(cfg, rng, clock)
    grid = _build_grid(cfg, rng, clock, org)
    deals = _build_deals(rng, clock, org, grid, accounts)
    activities = _build_activities(rng, org, grid, deals, accounts)
    return DemoData(
        teams=org.teams,
        reps=org.reps,
        deals=deals.frame,
        deal_stages=deals.stages,
        activities=activities,
        targets=_build_targets(cfg, rng, clock, org),
        stages=_stages_frame(),
    )


def _month_first_day(months: IntArray) -> IntArray:
    return months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)


def _utc(seconds: IntArray, valid: BoolArray | None = None) -> pd.DatetimeIndex:
    stamps = seconds.astype("datetime64[s]")
    if valid is not None:
        stamps = np.where(valid, stamps, np.datetime64("NaT", "s"))
    return pd.DatetimeIndex(stamps).tz_localize("UTC").as_unit("us")


def _dates(days: IntArray, valid: BoolArray | None = None) -> ObjArray:
    out: ObjArray = days.astype("datetime64[D]").astype(object)
    if valid is not None:
        out[~valid] = None
    return out


def _ids(prefix: str, n: int, width: int) -> StrArray:
    if n == 0:  # np.char.zfill cannot size an empty array
        return np.array([], dtype=f"<U{width + len(prefix)}")
    return np.char.add(prefix, np.char.zfill(np.arange(1, n + 1).astype(str), width))


def _touched(
    rng: np.random.Generator, start: IntArray, gap: IntArray, cutoff: IntArray
) -> IntArray:
    """``start + gap``, or a random moment before ``cutoff`` when that would be later.

    Plain clipping would stamp many records with exactly the cutoff second.
    """
    room = np.maximum(cutoff - start, 0)
    squeezed = start + (rng.random(start.size) * room).astype(np.int64)
    return np.where(gap <= room, start + gap, squeezed)


def _busday(days: IntArray, offset: IntArray, roll: Literal["forward", "backward"]) -> IntArray:
    moved = np.busday_offset(days.astype("datetime64[D]"), offset, roll=roll)
    return moved.astype(np.int64)


def _person_names(rng: np.random.Generator, n: int) -> tuple[list[str], list[str]]:
    grid = len(_FIRST_NAMES) * len(_LAST_NAMES)
    picks = rng.permutation(grid)
    names: list[str] = []
    emails: list[str] = []
    for i in range(n):
        first = _FIRST_NAMES[int(picks[i % grid]) // len(_LAST_NAMES)]
        last = _LAST_NAMES[int(picks[i % grid]) % len(_LAST_NAMES)]
        suffix = "" if i < grid else str(i // grid + 1)
        names.append(f"{first} {last}")
        emails.append(f"{first}.{last}{suffix}@example.com".lower())
    return names, emails


def _account_names(rng: np.random.Generator) -> StrArray:
    stems = np.repeat(np.array(_ACCOUNT_STEMS), len(_ACCOUNT_SUFFIXES))
    suffixes = np.tile(np.array(_ACCOUNT_SUFFIXES), len(_ACCOUNT_STEMS))
    names: StrArray = np.char.add(np.char.add(stems, " "), suffixes)
    return names[rng.permutation(names.size)]


def _pick_accounts(
    rng: np.random.Generator, accounts: StrArray, team: IntArray, n_teams: int
) -> StrArray:
    # Each team works its own territory (a slice of the account list) unless there are
    # more teams than accounts.
    per_team = accounts.size // n_teams if n_teams <= accounts.size else accounts.size
    offset = team * per_team if n_teams <= accounts.size else np.zeros_like(team)
    idx = offset + (rng.random(team.size) * per_team).astype(np.int64)
    return accounts[idx]


def _team_names(currencies: list[str]) -> list[str]:
    used: set[str] = set()
    names: list[str] = []
    for i, cur in enumerate(currencies):
        pool = [n for n in _TEAM_NAMES.get(cur, ()) if n not in used]
        name = pool[0] if pool else f"{cur} Sales {i + 1}"
        used.add(name)
        names.append(name)
    return names


def _build_org(cfg: DemoConfig, rng: np.random.Generator, clock: _Clock) -> _Org:
    n_teams, per_team = cfg.teams, cfg.reps_per_team
    n_sellers = n_teams * per_team
    currency = np.array(
        [cfg.currencies[int(i)] for i in rng.integers(0, len(cfg.currencies), n_teams)]
    )
    team_act_rate = rng.uniform(38.0, 56.0, n_teams)
    team_conv = rng.uniform(0.035, 0.047, n_teams)
    team_win = rng.uniform(0.25, 0.35, n_teams)
    team_size = np.exp(rng.uniform(math.log(8_000), math.log(25_000), n_teams))
    team_cycle = rng.uniform(25.0, 50.0, n_teams)

    seller_team = np.repeat(np.arange(n_teams, dtype=np.int64), per_team)
    # Round-robin order over teams (random rank inside each team, random team order) so
    # ramping, leaving and weak reps are spread across teams instead of piling up in one.
    rank = np.argsort(np.argsort(rng.random((n_teams, per_team)), axis=1), axis=1).ravel()
    team_pos = np.argsort(rng.permutation(n_teams))
    spread_order = np.argsort(rank * n_teams + team_pos[seller_team], kind="stable")

    n_ramp = 2 if n_sellers >= 6 else (1 if n_sellers >= 3 else 0)
    n_inactive = 1 if n_sellers >= 4 else 0
    n_weak = min(round(cfg.weak_share * n_sellers), n_sellers - n_ramp - n_inactive)
    ramping = np.zeros(n_sellers, dtype=bool)
    ramping[spread_order[:n_ramp]] = True
    active = np.ones(n_sellers, dtype=bool)
    active[spread_order[n_ramp : n_ramp + n_inactive]] = False
    weak_idx = spread_order[n_ramp + n_inactive : n_ramp + n_inactive + n_weak]
    weak_kind = np.resize(rng.permutation(len(WEAKNESSES)), n_weak)

    sim_start_day = int(_month_first_day(np.array([clock.sim_start_month]))[0])
    start_day = sim_start_day - rng.integers(30, 1_500, n_sellers)
    start_day = np.where(ramping, clock.today_day - rng.integers(14, 176, n_sellers), start_day)
    # Leaving ~4 months ago is always after start_day because start_day predates the warm-up.
    end_day = np.where(active, -1, clock.today_day - rng.integers(105, 136, n_sellers))
    last_day = np.where(active, clock.today_day, end_day)

    mult = rng.uniform(1.0 - _REP_SPREAD, 1.0 + _REP_SPREAD, (n_sellers, len(WEAKNESSES)))
    cycle_col = WEAKNESSES.index("cycle")
    mult[weak_idx, weak_kind] = np.where(
        weak_kind == cycle_col, _SLOW_CYCLE_FACTOR, _WEAK_FACTOR
    ) * rng.uniform(0.95, 1.05, n_weak)
    weakness = np.full(n_sellers, None, dtype=object)
    weakness[weak_idx] = np.array(WEAKNESSES)[weak_kind]

    names, emails = _person_names(rng, 1 + n_teams + n_sellers)
    rep_keys = [f"R{i + 1:04d}" for i in range(1 + n_teams + n_sellers)]
    team_keys = [f"T{i:03d}" for i in range(n_teams + 1)]
    vp_key, manager_keys, seller_keys = (
        rep_keys[0],
        rep_keys[1 : n_teams + 1],
        rep_keys[n_teams + 1 :],
    )
    vp_start = sim_start_day - int(rng.integers(700, 3_000))
    manager_start = sim_start_day - rng.integers(400, 2_500, n_teams)

    teams = pd.DataFrame(
        {
            "team_key": team_keys,
            "name": ["Sales Leadership", *_team_names(currency.tolist())],
            "manager_key": [vp_key, *manager_keys],
            "parent_team_key": [None, *[team_keys[0]] * n_teams],
            # Leadership reports in the company's home currency, the first configured one.
            "currency": [cfg.currencies[0], *currency.tolist()],
        }
    )
    all_start = np.concatenate([[vp_start], manager_start, start_day]).astype(np.int64)
    all_end = np.concatenate([np.full(1 + n_teams, -1), end_day]).astype(np.int64)
    reps = pd.DataFrame(
        {
            "rep_key": rep_keys,
            "name": names,
            "email": emails,
            "team_key": [team_keys[0], *team_keys[1:], *[team_keys[t + 1] for t in seller_team]],
            "manager_key": [None, *[vp_key] * n_teams, *[manager_keys[t] for t in seller_team]],
            "role": ["manager"] * (1 + n_teams) + ["rep"] * n_sellers,
            "start_date": _dates(all_start),
            "end_date": _dates(all_end, all_end >= 0),
            "is_active": all_end < 0,
            "planted_weakness": np.concatenate([np.full(1 + n_teams, None), weakness]),
        }
    )
    return _Org(
        teams=teams,
        reps=reps,
        key=np.array(seller_keys),
        team=seller_team,
        start_day=start_day.astype(np.int64),
        last_day=last_day.astype(np.int64),
        cutoff_s=((last_day + 1) * _DAY - 1).astype(np.int64),
        active=active,
        act_rate=team_act_rate[seller_team] * mult[:, 0],
        conv=team_conv[seller_team] * mult[:, 1],
        win=np.clip(team_win[seller_team] * mult[:, 2], 0.03, 0.9),
        size=team_size[seller_team] * mult[:, 3],
        cycle=team_cycle[seller_team] * mult[:, 4],
        currency=currency,
        shift_s=np.array(
            [_UTC_SHIFT_HOURS.get(c, 0) * _HOUR for c in currency.tolist()], dtype=np.int64
        ),
        team_act_rate=team_act_rate,
        team_conv=team_conv,
        team_win=team_win,
        team_size=team_size,
    )


def _season(months: IntArray) -> FloatArray:
    # Modest end-of-quarter and Q4 lift in prospecting volume.
    month_of_year = months % 12
    lift: FloatArray = 1.0 + 0.06 * (month_of_year % 3 == 2) + 0.08 * (month_of_year >= 9)
    return lift


def _build_grid(cfg: DemoConfig, rng: np.random.Generator, clock: _Clock, org: _Org) -> _Grid:
    months = np.arange(clock.sim_start_month, clock.month_today + 1, dtype=np.int64)
    first = _month_first_day(months)
    last = _month_first_day(months + 1) - 1
    lo = np.maximum(first[None, :], org.start_day[:, None])
    hi = np.minimum(last[None, :], org.last_day[:, None])
    busdays = np.maximum(
        np.busday_count(lo.astype("datetime64[D]"), (hi + 1).astype("datetime64[D]")), 0
    ).astype(np.int64)
    tenure = (lo + hi) / 2.0 - org.start_day[:, None]
    # New hires build their book over their first ~3 months.
    ramp = np.clip(0.45 + 0.55 * tenure / 90.0, 0.45, 1.0)
    expected = (
        org.act_rate[:, None] / 5.0 * busdays * _season(months)[None, :] * ramp * cfg.activity_scale
    )
    activities = rng.poisson(expected).astype(np.int64)
    # Opportunities follow prospecting effort, independent of activity_scale, so scaled-up
    # benchmark data keeps a realistic deal volume.
    opportunities = rng.poisson(activities / cfg.activity_scale * org.conv[:, None])
    in_window = months >= clock.window_start_month
    return _Grid(
        months=months,
        lo_day=lo,
        busdays=busdays,
        activities=activities * in_window[None, :],
        opportunities=opportunities.astype(np.int64),
    )


def _business_days(
    rng: np.random.Generator, grid: _Grid, counts: IntArray
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


def _build_deals(
    rng: np.random.Generator, clock: _Clock, org: _Org, grid: _Grid, accounts: StrArray
) -> _Deals:
    seller, created_day = _business_days(rng, grid, grid.opportunities)
    n = seller.size
    team = org.team[seller]
    shift = org.shift_s[team]
    cutoff = org.cutoff_s[seller]
    created_s = np.minimum(
        created_day * _DAY + rng.integers(8 * _HOUR, 18 * _HOUR, n) + shift, cutoff
    )

    amount = np.exp(rng.normal(np.log(org.size[seller]), _SIZE_SIGMA))
    won = rng.random(n) < org.win[seller]
    reached = np.where(won, 3, rng.choice(4, n, p=_LOST_AT_STAGE))
    cycle_days = np.clip(np.exp(rng.normal(np.log(org.cycle[seller]), _CYCLE_SIGMA)), 5, 400)

    # End-of-quarter push: deals due early in a quarter are often pulled back into the
    # previous quarter's last days, deals due mid-quarter get pushed to its last two
    # weeks; both more so around Q4. Shifts stay within weeks so cycles remain credible.
    # Cycles run in business days so closes land on weekdays without piling onto Fridays.
    close_day = _busday(created_s // _DAY, np.rint(cycle_days * 5 / 7).astype(np.int64), "forward")
    month = close_day.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    month_first = _month_first_day(month)
    month_of_year = month % 12
    month_in_q = month_of_year % 3
    pull = (
        (month_in_q == 0)
        & (close_day - month_first < 15)
        & (rng.random(n) < np.where(month_of_year == 0, 0.35, 0.25))
    )
    pull_day = _busday(month_first - 1, -rng.integers(0, 8, n), "backward")
    pull &= pull_day >= created_s // _DAY + 3
    push = (month_in_q == 1) & (rng.random(n) < np.where(month_of_year == 10, 0.35, 0.25))
    push_day = _busday(_month_first_day(month + 2) - 1, -rng.integers(0, 11, n), "backward")
    close_day = np.where(pull, pull_day, np.where(push, push_day, close_day))
    close_s = close_day * _DAY + rng.integers(9 * _HOUR, 18 * _HOUR, n) + shift
    close_s = np.maximum(close_s, created_s + _DAY)
    reopen = won & (rng.random(n) < _REOPEN_SHARE) & (close_s - created_s >= 14 * _DAY)

    # Planned stage path per deal: four open stages, then a close; re-opened deals go
    # Closed Lost -> Negotiation -> Closed Won. Fractions are of the created..close span.
    frac = np.zeros((n, 7))
    frac[:, 1] = rng.uniform(0.10, 0.25, n)
    frac[:, 2] = rng.uniform(0.30, 0.50, n)
    frac[:, 3] = rng.uniform(0.55, 0.75, n)
    frac[:, 4] = np.where(reopen, 0.80, 1.0)
    frac[:, 5] = 0.88
    frac[:, 6] = 1.0
    code = np.tile(np.array([0, 1, 2, 3, _WON, _NEGOTIATION, _WON], dtype=np.int64), (n, 1))
    code[:, 4] = np.where(won & ~reopen, _WON, _LOST)
    valid = np.zeros((n, 7), dtype=bool)
    valid[:, :4] = np.arange(4)[None, :] <= reached[:, None]
    valid[:, 4] = True
    valid[:, 5] = reopen
    valid[:, 6] = reopen
    at = created_s[:, None] + (frac * (close_s - created_s)[:, None]).astype(np.int64)
    # Whatever the plan, only what happened by now (or by the owner leaving) is recorded.
    valid &= at <= cutoff[:, None]

    last_col = 6 - np.argmax(valid[:, ::-1], axis=1)
    rows = np.arange(n)
    current = code[rows, last_col]
    last_s = at[rows, last_col]
    closed = current >= _WON
    keep = ~closed | (last_s >= clock.window_start_s)
    order = np.flatnonzero(keep)
    order = order[np.lexsort((seller[order], created_s[order]))]

    seller, team, created_s, close_s = seller[order], team[order], created_s[order], close_s[order]
    amount, current, last_s, closed = amount[order], current[order], last_s[order], closed[order]
    code, valid, at, cutoff = code[order], valid[order], at[order], cutoff[order]
    n = order.size
    external_id = _ids("D", n, 6)

    team_currency = org.currency[team]
    foreign_pick = rng.integers(0, len(_FOREIGN_POOL), n)
    pool = np.array(_FOREIGN_POOL)
    foreign_pick = np.where(
        pool[foreign_pick] == team_currency, (foreign_pick + 1) % pool.size, foreign_pick
    )
    currency = np.where(rng.random(n) < _FOREIGN_SHARE, pool[foreign_pick], team_currency)
    fx = pd.Series(currency).map(_FX_PER_USD).fillna(1.0).to_numpy(dtype=np.float64)
    team_fx = pd.Series(team_currency).map(_FX_PER_USD).fillna(1.0).to_numpy(dtype=np.float64)
    amount = np.round(amount * fx / team_fx, 2)

    account = _pick_accounts(rng, accounts, team, org.currency.size)
    kind = np.array(_DEAL_KINDS)[rng.choice(len(_DEAL_KINDS), n, p=_DEAL_KIND_MIX)]
    name = np.char.add(np.char.add(account, " - "), kind)

    created_day = created_s // _DAY
    close_date = np.where(closed, last_s // _DAY, close_s // _DAY)
    # CRM hygiene: some open deals keep an expected close date that has already passed.
    past_due = (
        ~closed
        & org.active[seller]
        & (created_day <= clock.today_day - 10)
        & (rng.random(n) < _PAST_DUE_SHARE)
    )
    stale_date = np.maximum(clock.today_day - rng.integers(1, 22, n), created_day + 1)
    close_date = np.where(past_due, stale_date, close_date)

    is_deleted = rng.random(n) < _DELETED_SHARE
    jitter = np.where(
        closed, rng.integers(0, 3 * _HOUR, n), rng.exponential(1.5 * _DAY, n).astype(np.int64)
    )
    jitter = jitter + np.where(is_deleted, rng.integers(_HOUR, 20 * _DAY, n), 0)
    modified_s = _touched(rng, last_s, jitter, cutoff)

    status = np.where(current == _WON, "won", np.where(current == _LOST, "lost", "open"))
    frame = pd.DataFrame(
        {
            "external_id": external_id,
            "owner_key": org.key[seller],
            "name": name,
            "account": account,
            "amount": amount.astype(np.float64),
            "currency": currency,
            "pipeline": np.full(n, PIPELINE),
            "stage": _STAGE_NAMES[current],
            "probability": _STAGE_PROBS[current].astype(np.float64),
            "status": status,
            "created_at": _utc(created_s),
            "close_date": _dates(close_date),
            "closed_at": _utc(last_s, closed),
            "modified_at": _utc(modified_s),
            "is_deleted": is_deleted,
        }
    )
    hist_row, hist_col = np.nonzero(valid)
    stages = pd.DataFrame(
        {
            "external_id": external_id[hist_row],
            "stage": _STAGE_NAMES[code[hist_row, hist_col]],
            "entered_at": _utc(at[hist_row, hist_col]),
        }
    )
    return _Deals(
        frame=frame,
        stages=stages,
        seller=seller,
        created_s=created_s,
        end_s=np.where(closed, last_s, cutoff),
        external_id=external_id,
        account=account,
    )


def _build_activities(
    rng: np.random.Generator,
    org: _Org,
    grid: _Grid,
    deals: _Deals,
    accounts: StrArray,
) -> pd.DataFrame:
    seller, day = _business_days(rng, grid, grid.activities)
    n = seller.size
    team = org.team[seller]
    kind = rng.choice(len(ACTIVITY_TYPES), n, p=_ACTIVITY_MIX)
    # Meetings sit in core hours; calls, emails and tasks fill the whole working day.
    opens = np.where(kind == 2, 9 * _HOUR, 8 * _HOUR)
    closes = np.where(kind == 2, 17 * _HOUR, 18 * _HOUR)
    local = opens + (rng.random(n) * (closes - opens)).astype(np.int64)
    cutoff = org.cutoff_s[seller]
    occurred_s = np.minimum(day * _DAY + local + org.shift_s[team], cutoff)

    # Link to one of the seller's most recently created deals that is still alive then.
    stride = np.int64(1) << np.int64(34)
    by_owner = np.lexsort((deals.created_s, deals.seller))
    deal_key = deals.seller[by_owner] * stride + deals.created_s[by_owner]
    pos = np.searchsorted(deal_key, seller * stride + occurred_s, side="right") - 1
    pos = pos - rng.integers(0, 4, n)
    safe = np.clip(pos, 0, max(by_owner.size - 1, 0))
    linked = rng.random(n) < np.array(_LINK_SHARE)[kind]
    if by_owner.size:
        deal_idx = by_owner[safe]
        linked &= (pos >= 0) & (deals.seller[deal_idx] == seller)
        linked &= deals.end_s[deal_idx] >= occurred_s
    else:
        deal_idx = safe
        linked[:] = False

    account = np.where(
        linked,
        deals.account[deal_idx] if by_owner.size else "",
        _pick_accounts(rng, accounts, team, org.currency.size),
    )
    template = np.array(_SUBJECTS)[kind, rng.integers(0, 4, n)]
    subject = np.char.add(np.char.add(template, " - "), account.astype(str))
    deal_ref = np.full(n, None, dtype=object)
    if by_owner.size:
        deal_ref[linked] = deals.external_id[deal_idx[linked]]
    tail = np.where(kind == 3, rng.integers(0, 2 * _DAY, n), rng.integers(0, 2 * _HOUR, n))
    modified_s = _touched(rng, occurred_s, tail, cutoff)

    order = np.lexsort((seller, occurred_s))
    return pd.DataFrame(
        {
            "external_id": _ids("A", n, 7),
            "owner_key": org.key[seller[order]],
            "type": np.array(ACTIVITY_TYPES)[kind[order]],
            "occurred_at": _utc(occurred_s[order]),
            "deal_external_id": deal_ref[order],
            "subject": subject[order],
            "modified_at": _utc(modified_s[order]),
        }
    )


def _build_targets(
    cfg: DemoConfig, rng: np.random.Generator, clock: _Clock, org: _Org
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
    season = float(_season(np.arange(12, dtype=np.int64)).mean())
    acts = org.team_act_rate * 52.0 / 12.0 * season
    won_deals = acts * org.team_conv * org.team_win
    won_revenue = won_deals * org.team_size * math.exp(_SIZE_SIGMA**2 / 2.0)
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
