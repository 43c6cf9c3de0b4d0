"""The README's first command, end to end: `quotagap demo` serves demo data on SQLite."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_serves_reps_with_managers_and_teams(tmp_path):
    port = _free_port()
    env = {**os.environ, "QG_DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", "demo", "--port", str(port)],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = ""
        key = None
        deadline = time.monotonic() + 120
        while key is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, output
            output += line
            if m := re.search(r"API key:\s+(qg_\S+)", line):
                key = m.group(1)
        assert key, output
        headers = {"Authorization": f"Bearer {key}"}
        url = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"{url}/api/v1/reps?limit=500", headers=headers, timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert r.status_code == 200
        reps = r.json()["items"]
        workers = [x for x in reps if x["role"] == "rep"]
        assert len(workers) >= 20
        assert all(x["manager_name"] and x["team_name"] for x in workers)
        assert httpx.get(f"{url}/api/v1/reps").status_code == 401
        # the whole path: a sandbox CRM, a sync, the gaps computed and served
        sources = httpx.get(f"{url}/api/v1/sources", headers=headers).json()["items"]
        assert sources[0]["kind"] == "salesforce" and sources[0]["last_success_at"]
        assert sources[0]["last_run"]["inserted"] > 1000
        performance = httpx.get(
            f"{url}/api/v1/performance", headers=headers, params={"metric": "won_revenue"}
        ).json()
        assert performance["items"] and performance["snapshot"]["kind"] == "full"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
