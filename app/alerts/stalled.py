"""The ``rep.coaching_stalled`` rule: the same coaching focus named ``periods`` periods in a row
without the named driver improving (``stalled_periods`` of :mod:`analytics.coaching_record`).

For each period the rule looks at (the current one and the lookback, of its period kinds),
every active rep whose coaching row there names a focus with ``stalled_periods ≥ periods``
is a candidate; an open alert's rep whose row no longer meets it (the driver improved, the
focus changed or none is named) is resolved with the figures of that row.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd

from analytics.coaching_record import coaching_record
from analytics.periods import period_index
from app.alerts.context import Context, clean, records
from app.alerts.lifecycle import Candidate, Key
from app.alerts.models import AlertRule
from app.performance import record as coaching


def _words(value: Any) -> str:
    return str(value).replace("_", " ") if value else "no focus"


def _summary(ctx: Context, row: dict[str, Any], n: int, kind: str, holds: bool) -> str:
    name = ctx.rep_name(int(row["rep_id"]))
    if row.get("focus_driver") is None:
        return f"{name} has no coaching focus named in {row['period']} any more."
    focus = _words(row["coaching_focus"] or row["focus_driver"])
    k = int(row["stalled_periods"])
    if holds:
        return (
            f"{name} has had {focus} named {k} {kind}s in a row without improving "
            f"(since {row['stalled_since']}): {row['run_summary']}."
        )
    return (
        f"{name}'s {focus} focus is no longer stalled in {row['period']} "
        f"({k} {kind}s without improving, {n} needed): {row['run_summary']}."
    )


def _candidate(
    ctx: Context, rule: AlertRule, row: dict[str, Any], n: int, kind: str, holds: bool
) -> Candidate:
    rep_id = int(row["rep_id"])
    team_id = ctx.rep_team(rep_id)
    data = {
        "rep_name": ctx.rep_name(rep_id),
        "team_name": ctx.team_name(team_id),
        "period_kind": kind,
        "periods_needed": n,
        **{
            k: row.get(k)
            for k in (
                "coaching_focus",
                "focus_driver",
                "stalled_periods",
                "stalled_since",
                "run_start",
                "run_periods",
                "vs_team",
                "performance",
                "run_change",
                "run_summary",
            )
        },
        "links": {
            "record": f"/api/v1/reps/{rep_id}/coaching/record?kind={kind}&end={row['period']}",
            "coaching": f"/api/v1/reps/{rep_id}/coaching?period={row['period']}",
            "formulas": "docs/metrics.md",
        },
    }
    return Candidate(
        event_type=rule.event_type,
        subject_type="rep",
        subject_id=rep_id,
        rep_id=rep_id,
        team_id=team_id,
        metric=None,
        period=str(row["period"]),
        status=None,
        summary=_summary(ctx, row, n, kind, holds),
        data=clean(data),
        holds=holds,
    )


def coaching_stalled(
    ctx: Context, rule: AlertRule, params: dict[str, float], watch: frozenset[Key]
) -> Iterator[Candidate]:
    n = int(params["periods"])
    cal = ctx.settings.calendar
    active = {i for i, r in ctx.reps.items() if r.role == "rep" and r.is_active}
    for kind in rule.period_kinds or ["month"]:
        looked = ctx.periods([kind])
        until = int(period_index(pd.Series([max(p.start for p in looked)]), kind, cal)[0])
        history = coaching.history(
            ctx.session, version=ctx.version, kind=kind, cal=cal, rep_ids=active, until=until
        )
        record = coaching_record(history)
        labels = {p.label for p in looked}
        rows = record[record["period"].isin(labels)]
        hit = rows["stalled_periods"] >= n
        for row in records(rows[hit]):
            yield _candidate(ctx, rule, row, n, kind, holds=True)
        # The watched reps' rows that no longer meet the rule, named or not.
        seen = history[history["period"].isin(labels)][["rep_id", "period"]]
        rest = seen.merge(rows[hit][["rep_id", "period"]], how="left", indicator=True)
        rest = rest[rest["_merge"] == "left_only"].merge(rows, how="left", on=["rep_id", "period"])
        for row in records(rest):
            if ("rep", int(row["rep_id"]), None, row["period"]) not in watch:
                continue
            if pd.isna(row.get("focus_driver")):
                row = {"rep_id": row["rep_id"], "period": row["period"], "focus_driver": None}
            yield _candidate(ctx, rule, row, n, kind, holds=False)
