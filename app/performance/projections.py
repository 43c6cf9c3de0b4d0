"""Each projection with its measured error: the backtest of :mod:`analytics.backtest` run on
the compute's own monthly frames, and its figures put on the performance rows.

The backtest reads no record: its inputs are the monthly figures (``rep_month``) and the
midpoint figures (``rep_mid``) of the state every compute carries, the latter maintained from
the deals' before and after images as the former are (:mod:`app.performance.state`).
Team figures are those of the team's reps for their days on it (``membership.tenure``).

Each performance row gets, for its subject, period kind and metric (won_revenue and won_deals;
other metrics are projected by run rate only and have no error):

* ``run_rate_mape, run_rate_bias, run_rate_periods``, ``pipeline_mape, ...``: each method's
  error over the last 12 ended months (month rows) or 4 ended quarters (quarter rows); null
  without a period to measure it on. Fiscal years have too few ended instances: none.
* ``projection_method``: :func:`analytics.backtest.chosen_methods` (a year takes its
  quarters' choice); ``run_rate`` for every other metric.

Only rows of periods not ended by ``as_of`` carry them: an ended period's projection is its
actual, and its stored rows must not change with each month's errors.
* ``projection``: ``projected_with_pipeline`` when the method is ``pipeline``, else
  ``projected``.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from analytics.backtest import (
    BACKTESTED_METRICS,
    METHODS,
    METRIC_INPUTS,
    MID_COLUMNS,
    BacktestConfig,
    backtest,
    chosen_methods,
    error_summary,
    months_read,
    rollup_months,
)
from app.core.config import Settings
from app.performance.inputs import Inputs
from app.performance.membership import tenure as team_tenure

ERROR_COLUMNS = tuple(f"{m}_{s}" for m in METHODS for s in ("mape", "bias", "periods"))
PROJECTION_COLUMNS = ("projection_method", "projection", *ERROR_COLUMNS)
_KEY = ["subject_type", "subject_id", "period_kind", "metric"]


def errors(inputs: Inputs, settings: Settings, as_of: date) -> pd.DataFrame:
    """Per (subject_type, subject_id, period_kind, metric): :data:`ERROR_COLUMNS` and the
    default ``method`` (:func:`analytics.backtest.chosen_methods`)."""
    cal = settings.calendar
    cfg = BacktestConfig(as_of=as_of, cal=cal)
    lo, hi = months_read(cfg)
    cell = ["rep_id", "period_index"]
    months, mids = inputs.state["rep_month"], inputs.state["rep_mid"]
    rep = months.loc[months["period_index"].between(lo, hi), [*cell, *METRIC_INPUTS]].merge(
        mids.loc[mids["period_index"].between(lo, hi), [*cell, *MID_COLUMNS]],
        on=cell,
        how="outer",
    )
    rep = rep.fillna(0)
    tenure = team_tenure(
        inputs.spans, inputs.reps, inputs.teams, months=np.arange(lo, hi + 1), cal=cal
    )
    team = rollup_months(rep, tenure)
    rep_summary = error_summary(backtest(rep, cfg, key="rep_id"), key="rep_id")
    team_summary = error_summary(backtest(team, cfg, key="team_id"), key="team_id")
    rep_teams = inputs.reps.loc[inputs.reps["team_id"].notna(), ["rep_id", "team_id"]]
    chosen = chosen_methods(rep_summary, team_summary, rep_teams.astype("int64"))
    summary = pd.concat(
        [
            rep_summary.rename(columns={"rep_id": "subject_id"}).assign(subject_type="rep"),
            team_summary.rename(columns={"team_id": "subject_id"}).assign(subject_type="team"),
        ],
        ignore_index=True,
    )
    summary["subject_id"] = summary["subject_id"].astype("int64")
    chosen["subject_id"] = chosen["subject_id"].astype("int64")
    return summary.drop(columns="best_method").merge(chosen, on=_KEY, how="outer")


def with_projections(rows: pd.DataFrame, errors: pd.DataFrame, as_of: date) -> pd.DataFrame:
    """``rows`` (gap rows) with :data:`PROJECTION_COLUMNS` (module docstring). A period that
    has ended is projected at its actual: its rows get no error and the run rate, so they stay
    as stored while the errors move with each month's history (or a rep's team move)."""
    rows = rows.copy()
    n = len(rows)
    if not n:
        for c in PROJECTION_COLUMNS:
            rows[c] = pd.Series(dtype=object if c == "projection_method" else "float64")
        return rows
    is_rep = rows["subject_type"].eq("rep").to_numpy()
    subject = np.where(is_rep, rows["rep_id"].to_numpy(dtype="float64", na_value=np.nan),
                       rows["team_id"].to_numpy(dtype="float64", na_value=np.nan))  # fmt: skip
    keys = pd.DataFrame(
        {
            "subject_type": rows["subject_type"].to_numpy(),
            "subject_id": np.nan_to_num(subject, nan=-1).astype(np.int64),
            "period_kind": rows["period_kind"].to_numpy(),
            "metric": rows["metric"].to_numpy(),
        }
    )
    # A year takes its quarters' method (and shows no error of its own).
    by_kind = keys.assign(period_kind=keys["period_kind"].replace({"year": "quarter"}))
    index = pd.MultiIndex.from_frame(errors[_KEY])
    at = index.get_indexer(pd.MultiIndex.from_frame(by_kind))
    ended = rows["period_end"].to_numpy(dtype="datetime64[D]") < np.datetime64(as_of, "D")
    found = (at >= 0) & ~ended
    own = found & (keys["period_kind"].to_numpy() != "year")
    for c in ERROR_COLUMNS:
        # A trailing NaN: a row without errors (at −1) looks it up.
        values = np.append(errors[c].to_numpy(dtype="float64", na_value=np.nan), np.nan)
        rows[c] = np.where(own, values[at], np.nan)
    chosen = np.append(errors["method"].to_numpy(dtype=object), [None])[at]
    backtested = found & rows["metric"].isin(BACKTESTED_METRICS).to_numpy()
    method = np.where(backtested & (chosen == "pipeline"), "pipeline", "run_rate")
    rows["projection_method"] = method.astype(object)
    rows["projection"] = np.where(
        method == "pipeline",
        rows["projected_with_pipeline"].to_numpy(dtype="float64", na_value=np.nan),
        rows["projected"].to_numpy(dtype="float64", na_value=np.nan),
    )
    return rows
