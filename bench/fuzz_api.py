"""The long fuzz run: schemathesis on every operation, a few hundred examples each.

The CI test (``tests/test_schemathesis.py``) sends 15 generated requests per operation and
generation mode (valid and invalid), plus the boundary values issue 17 found answering 500.
This runs the same test with ``--examples`` (default 300) per operation and mode, on SQLite,
PostgreSQL or both, and prints how long it took and whether any answer was a server error or
broke the schema. It asserts through pytest: the exit status is pytest's (0: no failures).

Run from the project root::

    .venv/bin/python bench/fuzz_api.py                       # SQLite, 300 examples
    .venv/bin/python bench/fuzz_api.py --db postgresql \\
        --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/fuzz_api.py --db both --examples 500
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST = "tests/test_schemathesis.py"


def run(db: str, examples: int, pg_url: str) -> int:
    backends = "sqlite,postgresql" if db == "both" else db
    env = {**os.environ, "QG_FUZZ_EXAMPLES": str(examples), "QG_TEST_BACKENDS": backends}
    if pg_url:
        env["QG_TEST_POSTGRES_URL"] = pg_url
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST]
    started = time.monotonic()
    status = subprocess.call(command, cwd=ROOT, env=env)
    minutes = (time.monotonic() - started) / 60
    verdict = "0 server errors, schema conformant" if status == 0 else "FAILURES (see above)"
    print(f"\nfuzz_api: {db}, {examples} examples per operation and mode: {verdict}")
    print(f"fuzz_api: {minutes:.1f} min")
    return status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--pg-url", default=os.environ.get("QG_TEST_POSTGRES_URL", ""))
    args = parser.parse_args()
    sys.exit(run(args.db, args.examples, args.pg_url))


if __name__ == "__main__":
    main()
