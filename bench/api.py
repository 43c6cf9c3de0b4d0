"""Load test of the polling endpoints on loopback: requests/s and p50/p99 latency, 200 and 304.

It prints figures and asserts nothing about time. Per database (SQLite file in a temp dir;
PostgreSQL scratch database ``qg_api_bench_<pid>`` on ``--pg-url``, dropped afterwards):

1. data:      ``quotagap demo --no-serve`` loads the demo (18 months up to today, through the
              sandbox CRM) and prints an admin key; on PostgreSQL the tables are then
              ``VACUUM ANALYZE``d, as autovacuum would (the dev server runs with it off).
2. server:    ``uvicorn app.http.main:create_service_app --factory --workers 1 --no-access-log`` in
              its own process, scheduler off (``QG_SCHEDULER_ENABLED=false``), uvloop and
              httptools when installed (uvicorn[standard] has both).
3. load:      ``wrk`` (C, little CPU: the server keeps most of a core) with ``--latency``, or,
              when wrk is missing, an httpx/asyncio client in its own spawned process, with
              ``--connections`` (50) concurrent keep-alive clients for ``--duration`` seconds
              after a warm-up, against:
                  /health                                   (reference: the framework's
                                                             ceiling, SELECT 1, no auth)
                  /api/v1/performance?period=<month>&metric=won_revenue   200 and 304
                  /api/v1/summary                                         200 and 304
                  /api/v1/leaderboard?period=<month>&metric=won_revenue   304
              A 304 run sends ``If-None-Match`` with the ETag of a first GET. A probe before
              and after each run checks the status is the one measured (nothing recomputed
              in between), and any other status during the run is reported.
4. summary:   a table backend x endpoint x answer: requests/s, p50, p99, the server's CPU
              time per request, and the goals marked met / not met: 304 answers at 2,000
              requests/s or more with p99 under 50 ms; full /api/v1/performance pages at 500
              requests/s or more.

Run from the project root::

    .venv/bin/python bench/api.py                          # SQLite and PostgreSQL, 10 s each
    .venv/bin/python bench/api.py --db sqlite --duration 5 # quick look
    .venv/bin/python bench/api.py --client httpx           # without wrk
    .venv/bin/python bench/api.py --db sqlite --profile 20 # py-spy the server (if installed)

Other options: ``--pg-url``, ``--connections``, ``--threads`` (wrk's), ``--warmup``,
``--port``, ``--keep`` (leave the server data and print where).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]
sys.path.insert(0, str(_ROOT))

GOAL_304_RPS = 2_000
GOAL_304_P99_MS = 50.0
GOAL_PAGE_RPS = 500
BIN = Path(sys.executable).parent


@dataclass
class Case:
    name: str  # label in the table
    path: str
    answer: int  # the status measured: 200 or 304
    auth: bool = True
    # Each request varies valid parameters (sort and limit, see `bust_queries`): a new ETag
    # each time, so the answer is computed by the route and never comes from the
    # representation cache. (The API refuses parameters it does not declare.)
    bust: bool = False


@dataclass
class Result:
    backend: str
    case: Case
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # other statuses, socket errors and timeouts
    cpu_ms_per_request: float
    client: str

    def goal(self) -> tuple[str, bool] | None:
        if self.case.answer == 304:
            ok = self.rps >= GOAL_304_RPS and self.p99_ms < GOAL_304_P99_MS
            return f">= {GOAL_304_RPS:,}/s, p99 < {GOAL_304_P99_MS:.0f} ms", ok
        if self.case.path.startswith("/api/v1/performance"):  # cached or computed
            return f">= {GOAL_PAGE_RPS}/s", self.rps >= GOAL_PAGE_RPS
        return None


def cases(month: str) -> list[Case]:
    perf = f"/api/v1/performance?period={month}&metric=won_revenue"
    board = f"/api/v1/leaderboard?period={month}&metric=won_revenue"
    return [
        Case("/health (reference)", "/health", 200, auth=False),
        Case("/performance page", perf, 200),
        Case("/performance computed", perf, 200, bust=True),
        Case("/performance page", perf, 304),
        Case("/summary", "/api/v1/summary", 200),
        Case("/summary", "/api/v1/summary", 304),
        Case("/leaderboard", board, 304),
    ]


# --------------------------------------------------------------------------------------
# Database and server
# --------------------------------------------------------------------------------------


@contextmanager
def scratch_database(db: str, pg_url: str, keep: bool) -> Iterator[tuple[str, Path]]:
    """A fresh database URL and a working directory (removed afterwards unless ``keep``)."""
    workdir = Path(tempfile.mkdtemp(prefix="qg_api_bench_"))
    name = f"qg_api_bench_{os.getpid()}"
    admin = pg_url.replace("postgresql+psycopg://", "postgresql://") + "/postgres"
    try:
        if db == "sqlite":
            yield f"sqlite:///{workdir / 'bench.db'}", workdir
            return
        import psycopg

        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
        yield f"{pg_url}/{name}", workdir
    finally:
        if keep:
            print(f"kept: {workdir}" + (f" and database {name}" if db != "sqlite" else ""))
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            if db != "sqlite":
                import psycopg

                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def server_env(url: str) -> dict[str, str]:
    from cryptography.fernet import Fernet

    env = {k: v for k, v in os.environ.items() if not k.startswith("QG_")}
    env.update(
        QG_DATABASE_URL=url,
        QG_SECRET_KEY=Fernet.generate_key().decode(),
        QG_SCHEDULER_ENABLED="false",
        # One key polling at thousands of requests/s is what the per-key limit stops.
        QG_RATE_LIMIT_PER_MINUTE="0",
        QG_LOG_LEVEL="warning",
    )
    return env


def load_demo(url: str, workdir: Path, env: dict[str, str]) -> str:
    """Load the demo data; return the admin key it prints."""
    started = time.perf_counter()
    out = subprocess.run(
        [str(BIN / "quotagap"), "demo", "--no-serve"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    key = re.search(r"API key:\s+(\S+)", out)
    summary = re.search(r"demo data:\s+(.*)", out)
    if key is None:
        raise RuntimeError(f"no API key in the demo's output:\n{out}")
    if url.startswith("postgresql"):
        import psycopg

        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
    print(
        f"  demo loaded in {time.perf_counter() - started:.1f} s: "
        f"{summary.group(1) if summary else '?'}",
        flush=True,
    )
    return key.group(1)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def server(workdir: Path, env: dict[str, str], port: int) -> Iterator[Server]:
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen(
        [
            *(
                str(BIN / "python"),
                "-m",
                "uvicorn",
                "app.http.main:create_service_app",
                "--factory",
            ),
            *("--workers", "1", "--host", "127.0.0.1", "--port", str(port)),
            *("--no-access-log", "--log-level", "warning"),
        ],
        cwd=workdir,
        env={**env, "PYTHONPATH": str(_ROOT)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with suppress(OSError):
                if get(base + "/health")[0] == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                raise RuntimeError(
                    f"server did not start:\n{(workdir / 'server.log').read_text()[-3000:]}"
                )
            time.sleep(0.2)
        yield Server(process, base)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)


# --------------------------------------------------------------------------------------
# Load generators
# --------------------------------------------------------------------------------------


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if match is None:  # no request finished
        return float("nan")
    value, unit = match.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


# Page sizes from the default (100) to the maximum: every demo month has fewer rep rows than
# 100, so each variant is the same full page, sorted differently.
BUST_LIMITS = range(100, 501)


def bust_queries() -> list[str]:
    """Query suffixes for a computed /api/v1/performance page: every sort key of the route,
    ascending and descending, times every page size in ``BUST_LIMITS``. 5,614 variants, ten
    times the representation cache's 512 entries, walked in order: none is kept when it
    comes round again."""
    from app.performance.service import SORTABLE

    sorts = [s for key in SORTABLE for s in (key, f"-{key}")]
    return [f"&sort={sort}&limit={limit}" for limit in BUST_LIMITS for sort in sorts]


def _bust_lua(queries: list[str]) -> str:
    # Each wrk thread starts its walk at its own offset (threads do not share a counter).
    table = ",".join(f'"{q}"' for q in queries)
    return f"""
queries = {{{table}}}
offsets = 0
setup = function(thread)
  thread:set("counter", offsets)
  offsets = offsets + 997
end
request = function()
  counter = counter + 1
  return wrk.format(nil, wrk.path .. queries[(counter % #queries) + 1])
end
"""


def run_wrk(
    url: str,
    headers: dict[str, str],
    connections: int,
    threads: int,
    duration: float,
    bust: bool = False,
) -> tuple[float, float, float, int, int]:
    """requests/s, p50 ms, p99 ms, requests, errors."""
    cmd = ["wrk", "--latency", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s"]
    cmd += ["--timeout", "10s"]
    if bust:
        script = Path(tempfile.gettempdir()) / f"qg_api_bench_bust_{os.getpid()}.lua"
        script.write_text(_bust_lua(bust_queries()))
        cmd += ["-s", str(script)]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # Anchored: "75.50%" in the thread stats must not pass for the 50% line.
    p50 = _ms(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in m.groups())
    return rps, p50, p99, requests, errors


def _httpx_main(
    url: str,
    headers: dict[str, str],
    connections: int,
    duration: float,
    expect: int,
    bust: list[str],
    out: Any,
) -> None:
    import httpx

    sent = 0  # one walk through the variants, shared by every worker

    async def go() -> tuple[list[float], int, float]:
        latencies: list[float] = []
        errors = 0
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(limits=limits, headers=headers, timeout=10) as client:
            start = time.perf_counter()
            stop = start + duration

            async def worker() -> None:
                nonlocal errors, sent
                while (t0 := time.perf_counter()) < stop:
                    sent += 1
                    target = url + bust[sent % len(bust)] if bust else url
                    try:
                        status = (await client.get(target)).status_code
                    except httpx.HTTPError:
                        status = 0
                    latencies.append(time.perf_counter() - t0)
                    errors += status != expect

            await asyncio.gather(*(worker() for _ in range(connections)))
            return latencies, errors, time.perf_counter() - start

    out.send(asyncio.run(go()))


def run_httpx(
    url: str, headers: dict[str, str], connections: int, duration: float, expect: int, bust: bool
) -> tuple[float, float, float, int, int]:
    """The same figures from an httpx/asyncio client in its own spawned process."""
    ctx = get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    variants = bust_queries() if bust else []
    child = ctx.Process(
        target=_httpx_main, args=(url, headers, connections, duration, expect, variants, send)
    )
    child.start()
    latencies, errors, wall = recv.recv()
    child.join()
    latencies.sort()
    n = len(latencies)
    if not n:
        return 0.0, 0.0, 0.0, 0, errors
    pick = lambda q: latencies[min(n - 1, int(q * n))] * 1000  # noqa: E731
    return n / wall, pick(0.50), pick(0.99), n, errors


# --------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------


def measure(backend: str, srv: Server, case: Case, key: str, args: argparse.Namespace) -> Result:
    url = srv.base + case.path
    headers = {"Authorization": f"Bearer {key}"} if case.auth else {}
    status, first = get(url, headers)
    if case.answer == 304:
        headers["If-None-Match"] = first["etag"]
        status = get(url, headers)[0]
    if status != case.answer:
        raise RuntimeError(f"{case.path}: expected {case.answer}, the probe got {status}")
    load = run_wrk if args.client == "wrk" else None

    def once(seconds: float) -> tuple[float, float, float, int, int]:
        if load is not None:
            return load(url, headers, args.connections, args.threads, seconds, case.bust)
        return run_httpx(url, headers, args.connections, seconds, case.answer, case.bust)

    if args.warmup > 0:
        once(args.warmup)
    cpu0 = srv.cpu_seconds()
    rps, p50, p99, requests, errors = once(args.duration)
    cpu = srv.cpu_seconds() - cpu0
    after = get(url, headers)[0]
    if after != case.answer:
        raise RuntimeError(f"{case.path}: the answer changed during the run ({after})")
    result = Result(
        backend,
        case,
        rps,
        p50,
        p99,
        requests,
        errors,
        cpu * 1000 / max(requests, 1),
        args.client,
    )
    print(
        f"  {case.name:<22} {case.answer}  {rps:>8,.0f} req/s  p50 {p50:6.1f} ms  "
        f"p99 {p99:6.1f} ms  server CPU {result.cpu_ms_per_request:.2f} ms/req"
        + (f"  ({errors} errors)" if errors else ""),
        flush=True,
    )
    return result


@contextmanager
def profiled(srv: Server, top: int, seconds: float, workdir: Path) -> Iterator[None]:
    """Sample the server with py-spy while the block runs (if py-spy is installed)."""
    spy = shutil.which("py-spy")
    if not top or spy is None:
        if top:
            print("  (py-spy not found: no profile)")
        yield
        return
    out = workdir / "profile.txt"
    proc = subprocess.Popen(
        [
            *(spy, "record", "-p", str(srv.process.pid), "-d", str(int(seconds))),
            *("-f", "raw", "-o", str(out), "--nonblocking"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        proc.wait()
        print_profile(out, top)


def print_profile(path: Path, top: int) -> None:
    """Own and cumulative samples per function from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    cumulative: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = [re.sub(r" \(.*?/site-packages/", " (", f) for f in stack.split(";")]
        total += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for frame in set(frames):
            cumulative[frame] = cumulative.get(frame, 0) + n
    for title, table in (("own", own), ("cumulative", cumulative)):
        print(f"  profile, {title} share of {total} samples:")
        for frame, n in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            print(f"    {100 * n / total:5.1f}%  {frame[:150]}")


def run_backend(backend: str, args: argparse.Namespace) -> list[Result]:
    print(f"\n== {backend}", flush=True)
    with scratch_database(backend, args.pg_url, args.keep) as (url, workdir):
        env = server_env(url)
        key = load_demo(url, workdir, env)
        month = datetime.now(UTC).strftime("%Y-%m")
        results = []
        with server(workdir, env, args.port) as srv:
            for case in cases(month):
                if args.only and not any(o in case.path for o in args.only):
                    continue
                with profiled(srv, args.profile, args.duration, workdir):
                    results.append(measure(backend, srv, case, key, args))
        return results


def print_table(results: list[Result]) -> None:
    print(f"\n== summary (client {results[0].client}, load average {os.getloadavg()[0]:.2f})")
    header = (
        f"{'backend':<11}{'endpoint':<22}{'answer':>6}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'CPU ms/req':>11}  goal"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        goal = r.goal()
        verdict = f"{goal[0]}: {'met' if goal[1] else 'NOT MET'}" if goal else ""
        print(
            f"{r.backend:<11}{r.case.name:<22}{r.case.answer:>6}{r.rps:>9,.0f}{r.p50_ms:>9.1f}"
            f"{r.p99_ms:>9.1f}{r.cpu_ms_per_request:>11.2f}  {verdict}"
        )
    for backend in dict.fromkeys(r.backend for r in results):
        ref = next((r for r in results if r.backend == backend and r.case.path == "/health"), None)
        if ref is None:
            continue
        shares = ", ".join(
            f"{r.case.name} {r.case.answer}: {r.rps / ref.rps:.0%}"
            for r in results
            if r.backend == backend and r is not ref
        )
        print(f"{backend}: share of /health's {ref.rps:,.0f} req/s: {shares}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--db", default="sqlite,postgresql", help="sqlite, postgresql or both")
    p.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    p.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--threads", type=int, default=2, help="wrk threads")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds before each run")
    p.add_argument("--port", type=int, default=8931)
    p.add_argument("--only", nargs="*", help="only the cases whose path contains one of these")
    p.add_argument("--profile", type=int, default=0, help="py-spy each run, print the top N")
    p.add_argument("--keep", action="store_true", help="keep the data directory and database")
    args = p.parse_args(argv)
    args.db = [d.strip() for d in args.db.split(",") if d.strip()]
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "httpx"
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    import uvicorn

    extras = [m for m in ("uvloop", "httptools") if _importable(m)]
    client = (
        f"wrk ({args.threads} threads)"
        if args.client == "wrk"
        else "httpx/asyncio in a separate process (wrk not found; install it for lower "
        "client overhead)"
        if not shutil.which("wrk")
        else "httpx/asyncio in a separate process"
    )
    print(
        f"API load benchmark: {args.connections} connections, {args.duration:g} s per run "
        f"(+{args.warmup:g} s warm-up); client: {client}; server: uvicorn {uvicorn.__version__}, "
        f"1 worker, {'+'.join(extras) or 'asyncio+h11'}, no access log; "
        f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    results = [r for backend in args.db for r in run_backend(backend, args)]
    print_table(results)


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


if __name__ == "__main__":
    main()
