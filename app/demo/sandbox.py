"""The demo's records as a sandbox CRM's state (``quotagap demo``, ``quotagap sandbox-crm``).

The sandbox CRMs (``connectors/sandbox``) serve whatever records they are given; the demo
generator is where those records come from, so the demo data stays one concept in one place.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from app.demo.generator import DemoConfig, generate
from connectors.sandbox.common import SandboxState


def sandbox_state(*, seed: int = 42, today: date | None = None, **config: Any) -> SandboxState:
    """A sandbox holding the demo data of ``seed`` up to ``today`` (default: today, UTC);
    ``config`` is passed to ``DemoConfig`` (teams, reps_per_team, months...)."""
    today = today or datetime.now(UTC).date()
    data = generate(DemoConfig(seed=seed, today=today, **config))
    return SandboxState(data=data, seed=seed)
