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
from dataclasses import dataclass
from datetime import date
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from analytics.gaps import GapConfig, effective_targets
from analytics.metrics import METRICS
from analytics.periods import FiscalCalendar, Period, parse_period, period_of, periods_between

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
_EPOCH: Final[int] = date(1970, 1, 1).toordinal()


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
    if (codes < 0).any():
        raise ValueError("every target needs a period")
    # Period labels are handled once per distinct label, not per row.
    labels = np.array([parse_period(str(u), cal).label for u in uniques], dtype=object)
    wanted = {p.label: p for p in (parse_period(str(x), cal) for x in periods)}
    is_wanted = np.isin(labels, list(wanted))[codes]
    own = t[is_wanted].assign(
        period=labels[codes[is_wanted]],
        proration_factor=np.nan,
        ramp_factor=np.nan,
        target_note=None,
        target_derived_from=None,
    )
    rollups = [p for p in wanted.values() if p.kind in DERIVED_KINDS]
    if not rollups or t.empty:
        return own[list(TARGET_COLUMNS)].reset_index(drop=True)
    grid = _Grid.of(t, codes, labels, rollups, reps, config)
    out = pd.concat(
        [own[list(TARGET_COLUMNS)], *(grid.derive(p) for p in rollups)], ignore_index=True
    )
    for c in ("target_id", "rep_id", "team_id"):
        out[c] = out[c].astype("Int64")
    return out


@dataclass(frozen=True)
class _Grid:
    """The targets set on every part of the rollups, one row per (subject, metric) key and one
    column per period (the rollups, their quarters and their months): NaN where none is set."""

    keys: pd.DataFrame  # subject_type, subject_id, metric, additive
    parts: list[Period]
    column: dict[str, int]
    value: npt.NDArray[np.float64]
    prorated: npt.NDArray[np.float64]  # value × the part's proration factor
    effective: npt.NDArray[np.float64]  # value × proration × ramp
    before_start: npt.NDArray[np.bool_]  # a rep's part that ends before their start date
    cal: FiscalCalendar

    @staticmethod
    def of(
        t: pd.DataFrame,
        codes: npt.NDArray[np.intp],
        labels: npt.NDArray[np.object_],
        rollups: list[Period],
        reps: pd.DataFrame,
        config: GapConfig,
    ) -> _Grid:
        """From ``t`` and its rows' periods, ``labels[codes]``."""
        cal = config.cal
        parts: dict[str, Period] = {}
        for p in rollups:
            parts[p.label] = p
            for kind in ("quarter", "month"):
                parts.update({x.label: x for x in periods_between(p.start, p.end, kind, cal)})
        column = {label: j for j, label in enumerate(parts)}
        key, keys = _key_codes(t)
        at = np.array([column.get(x, -1) for x in labels], dtype=np.int64)[codes]
        rows = np.flatnonzero(at >= 0)
        k, c = key[rows], at[rows]

        start_days = pd.to_datetime(reps["start_date"]).to_numpy(dtype="datetime64[D]")
        start_of = pd.Series(
            np.where(np.isnat(start_days), np.nan, start_days.astype(np.int64)),
            index=reps["rep_id"].astype("Int64"),
        )
        subject = keys["subject_id"].astype("Int64")
        starts = start_of.reindex(subject).to_numpy(dtype=np.float64, copy=True)
        starts[~keys["subject_type"].eq("rep").to_numpy(dtype=bool)] = np.nan
        first = np.array([p.start.toordinal() - _EPOCH for p in parts.values()], dtype=np.float64)
        ends = np.array([p.end.toordinal() - _EPOCH for p in parts.values()], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            before_start = ends[None, :] < starts[:, None]  # NaN (no start, a team): False
            # Proration and ramp can only touch the targets of a rep who started after the
            # part began or less than the ramp's months before it (a fiscal month has at most
            # 42 days: a 4-4-5 month with a 53rd week); the others' factors are 1, and only
            # these few targets are judged.
            reach = (len(config.ramp_schedule) + 1) * 42
            judged_rows = keys["additive"].to_numpy(dtype=bool)[k] & (starts[k] > first[c] - reach)

        shape = (len(keys), len(parts))
        value = np.full(shape, np.nan)
        value[k, c] = t["value"].to_numpy(dtype=np.float64)[rows]
        prorated, effective = value.copy(), value.copy()
        if judged_rows.any():
            judged = effective_targets(t.iloc[rows[judged_rows]], reps=reps, config=config)
            kj, cj = k[judged_rows], c[judged_rows]
            full = judged["target_full"].to_numpy(dtype=np.float64)
            prorated[kj, cj] = full * judged["proration_factor"].to_numpy(dtype=np.float64)
            effective[kj, cj] = judged["target"].to_numpy(dtype=np.float64)
        return _Grid(
            keys=keys,
            parts=list(parts.values()),
            column=column,
            value=value,
            prorated=prorated,
            effective=effective,
            before_start=before_start,
            cal=cal,
        )

    def derive(self, p: Period) -> pd.DataFrame:
        """The targets derived for ``p``, for every key whose months ``p`` covers."""
        months = periods_between(p.start, p.end, "month", self.cal)
        m = [self.column[x.label] for x in months]
        has = ~np.isnan(self.value)
        if p.kind == "year":
            quarters = periods_between(p.start, p.end, "quarter", self.cal)
            q = [self.column[x.label] for x in quarters]
            by_quarter = has[
                :, [self.column[period_of(x.start, "quarter", self.cal).label] for x in months]
            ]
        else:
            quarters, q = [], []
            by_quarter = np.zeros((len(has), len(m)), dtype=bool)
        covered = by_quarter | has[:, m] | self.before_start[:, m]
        # Leaf columns in order of their start, a quarter before its first month.
        leaf_parts = sorted(
            [*zip(quarters, q, strict=True), *zip(months, m, strict=True)],
            key=lambda pc: (pc[0].start, pc[0].kind != "quarter"),
        )
        cols = [c for _, c in leaf_parts]
        leaf = has[:, cols]
        month_at = {c: i for i, c in enumerate(m)}
        for j, c in enumerate(cols):
            if c in month_at:  # a month whose quarter has its own target is not a leaf
                leaf[:, j] &= ~by_quarter[:, month_at[c]]
        ok = covered.all(axis=1) & leaf.any(axis=1) & ~has[:, self.column[p.label]]
        sel = np.flatnonzero(ok)
        leaf = leaf[sel]
        days = np.array([x.days for x, _ in leaf_parts], dtype=np.float64)

        def total(
            grid: npt.NDArray[np.float64], weight: npt.NDArray[np.float64] | float = 1.0
        ) -> npt.NDArray[np.float64]:
            out: npt.NDArray[np.float64] = np.where(leaf, grid[sel][:, cols] * weight, 0.0).sum(
                axis=1
            )
            return out

        # Each row's leaves as one integer (bit j: column j), so the lists are joined once per
        # pattern rather than once per row.
        bits = leaf.astype(np.int64) @ (np.int64(1) << np.arange(len(cols), dtype=np.int64))
        pattern, patterns = pd.factorize(bits)
        names = [x.label for x, _ in leaf_parts]
        texts = [",".join(n for j, n in enumerate(names) if b >> j & 1) for b in patterns]
        return _rows(
            self.keys.iloc[sel].reset_index(drop=True),
            period=p.label,
            value=total(self.value),
            prorated=total(self.prorated),
            effective=total(self.effective),
            level=total(self.value, days) / (leaf * days).sum(axis=1),
            pattern=pattern,
            texts=texts,
        )


def _key_codes(t: pd.DataFrame) -> tuple[npt.NDArray[np.int64], pd.DataFrame]:
    """One code per row of ``t`` for its (subject, metric), and the keys by code."""
    rep_id = t["rep_id"].astype("Int64")
    is_rep = rep_id.notna().to_numpy(dtype=bool)
    subject = rep_id.where(is_rep, t["team_id"].astype("Int64")).to_numpy(np.int64, na_value=-1)
    metric_codes, metric_names = pd.factorize(t["metric"])
    subject_codes, _ = pd.factorize(subject)
    combined = (subject_codes * 2 + is_rep) * max(len(metric_names), 1) + metric_codes
    key, _ = pd.factorize(combined)
    _, first = np.unique(key, return_index=True)
    metric = t["metric"].to_numpy(dtype=object)[first]
    keys = pd.DataFrame(
        {
            "subject_type": np.where(is_rep[first], "rep", "team").astype(object),
            "subject_id": subject[first],
            "metric": metric,
            "additive": [bool(METRICS[x].additive) if x in METRICS else True for x in metric],
        }
    )
    return key.astype(np.int64), keys


def _rows(
    keys: pd.DataFrame,
    *,
    period: str,
    value: npt.NDArray[np.float64],
    prorated: npt.NDArray[np.float64],
    effective: npt.NDArray[np.float64],
    level: npt.NDArray[np.float64],
    pattern: npt.NDArray[np.intp],
    texts: list[str],
) -> pd.DataFrame:
    """Derived target rows from the leaves' sums (formulas in the module docstring);
    ``texts[pattern]`` is each row's ``target_derived_from``."""
    additive = keys["additive"].to_numpy(dtype=bool)
    v, pr, e = value, prorated, effective
    proration = np.where(additive & (v > 0), pr / np.where(v > 0, v, 1.0), 1.0)
    ramp = np.where(additive & (pr > 0), e / np.where(pr > 0, pr, 1.0), 1.0)
    apart = additive & ~np.isclose(e, v)
    # The notes too are written once per (leaves, rule, factors) combination.
    which, combos = pd.factorize(pattern * 4 + additive * 2 + apart)
    notes = [
        f"derived: the {'sum' if c & 2 else 'day-weighted mean'} of the targets of "
        + texts[c >> 2].replace(",", ", ")
        + (" (each prorated and ramped over its own days)" if c & 1 else "")
        for c in combos.tolist()
    ]
    note = np.array(notes, dtype=object)[which] if notes else np.array([], dtype=object)
    derived_from = np.array(texts, dtype=object)[pattern] if texts else np.array([], dtype=object)
    is_rep = keys["subject_type"].eq("rep")
    subject = keys["subject_id"].astype("Int64")
    return pd.DataFrame(
        {
            "target_id": pd.arrays.IntegerArray(
                np.zeros(len(keys), np.int64), np.ones(len(keys), bool)
            ),
            "rep_id": subject.where(is_rep),
            "team_id": subject.where(~is_rep),
            "metric": keys["metric"],
            "period": period,
            "value": np.where(additive, v, level),
            "proration_factor": proration,
            "ramp_factor": ramp,
            "target_note": pd.Series(note, dtype=object),
            "target_derived_from": pd.Series(derived_from, dtype=object),
        }
    )[list(TARGET_COLUMNS)]
