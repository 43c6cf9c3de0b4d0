"""`/health` while writers queue for SQLite's write lock and a client floods bogus keys.

A benchmark, not a test: it prints figures and asserts nothing about time. It runs the API
(uvicorn, one worker, in this process's thread) on a fresh SQLite file and measures the
latency of `GET /health` from a client polling it:

* **reference**: with nothing else running;
* **under load**: 8 writers renaming teams in a loop (each write takes the write lock), a
  connection holding the write lock for 0.5 s of every second (as a sync or compute in
  another process does), and a flood of `PATCH` requests with a bogus key.

The figure is the ratio of the loaded p99 to the reference p99, and the loaded p99 itself
against the goal (< 100 ms; issue 17 measured 29 s before the fix).

    .venv/bin/python bench/write_lock.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.auth import service as auth_service
from app.core.config import Settings
from app.core.db import make_sessionmaker, transaction
from app.core.migrate import upgrade
from app.http.main import create_app
from app.pipeline.records import open_engine
from app.teams.models import Team

WRITERS = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(path: Path) -> tuple[uvicorn.Server, str, str, list[int]]:
    url = f"sqlite:///{path}"
    settings = Settings(
        database_url=url,
        secret_key="benchmark-only-benchmark-only-benchmark-0=",
        scheduler_enabled=False,
        rate_limit_per_minute=10**9,
        rate_limit_burst=10**9,
    )
    engine = open_engine(url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
    upgrade(engine)
    with transaction(make_sessionmaker(engine)) as session:
        _, token = auth_service.create(session=session, role="admin")
        teams = [Team(name=f"T{i}") for i in range(WRITERS)]
        session.add_all(teams)
        session.flush()
        ids = [t.id for t in teams]
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, engine=engine), port=port, log_level="error")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}", token, ids


def _poll_health(base: str, seconds: float) -> list[float]:
    out: list[float] = []
    with httpx.Client(base_url=base, timeout=60) as client:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t = time.perf_counter()
            client.get("/health")
            out.append(time.perf_counter() - t)
    return out


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp()) / "bench.db"
    server, base, token, teams = _serve(path)
    reference = _poll_health(base, args.seconds / 2)

    stop = threading.Event()
    counts = {"writes": 0, "bogus": 0, "errors": 0}

    def writer(team: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            i = 0
            while not stop.is_set():
                i += 1
                r = client.patch(
                    f"/api/v1/teams/{team}",
                    json={"name": f"T{team}-{i}"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                counts["writes" if r.status_code == 200 else "errors"] += 1

    def bogus() -> None:
        with httpx.Client(base_url=base, timeout=60) as client:
            while not stop.is_set():
                client.patch(
                    f"/api/v1/teams/{teams[0]}",
                    json={"name": "x"},
                    headers={"Authorization": "Bearer qg_bogus"},
                )
                counts["bogus"] += 1

    def holder() -> None:
        lock = sqlite3.connect(path, isolation_level=None, timeout=60)
        while not stop.is_set():
            lock.execute("BEGIN IMMEDIATE")
            time.sleep(0.5)
            lock.execute("ROLLBACK")
            time.sleep(0.5)
        lock.close()

    threads = [threading.Thread(target=writer, args=(t,)) for t in teams]
    threads += [threading.Thread(target=bogus), threading.Thread(target=holder)]
    for t in threads:
        t.start()
    loaded = _poll_health(base, args.seconds)
    stop.set()
    for t in threads:
        t.join()
    server.should_exit = True

    ref99, load99 = _p(reference, 99), _p(loaded, 99)
    print(
        f"reference  /health: {len(reference)} requests, p50 {_p(reference, 50) * 1000:.1f} ms,"
        f" p99 {ref99 * 1000:.1f} ms"
    )
    print(
        f"under load /health: {len(loaded)} requests, p50 {_p(loaded, 50) * 1000:.1f} ms,"
        f" p99 {load99 * 1000:.1f} ms ({load99 / ref99:.1f}x the reference)"
    )
    print(
        f"load: {counts['writes']} writes done, {counts['errors']} refused (503),"
        f" {counts['bogus']} bogus-key requests, {WRITERS} writers"
    )
    print(f"goal: p99 under load < 100 ms: {'met' if load99 < 0.1 else 'NOT met'}")


if __name__ == "__main__":
    main()
