"""Run a benchmark on this tree and on a reference commit, in the same run, and compare.

Machines are noisy, so a figure is only worth comparing with one measured minutes apart on
the same machine. This checks the reference commit out into a temporary git worktree, then
runs the benchmark command alternately in each tree (``--rounds`` times each: ref, this, ref,
this ...), so a slow spell hits both. Each benchmark prints its figures one per line; lines
are paired by their text with the numbers taken out, and every timing (a number followed by
``s`` or ``ms``) is reported as the median over the rounds, with the ratio this/ref.

Run from the project root, e.g. the redesign of issue 18 against the commit before it::

    .venv/bin/python bench/against.py ff34533 -- \\
        bench/analytics.py --reps 300 --deals 100000 --activities 1000000
    .venv/bin/python bench/against.py ff34533 --rounds 3 -- bench/write_lock.py --seconds 5

The benchmark runs with this tree's interpreter (``sys.executable``), its working directory
and ``PYTHONPATH`` set to each tree, so each tree's own code is imported, in the processes it
starts too.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A timing: a number and a unit of time, e.g. "1.04 s", "103 ms", "p99 0.8ms".
TIMING = re.compile(r"(\d[\d,]*\.?\d*)\s?(ms|s)\b")
NUMBER = re.compile(r"\d[\d,]*\.?\d*")


def label(line: str) -> str:
    """The line with its numbers taken out: the key that pairs it across the two trees."""
    return re.sub(r"\s+", " ", NUMBER.sub("#", line)).strip()


def timings(output: str) -> dict[str, list[float]]:
    """Every line with a timing: its label and its timings in seconds, in order."""
    out: dict[str, list[float]] = {}
    for line in output.splitlines():
        found = TIMING.findall(line)
        if found:
            key = label(line)
            values = [float(n.replace(",", "")) / (1000 if u == "ms" else 1) for n, u in found]
            out.setdefault(key, values)
    return out


def run(tree: Path, command: Sequence[str]) -> str:
    # PYTHONPATH too: the processes a benchmark starts (the quotagap script, uvicorn, spawned
    # children) then import the tree's code, not the editable install's.
    env = {**os.environ, "PYTHONPATH": str(tree)}
    result = subprocess.run(
        [sys.executable, *command], cwd=tree, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"{' '.join(command)} failed in {tree} ({result.returncode})")
    return result.stdout


def compare(ref: list[dict[str, list[float]]], new: list[dict[str, list[float]]]) -> list[str]:
    """One line per timing found in every round of both trees: medians and the ratio."""
    keys = [k for k in ref[0] if all(k in r for r in ref + new)]
    lines = []
    for key in keys:
        width = min(len(r[key]) for r in ref + new)
        for i in range(width):
            a = statistics.median(r[key][i] for r in ref)
            b = statistics.median(r[key][i] for r in new)
            ratio = f"{b / a:.2f}x" if a > 0 else "n/a"
            lines.append(f"{ratio:>7}  ref {a:10.4f} s  this {b:10.4f} s  {key[:90]}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ref", help="the reference commit (any git revision)")
    parser.add_argument("--rounds", type=int, default=2, help="runs in each tree (alternating)")
    parser.usage = "against.py REF [--rounds N] -- BENCHMARK.py [ARGS...]"
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        parser.error("give the benchmark after --, e.g. -- bench/write_lock.py")
    split = argv.index("--")
    args, command = parser.parse_args(argv[:split]), argv[split + 1 :]
    with tempfile.TemporaryDirectory(prefix="qg-ref-") as tmp:
        ref_tree = Path(tmp) / "ref"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(ref_tree), args.ref],
            cwd=ROOT,
            check=True,
        )
        try:
            ref, new = [], []
            for i in range(args.rounds):
                print(f"round {i + 1}/{args.rounds}: {args.ref} ...", flush=True)
                ref.append(timings(run(ref_tree, command)))
                print(f"round {i + 1}/{args.rounds}: this tree ...", flush=True)
                new.append(timings(run(ROOT, command)))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(ref_tree)], cwd=ROOT)
    print(f"\n{' '.join(command)}: medians of {args.rounds} rounds, this tree / {args.ref}")
    for line in compare(ref, new):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
