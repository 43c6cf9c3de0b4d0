from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field

from analytics.metrics import METRICS
from app.core.schemas import Schema, UTCDatetime

Status = Literal["achieved", "on_track", "at_risk", "missed"]
PeriodKind = Literal["month", "quarter", "year"]
SubjectType = Literal["rep", "team"]
if TYPE_CHECKING:
    MetricName = str
else:
    # The metric catalogue (analytics.metrics.METRICS) as an enum: an unknown metric is a 422
    # listing every valid one, and the OpenAPI document lists them too.
    MetricName = Literal[tuple(METRICS)]

REASON = (
    "Why the answer holds no figures (no snapshot yet, no figures for these periods or this "
    "subject in the snapshot...); null when it holds some."
)


class SnapshotRead(Schema):
    id: int = Field(description="The snapshot version the figures come from.")
    kind: str
    trigger: str
    as_of: date = Field(description="The date the compute took as today ('as if today were').")
    computed_at: UTCDatetime
    periods: list[str]
    rows_written: int
    duration_ms: int
    details: dict[str, Any]


class SnapshotPage(Schema):
    items: list[SnapshotRead]


class ComputeRequest(Schema):
    model_config = ConfigDict(json_schema_extra={"examples": [{"full": False}]})

    full: bool = Field(default=False, description="Recompute every period, not only dirty ones.")
    as_of: date | None = Field(
        default=None,
        ge=date(1900, 1, 1),
        le=date(2199, 12, 31),
        description="Compute as if today were this date (1900-01-01 to 2199-12-31).",
    )


ProjectionMethod = Literal["run_rate", "pipeline"]


class ProjectionError(Schema):
    """How far one projection method has been off for this subject, measured on its own
    history: the projection made at the midpoint of each of its last ended periods of this
    kind (12 months, 4 quarters) against the result. See docs/metrics.md, "Projection error"."""

    method: ProjectionMethod = Field(
        description="'run_rate': actual / elapsed share. 'pipeline': actual + open deals due "
        "in the period weighted by the trailing win rate (in the backtest; the live figure "
        "weights them by their CRM probability)."
    )
    mape: float = Field(
        description="Mean |projection - actual| / actual over the periods measured (0.12: "
        "usually off by 12%)."
    )
    bias: float = Field(
        description="Mean (projection - actual) / actual: above 0 the method over-projects, "
        "below 0 it under-projects."
    )
    periods: int = Field(
        description="How many ended periods were measured (those with an actual above 0)."
    )


class ProjectionErrors(Schema):
    run_rate: ProjectionError | None = Field(
        default=None, description="The run rate's error; null without a period to measure it."
    )
    pipeline: ProjectionError | None = Field(
        default=None,
        description="The pipeline-weighted projection's error; null without a period to "
        "measure it (and for metrics open deals cannot move).",
    )


class PathToTarget(Schema):
    """What closes a subject's gap in an open period at its own rates, and whether it still
    can (``analytics/path_to_target.py``; docs/metrics.md, "Path to target"). Only for
    won_revenue and won_deals rows with a gap > 0 in a period not yet ended."""

    metric: str
    period: str
    gap: float = Field(description="target - actual, in the metric's unit.")
    wins_needed: int | None = Field(
        description="ceil(gap / deal_size) for won_revenue, ceil(gap) for won_deals; null when "
        "the deal size is unknown (no won deal in the rates' window)."
    )
    closes_needed: int | None = Field(
        description="ceil(wins_needed / win_rate): deals to close (won or lost); null when the "
        "win rate is unknown or 0."
    )
    opportunities_needed: int | None = Field(
        description="ceil(wins_needed / (win_rate x throughput)): new deals to create; null "
        "when a rate is unknown or 0."
    )
    days_left: int = Field(description="period_end - as_of, in calendar days.")
    working_days_left: int = Field(
        description="Mon-Fri days after as_of up to period_end, minus QG_HOLIDAYS."
    )
    deal_size: float | None = Field(
        description="The subject's Σ won_revenue / Σ won_deals over the 12 months to as_of."
    )
    win_rate: float | None = Field(description="Σ won_deals / Σ closed_deals, same window.")
    throughput: float | None = Field(
        description="Σ closed_deals / Σ opportunities (deals closed per deal created), same window."
    )
    cycle_days: float | None = Field(
        description="Won-deal-weighted mean of the months' median sales cycles, same window."
    )
    new_opportunities_can_close: bool | None = Field(
        description="cycle_days <= days_left: an opportunity created now can still close in "
        "the period; null when the cycle is unknown."
    )
    open_deals: int = Field(description="Open deals due from as_of to the period's end.")
    open_amount: float = Field(description="Their amount, in the reporting currency.")
    open_pipeline: float = Field(
        description="open_amount (won_revenue) or open_deals (won_deals): all of it won."
    )
    weighted_pipeline: float = Field(
        description="Σ amount x probability (won_revenue) or Σ probability (won_deals)."
    )
    pipeline_covers: bool = Field(description="weighted_pipeline >= gap.")
    reachable: Literal["on_pipeline", "needs_new_pipeline", "out_of_reach"] | None = Field(
        description="on_pipeline: the weighted pipeline covers the gap, or nothing new can "
        "close in time and the open pipeline could; needs_new_pipeline: it falls short and new "
        "opportunities can still close; out_of_reach: nothing new can close in time and even "
        "every open deal won falls short; null when the cycle is unknown and the pipeline "
        "falls short."
    )
    sentence: str = Field(description="The same in words, saying why a figure is unknown.")


class PerformanceRead(Schema):
    """A subject's figure for a metric and period, against its target, and how it is paced."""

    subject_type: Literal["rep", "team"]
    rep_id: int | None
    rep_name: str | None = None
    team_id: int | None
    team_name: str | None = None
    manager_id: int | None = None
    metric: str
    period: str
    period_kind: str
    period_start: date
    period_end: date
    status: Status
    actual: float | None
    target: float | None = Field(description="Effective target: target_full x proration x ramp.")
    target_full: float | None
    proration_factor: float | None
    ramp_factor: float | None
    target_note: str | None
    target_source: Literal["set", "derived"] = Field(
        default="set",
        description="'set': the period's own target. 'derived': a quarter or fiscal year "
        "without one, judged against the sum of its months' targets (for levels such as "
        "win_rate, their day-weighted mean). See docs/metrics.md.",
    )
    target_derived_from: list[str] = Field(
        default_factory=list,
        description="The periods whose targets a derived target comes from, in order: the "
        "months (or, for a year, a quarter with its own target); empty for a set target.",
    )
    gap: float | None = Field(description="target - actual (actual - target if lower is better)")
    attainment: float | None = Field(description="actual / target")
    elapsed_fraction: float | None
    pacing: str | None
    expected_to_date: float | None
    pace_gap: float | None = Field(description="actual - expected_to_date")
    projected: float | None = Field(description="run-rate to the end of the period")
    open_pipeline: float | None
    weighted_pipeline: float | None
    projected_with_pipeline: float | None
    coverage: float | None = Field(description="open pipeline due in the period / remaining")
    coverage_needed: float | None = Field(description="1 / the subject's trailing win rate")
    projection_method: ProjectionMethod | None = Field(
        default=None,
        description="The projection shown by default: for won_revenue and won_deals, the "
        "method with the lower backtested error (mape) of the subject's team (a team's own; a "
        "rep without one for the team: the rep's own), among those measured on at least 3 "
        "periods; 'run_rate' otherwise. A fiscal year takes its quarters' method.",
    )
    projection: float | None = Field(
        default=None,
        description="The figure of projection_method: projected or projected_with_pipeline.",
    )
    projection_errors: ProjectionErrors = Field(
        default_factory=ProjectionErrors,
        description="Each method's backtested error for this subject, metric and period kind "
        "(won_revenue and won_deals, months and quarters).",
    )
    consecutive_misses: int
    persistent_underperformer: bool
    path_to_target: str | None = Field(
        default=None,
        description="What closes the gap at the subject's own rates, in words (won_revenue and "
        "won_deals in an open period with a gap); null otherwise.",
    )
    path_to_target_figures: PathToTarget | None = Field(
        default=None, description="The figures behind path_to_target."
    )
    rank_in_team: int | None = None
    rank_in_company: int | None = None
    percentile_in_company: float | None = None
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="The inputs of the metric's formula for this period."
    )
    records: str | None = Field(default=None, description="Where to list the source records.")
    snapshot: int


class PerformancePage(Schema):
    items: list[PerformanceRead]
    next_cursor: str | None = None
    snapshot: SnapshotRead | None
    reason: str | None = Field(default=None, description=REASON)


class DriverEntry(Schema):
    """One funnel driver of a rep against the team (docs/metrics.md, "Funnel drivers")."""

    driver: str = Field(
        description="activity, conversion, pipeline, throughput, win_rate, deal_size, cycle "
        "or pipeline_created.",
        examples=["win_rate"],
    )
    value: float | None = Field(description="The rep's figure over the window.", examples=[0.18])
    team_median: float | None = Field(
        description="Median of the rep's team peers (the rep left out).", examples=[0.3]
    )
    vs_team: float | None = Field(
        description="value / team_median (for the cycle above 1 is slower).", examples=[0.6]
    )
    contribution: float | None = Field(
        description="log(value / team_median) for the factors of revenue in the rep's "
        "identity; they add up to log(revenue / reference revenue). Null otherwise.",
        examples=[-0.51],
    )
    judged: bool = Field(
        description="Whether the driver could be named: in the rep's identity, with a team "
        "median and enough deals for a shortfall to show."
    )
    window: str = Field(description="The periods pooled.", examples=["months 2025-05 to 2026-04"])
    reason: str = Field(
        description="The comparison in words, or why the driver was not judged.",
        examples=["win rate 18% vs team median 30% (40% below)"],
    )


class CoachingRead(Schema):
    rep_id: int
    rep_name: str
    team_id: int | None
    period: str
    period_kind: str
    coaching_focus: str | None = Field(
        description="What the rep must do: activity, opportunities (turn activity into "
        "opportunities), pipeline (create more opportunities), win_rate, deal_size or cycle; "
        "null when no driver is materially below the team.",
        examples=["pipeline"],
    )
    focus_reason: str | None
    focus_window: str | None = Field(
        description="Where the focus was found: 'window' (the year's pool) or 'recent' (the "
        "last periods against the rep's own earlier level and the team).",
        examples=["window"],
    )
    ranked: list[DriverEntry] = Field(
        description="The drivers in order: the focus first, then the largest negative "
        "contribution first."
    )
    drivers: dict[str, Any] = Field(
        description="Every figure of the rep's driver-table row, flat (docs/metrics.md)."
    )
    path_to_target: list[PathToTarget] = Field(
        default_factory=list,
        description="The rep's path to target in the period, for won_revenue then won_deals "
        "(those with a gap in an open period; empty otherwise).",
    )
    snapshot: int


class LeaderboardEntry(Schema):
    rank: int
    percentile: float
    rep_id: int
    rep_name: str
    team_id: int | None
    team_name: str | None
    value: float | None
    target: float | None = None
    attainment: float | None = None


class LeaderboardRead(Schema):
    period: str
    metric: str
    items: list[LeaderboardEntry]
    snapshot: int | None
    reason: str | None = Field(default=None, description=REASON)


class TeamRollupRow(Schema):
    """One metric of a team's rollup over the reps of its tree (``analytics.rollups.rollup``;
    docs/metrics.md, "Team rollups")."""

    metric: str
    period: str
    reps: int = Field(description="Rep rows pooled: the reps of the team and its sub-teams.")
    actual: float | None = Field(description="Σ actual; null for ratio metrics.")
    target: float | None = Field(description="Σ target over the reps with a target.")
    attainment: float | None = Field(
        description="Σ actual / Σ target over the reps with a target; null without one."
    )
    reps_with_target: int
    reps_below_target: int = Field(
        description="Reps below target: missed or at risk in a running period, attainment "
        "under 100% in a finished one."
    )
    share_below_target: float | None = Field(description="reps_below_target / reps_with_target.")
    team_wide_gap: bool = Field(
        description="At least 3 reps with a target and more than half of them below it."
    )
    company_variance_between_teams: float | None = Field(
        default=None,
        description="η²: the share of the company's attainment variance that lies between teams.",
    )


class TeamPerformanceRead(Schema):
    team_id: int
    team_name: str
    period: str
    rollup: list[TeamRollupRow]
    rows: list[PerformanceRead]
    snapshot: int | None
    reason: str | None = Field(default=None, description=REASON)


class SummaryTeam(Schema):
    team_id: int
    team_name: str
    reps: int
    actual: float | None
    target: float | None
    attainment: float | None
    reps_below_target: int
    share_below_target: float | None
    team_wide_gap: bool


class SummaryRep(Schema):
    rep_id: int
    rep_name: str
    team_id: int | None
    status: str
    actual: float | None
    target: float | None
    gap: float | None
    attainment: float | None
    pace_gap: float | None
    projected: float | None
    coaching_focus: str | None


class SummarySource(Schema):
    source_id: int
    name: str
    kind: str
    last_success_at: UTCDatetime | None
    last_error: str | None = Field(
        description="The last sync's error; null for viewer keys, which may not read sources."
    )
    consecutive_failures: int


class SummaryRead(Schema):
    """A wallboard's worth of figures for one period and metric, from one snapshot."""

    period: str
    metric: str
    snapshot: int | None
    computed_at: UTCDatetime | None
    totals: dict[str, float | int | None] = Field(
        description="Over the visible reps with a target: actual, target, attainment (Σ actual "
        "/ Σ target), reps, reps_with_target, reps_below_target."
    )
    attainment_distribution: dict[str, int] = Field(
        description="Reps per attainment band: <50%, 50-80%, 80-100%, 100-120%, >=120%, no target."
    )
    teams: list[SummaryTeam]
    at_risk: list[SummaryRep] = Field(description="Reps at risk or missed, largest gap first.")
    sources: list[SummarySource]
    reason: str | None = Field(default=None, description=REASON)


class TrendRead(Schema):
    """A rep's metric over a window of periods, and its least-squares slope (docs/metrics.md,
    "Across the team")."""

    rep_id: int
    metric: str
    period_kind: str = Field(description="month, quarter or year.")
    first_period: str | None = Field(default=None, description="First period of the window.")
    last_period: str | None = Field(default=None, description="Last period of the window.")
    values: list[float | None] = Field(
        default_factory=list, description="The window's values, oldest first; null where missing."
    )
    points: int = Field(default=0, description="Periods of the window with a value.")
    mean: float | None = None
    slope: float | None = Field(
        default=None, description="Change per period (null with fewer than 3 points)."
    )
    relative_slope: float | None = Field(default=None, description="slope / |mean|")
    direction: Literal["up", "down", "flat"] | None = None
    improving: bool | None = Field(
        default=None, description="Whether the direction is good for this metric; null if flat."
    )
    snapshot: int | None = Field(description="The snapshot version the figures come from.")
    reason: str | None = Field(default=None, description=REASON)


Verdict = Literal["improving", "not_improving", "worsening", "resolved", "too_early"]
VERDICT = (
    "improving / worsening: the named driver's performance moved by at least 0.05 (up / "
    "down); not_improving: less than that; resolved: above 0.67 of the team's (the focus "
    "threshold), no longer materially below; too_early: no later figure yet "
    "(docs/metrics.md, 'Coaching record')."
)


class RecordPoint(Schema):
    """The named driver against the team in one period."""

    period: str
    vs_team: float | None = Field(
        description="The driver's ratio to the team median: its recent window's "
        "(`{driver}_recent_vs_team`) where computed, else `{driver}_vs_team`; null when "
        "the period has no figure."
    )
    performance: float | None = Field(
        description="vs_team, or 1 / vs_team for the sales cycle (lower is better): below 1 "
        "is behind the team."
    )


class CoachingRecordEntry(Schema):
    """A period in which a focus was named, and how its driver moved after it."""

    period: str = Field(description="The period the focus was named in.")
    coaching_focus: str | None = Field(description="The focus named.")
    focus_driver: str = Field(description="The funnel driver behind the focus.")
    vs_team_then: float | None = Field(description="The driver's vs_team in that period.")
    performance_then: float | None = Field(description="Its performance ratio then.")
    followed_by: list[RecordPoint] = Field(
        description="The following periods (up to `horizon`, those that have happened), "
        "oldest first; a period without figures has null ratios."
    )
    change: float | None = Field(
        description="The last known performance among followed_by minus performance_then."
    )
    verdict: Verdict = Field(description=VERDICT)
    summary: str = Field(description="The same in a sentence, with the numbers.")


class CoachingRun(Schema):
    """The focus named now and for how long: the same driver named in consecutive periods."""

    period: str = Field(description="The rep's latest period with figures (the run's last).")
    coaching_focus: str | None
    focus_driver: str
    since: str = Field(description="The run's first period.")
    periods: int = Field(description="Periods in the run.")
    points: list[RecordPoint] = Field(description="The driver in each period of the run.")
    change: float | None = Field(
        description="Performance now minus `horizon` − 1 periods before (at least one "
        "period; the run's start when it is shorter)."
    )
    verdict: Verdict = Field(description=VERDICT + " Judged over the run's last periods.")
    stalled_periods: int = Field(
        description="Periods in a row the focus was named without the driver improving by "
        "0.05 since any of them (0 when no longer materially below); what the "
        "rep.coaching_stalled alert fires on."
    )
    stalled_since: str | None = Field(description="The first of those periods.")
    summary: str = Field(description="e.g. 'win rate since 2026-03: 0.52× → 0.71×, improving'.")


class CoachingRecordRead(Schema):
    """A rep's coaching record: each focus named and whether the named driver then moved
    towards the team (docs/metrics.md, 'Coaching record')."""

    rep_id: int
    rep_name: str
    team_id: int | None
    period_kind: str = Field(description="month or quarter.")
    first_period: str = Field(description="The first period whose entries are listed.")
    last_period: str = Field(description="The last one; later periods are not read.")
    horizon: int = Field(description="Following periods each entry looks at.")
    items: list[CoachingRecordEntry] = Field(description="Oldest first.")
    current_run: CoachingRun | None = Field(
        description="The focus named in the rep's latest period up to last_period; null "
        "when none was named then."
    )
    snapshot: int | None = Field(description="The snapshot version the figures come from.")
    reason: str | None = Field(default=None, description=REASON)


class WinRead(Schema):
    """A won deal to recognise (docs/metrics.md, "Wins and hygiene")."""

    deal_id: int
    rep_id: int
    rep_name: str | None
    period: str
    close_date: date
    amount: float = Field(description="In the reporting currency.")
    percentile: float = Field(
        description="100 x (won deals of the period with amount <= this one) / n"
    )
    above_threshold: bool = Field(description="amount >= min_amount (false without min_amount)")
    top_percentile: bool = Field(
        description="amount in the period's top percentile (needs 20 won deals in the period)"
    )
    reason: str = Field(description="Why this deal is a win, with the numbers.")


class WinsRead(Schema):
    period: str
    items: list[WinRead] = Field(description="Largest amount first.")
    reason: str | None = Field(
        default=None, description="Why there is no win to show; null when there are some."
    )


class HygieneRow(Schema):
    """A rep's CRM hygiene today (docs/metrics.md, "Wins and hygiene")."""

    rep_id: int
    rep_name: str
    team_id: int | None
    team_name: str | None
    open_deals: int
    open_amount: float
    past_due_deals: int = Field(description="Open deals whose close date has passed.")
    past_due_amount: float
    stale_deals: int = Field(description="Open deals with no linked activity in 30 days.")
    stale_amount: float
    activities_in_weeks: int = Field(description="Activities in the last 4 complete ISO weeks.")
    activities_per_week: float
    weeks_from: str
    weeks_to: str


class HygieneRead(Schema):
    as_of: date = Field(description="The day the figures are for (today).")
    items: list[HygieneRow]
    reason: str | None = Field(
        default=None, description="Why there is no rep to show; null when there are some."
    )
