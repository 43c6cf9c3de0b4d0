"""Benchmark of the compute job at the scale of the performance issue (it prints figures).

What it measures, on one synthetic, seeded data set (default: 2,000 reps, 1M deals, 10M
activities over 24 months, monthly ``won_revenue`` targets per rep):

1. load:         bulk load into a fresh, migrated database (not a goal; printed for context).
2. full:         ``compute.run(full=True)`` end to end (including the commit), with the job's
                 own stage timings (``snapshot.details["timings_s"]``) and the peak RSS of the
                 process that ran it. Every compute runs in a fresh *spawned* child process,
                 so its ``ru_maxrss`` is that compute's peak (plus the interpreter and imports,
                 printed as "baseline").
3. reference:    on the frames the job loads (``app.performance.frames``, read outside the
                 timing), the
                 DuckDB SQL of the core aggregates per rep and month (won revenue in the
                 reporting currency, won deals, activities) against
                 ``analytics.metrics.period_metrics(kind="month")``; best of ``--repeat``
                 runs each, their ratio, and a check that both agree (1e-6 relative).
4. incremental:  1,000 deals changed through ``app.pipeline.ingest.upsert_records``, then
                 ``compute.run(full=False)`` end to end (including the commit); recent
                 changes (deals created or closing in the last two months: amount, stage and
                 close changes), and 1,000 random deals across the whole history. Each
                 variant runs ``--inc-runs`` times (default 3), each time on 1,000 other
                 deals changed after the last compute, as on consecutive days; the median
                 run is the figure (one run's time varies by up to a fifth here). On a
                 PostgreSQL server with autovacuum off, ``VACUUM ANALYZE`` of the written
                 tables runs before each compute, timed apart, as autovacuum would have.
5. summary:      the figures next to the issue's goals (compute stage within 2x of DuckDB,
                 peak memory under 4 GB, incremental under 2 s), each marked met / not met.
                 Nothing is asserted on time.

Run from the project root::

    .venv/bin/python bench/analytics.py                      # goal scale, SQLite (minutes)
    .venv/bin/python bench/analytics.py --reps 200 --deals 50000 --activities 500000  # smoke
    .venv/bin/python bench/analytics.py --db postgresql      # scratch database qg_bench_<pid>
    .venv/bin/python bench/analytics.py --profile 25         # cProfile each compute (slower)

SQLite goes to a file in a temporary directory (``--keep-db`` keeps it); PostgreSQL gets a
scratch database on ``--pg-url`` that is dropped at the end.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import os
import pstats
import re
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

# Run as ``python bench/analytics.py``, this file's directory comes first on sys.path and
# this module would shadow the ``analytics`` package: put the project root there instead.
_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]
sys.path.insert(0, str(_ROOT))

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import psycopg  # noqa: E402
from sqlalchemy import Engine, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

import app.pipeline.records  # noqa: E402, F401  (every model, so foreign keys resolve)
from analytics.metrics import period_metrics  # noqa: E402
from app.core.config import Settings  # noqa: E402
from app.core.db import make_sessionmaker, transaction  # noqa: E402
from app.core.migrate import upgrade  # noqa: E402
from app.deals.models import Deal  # noqa: E402
from app.performance import compute, inputs, plan  # noqa: E402
from app.pipeline import ingest  # noqa: E402
from app.pipeline.records import open_engine  # noqa: E402
from app.sources.models import Source  # noqa: E402
from connectors.base import DEAL_FIELDS as CRM_DEAL_FIELDS  # noqa: E402

AS_OF = date(2026, 11, 18)
GB = 1024**3
GOAL_RATIO = 2.0
GOAL_PEAK_BYTES = 4 * GB
GOAL_INCREMENTAL_S = 2.0
CHUNK = 500_000
SYNCED_AT = "2026-11-18 06:00:00.000000"
# Date (not timestamp) columns: pandas keeps datetime64[D] values as datetime64[s].
DATE_COLUMNS = frozenset({"start_date", "close_date", "period_start", "period_end"})

STAGES = (  # (stage, probability, status)
    ("Prospecting", 0.1, "open"),
    ("Qualification", 0.2, "open"),
    ("Proposal", 0.5, "open"),
    ("Negotiation", 0.8, "open"),
    ("Closed Won", 1.0, "won"),
    ("Closed Lost", 0.0, "lost"),
)
ACTIVITY_TYPES = ("call", "email", "meeting", "task")
ACTIVITY_MIX = (0.42, 0.30, 0.16, 0.12)
CURRENCIES = ("USD", "EUR", "GBP")
CURRENCY_MIX = (0.80, 0.12, 0.08)
# The columns a CRM record of a deal carries (connectors.base), and the rep it is assigned to.
DEAL_FIELDS = (*CRM_DEAL_FIELDS, "rep_id")


# --------------------------------------------------------------------------------------
# Synthetic data (vectorised; times are int64 seconds, dates int64 days since the epoch)
# --------------------------------------------------------------------------------------

DAY = 86_400


@dataclass
class Dataset:
    """Rows ready to load, one DataFrame per table (columns named as in the database)."""

    teams: pd.DataFrame
    reps: pd.DataFrame
    deals: pd.DataFrame
    activities: pd.DataFrame
    targets: pd.DataFrame

    def counts(self) -> dict[str, int]:
        return {
            "teams": len(self.teams),
            "reps": int((self.reps["role"] == "rep").sum()),
            "managers": int((self.reps["role"] == "manager").sum()),
            "deals": len(self.deals),
            "activities": len(self.activities),
            "targets": len(self.targets),
        }


def _day_number(d: date) -> int:
    return (d - date(1970, 1, 1)).days


def _month_starts(first_month: int, n: int) -> np.ndarray:
    """Epoch day of the first day of ``n`` months from numpy month number ``first_month``."""
    months = np.arange(first_month, first_month + n).astype("datetime64[M]")
    return months.astype("datetime64[D]").astype(np.int64)


def _active_spans(
    sales: pd.DataFrame, window_start_s: int, end_s: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per rep: when they start producing records (their start, or the window's) and for
    how many seconds until the end."""
    started = sales["start_date"].to_numpy().astype("datetime64[s]").astype(np.int64)
    rep_start = np.maximum(started, window_start_s)
    return rep_start, (end_s - rep_start).astype(np.float64)


def _org(
    rng: np.random.Generator, n_reps: int, window_start_day: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Regions of ~10 teams of ~10 reps; each team and region has a manager (a rep row).

    Ids: teams are regions then teams; reps are region managers, team managers, sales reps.
    """
    n_teams = max(1, math.ceil(n_reps / 10))
    n_regions = max(1, math.ceil(n_teams / 10))
    n_managers = n_regions + n_teams
    region_of_team = 1 + np.arange(n_teams) * n_regions // n_teams
    team_of_rep = n_regions + 1 + np.arange(n_reps) * n_teams // n_reps
    team_ids = np.arange(1, n_managers + 1)
    teams = pd.DataFrame(
        {
            "id": team_ids,
            "name": [f"Region {i}" if i <= n_regions else f"Team {i}" for i in team_ids],
            "manager_id": team_ids,  # the manager of team k is rep k
            "parent_id": pd.Series([None] * n_regions + region_of_team.tolist(), dtype="Int64"),
            "currency": np.array(CURRENCIES, dtype=object)[
                rng.choice(len(CURRENCIES), size=n_managers, p=CURRENCY_MIX)
            ],
        }
    )
    ids = np.arange(1, n_managers + n_reps + 1)
    manager_of = [None] * n_regions + region_of_team.tolist() + team_of_rep.tolist()
    # 80% started before the window (up to 6 years), 20% were hired during it.
    hired = rng.random(len(ids)) < 0.2
    window_days = _day_number(AS_OF) - window_start_day
    start = np.where(
        hired,
        window_start_day + rng.integers(0, max(window_days - 30, 1), len(ids)),
        window_start_day - rng.integers(30, 6 * 365, len(ids)),
    )
    start[:n_managers] = window_start_day - 3 * 365  # managers are tenured
    reps = pd.DataFrame(
        {
            "id": ids,
            "name": [f"Rep {i}" for i in ids],
            "email": [f"rep{i}@bench.example" for i in ids],
            "team_id": np.concatenate([team_ids, team_of_rep]),
            "manager_id": pd.Series(manager_of, dtype="Int64"),
            "role": np.where(ids <= n_managers, "manager", "rep").astype(object),
            "is_active": np.ones(len(ids), dtype=bool),
            "start_date": start.astype("datetime64[D]"),
        }
    )
    return teams, reps


def _deals(
    rng: np.random.Generator,
    n: int,
    sales: pd.DataFrame,
    currency_of_team: dict[int, str],
    window_start_s: int,
    end_s: int,
) -> pd.DataFrame:
    """Deals created in the window; those whose close date passed are won or lost."""
    n_sales = len(sales)
    rep_start, span = _active_spans(sales, window_start_s, end_s)
    productivity = rng.lognormal(0.0, 0.3, n_sales)
    rep_idx = rng.choice(n_sales, size=n, p=productivity * span / (productivity * span).sum())
    created = rep_start[rep_idx] + (rng.random(n) * span[rep_idx]).astype(np.int64)
    order = np.argsort(created, kind="stable")  # ids follow creation, as in a real CRM
    rep_idx, created = rep_idx[order], created[order]
    cycle = np.clip(rng.lognormal(np.log(35), 0.7, n), 1, 365) * DAY
    planned = created + cycle.astype(np.int64)
    past_due = rng.random(n) < 0.04
    closed = (planned <= end_s) & ~past_due
    win_rate = np.clip(rng.normal(0.28, 0.06, n_sales), 0.05, 0.6)
    won = closed & (rng.random(n) < win_rate[rep_idx])
    lost = closed & ~won
    open_stage = rng.choice(4, size=n, p=(0.35, 0.30, 0.20, 0.15))
    stage = np.where(won, 4, np.where(lost, 5, open_stage))
    names = np.array([s[0] for s in STAGES], dtype=object)
    probs = np.array([s[1] for s in STAGES])
    statuses = np.array([s[2] for s in STAGES], dtype=object)
    rep_ids = sales["id"].to_numpy()[rep_idx]
    team_currency = np.array([currency_of_team[t] for t in sales["team_id"]], dtype=object)
    currency = team_currency[rep_idx]
    foreign = rng.random(n) < 0.03
    currency[foreign] = np.array(CURRENCIES, dtype=object)[rng.integers(0, 3, foreign.sum())]
    size = rng.lognormal(0.0, 0.25, n_sales)
    amount = np.round(rng.lognormal(np.log(12_000), 0.9, n) * size[rep_idx], 2)
    closed_at = planned.astype("datetime64[s]")
    closed_at[~closed] = np.datetime64("NaT")
    pool = np.array([f"Account {i}" for i in range(5_000)], dtype=object)
    owner = np.array([f"rep-{i}" for i in sales["id"]], dtype=object)
    modified = np.where(closed, planned, created + (rng.random(n) * 10 * DAY).astype(np.int64))
    return pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "external_id": np.array([f"D{i:09d}" for i in range(1, n + 1)], dtype=object),
            "rep_id": rep_ids,
            "owner_external_id": owner[rep_idx],
            "name": None,
            "account": pool[rng.integers(0, len(pool), n)],
            "amount": amount,
            "currency": currency,
            "stage": names[stage],
            "pipeline": "default",
            "probability": probs[stage],
            "status": statuses[stage],
            "created_at": created.astype("datetime64[s]"),
            "close_date": (planned // DAY).astype("datetime64[D]"),  # expected, if open
            "closed_at": closed_at,
            "source_modified_at": np.minimum(modified, end_s).astype("datetime64[s]"),
            "is_deleted": rng.random(n) < 0.005,
        }
    )


def _activities(
    rng: np.random.Generator,
    n: int,
    sales: pd.DataFrame,
    deals: pd.DataFrame,
    window_start_s: int,
    end_s: int,
) -> pd.DataFrame:
    """Activities over the same span; 45% name a deal of the same rep."""
    n_sales = len(sales)
    rep_start, span = _active_spans(sales, window_start_s, end_s)
    effort = rng.lognormal(0.0, 0.35, n_sales)
    rep_idx = rng.choice(n_sales, size=n, p=effort * span / (effort * span).sum())
    occurred = rep_start[rep_idx] + (rng.random(n) * span[rep_idx]).astype(np.int64)
    order = np.argsort(occurred, kind="stable")
    rep_idx, occurred = rep_idx[order], occurred[order]
    # Deals grouped by rep: activity k links to a random deal of its own rep.
    deal_rep_idx = np.searchsorted(sales["id"].to_numpy(), deals["rep_id"].to_numpy())
    by_rep = np.argsort(deal_rep_idx, kind="stable")
    per_rep = np.bincount(deal_rep_idx, minlength=n_sales)
    offset = np.concatenate([[0], np.cumsum(per_rep)[:-1]])
    linked = (rng.random(n) < 0.45) & (per_rep[rep_idx] > 0)
    pick = offset[rep_idx] + (rng.random(n) * per_rep[rep_idx]).astype(np.int64)
    pick = np.minimum(pick, max(len(by_rep) - 1, 0))
    deal_ext = deals["external_id"].to_numpy()
    link = np.full(n, None, dtype=object)
    if len(by_rep):
        link[linked] = deal_ext[by_rep[pick[linked]]]
    types = rng.choice(len(ACTIVITY_TYPES), size=n, p=ACTIVITY_MIX)
    subjects = np.array(["Call", "Email", "Meeting", "Task"], dtype=object)
    owner = np.array([f"rep-{i}" for i in sales["id"]], dtype=object)
    ts = occurred.astype("datetime64[s]")
    return pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "rep_id": sales["id"].to_numpy()[rep_idx],
            "owner_external_id": owner[rep_idx],
            "type": np.array(ACTIVITY_TYPES, dtype=object)[types],
            "subject": subjects[types],
            "occurred_at": ts,
            "deal_external_id": link,
            "source_modified_at": ts,
            "is_deleted": rng.random(n) < 0.002,
        }
    )


def _targets(
    rng: np.random.Generator, sales: pd.DataFrame, deals: pd.DataFrame, first_month: int
) -> pd.DataFrame:
    """A monthly won_revenue target per rep from their start month to the fiscal year end,
    near their own average won revenue per month (so some make it and some miss)."""
    last_month = int(np.datetime64(date(AS_OF.year, 12, 1), "M").astype(np.int64))
    months = np.arange(first_month, last_month + 1)
    won = deals[(deals["status"] == "won") & ~deals["is_deleted"]]
    total = won.groupby("rep_id")["amount"].sum()
    rep_ids = sales["id"].to_numpy()
    start_month = sales["start_date"].to_numpy().astype("datetime64[M]").astype(np.int64)
    first_active = np.maximum(start_month, first_month)
    as_of_month = int(np.datetime64(AS_OF, "M").astype(np.int64))
    active_months = np.maximum(as_of_month - first_active + 1, 1)
    monthly = total.reindex(rep_ids).fillna(0.0).to_numpy() / active_months
    if (monthly > 0).any():
        monthly = np.where(monthly > 0, monthly, np.median(monthly[monthly > 0]))
    else:
        monthly = np.full(len(rep_ids), 50_000.0)
    grid_rep = np.repeat(np.arange(len(rep_ids)), len(months))
    grid_month = np.tile(months, len(rep_ids))
    keep = grid_month >= first_active[grid_rep]
    grid_rep, grid_month = grid_rep[keep], grid_month[keep]
    value = np.round(monthly[grid_rep] * rng.lognormal(0.05, 0.15, len(grid_rep)), -2)
    month = grid_month.astype("datetime64[M]")
    return pd.DataFrame(
        {
            "id": np.arange(1, len(grid_rep) + 1),
            "rep_id": rep_ids[grid_rep],
            "metric": "won_revenue",
            "period": np.datetime_as_string(month, unit="M").astype(object),
            "period_start": month.astype("datetime64[D]"),
            "period_end": (month + 1).astype("datetime64[D]") - np.timedelta64(1, "D"),
            "value": value,
        }
    )


def generate(*, reps: int, deals: int, activities: int, months: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    first_month = int(np.datetime64(AS_OF, "M").astype(np.int64)) - (months - 1)
    window_start_day = int(_month_starts(first_month, 1)[0])
    window_start_s = window_start_day * DAY
    end_s = (_day_number(AS_OF) + 1) * DAY - 1
    teams, people = _org(rng, reps, window_start_day)
    sales = people[people["role"] == "rep"].reset_index(drop=True)
    currency_of_team = dict(zip(teams["id"], teams["currency"], strict=True))
    deal_rows = _deals(rng, deals, sales, currency_of_team, window_start_s, end_s)
    activity_rows = _activities(rng, activities, sales, deal_rows, window_start_s, end_s)
    targets = _targets(rng, sales, deal_rows, first_month)
    return Dataset(teams.drop(columns="currency"), people, deal_rows, activity_rows, targets)


# --------------------------------------------------------------------------------------
# Bulk load
# --------------------------------------------------------------------------------------


def _timestamps(values: np.ndarray) -> np.ndarray:
    """datetime64 -> 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's SQLite format, UTC)."""
    text = np.datetime_as_string(values.astype("datetime64[us]"), unit="us")
    text = np.ascontiguousarray(text)
    text.view(np.uint32).reshape(len(text), -1)[:, 10] = ord(" ")
    return text


def _python_column(values: pd.Series) -> list[Any]:
    """One column of a chunk as plain Python values, None for missing."""
    if values.dtype.kind == "M":
        array = values.to_numpy()
        missing = np.isnat(array)
        if values.name in DATE_COLUMNS:
            text = np.datetime_as_string(array, unit="D").astype(object)
        else:
            text = _timestamps(array).astype(object)
        text[missing] = None
        plain: list[Any] = text.tolist()
        return plain
    if values.dtype.kind in "iub" and not values.hasnans:
        numbers: list[Any] = values.to_numpy().tolist()
        return numbers
    # floats, nullable ints, strings: Python objects, None for missing.
    return [None if pd.isna(v) else v for v in values.astype(object).tolist()]


@dataclass
class Table:
    """One table to load: the frame's columns, constant columns, and columns derived per
    chunk (activity external ids: 10M strings are cheaper made as they are written)."""

    name: str
    frame: pd.DataFrame
    constants: dict[str, Any]
    derived: dict[str, Callable[[pd.DataFrame], list[Any]]] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [*self.frame.columns, *self.constants, *self.derived]

    def chunks(self) -> Iterator[list[tuple[Any, ...]]]:
        for lo in range(0, len(self.frame), CHUNK):
            part = self.frame.iloc[lo : lo + CHUNK]
            cols = [_python_column(part[c]) for c in part.columns]
            cols.extend([v] * len(part) for v in self.constants.values())
            cols.extend(fn(part) for fn in self.derived.values())
            yield list(zip(*cols, strict=True))


def _tables(data: Dataset, source_id: int) -> list[Table]:
    """In load order; team managers are set once the reps exist."""
    stamp = {"created_at": SYNCED_AT, "updated_at": SYNCED_AT}
    record = {"source_id": source_id, "synced_at": SYNCED_AT}
    return [
        Table("teams", data.teams.drop(columns="manager_id"), stamp),
        Table("reps", data.reps, stamp),
        Table("targets", data.targets, stamp),
        Table("deals", data.deals, record),
        Table(
            "activities",
            data.activities,
            record,
            {"external_id": lambda part: [f"A{i:010d}" for i in part["id"]]},
        ),
    ]


def _team_managers(data: Dataset) -> list[tuple[int, int]]:
    return list(zip(data.teams["manager_id"].tolist(), data.teams["id"].tolist(), strict=True))


def _insert_source(engine: Engine) -> int:
    with transaction(make_sessionmaker(engine)) as session:
        source = Source(kind="csv", name="bench", config={"bench": True})
        session.add(source)
        session.flush()
        return source.id


def load_sqlite(path: Path, data: Dataset, source_id: int) -> dict[str, float]:
    """executemany in big transactions on a raw sqlite3 connection."""
    timings: dict[str, float] = {}
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-1000000")
        for table in _tables(data, source_id):
            t = time.perf_counter()
            marks = ", ".join("?" * len(table.columns))
            sql = f"INSERT INTO {table.name} ({', '.join(table.columns)}) VALUES ({marks})"
            for rows in table.chunks():
                conn.execute("BEGIN")
                conn.executemany(sql, rows)
                conn.execute("COMMIT")
            timings[table.name] = time.perf_counter() - t
        conn.executemany("UPDATE teams SET manager_id = ? WHERE id = ?", _team_managers(data))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return timings


def load_postgresql(dsn: str, data: Dataset, source_id: int) -> dict[str, float]:
    """COPY through psycopg's ``cursor.copy``, then ANALYZE (as autovacuum would)."""
    timings: dict[str, float] = {}
    with psycopg.connect(dsn) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        for table in _tables(data, source_id):
            t = time.perf_counter()
            sql = f"COPY {table.name} ({', '.join(table.columns)}) FROM STDIN"
            with conn.cursor() as cur:
                for rows in table.chunks():
                    with cur.copy(sql) as copy:
                        for row in rows:
                            copy.write_row(row)
            conn.commit()
            timings[table.name] = time.perf_counter() - t
        with conn.cursor() as cur:
            cur.executemany("UPDATE teams SET manager_id = %s WHERE id = %s", _team_managers(data))
            for name in ("teams", "reps", "targets", "deals", "activities"):
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f"(SELECT max(id) FROM {name}))"
                )
        conn.commit()
        t = time.perf_counter()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        timings["vacuum analyze"] = time.perf_counter() - t
    return timings


# What a sync and a compute write: autovacuum would vacuum and analyze each of them before the
# next compute (a random compute closes about a fifth of the result rows).
VACUUMED = [
    "deals",
    "deal_changes",
    "dirty_days",
    "performance_rows",
    "metric_rows",
    "coaching_rows",
    "compute_state",
]


def autovacuum_stand_in(dsn: str) -> float | None:
    """``VACUUM ANALYZE`` of the written tables when the server's autovacuum is off, as it
    would have run between two computes; returns its time (None: autovacuum is on)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SHOW autovacuum").fetchone()
        if row is not None and row[0] == "on":
            return None
        t = time.perf_counter()
        conn.execute(f"VACUUM ANALYZE {', '.join(VACUUMED)}")
        return time.perf_counter() - t


def print_vacuum(dsn: str | None) -> None:
    if dsn is None:
        return
    secs = autovacuum_stand_in(dsn)
    if secs is not None:
        print(f"VACUUM ANALYZE of the written tables: {secs:.2f} s (autovacuum is off here)")


@dataclass
class Database:
    url: str
    path: Path | None = None
    dsn: str | None = None


@contextmanager
def fresh_database(kind: str, pg_url: str, keep: bool) -> Iterator[Database]:
    if kind == "sqlite":
        tmp = Path(tempfile.mkdtemp(prefix="qg_bench_"))
        path = tmp / "bench.db"
        db = Database(f"sqlite:///{path}", path=path)
        try:
            yield db
        finally:
            if keep:
                print(f"kept {path}")
            else:
                shutil.rmtree(tmp, ignore_errors=True)
        return
    name = f"qg_bench_{os.getpid()}"
    admin = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    db = Database(f"{pg_url}/{name}", dsn=f"{admin}/{name}")
    try:
        yield db
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def settings_for(url: str, months: int) -> Settings:
    # No .env file: the figures should not depend on the checkout's local configuration.
    return Settings(_env_file=None, database_url=url, history_months=months)


# --------------------------------------------------------------------------------------
# Compute runs (each in a fresh spawned process, for an honest peak RSS)
# --------------------------------------------------------------------------------------


MONTH_LABEL = re.compile(r"[0-9]{4}-[0-9]{2}")


def _peak_rss_bytes() -> int:
    """This process's peak RSS. ``VmHWM`` is the high-water mark of the current address space;
    ``ru_maxrss`` would not do in a spawned child: Linux carries the forking parent's peak
    over the exec into it."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def compute_job(url: str, months: int, full: bool, profile_top: int) -> dict[str, Any]:
    """Runs in the child: one compute in its own transaction; returns figures."""
    baseline = _peak_rss_bytes()
    engine = open_engine(url)
    settings = settings_for(url, months)
    factory = make_sessionmaker(engine)
    profiler = cProfile.Profile() if profile_top else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    with transaction(factory) as session:
        snap = compute.run(
            session=session, settings=settings, as_of=AS_OF, full=full, trigger="bench"
        )
        figures = {
            "kind": snap.kind,
            "timings": dict(snap.details["timings_s"]),
            "rows_written": snap.rows_written,
            "deals": snap.details["deals"],
            "activities": snap.details["activities"],
            "dirty_days": snap.details["dirty_days"],
            "periods": len(snap.periods),
            "first_month": min(p for p in snap.periods if MONTH_LABEL.fullmatch(p)),
        }
    if profiler:
        profiler.disable()
    figures["total"] = time.perf_counter() - started
    engine.dispose()
    figures["baseline_rss"] = baseline
    figures["peak_rss"] = _peak_rss_bytes()
    if profiler:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("cumulative").print_stats(profile_top)
        stats.sort_stats("tottime").print_stats(profile_top)
        figures["profile"] = out.getvalue()
    return figures


def run_compute(url: str, months: int, *, full: bool, profile_top: int) -> dict[str, Any]:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(compute_job, url, months, full, profile_top).result()


def print_compute(label: str, r: dict[str, Any]) -> None:
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in r["timings"].items())
    print(
        f"{label}: {r['total']:.2f} s ({r['kind']}; {r['periods']} periods from "
        f"{r['first_month']}, "
        f"{r['dirty_days']} dirty days, {r['deals']:,} deals + {r['activities']:,} activities "
        f"loaded, {r['rows_written']:,} rows written)"
    )
    print(f"  stages: {stages}")
    print(
        f"  peak RSS of the compute process: {r['peak_rss'] / GB:.2f} GB "
        f"(baseline after imports {r['baseline_rss'] / GB:.2f} GB)"
    )
    if "profile" in r:
        print(f"  cProfile of {label} (timings above include profiler overhead):")
        print("    " + r["profile"].replace("\n", "\n    "))


# --------------------------------------------------------------------------------------
# DuckDB reference
# --------------------------------------------------------------------------------------

DUCKDB_SQL = """
WITH rates(currency, rate) AS (SELECT * FROM (VALUES {rates})),
won AS (
    SELECT d.rep_id, strftime(d.close_date, '%Y-%m') AS period,
           sum(d.amount * r.rate) AS won_revenue, count(*) AS won_deals
    FROM deals d JOIN rates r ON upper(d.currency) = r.currency
    WHERE d.status = 'won' AND NOT d.is_deleted AND d.close_date IS NOT NULL
    GROUP BY ALL
),
acts AS (
    SELECT rep_id, strftime(timezone('{tz}', occurred_at), '%Y-%m') AS period,
           count(*) AS activities
    FROM activities
    WHERE NOT is_deleted AND occurred_at IS NOT NULL
    GROUP BY ALL
)
SELECT rep_id, period,
       coalesce(won_revenue, 0.0) AS won_revenue,
       coalesce(won_deals, 0) AS won_deals,
       coalesce(activities, 0) AS activities
FROM won FULL OUTER JOIN acts USING (rep_id, period)
"""
CORE = ("won_revenue", "won_deals", "activities")


def load_frames(engine: Engine, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The deals and activities frames a full compute loads (same bounds, same columns)."""
    with Session(engine) as session:
        scope = plan.scope_of(session, settings, as_of=AS_OF, full=True)
        f = inputs.load(session, scope)
    return f.deals, f.activities


def best_of(repeat: int, fn: Callable[[], pd.DataFrame]) -> tuple[float, pd.DataFrame]:
    best, out = math.inf, pd.DataFrame()
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


@dataclass
class Reference:
    pandas_s: float
    duckdb_s: float
    duckdb_1thread_s: float
    rows: int
    threads: int

    @property
    def ratio(self) -> float:
        return self.pandas_s / self.duckdb_s


def reference(engine: Engine, settings: Settings, repeat: int) -> Reference:
    deals, acts = load_frames(engine, settings)
    rates = ", ".join(f"('{k.upper()}', {float(v)!r})" for k, v in settings.currency_rates.items())
    sql = DUCKDB_SQL.format(rates=rates, tz=settings.timezone)
    con = duckdb.connect()
    con.register("deals", deals)
    con.register("activities", acts)
    threads = int(con.execute("SELECT current_setting('threads')").fetchone()[0])  # type: ignore[index]

    def pandas_run() -> pd.DataFrame:
        return period_metrics(
            deals,
            acts,
            kind="month",
            cal=settings.calendar,
            rates=settings.currency_rates,
            tz=settings.timezone,
            key="rep_id",
        )

    pandas_s, ours = best_of(repeat, pandas_run)
    duck_s, theirs = best_of(repeat, lambda: con.execute(sql).df())
    con.execute("SET threads = 1")
    duck1_s, _ = best_of(repeat, lambda: con.execute(sql).df())
    con.close()
    check_agreement(ours, theirs)
    return Reference(pandas_s, duck_s, duck1_s, len(ours), threads)


def check_agreement(ours: pd.DataFrame, theirs: pd.DataFrame) -> None:
    """Equal core aggregates per (rep, month); rows absent on one side count as zeros."""
    keys = ["rep_id", "period"]
    a = ours[[*keys, *CORE]].astype({"rep_id": "int64"})
    b = theirs[[*keys, *CORE]].astype({"rep_id": "int64"})
    both = a.merge(b, on=keys, how="outer", suffixes=("_pandas", "_duckdb")).fillna(0)
    for col in CORE:
        x = both[f"{col}_pandas"].to_numpy(dtype=np.float64)
        y = both[f"{col}_duckdb"].to_numpy(dtype=np.float64)
        bad = ~np.isclose(x, y, rtol=1e-6, atol=1e-9)
        assert not bad.any(), f"{col} differs for {int(bad.sum())} rows: {both[bad].head()}"
    totals = ", ".join(f"{c} {both[f'{c}_pandas'].sum():,.0f}" for c in CORE)
    print(f"  agree: {len(both):,} (rep, month) rows; totals {totals}")


# --------------------------------------------------------------------------------------
# Incremental: 1,000 changed deals through the ingest path
# --------------------------------------------------------------------------------------


def _deal_records(session: Session, ids: Sequence[int]) -> list[dict[str, Any]]:
    table = Deal.__table__
    cols = [table.c[f] for f in DEAL_FIELDS]
    rows = session.execute(select(*cols).where(table.c.id.in_(list(ids)))).mappings()
    return [dict(r) for r in rows]


def _recent_changes(
    rng: np.random.Generator, records: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """What a day of CRM edits looks like: amounts revised, stages moved, deals closed."""
    stage_of = {s[0]: s for s in STAGES}
    now = datetime.combine(AS_OF, datetime.min.time(), UTC) + timedelta(hours=10)
    for r in records:
        roll = rng.random()
        if r["status"] != "open" or roll < 0.45:
            r["amount"] = round(float(r["amount"]) * float(rng.uniform(0.8, 1.3)), 2)
        elif roll < 0.75:
            stage = STAGES[min(int(rng.integers(0, 4)) + 1, 3)]
            r["stage"], r["probability"] = stage[0], stage[1]
        else:
            status = "won" if rng.random() < 0.3 else "lost"
            stage = stage_of["Closed Won" if status == "won" else "Closed Lost"]
            closed_at = now - timedelta(days=int(rng.integers(0, 5)))
            r.update(
                status=status,
                stage=stage[0],
                probability=stage[1],
                closed_at=closed_at,
                close_date=closed_at.date(),
            )
        r["source_modified_at"] = now
    return records


def _random_changes(
    rng: np.random.Generator, records: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    for r in records:
        r["amount"] = round(float(r["amount"]) * float(rng.uniform(0.5, 1.5)), 2)
    return records


def change_deals(
    engine: Engine, data: Dataset, *, recent: bool, n: int, seed: int, source_id: int
) -> tuple[float, int]:
    """Upsert ``n`` changed deals; returns (seconds, deals updated)."""
    rng = np.random.default_rng(seed + (1 if recent else 2))
    d = data.deals
    live = ~d["is_deleted"].to_numpy()
    if recent:
        cutoff_s = np.datetime64(AS_OF - timedelta(days=61), "s")
        window = (d["created_at"].to_numpy() >= cutoff_s) | (
            d["close_date"].to_numpy() >= np.datetime64(AS_OF - timedelta(days=61), "D")
        )
        live &= window
    candidates = d["id"].to_numpy()[live]
    ids = rng.choice(candidates, size=min(n, len(candidates)), replace=False).tolist()
    t = time.perf_counter()
    with transaction(make_sessionmaker(engine)) as session:
        records = _deal_records(session, ids)
        records = _recent_changes(rng, records) if recent else _random_changes(rng, records)
        counts = ingest.upsert_records(session, Deal, source_id, records)
    return time.perf_counter() - t, counts.updated


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def _mark(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def summary(
    counts: dict[str, int],
    db: str,
    full: dict[str, Any],
    ref: Reference,
    incremental: dict[str, list[dict[str, Any]]],
) -> None:
    peak = full["peak_rss"]
    rows: list[tuple[str, str, str, str]] = [
        (
            "records",
            f"{counts['reps']:,} reps, {counts['deals']:,} deals, "
            f"{counts['activities']:,} activities",
            "",
            "",
        ),
        ("full recompute (end to end)", f"{full['total']:.1f} s", "", ""),
        ("  metrics stage (3 kinds, reps + teams)", f"{full['timings']['metrics']:.1f} s", "", ""),
        ("period_metrics, month, reps", f"{ref.pandas_s:.2f} s", "", ""),
        (f"DuckDB reference ({ref.threads} threads)", f"{ref.duckdb_s:.2f} s", "", ""),
        ("  DuckDB, 1 thread", f"{ref.duckdb_1thread_s:.2f} s", "", ""),
        (
            "ratio pandas / DuckDB",
            f"{ref.ratio:.1f}x",
            f"<= {GOAL_RATIO:.0f}x",
            _mark(ref.ratio <= GOAL_RATIO),
        ),
        (
            "peak memory (full recompute process)",
            f"{peak / GB:.2f} GB",
            f"< {GOAL_PEAK_BYTES / GB:.0f} GB",
            _mark(peak < GOAL_PEAK_BYTES),
        ),
    ]
    for label, runs in incremental.items():
        median = float(np.median([r["total"] for r in runs]))
        each = ", ".join(f"{r['total']:.2f}" for r in runs)
        rows.append(
            (
                f"incremental, 1,000 {label} deals",
                f"{median:.2f} s (median of {len(runs)}: {each})",
                f"< {GOAL_INCREMENTAL_S:.0f} s",
                _mark(median < GOAL_INCREMENTAL_S),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    header = ("measure", f"value ({db})", "goal", "status")
    widths = [max(w, len(h)) for w, h in zip(widths, header, strict=True)]
    line = "  ".join("-" * w for w in widths)
    print("\nSummary")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


@dataclass
class Args:
    reps: int = 2000
    deals: int = 1_000_000
    activities: int = 10_000_000
    months: int = 24
    seed: int = 1
    db: str = "sqlite"
    pg_url: str = "postgresql+psycopg://postgres@127.0.0.1:5432"
    repeat: int = 3
    changes: int = 1000
    inc_runs: int = 3
    profile: int = 0
    keep_db: bool = False


def parse_args(argv: Sequence[str] | None = None) -> Args:
    d = Args()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--reps", type=int, default=d.reps)
    p.add_argument("--deals", type=int, default=d.deals)
    p.add_argument("--activities", type=int, default=d.activities)
    p.add_argument("--months", type=int, default=d.months)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--db", choices=("sqlite", "postgresql"), default=d.db)
    p.add_argument("--pg-url", default=d.pg_url, help="server URL, without a database name")
    p.add_argument("--repeat", type=int, default=d.repeat, help="runs of each reference timing")
    p.add_argument("--changes", type=int, default=d.changes, help="deals changed per run")
    p.add_argument(
        "--inc-runs", type=int, default=d.inc_runs, help="incremental runs per variant (median)"
    )
    p.add_argument(
        "--profile",
        type=int,
        default=d.profile,
        metavar="N",
        help="cProfile every compute and print its top N functions (slows the computes)",
    )
    p.add_argument("--keep-db", action="store_true", help="keep the database afterwards")
    ns = p.parse_args(argv)
    return Args(**{k: v for k, v in vars(ns).items() if k in Args.__dataclass_fields__})


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # progress shows in a redirected log
    print(
        f"Quota Gap compute benchmark: {args.reps:,} reps, {args.deals:,} deals, "
        f"{args.activities:,} activities, {args.months} months to {AS_OF}, seed {args.seed}, "
        f"{args.db}"
    )
    t = time.perf_counter()
    data = generate(
        reps=args.reps,
        deals=args.deals,
        activities=args.activities,
        months=args.months,
        seed=args.seed,
    )
    counts = data.counts()
    print(f"generated in {time.perf_counter() - t:.1f} s: {counts}")
    with fresh_database(args.db, args.pg_url, args.keep_db) as db:
        engine = open_engine(db.url)
        upgrade(engine)
        source_id = _insert_source(engine)
        t = time.perf_counter()
        if db.path is not None:
            loads = load_sqlite(db.path, data, source_id)
        else:
            assert db.dsn is not None
            loads = load_postgresql(db.dsn, data, source_id)
        per_table = ", ".join(f"{k} {v:.1f}s" for k, v in loads.items())
        print(f"loaded in {time.perf_counter() - t:.1f} s ({per_table}) [not a goal]")
        settings = settings_for(db.url, args.months)

        full = run_compute(db.url, args.months, full=True, profile_top=args.profile)
        print_compute("full recompute", full)
        print_vacuum(db.dsn)

        print(f"reference (best of {args.repeat}, on the frames the full compute loads):")
        ref = reference(engine, settings, args.repeat)
        print(
            f"  period_metrics(kind='month') {ref.pandas_s:.2f} s; DuckDB {ref.duckdb_s:.2f} s "
            f"({ref.threads} threads), {ref.duckdb_1thread_s:.2f} s (1 thread); "
            f"ratio {ref.ratio:.1f}x"
        )

        incremental: dict[str, list[dict[str, Any]]] = {}
        for label, recent in (("recent", True), ("random", False)):
            incremental[label] = []
            for run in range(1, args.inc_runs + 1):
                secs, updated = change_deals(
                    engine,
                    data,
                    recent=recent,
                    n=args.changes,
                    seed=args.seed + 10 * (run - 1),
                    source_id=source_id,
                )
                print(f"read and upserted {updated:,} {label} deals in {secs:.2f} s")
                print_vacuum(db.dsn)
                r = run_compute(db.url, args.months, full=False, profile_top=args.profile)
                print_compute(f"incremental ({label}, run {run} of {args.inc_runs})", r)
                incremental[label].append(r)
        engine.dispose()
    summary(counts, args.db, full, ref, incremental)


if __name__ == "__main__":
    main()
