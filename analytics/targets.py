"""Targets of quarters and fiscal years derived from the targets of their months.

Sales teams set monthly quotas and review quarters and years. For each subject (a rep or a
team), metric and quarter or fiscal year P that has no target of its own,
:func:`derive_rollup_targets` derives one from the targets set on P's parts.

Coverage. Each fiscal month m of P is covered by, first that applies:

1. the own target of the fiscal quarter containing m, when P is a year (a quarter's own
   target stands for its months, in the year as in the quarter);
2. the target of m;
3. nothing, for a rep's month that ends before the rep's ``start_date``: its prorated target
   would be 0 anyway (a rep who joins in November has no October quota).

P gets a derived target only when every month of P is covered and at least one target covers
one. A month without a target would count as 0 and understate P's target, so a quarter
missing a month's quota stays without a target rather than be judged against two months.
The targets that cover P's months are its *leaves*; ``target_derived_from`` lists their
periods in order, joined by commas (``2026-10,2026-11,2026-12``; ``2026-Q1,2026-04,...`` for
a year whose first quarter has its own quota).

Additive metrics (``METRICS[metric].additive``: won_revenue, won_deals, activities,
pipeline_created, ...), over the leaves l, with effective(l) = value(l) × proration(l) ×
ramp(l) each over l's own days (:func:`analytics.gaps.effective_targets`):

* value            = Σ value(l)                        (the quarter's quota: Σ monthly quotas)
* target           = Σ effective(l)                    (what the months are judged against)
* proration_factor = Σ value(l) × proration(l) / Σ value(l)        (1 when Σ value(l) = 0)
* ramp_factor      = Σ effective(l) / Σ value(l) × proration(l)    (1 when that is 0)

so value × proration_factor × ramp_factor = target, and a quarter's status is consistent with
its months' however the rep's ramp falls across them.

Levels (ratios, averages and the median cycle: win_rate, win_rate_value, avg_deal_size,
sales_cycle_days, sales_velocity), with days(l) the calendar days of l's period:

* value = target = Σ value(l) × days(l) / Σ days(l)   (the day-weighted mean; factors 1)

Pacing, projection and status of a derived target are those of any target of P
(:func:`analytics.gaps.compute_gaps`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd

from analytics.gaps import GapConfig, effective_targets
from analytics.metrics import METRICS
from analytics.periods import FiscalCalendar, parse_period, period_of, periods_between

__all__ = ["DERIVED_KINDS", "TARGET_COLUMNS", "derive_rollup_targets", "rollup_parts"]

DERIVED_KINDS: Final[tuple[str, ...]] = ("quarter", "year")
TARGET_COLUMNS: Final[tuple[str, ...]] = (
    "target_id",
    "rep_id",
    "team_id",
    "metric",
    "period",
    "value",
    "proration_factor",
    "ramp_factor",
    "target_note",
    "target_derived_from",
)
_KEY: Final[list[str]] = ["subject_type", "subject_id", "metric"]
_GROUP: Final[list[str]] = [*_KEY, "period"]


def rollup_parts(periods: Sequence[str], *, cal: FiscalCalendar) -> list[str]:
    """``periods`` and the fiscal months and quarters of each quarter and year among them:
    the periods whose targets :func:`derive_rollup_targets` reads."""
    out: dict[str, None] = dict.fromkeys(periods)
    for label in periods:
        p = parse_period(label, cal)
        if p.kind in DERIVED_KINDS:
            parts = ("month",) if p.kind == "quarter" else ("quarter", "month")
            for kind in parts:
                out.update(
                    dict.fromkeys(x.label for x in periods_between(p.start, p.end, kind, cal))
                )
    return list(out)


def derive_rollup_targets(
    targets: pd.DataFrame,
    *,
    periods: Sequence[str],
    reps: pd.DataFrame,
    config: GapConfig,
) -> pd.DataFrame:
    """The targets of ``periods``: those set, and those derived for quarters and years without
    one (rules in the module docstring).

    * ``targets``: ``target_id, rep_id, team_id, metric, period, value`` with at least the
      targets of :func:`rollup_parts` of ``periods``, one per (rep or team, metric, period).
    * ``reps``: ``rep_id, start_date``; ``config``: the proration and ramp of
      :func:`analytics.gaps.compute_gaps`.

    Columns: :data:`TARGET_COLUMNS`, periods as canonical labels. Set targets come first and
    have null ``target_derived_from``, factors and note (compute_gaps works them out); derived
    ones have a null ``target_id``, a ``target_note`` naming the rule, and their factors.
    """
    cal = config.cal
    t = targets.reset_index(drop=True)
    codes, uniques = pd.factorize(t["period"])
    parsed = [parse_period(str(u), cal) for u in uniques]
    t = t.assign(
        period=np.array([p.label for p in parsed], dtype=object)[codes],
        kind=np.array([p.kind for p in parsed], dtype=object)[codes],
    )
    wanted = {p.label: p for p in (parse_period(str(x), cal) for x in periods)}
    own = t[t["period"].isin(wanted)].assign(
        proration_factor=np.nan, ramp_factor=np.nan, target_note=None, target_derived_from=None
    )
    rollups = [p.label for p in wanted.values() if p.kind in DERIVED_KINDS]
    if not rollups or t.empty:
        return own[list(TARGET_COLUMNS)].reset_index(drop=True)
    leaves = _leaves(t, rollups, reps, cal)
    derived = _from_leaves(t, leaves, reps, config)
    out = pd.concat([own[list(TARGET_COLUMNS)], derived], ignore_index=True)
    for c in ("target_id", "rep_id", "team_id"):
        out[c] = out[c].astype("Int64")
    return out


def _keyed(t: pd.DataFrame) -> pd.DataFrame:
    """``t``'s subject, metric, period, kind and row position."""
    rep_id = t["rep_id"].astype("Int64")
    is_rep = rep_id.notna()
    return pd.DataFrame(
        {
            "subject_type": np.where(is_rep, "rep", "team").astype(object),
            "subject_id": rep_id.where(is_rep, t["team_id"].astype("Int64")),
            "metric": t["metric"].astype(object),
            "label": t["period"],
            "kind": t["kind"],
            "row": np.arange(len(t), dtype=np.int64),
        }
    )


def _grid(rollups: list[str], cal: FiscalCalendar) -> pd.DataFrame:
    """One row per (rollup period, fiscal month): the month's quarter and last day."""
    rows = []
    for label in rollups:
        p = parse_period(label, cal)
        for m in periods_between(p.start, p.end, "month", cal):
            rows.append((label, m.label, period_of(m.start, "quarter", cal).label, m.end))
    grid = pd.DataFrame(rows, columns=["period", "month", "quarter", "month_end"])
    grid["month_end"] = pd.to_datetime(grid["month_end"])
    return grid


def _leaves(
    t: pd.DataFrame, rollups: list[str], reps: pd.DataFrame, cal: FiscalCalendar
) -> pd.DataFrame:
    """``subject_type, subject_id, metric, period, leaf``: the rows of ``t`` a rollup period
    without a target of its own is derived from, when its months are all covered."""
    keyed = _keyed(t)
    grid = _grid(rollups, cal)
    months = keyed[keyed["kind"] == "month"].rename(columns={"label": "month", "row": "m_row"})
    quarters = keyed[keyed["kind"] == "quarter"].rename(
        columns={"label": "quarter", "row": "q_row"}
    )
    months, quarters = months[[*_KEY, "month", "m_row"]], quarters[[*_KEY, "quarter", "q_row"]]
    candidates = pd.concat(
        [
            months.merge(grid[["period", "month"]], on="month")[_GROUP],
            quarters.merge(grid[["period", "quarter"]].drop_duplicates(), on="quarter")[_GROUP],
        ]
    ).drop_duplicates()
    set_own = keyed[[*_KEY, "label"]].rename(columns={"label": "period"})
    candidates = candidates.merge(set_own, on=_GROUP, how="left", indicator=True)
    candidates = candidates[candidates["_merge"] == "left_only"].drop(columns="_merge")

    # A quarter P is its months' quarter, and has no own target here: only years use rule 1.
    cells = candidates.merge(grid, on="period")
    cells = cells.merge(months, on=[*_KEY, "month"], how="left")
    cells = cells.merge(quarters, on=[*_KEY, "quarter"], how="left")
    start_of = pd.Series(
        pd.to_datetime(reps["start_date"]).to_numpy(dtype="datetime64[ns]"),
        index=reps["rep_id"].astype("Int64"),
    )
    is_rep = cells["subject_type"].eq("rep").to_numpy(dtype=bool)
    rep_start = start_of.reindex(cells["subject_id"].astype("Int64")).to_numpy()
    with np.errstate(invalid="ignore"):
        before_start = is_rep & (cells["month_end"].to_numpy() < rep_start)
    covered = cells["q_row"].notna() | cells["m_row"].notna() | before_start
    complete = covered.groupby([cells[c] for c in _GROUP], sort=False).transform("all")
    cells = cells[complete.to_numpy(dtype=bool)]
    leaf = cells["q_row"].fillna(cells["m_row"])
    cells = cells.assign(leaf=leaf)[leaf.notna()]
    out = cells[[*_GROUP, "leaf"]].drop_duplicates()
    return out.assign(leaf=out["leaf"].astype(np.int64))


def _from_leaves(
    t: pd.DataFrame, leaves: pd.DataFrame, reps: pd.DataFrame, config: GapConfig
) -> pd.DataFrame:
    """The derived target rows, one per (subject, metric, period) of ``leaves``."""
    rows = np.unique(leaves["leaf"].to_numpy())
    judged = effective_targets(t.iloc[rows], reps=reps, config=config)
    at = np.searchsorted(rows, leaves["leaf"].to_numpy())  # each leaf's row of ``judged``
    label = t["period"].to_numpy(dtype=object)[leaves["leaf"].to_numpy()]
    parsed = {u: parse_period(str(u), config.cal) for u in pd.unique(label)}
    value = judged["target_full"].to_numpy()[at]
    proration = judged["proration_factor"].to_numpy()[at]
    effective = judged["target"].to_numpy()[at]
    days = np.array([parsed[x].days for x in label], dtype=np.float64)
    frame = leaves.assign(
        label=label,
        start=[parsed[x].start for x in label],
        value=value,
        prorated=value * proration,
        effective=effective,
        weighted=value * days,
        days=days,
    ).sort_values([*_GROUP, "start"], kind="stable")
    g = frame.groupby(_GROUP, sort=False)
    sums = g[["value", "prorated", "effective", "weighted", "days"]].sum()
    sums["derived_from"] = g["label"].agg(",".join)
    sums = sums.reset_index()
    additive = sums["metric"].map(lambda m: METRICS[m].additive).to_numpy(dtype=bool)
    v, p, e = (sums[c].to_numpy(dtype=np.float64) for c in ("value", "prorated", "effective"))
    proration_factor = np.where(additive & (v > 0), p / np.where(v > 0, v, 1.0), 1.0)
    ramp_factor = np.where(additive & (p > 0), e / np.where(p > 0, p, 1.0), 1.0)
    level = sums["weighted"].to_numpy() / sums["days"].to_numpy()
    judged_apart = additive & ~np.isclose(e, v)
    note = [
        f"derived: the {'sum' if add else 'day-weighted mean'} of the targets of "
        + parts.replace(",", ", ")
        + (" (each prorated and ramped over its own days)" if apart else "")
        for add, apart, parts in zip(
            additive.tolist(), judged_apart.tolist(), sums["derived_from"], strict=True
        )
    ]
    is_rep = sums["subject_type"].eq("rep")
    subject = sums["subject_id"].astype("Int64")
    return pd.DataFrame(
        {
            "target_id": pd.array([pd.NA] * len(sums), dtype="Int64"),
            "rep_id": subject.where(is_rep),
            "team_id": subject.where(~is_rep),
            "metric": sums["metric"],
            "period": sums["period"],
            "value": np.where(additive, v, level),
            "proration_factor": proration_factor,
            "ramp_factor": ramp_factor,
            "target_note": pd.Series(note, dtype=object),
            "target_derived_from": sums["derived_from"].astype(object),
        }
    )[list(TARGET_COLUMNS)]
