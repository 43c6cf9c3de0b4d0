"""Team and manager rollups of per-rep gaps, and how much of the spread is between teams.

A rep missing quota is a coaching question; most of a team missing it is a management one.
:func:`rollup` sums rep figures up to a team (or to a manager's direct reports) and flags the
second case; :func:`variance_between_teams` measures how much of the spread in attainment is
explained by which team a rep is in.

Input: per-rep gap rows (as :func:`analytics.gaps.compute_gaps` emits, rep rows only):
``rep_id, team_id, metric, period, actual, target, attainment`` plus ``manager_id`` for
manager rollups (or pass ``reps`` to look it up) and ``status`` when judging by status. Rows
with a ``subject_type`` other than "rep" are ignored.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np
import pandas as pd

from analytics.metrics import METRICS

__all__ = [
    "BELOW_STATUSES",
    "ROLLUP_COLUMNS",
    "VARIANCE_COLUMNS",
    "rollup",
    "variance_between_teams",
]

BelowBy = Literal["attainment", "status"]
BELOW_STATUSES: Final[tuple[str, ...]] = ("missed", "at_risk")
ROLLUP_COLUMNS: Final[tuple[str, ...]] = (
    "metric",
    "period",
    "reps",
    "actual",
    "target",
    "attainment",
    "reps_with_target",
    "reps_below_target",
    "share_below_target",
    "team_wide_gap",
)
VARIANCE_COLUMNS: Final[tuple[str, ...]] = (
    "metric",
    "period",
    "reps",
    "groups",
    "mean",
    "between_ss",
    "total_ss",
    "eta_squared",
)


def _rep_rows(gap_rows: pd.DataFrame, by: str, reps: pd.DataFrame | None) -> pd.DataFrame:
    rows = gap_rows
    if "subject_type" in rows:
        rows = rows[rows["subject_type"].eq("rep").to_numpy(dtype=bool, na_value=False)]
    if by not in rows:
        if reps is None or by not in reps:
            raise ValueError(f"gap rows have no {by!r} column; pass reps with rep_id and {by}")
        rows = rows.merge(reps[["rep_id", by]], on="rep_id", how="left", validate="many_to_one")
    return rows


def rollup(
    gap_rows: pd.DataFrame,
    *,
    by: str = "team_id",
    reps: pd.DataFrame | None = None,
    wide_gap_share: float = 0.5,
    min_reps: int = 3,
    below_by: BelowBy = "attainment",
) -> pd.DataFrame:
    """One row per (``by``, metric, period): a team's (or a manager's reports') rollup.

    ``by`` is ``team_id`` (the rep's team) or ``manager_id`` (a manager's direct reports). A rep
    *has a target* when target > 0 (a zero target cannot be missed). Over the rep rows:

    * ``reps``               = rep rows in the group
    * ``actual``             = Σ actual (missing actual counts as 0)
    * ``target``             = Σ target over reps with a target
    * ``attainment``         = Σ actual / Σ target over reps with a target (NaN when Σ target
      is 0). ``actual``, ``target`` and ``attainment`` are NaN for non-additive catalogue
      metrics (win rate, cycle, ...): a sum of rates is meaningless.
    * ``reps_with_target``   = reps with a target
    * ``reps_below_target``  = reps with a target that are below it: attainment < 1
      (``below_by="attainment"``; use it for finished periods) or status in
      :data:`BELOW_STATUSES`, i.e. missed or behind pace (``below_by="status"``; use it for
      periods still running, where most attainments are naturally below 1)
    * ``share_below_target`` = reps_below_target / reps_with_target (NaN when 0)
    * ``team_wide_gap``      = reps_with_target ≥ ``min_reps`` and share_below_target >
      ``wide_gap_share``

    Rows without a ``by`` value are left out. Columns: ``by`` then :data:`ROLLUP_COLUMNS`.
    """
    if not 0.0 <= wide_gap_share < 1.0:
        raise ValueError(f"wide_gap_share must be within [0, 1), got {wide_gap_share!r}")
    if below_by not in ("attainment", "status"):
        raise ValueError(f"below_by must be 'attainment' or 'status', got {below_by!r}")
    rows = _rep_rows(gap_rows, by, reps)
    rows = rows[rows[by].notna().to_numpy(dtype=bool)]
    target = rows["target"].to_numpy(dtype="float64", na_value=np.nan)
    has_target = target > 0
    if below_by == "status":
        if "status" not in rows:
            raise ValueError("below_by='status' needs a 'status' column")
        below = rows["status"].isin(list(BELOW_STATUSES)).to_numpy(dtype=bool)
    else:
        attainment = rows["attainment"].to_numpy(dtype="float64", na_value=np.nan)
        below = attainment < 1.0  # NaN compares False: unknown is not counted as below
    work = pd.DataFrame(
        {
            by: rows[by].to_numpy(),
            "metric": rows["metric"].to_numpy(dtype=object),
            "period": rows["period"].to_numpy(dtype=object),
            "reps": np.ones(len(rows), dtype=np.int64),
            "actual": np.nan_to_num(rows["actual"].to_numpy(dtype="float64", na_value=np.nan)),
            "target": np.where(has_target, target, 0.0),
            "actual_with_target": np.where(
                has_target,
                np.nan_to_num(rows["actual"].to_numpy(dtype="float64", na_value=np.nan)),
                0.0,
            ),
            "reps_with_target": has_target.astype(np.int64),
            "reps_below_target": (has_target & below).astype(np.int64),
        }
    )
    out = work.groupby([by, "metric", "period"], sort=True).sum().reset_index()
    out["attainment"] = out["actual_with_target"] / out["target"].where(out["target"] > 0)
    additive = out["metric"].map({m: spec.additive for m, spec in METRICS.items()})
    # Columns outside the catalogue (custom metrics) are assumed additive.
    summable = additive.fillna(True).to_numpy(dtype=bool)
    for column in ("actual", "target", "attainment"):
        out[column] = out[column].where(summable)
    with_target = out["reps_with_target"]
    out["share_below_target"] = out["reps_below_target"] / with_target.where(with_target > 0)
    out["team_wide_gap"] = (with_target >= min_reps) & (
        out["share_below_target"].fillna(0.0) > wide_gap_share
    )
    return out[[by, *ROLLUP_COLUMNS]]


def variance_between_teams(
    gap_rows: pd.DataFrame,
    *,
    by: str = "team_id",
    value: str = "attainment",
    reps: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Share of the variance of rep ``value`` (attainment) that lies between groups.

    Per (metric, period), over rep rows with a value and a ``by`` group, with x̄ the mean of all
    of them and x̄_t, n_t each group's mean and size:

        eta_squared = Σ_t n_t (x̄_t − x̄)² / Σ (x − x̄)²  =  between_ss / total_ss

    Near 1: reps within a team perform alike and teams differ (look at the teams); near 0:
    the spread is within teams (look at the reps). NaN when total_ss is 0 (everyone equal, up
    to rounding) or there are fewer than 2 reps. Columns: :data:`VARIANCE_COLUMNS`
    (``groups`` = teams with a value).
    """
    rows = _rep_rows(gap_rows, by, reps)
    x = rows[value].to_numpy(dtype="float64", na_value=np.nan)
    keep = ~np.isnan(x) & rows[by].notna().to_numpy(dtype=bool)
    work = pd.DataFrame(
        {
            "metric": rows["metric"].to_numpy(dtype=object)[keep],
            "period": rows["period"].to_numpy(dtype=object)[keep],
            "group": rows[by].to_numpy()[keep],
            "x": x[keep],
        }
    )
    cell = ["metric", "period"]
    overall = work.groupby(cell, sort=False)["x"].transform("mean")
    group_mean = work.groupby([*cell, "group"], sort=False)["x"].transform("mean")
    work["total"] = (work["x"] - overall) ** 2
    # Σ over members of (x̄_t − x̄)² is n_t (x̄_t − x̄)², so a per-row sum gives between_ss.
    work["between"] = (group_mean - overall) ** 2
    work["square"] = work["x"] ** 2
    grouped = work.groupby(cell, sort=True)
    out = pd.DataFrame(
        {
            "reps": grouped.size(),
            "groups": grouped["group"].nunique(),
            "mean": grouped["x"].mean(),
            "between_ss": grouped["between"].sum(),
            "total_ss": grouped["total"].sum(),
            "square": grouped["square"].sum(),
        }
    ).reset_index()
    # Relative tolerance: equal values leave float dust in total_ss, not a real spread.
    defined = (out["total_ss"] > 1e-12 * out["square"]) & (out["reps"] >= 2)
    out["eta_squared"] = (out["between_ss"] / out["total_ss"].where(defined)).clip(upper=1.0)
    out["reps"] = out["reps"].astype(np.int64)
    out["groups"] = out["groups"].astype(np.int64)
    return out[list(VARIANCE_COLUMNS)]
