"""Benchmark of a full CRM sync end to end: sandbox CRM -> connector -> sync engine -> database.

It prints figures and asserts nothing about time. For each CRM kind and target size:

1. sandbox:     a seeded sandbox CRM (``connectors/sandbox``) with about ``size`` records
                (owners + deals + activities; the demo generator scaled by more teams and
                ``activity_scale``; the actual count is printed) on a real socket, in its OWN
                spawned process, rate limit and faults off, the largest page size the CRM
                allows (Salesforce 2,000, Pipedrive 500, HubSpot search 200).
2. fetch only:  the connector's streams read to the end without storing anything, in a
                spawned child: the ceiling the sandbox + HTTP + mapping put on a sync (context).
3. sync:        per database (SQLite file in a temp dir; PostgreSQL scratch database
                ``qg_sync_bench_<pid>`` dropped afterwards): create, migrate, add a source with
                OAuth credentials pointing at the sandbox, then ``app.pipeline.sync.run_sync`` end
                to end (first sync, everything inserted) in a freshly spawned child process.
                Figures: wall time, records/s, the child's CPU time, the sandbox's CPU time
                during the run, and the child's peak RSS (``VmHWM``; "baseline" is the peak
                after imports, before the sync).
4. summary:     records/s into SQLite and PostgreSQL side by side, peak RSS per size side by
                side, and the issue's goals marked met / not met: 10,000 records/s or more into
                SQLite end to end, and a sync's peak memory that does not grow with the number
                of records (peak at the largest size within 20% or 32 MB of the smallest).

Run from the project root::

    .venv/bin/python bench/sync.py                      # 3 kinds x 100k, 1M x SQLite, PostgreSQL
    .venv/bin/python bench/sync.py --sizes 20000        # smoke run (about a minute)
    .venv/bin/python bench/sync.py --kinds salesforce --sizes 100000 --db sqlite
    .venv/bin/python bench/sync.py --sizes 100000 --profile 25   # cProfile each sync (slower)
    .venv/bin/python bench/sync.py --sizes 100000 --sql-stats 10 # time per SQL statement

PostgreSQL: a sync commits page by page, and the lookups it makes per page are planned from
the table's statistics. Where the server runs with autovacuum off (as the dev server does),
nothing would ever ANALYZE the growing tables, so by default the benchmark stands in for
autovacuum: during PostgreSQL syncs it ANALYZEs the tables autovacuum would (more than 50 rows
+ 10% changed) every 60 s (``--pg-autoanalyze SECONDS``; 0 shows the raw behaviour).

Other options: ``--pg-url`` (server for the scratch databases), ``--no-fetch-only``,
``--months``, ``--seed``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import os
import pstats
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date
from multiprocessing import get_context
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

# Run as ``python bench/sync.py``, this file's directory comes first on sys.path and
# bench/analytics.py would shadow the ``analytics`` package: put the project root there instead.
_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]
sys.path.insert(0, str(_ROOT))

KINDS = ("salesforce", "hubspot", "pipedrive")
# The largest page each CRM allows (and the sandbox serves).
PAGE_SIZES = {"salesforce": 2000, "hubspot": 200, "pipedrive": 500}
TODAY = date(2026, 11, 18)  # fixed, so runs are comparable across days
REPS_PER_TEAM = 10
RECORDS_PER_TEAM = 34_000  # about, at activity_scale 1 and 18 months; refined per run
GOAL_RECORDS_PER_S = 10_000
# "Does not grow": the peak at the largest size within this of the peak at the smallest.
RSS_TOLERANCE = 0.20
RSS_SLACK_BYTES = 32 * 2**20
MB = 2**20


# --------------------------------------------------------------------------------------
# The sandbox CRM, in its own process
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSize:
    teams: int
    activity_scale: float
    owners: int
    deals: int
    activities: int

    @property
    def records(self) -> int:
        return self.owners + self.deals + self.activities


def _demo_config(target: int, seed: int, months: int) -> tuple[Any, DataSize]:
    """The demo generator's config whose data is about ``target`` records (and its data)."""
    from app.demo.generator import DemoConfig, generate

    teams = max(1, round(target / RECORDS_PER_TEAM))
    scale = 1.0
    for _ in range(3):
        config = DemoConfig(
            seed=seed,
            today=TODAY,
            months=months,
            teams=teams,
            reps_per_team=REPS_PER_TEAM,
            activity_scale=scale,
        )
        data = generate(config)
        size = DataSize(teams, scale, len(data.reps), len(data.deals), len(data.activities))
        if abs(size.records - target) <= 0.02 * target or not size.activities:
            break
        # Activities grow in proportion to activity_scale; deals and owners do not.
        wanted = max(1.0, target - size.owners - size.deals)
        scale = round(scale * wanted / size.activities, 4)
    return data, size


def sandbox_main(kind: str, target: int, seed: int, months: int, conn: Connection) -> None:
    """Child process: build the data, serve it until the parent says stop."""
    from connectors import registry
    from connectors.sandbox.common import SandboxState, ServerThread

    started = time.perf_counter()
    data, size = _demo_config(target, seed, months)
    state = SandboxState(data=data, seed=seed)
    app = registry.sandbox_app(kind, state, page_size=PAGE_SIZES[kind])
    with ServerThread(app) as server:
        conn.send((server.url, size, time.perf_counter() - started))
        conn.recv()  # any message (or the parent gone) ends it
    conn.close()


@dataclass
class Sandbox:
    kind: str
    url: str
    size: DataSize
    build_s: float
    process: BaseProcess
    conn: Connection

    def cpu_seconds(self) -> float:
        """User + system CPU the sandbox process has used so far."""
        assert self.process.pid is not None
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def sandbox(kind: str, target: int, seed: int, months: int) -> Iterator[Sandbox]:
    ctx = get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(
        target=sandbox_main, args=(kind, target, seed, months, child), daemon=True
    )
    process.start()
    child.close()
    try:
        if not parent.poll(600):
            raise RuntimeError(f"{kind} sandbox did not start")
        url, size, build_s = parent.recv()
        yield Sandbox(kind, url, size, build_s, process, parent)
    finally:
        with suppress(BrokenPipeError, OSError):
            parent.send("stop")
        process.join(15)
        if process.is_alive():
            process.terminate()
            process.join(5)


def credentials(kind: str, url: str) -> dict[str, str]:
    """OAuth credentials the sandboxes accept (as tests/connectors/test_e2e_sync.py uses)."""
    oauth = {
        "client_id": "qg",
        "client_secret": "s",
        "refresh_token": "sandbox-refresh",
        "access_token": "sandbox-token",
    }
    extra = {
        "hubspot": {},
        "salesforce": {"login_url": url},
        "pipedrive": {"token_url": f"{url}/oauth/token"},
    }[kind]
    return {**oauth, **extra}


def source_config(kind: str) -> dict[str, Any]:
    """The source's settings: the sandbox has no search limit, so HubSpot's searches are not
    paced (a real portal's are, by default) and the figures measure the sync, not the pacing."""
    return {"search_interval": 0} if kind == "hubspot" else {}


# --------------------------------------------------------------------------------------
# Databases
# --------------------------------------------------------------------------------------


@contextmanager
def fresh_database(db: str, pg_url: str) -> Iterator[str]:
    """A new, empty database URL (migrated by the caller); removed afterwards."""
    if db == "sqlite":
        tmp = Path(tempfile.mkdtemp(prefix="qg_sync_bench_"))
        try:
            yield f"sqlite:///{tmp / 'sync.db'}"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    import psycopg

    name = f"qg_sync_bench_{os.getpid()}"
    admin = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"{pg_url}/{name}"
    finally:
        with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _psycopg_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def autovacuum_is_on(pg_url: str) -> bool:
    import psycopg

    with psycopg.connect(f"{_psycopg_dsn(pg_url)}/postgres", autocommit=True) as conn:
        row = conn.execute("SHOW autovacuum").fetchone()
    return bool(row and row[0] == "on")


# Which tables autovacuum would analyze now (its default threshold: 50 rows + 10% of the table).
_STALE_TABLES = """
    SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
    WHERE s.n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0)
"""


@contextmanager
def autoanalyze(url: str | None, every: float) -> Iterator[list[str]]:
    """While the block runs, ANALYZE every ``every`` seconds the tables autovacuum would
    (a stand-in for a server that runs with autovacuum off); yields the tables analyzed."""
    analyzed: list[str] = []
    if url is None or every <= 0:
        yield analyzed
        return
    import psycopg

    stop = threading.Event()

    def loop() -> None:
        with psycopg.connect(_psycopg_dsn(url), autocommit=True) as conn:
            while not stop.wait(every):
                for (table,) in conn.execute(_STALE_TABLES).fetchall():
                    conn.execute(f'ANALYZE "{table}"')
                    analyzed.append(table)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield analyzed
    finally:
        stop.set()
        thread.join(60)


def settings_for(url: str, secret_key: str) -> Any:
    from app.core.config import Settings

    # No .env file: the figures should not depend on the checkout's local configuration.
    # The sandbox CRM listens on loopback, which CRM URLs may not be by default.
    return Settings(
        _env_file=None,
        database_url=url,
        secret_key=secret_key,
        source_allow_private_destinations=True,
    )


def prepare(url: str, secret_key: str, kind: str, sandbox_url: str) -> int:
    """Migrate the fresh database and add the source; returns its id."""
    import app.pipeline.records  # noqa: F401  (every model, so foreign keys resolve)
    from app.core import secrets
    from app.core.db import make_sessionmaker, transaction
    from app.core.migrate import upgrade
    from app.pipeline.records import open_engine
    from app.sources.models import Source

    engine = open_engine(url)
    try:
        upgrade(engine)
        settings = settings_for(url, secret_key)
        with transaction(make_sessionmaker(engine)) as session:
            source = Source(
                kind=kind,
                name=f"{kind} sandbox",
                base_url=sandbox_url,
                credentials_encrypted=secrets.encrypt(settings, credentials(kind, sandbox_url)),
                config=source_config(kind),
            )
            session.add(source)
            session.flush()
            return int(source.id)
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------
# Children: one sync (or one fetch-only pass) per freshly spawned process
# --------------------------------------------------------------------------------------


def _peak_rss_bytes() -> int:
    """This process's peak RSS (``VmHWM``; in a spawned child ``ru_maxrss`` may carry the
    parent's peak over the exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _profile_text(profiler: cProfile.Profile, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


class SqlTimer:
    """Time spent in the database driver per statement shape (``--sql-stats``)."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.totals: dict[str, list[float]] = {}  # statement -> [calls, seconds, rows]
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, _cursor: Any, *_: Any) -> None:
        conn.info["qg_sql_started"] = time.perf_counter()

    def _after(
        self, conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, many: bool
    ) -> None:
        seconds = time.perf_counter() - conn.info.pop("qg_sql_started", time.perf_counter())
        key = " ".join(statement.split())[:120]
        total = self.totals.setdefault(key, [0, 0.0, 0])
        total[0] += 1
        total[1] += seconds
        total[2] += len(params) if many and isinstance(params, list | tuple) else 1

    def report(self, top: int, wall: float) -> str:
        spent = sum(t[1] for t in self.totals.values())
        lines = [f"  SQL: {spent:.1f} s of {wall:.1f} s in the driver; top statements:"]
        for key, (calls, seconds, rows) in sorted(self.totals.items(), key=lambda kv: -kv[1][1])[
            :top
        ]:
            lines.append(f"  {seconds:7.2f} s {int(calls):6d} calls {int(rows):8d} rows  {key}")
        return "\n".join(lines)


def sync_job(
    url: str, secret_key: str, source_id: int, profile_top: int, sql_top: int
) -> dict[str, Any]:
    """Child: one ``run_sync`` end to end; returns its figures."""
    import app.pipeline.records  # noqa: F401
    from app.core.db import make_sessionmaker
    from app.pipeline import sync as sync_engine
    from app.pipeline.records import open_engine

    baseline = _peak_rss_bytes()
    engine = open_engine(url)
    timer = SqlTimer(engine) if sql_top else None
    settings = settings_for(url, secret_key)
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # the connectors' backoff and pacing, if any
        slept.append(seconds)
        time.sleep(seconds)

    profiler = cProfile.Profile() if profile_top else None
    cpu = _cpu_seconds()
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    run = sync_engine.run_sync(
        session_factory=make_sessionmaker(engine),
        settings=settings,
        source_id=source_id,
        sleep=sleep,
    )
    if profiler:
        profiler.disable()
    wall = time.perf_counter() - started
    result = {
        "wall_s": wall,
        "cpu_s": _cpu_seconds() - cpu,
        "peak_rss": _peak_rss_bytes(),
        "baseline_rss": baseline,
        "status": run.status,
        "error": run.error,
        "fetched": run.fetched,
        "inserted": run.inserted,
        "quarantined": run.quarantined,
        "pages": run.pages,
        "slept_s": sum(slept),
        "profile": _profile_text(profiler, profile_top) if profiler else "",
        "sql": timer.report(sql_top, wall) if timer else "",
    }
    engine.dispose()
    return result


def fetch_job(kind: str, url: str) -> dict[str, Any]:
    """Child: every stream's pages read and mapped, nothing stored."""
    from connectors import registry

    baseline = _peak_rss_bytes()
    connector = registry.connector_for(
        kind, base_url=url, credentials=credentials(kind, url), config=source_config(kind)
    )
    cpu = _cpu_seconds()
    started = time.perf_counter()
    fetched = pages = 0
    try:
        for stream in connector.streams():
            for page in stream.pages(None):
                fetched += page.fetched
                pages += 1
    finally:
        connector.client.close()
    return {
        "wall_s": time.perf_counter() - started,
        "cpu_s": _cpu_seconds() - cpu,
        "fetched": fetched,
        "pages": pages,
        "peak_rss": _peak_rss_bytes(),
        "baseline_rss": baseline,
    }


def in_child(fn: Any, *args: Any) -> dict[str, Any]:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        result: dict[str, Any] = pool.submit(fn, *args).result()
        return result


# --------------------------------------------------------------------------------------
# Runs and reporting
# --------------------------------------------------------------------------------------


@dataclass
class SyncResult:
    kind: str
    target: int
    db: str
    records: int
    figures: dict[str, Any]
    sandbox_cpu_s: float

    @property
    def rate(self) -> float:
        return self.records / self.figures["wall_s"] if self.figures["wall_s"] else math.nan


@dataclass
class SizeResult:
    kind: str
    target: int
    size: DataSize
    build_s: float
    fetch: dict[str, Any] | None
    fetch_sandbox_cpu_s: float = 0.0
    syncs: dict[str, SyncResult] = field(default_factory=dict)


def _mb(n: float) -> str:
    return f"{n / MB:,.0f} MB"


def _rate(records: int, seconds: float) -> str:
    return f"{records / seconds:,.0f}" if seconds else "n/a"


def print_sync(r: SyncResult) -> None:
    f = r.figures
    status = f["status"] if f["status"] == "succeeded" else f"{f['status']}: {f['error']}"
    print(
        f"  sync -> {r.db:<10} {f['wall_s']:8.1f} s  {r.rate:>9,.0f} records/s  "
        f"peak RSS {_mb(f['peak_rss'])} (baseline {_mb(f['baseline_rss'])})  "
        f"CPU: sync {f['cpu_s']:.1f} s, sandbox {r.sandbox_cpu_s:.1f} s  "
        f"[{status}; {f['fetched']:,} fetched, {f['inserted']:,} inserted, "
        f"{f['quarantined']:,} quarantined, {f['pages']:,} pages, slept {f['slept_s']:.1f} s"
        + (f", {f['analyzed']} ANALYZEs by the stand-in" if f.get("analyzed") else "")
        + f"; load {f['load']:.1f}]"
    )
    for extra in ("sql", "profile"):
        if f[extra]:
            print(f[extra])


def run_sync_once(
    box: Sandbox, target: int, db: str, args: argparse.Namespace, secret_key: str
) -> SyncResult:
    """A fresh database, migrated, one source, one full sync in a spawned child."""
    with fresh_database(db, args.pg_url) as url:
        source_id = prepare(url, secret_key, box.kind, box.url)
        every = args.pg_autoanalyze if db == "postgresql" else 0.0
        cpu = box.cpu_seconds()
        with autoanalyze(url, every) as analyzed:
            figures = in_child(sync_job, url, secret_key, source_id, args.profile, args.sql_stats)
        figures["analyzed"] = len(analyzed)
        figures["load"] = os.getloadavg()[0]  # was the machine busy meanwhile?
        return SyncResult(box.kind, target, db, box.size.records, figures, box.cpu_seconds() - cpu)


def run_size(kind: str, target: int, args: argparse.Namespace, secret_key: str) -> SizeResult:
    with sandbox(kind, target, args.seed, args.months) as box:
        s = box.size
        print(
            f"\n{kind}, target {target:,}: {s.records:,} records ({s.owners:,} owners, "
            f"{s.deals:,} deals, {s.activities:,} activities; {s.teams} teams x "
            f"{REPS_PER_TEAM} reps, activity_scale {s.activity_scale}); sandbox built in "
            f"{box.build_s:.1f} s at {box.url}, page size {PAGE_SIZES[kind]}",
            flush=True,
        )
        result = SizeResult(kind, target, s, box.build_s, None)
        if args.fetch_only:
            cpu = box.cpu_seconds()
            fetch = in_child(fetch_job, kind, box.url)
            result.fetch, result.fetch_sandbox_cpu_s = fetch, box.cpu_seconds() - cpu
            print(
                f"  fetch only       {fetch['wall_s']:8.1f} s  "
                f"{_rate(s.records, fetch['wall_s']):>9} records/s  "
                f"peak RSS {_mb(fetch['peak_rss'])}  CPU: connector {fetch['cpu_s']:.1f} s, "
                f"sandbox {result.fetch_sandbox_cpu_s:.1f} s  "
                f"[{fetch['fetched']:,} fetched, {fetch['pages']:,} pages]",
                flush=True,
            )
        for db in args.db:
            result.syncs[db] = run_sync_once(box, target, db, args, secret_key)
            print_sync(result.syncs[db])
            sys.stdout.flush()
    return result


def _cell(result: SizeResult, db: str) -> str:
    r = result.syncs.get(db)
    if r is None:
        return "-"
    if r.figures["status"] != "succeeded":
        return "failed"
    return f"{r.rate:,.0f} [{_rate(r.records, r.figures['cpu_s'])}]"


def _find(results: list[SizeResult], kind: str, target: int, db: str) -> SyncResult | None:
    for r in results:
        if (r.kind, r.target) == (kind, target) and db in r.syncs:
            return r.syncs[db]
    return None


def print_rates(results: list[SizeResult], dbs: Sequence[str]) -> None:
    print("\nrecords/s end to end (records = owners + deals + activities)")
    print("  [records per CPU-second of the sync process: its rate if the CRM answered at once]")
    header = f"  {'kind':<11}{'records':>11}" + "".join(f"{db:>22}" for db in dbs)
    print(header + f"{'fetch only':>13}")
    for r in results:
        fetch = _rate(r.size.records, r.fetch["wall_s"]) if r.fetch else "-"
        cells = "".join(f"{_cell(r, db):>22}" for db in dbs)
        print(f"  {r.kind:<11}{r.size.records:>11,}{cells}{fetch:>13}")


def print_memory(results: list[SizeResult], dbs: Sequence[str]) -> None:
    targets = sorted({r.target for r in results})
    print("\npeak RSS of the sync process (baseline after imports in brackets), per target size")
    print(f"  {'kind':<11}{'db':<12}" + "".join(f"{t:>22,}" for t in targets))
    for kind in dict.fromkeys(r.kind for r in results):
        for db in dbs:
            cells = []
            for t in targets:
                found = _find(results, kind, t, db)
                f = found.figures if found else None
                cells.append(f"{_mb(f['peak_rss'])} ({_mb(f['baseline_rss'])})" if f else "-")
            print(f"  {kind:<11}{db:<12}" + "".join(f"{c:>22}" for c in cells))


def _mark(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def print_summary(results: list[SizeResult]) -> None:
    print("\nsummary (goals from the issue)")
    sqlite = [r.syncs["sqlite"] for r in results if "sqlite" in r.syncs]
    if sqlite:
        worst = min(sqlite, key=lambda r: r.rate)
        ok = all(
            r.figures["status"] == "succeeded" and r.rate >= GOAL_RECORDS_PER_S for r in sqlite
        )
        figures = ", ".join(f"{r.kind} {r.records:,}: {r.rate:,.0f}/s" for r in sqlite)
        print(
            f"  {_mark(ok)}: >= {GOAL_RECORDS_PER_S:,} records/s into SQLite end to end "
            f"(slowest {worst.kind} {worst.records:,}: {worst.rate:,.0f}/s; {figures})"
        )
    else:
        print("  n/a: records/s into SQLite (no SQLite runs)")
    targets = sorted({r.target for r in results})
    if len(targets) < 2:
        print("  n/a: peak memory does not grow with the records (needs two --sizes)")
        return
    lines, ok = [], True
    small, large = targets[0], targets[-1]
    for kind in dict.fromkeys(r.kind for r in results):
        by_target = {r.target: r for r in results if r.kind == kind}
        for db in by_target[small].syncs:
            if db not in by_target[large].syncs:
                continue
            a = by_target[small].syncs[db].figures["peak_rss"]
            b = by_target[large].syncs[db].figures["peak_rss"]
            grows = b > a * (1 + RSS_TOLERANCE) and b - a > RSS_SLACK_BYTES
            ok &= not grows
            lines.append(f"{kind}/{db} {_mb(a)} -> {_mb(b)} ({b / a:.2f}x)")
    print(
        f"  {_mark(ok)}: peak memory does not grow with the records ({small:,} -> {large:,} "
        f"target; allowed +{RSS_TOLERANCE:.0%} or +{_mb(RSS_SLACK_BYTES)}): " + "; ".join(lines)
    )


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def _csv(kind: type, allowed: Sequence[str] | None = None) -> Any:
    def parse(text: str) -> list[Any]:
        values = [kind(v.strip().replace("_", "")) for v in text.split(",") if v.strip()]
        bad = [v for v in values if allowed is not None and v not in allowed]
        if bad or not values:
            raise argparse.ArgumentTypeError(f"expected a comma list of {allowed or kind.__name__}")
        return values

    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--kinds", type=_csv(str, KINDS), default=list(KINDS))
    p.add_argument("--sizes", type=_csv(int), default=[100_000, 1_000_000])
    p.add_argument(
        "--db", type=_csv(str, ("sqlite", "postgresql")), default=["sqlite", "postgresql"]
    )
    p.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    p.add_argument("--months", type=int, default=18)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile each sync, top N")
    p.add_argument(
        "--sql-stats", type=int, default=0, metavar="N", help="time per SQL statement, top N"
    )
    p.add_argument(
        "--pg-autoanalyze",
        type=float,
        default=None,
        metavar="SECONDS",
        help="ANALYZE changed tables this often during PostgreSQL syncs, as autovacuum would\n"
        "(default: 60 when the server runs with autovacuum off, else 0 = never)",
    )
    p.add_argument("--no-fetch-only", dest="fetch_only", action="store_false")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    from cryptography.fernet import Fernet

    args = parse_args(argv)
    # A plain `kill` still drops the scratch database and stops the sandbox (finally blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    secret_key = Fernet.generate_key().decode()
    if args.pg_autoanalyze is None:
        off = "postgresql" in args.db and not autovacuum_is_on(args.pg_url)
        args.pg_autoanalyze = 60.0 if off else 0.0
        if off:
            print(
                "note: this PostgreSQL server runs with autovacuum off; during PostgreSQL syncs "
                "the benchmark ANALYZEs the tables autovacuum would, every 60 s "
                "(--pg-autoanalyze 0: the raw behaviour)"
            )
    print(
        f"sync benchmark: kinds {','.join(args.kinds)}; sizes {args.sizes}; db {args.db}; "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results = [
        run_size(kind, target, args, secret_key) for target in args.sizes for kind in args.kinds
    ]
    print_rates(results, args.db)
    print_memory(results, args.db)
    print_summary(results)


if __name__ == "__main__":
    main()
