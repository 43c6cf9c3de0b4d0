"""The demo's organisation: teams with their funnel, and the reps in them (the VP, one
manager per team, the sellers), some ramping, one gone, a share with a planted weakness."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from app.demo.basis import (
    DAY,
    HOUR,
    WEAKNESSES,
    BoolArray,
    Clock,
    DemoConfig,
    FloatArray,
    IntArray,
    ObjArray,
    StrArray,
    dates,
    month_first_day,
)

_WEAK_FACTOR: Final = 0.45
_SLOW_CYCLE_FACTOR: Final = 2.2
# Healthy reps differ from their team by at most this much per driver; small enough that
# a 0.45x / 2.2x weakness stands out against the team median.
_REP_SPREAD: Final = 0.12
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


@dataclass(frozen=True)
class Org:
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
class _Teams:
    """Each team's currency and funnel: activity rate, conversion, win rate, size, cycle."""

    currency: StrArray
    act_rate: FloatArray
    conv: FloatArray
    win: FloatArray
    size: FloatArray
    cycle: FloatArray


@dataclass(frozen=True)
class _Sellers:
    """Each seller's team, tenure, funnel multipliers (one per weakness) and planted
    weakness (None for most)."""

    team: IntArray
    start_day: IntArray
    end_day: IntArray
    last_day: IntArray
    active: BoolArray
    mult: FloatArray
    weakness: ObjArray
    sim_start_day: int


def build_org(cfg: DemoConfig, rng: np.random.Generator, clock: Clock) -> Org:
    teams = _draw_teams(cfg, rng)
    sellers = _draw_sellers(cfg, rng, clock)
    team_frame, reps = _org_frames(cfg, rng, teams, sellers)
    seller_team, mult, last_day = sellers.team, sellers.mult, sellers.last_day
    currency = teams.currency
    return Org(
        teams=team_frame,
        reps=reps,
        key=np.array(reps["rep_key"].iloc[1 + cfg.teams :].tolist()),
        team=seller_team,
        start_day=sellers.start_day.astype(np.int64),
        last_day=last_day.astype(np.int64),
        cutoff_s=((last_day + 1) * DAY - 1).astype(np.int64),
        active=sellers.active,
        act_rate=teams.act_rate[seller_team] * mult[:, 0],
        conv=teams.conv[seller_team] * mult[:, 1],
        win=np.clip(teams.win[seller_team] * mult[:, 2], 0.03, 0.9),
        size=teams.size[seller_team] * mult[:, 3],
        cycle=teams.cycle[seller_team] * mult[:, 4],
        currency=currency,
        shift_s=np.array(
            [_UTC_SHIFT_HOURS.get(c, 0) * HOUR for c in currency.tolist()], dtype=np.int64
        ),
        team_act_rate=teams.act_rate,
        team_conv=teams.conv,
        team_win=teams.win,
        team_size=teams.size,
    )


def _draw_teams(cfg: DemoConfig, rng: np.random.Generator) -> _Teams:
    n_teams = cfg.teams
    currency = np.array(
        [cfg.currencies[int(i)] for i in rng.integers(0, len(cfg.currencies), n_teams)]
    )
    return _Teams(
        currency=currency,
        act_rate=rng.uniform(38.0, 56.0, n_teams),
        conv=rng.uniform(0.035, 0.047, n_teams),
        win=rng.uniform(0.25, 0.35, n_teams),
        size=np.exp(rng.uniform(math.log(8_000), math.log(25_000), n_teams)),
        cycle=rng.uniform(25.0, 50.0, n_teams),
    )


def _draw_sellers(cfg: DemoConfig, rng: np.random.Generator, clock: Clock) -> _Sellers:
    n_teams, per_team = cfg.teams, cfg.reps_per_team
    n_sellers = n_teams * per_team
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

    sim_start_day = int(month_first_day(np.array([clock.sim_start_month]))[0])
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
    return _Sellers(
        team=seller_team,
        start_day=start_day,
        end_day=end_day,
        last_day=last_day,
        active=active,
        mult=mult,
        weakness=weakness,
        sim_start_day=sim_start_day,
    )


def _org_frames(
    cfg: DemoConfig, rng: np.random.Generator, teams: _Teams, sellers: _Sellers
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The teams and reps frames: the VP's leadership team first, then one per team."""
    n_teams, seller_team = cfg.teams, sellers.team
    n_sellers = seller_team.size
    names, emails = _person_names(rng, 1 + n_teams + n_sellers)
    rep_keys = [f"R{i + 1:04d}" for i in range(1 + n_teams + n_sellers)]
    team_keys = [f"T{i:03d}" for i in range(n_teams + 1)]
    vp_key, manager_keys = rep_keys[0], rep_keys[1 : n_teams + 1]
    vp_start = sellers.sim_start_day - int(rng.integers(700, 3_000))
    manager_start = sellers.sim_start_day - rng.integers(400, 2_500, n_teams)

    team_frame = pd.DataFrame(
        {
            "team_key": team_keys,
            "name": ["Sales Leadership", *_team_names(teams.currency.tolist())],
            "manager_key": [vp_key, *manager_keys],
            "parent_team_key": [None, *[team_keys[0]] * n_teams],
            # Leadership reports in the company's home currency, the first configured one.
            "currency": [cfg.currencies[0], *teams.currency.tolist()],
        }
    )
    all_start = np.concatenate([[vp_start], manager_start, sellers.start_day]).astype(np.int64)
    all_end = np.concatenate([np.full(1 + n_teams, -1), sellers.end_day]).astype(np.int64)
    reps = pd.DataFrame(
        {
            "rep_key": rep_keys,
            "name": names,
            "email": emails,
            "team_key": [team_keys[0], *team_keys[1:], *[team_keys[t + 1] for t in seller_team]],
            "manager_key": [None, *[vp_key] * n_teams, *[manager_keys[t] for t in seller_team]],
            "role": ["manager"] * (1 + n_teams) + ["rep"] * n_sellers,
            "start_date": dates(all_start),
            "end_date": dates(all_end, all_end >= 0),
            "is_active": all_end < 0,
            "planted_weakness": np.concatenate([np.full(1 + n_teams, None), sellers.weakness]),
        }
    )
    return team_frame, reps


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


def account_names(rng: np.random.Generator) -> StrArray:
    stems = np.repeat(np.array(_ACCOUNT_STEMS), len(_ACCOUNT_SUFFIXES))
    suffixes = np.tile(np.array(_ACCOUNT_SUFFIXES), len(_ACCOUNT_STEMS))
    names: StrArray = np.char.add(np.char.add(stems, " "), suffixes)
    return names[rng.permutation(names.size)]


def pick_accounts(
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
