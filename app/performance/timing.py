"""Stage timings of a compute, as its snapshot's ``details["timings_s"]`` reports them."""

from __future__ import annotations

import time as clock
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Record in ``timings[stage]`` the seconds the block took (blocks may nest: a stage's
    parts are timed inside it, under their own keys)."""
    started = clock.perf_counter()
    try:
        yield
    finally:
        timings[stage] = clock.perf_counter() - started
