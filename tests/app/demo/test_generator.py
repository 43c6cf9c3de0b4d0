from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from app.demo.generator import STAGES, WEAKNESSES, DemoConfig, DemoData, generate

TODAY = date(2026, 11, 20)
NOW = pd.Timestamp("2026-11-20 23:59:59", tz="UTC")
CURRENT_MONTH = "2026-11"
WINDOW_START = pd.Timestamp("2025-06-01", tz="UTC")  # 18 months including Nov 2026
FRAMES = ("teams", "reps", "deals", "deal_stages", "activities", "targets", "stages")


@pytest.fixture(scope="module")
def data() -> DemoData:
    return generate(DemoConfig(today=TODAY))


def _month(ts: pd.Series) -> pd.Series:
    return ts.dt.strftime("%Y-%m")


def _sellers(data: DemoData) -> pd.DataFrame:
    return data.reps[data.reps["role"] == "rep"]


def _ramping(reps: pd.DataFrame) -> pd.Series:
    return reps["start_date"] > TODAY - timedelta(days=183)


def _steady_healthy(data: DemoData) -> pd.DataFrame:
    """Reps active over the whole window without a planted weakness: the team baseline."""
    reps = _sellers(data)
    steady = reps["is_active"] & ~_ramping(reps) & reps["planted_weakness"].isna()
    return reps[steady]


def _drivers(data: DemoData) -> pd.DataFrame:
    """The raw funnel drivers per seller, computed from the frames alone."""
    reps = _sellers(data).set_index("rep_key")
    team_currency = data.teams.set_index("team_key")["currency"]
    acts = data.activities
    deals = data.deals[~data.deals["is_deleted"]]
    full_month = _month(acts["occurred_at"]) != CURRENT_MONTH
    n_full_months = acts.loc[full_month, "occurred_at"].pipe(_month).nunique()

    closed = deals[deals["status"] != "open"]
    won = deals[deals["status"] == "won"]
    won_home = won[
        won["currency"].to_numpy()
        == team_currency[reps.loc[won["owner_key"], "team_key"]].to_numpy()
    ]
    cycle_days = (won["closed_at"] - won["created_at"]).dt.total_seconds() / 86_400
    in_window = deals[deals["created_at"] >= WINDOW_START]
    out = pd.DataFrame(
        {
            "activity": acts[full_month].groupby("owner_key").size() / n_full_months,
            "opportunities": in_window.groupby("owner_key").size()
            / acts.groupby("owner_key").size(),
            "win_rate": won.groupby("owner_key").size() / closed.groupby("owner_key").size(),
            "deal_size": won_home.groupby("owner_key")["amount"].mean(),
            "cycle": cycle_days.groupby(won["owner_key"]).median(),
        }
    )
    return out.join(reps[["team_key", "planted_weakness"]], how="right")


# Determinism and configuration


def test_same_config_gives_identical_frames(data: DemoData) -> None:
    again = generate(DemoConfig(today=TODAY))
    for name in FRAMES:
        pdt.assert_frame_equal(getattr(data, name), getattr(again, name))


def test_different_seed_gives_different_data(data: DemoData) -> None:
    other = generate(DemoConfig(seed=7, today=TODAY))
    assert not other.reps["name"].equals(data.reps["name"])
    assert len(other.deals) != len(data.deals) or not other.deals["amount"].equals(
        data.deals["amount"]
    )
    assert len(other.activities) != len(data.activities)


def test_default_today_is_the_utc_date() -> None:
    before = datetime.now(UTC).date()
    today = DemoConfig().today
    assert before <= today <= datetime.now(UTC).date()
    assert DemoConfig(today=datetime(2026, 3, 4, 22, 30, tzinfo=UTC)).today == date(2026, 3, 4)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"months": 0},
        {"teams": 0},
        {"reps_per_team": 0},
        {"weak_share": 1.5},
        {"currencies": ()},
        {"activity_scale": 0.0},
    ],
)
def test_invalid_config_is_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DemoConfig(**kwargs)  # type: ignore[arg-type]


# Shape of the data


def _is_str(col: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(col) and not pd.api.types.is_object_dtype(col)


def _is_utc(col: pd.Series) -> bool:
    return isinstance(col.dtype, pd.DatetimeTZDtype) and str(col.dtype.tz) == "UTC"


def _is_dates(col: pd.Series) -> bool:
    values = col.dropna()
    return len(values) > 0 and all(
        isinstance(v, date) and not isinstance(v, datetime) for v in values
    )


def test_schema_and_dtypes(data: DemoData) -> None:
    expected = {
        "teams": ["team_key", "name", "manager_key", "parent_team_key", "currency"],
        "reps": [
            "rep_key",
            "name",
            "email",
            "team_key",
            "manager_key",
            "role",
            "start_date",
            "end_date",
            "is_active",
            "planted_weakness",
        ],
        "deals": [
            "external_id",
            "owner_key",
            "name",
            "account",
            "amount",
            "currency",
            "pipeline",
            "stage",
            "probability",
            "status",
            "created_at",
            "close_date",
            "closed_at",
            "modified_at",
            "is_deleted",
        ],
        "deal_stages": ["external_id", "stage", "entered_at"],
        "activities": [
            "external_id",
            "owner_key",
            "type",
            "occurred_at",
            "deal_external_id",
            "subject",
            "modified_at",
        ],
        "targets": ["rep_key", "metric", "period", "value"],
        "stages": ["pipeline", "stage", "order", "probability", "status"],
    }
    for name, columns in expected.items():
        assert list(getattr(data, name).columns) == columns, name

    strings = {
        "teams": ["team_key", "name", "manager_key", "parent_team_key", "currency"],
        "reps": ["rep_key", "name", "email", "team_key", "manager_key", "role", "planted_weakness"],
        "deals": [
            "external_id",
            "owner_key",
            "name",
            "account",
            "currency",
            "pipeline",
            "stage",
            "status",
        ],
        "deal_stages": ["external_id", "stage"],
        "activities": ["external_id", "owner_key", "type", "deal_external_id", "subject"],
        "targets": ["rep_key", "metric", "period"],
        "stages": ["pipeline", "stage", "status"],
    }
    for name, columns in strings.items():
        for column in columns:
            assert _is_str(getattr(data, name)[column]), (name, column)

    for frame, column in [
        (data.deals, "created_at"),
        (data.deals, "closed_at"),
        (data.deals, "modified_at"),
        (data.deal_stages, "entered_at"),
        (data.activities, "occurred_at"),
        (data.activities, "modified_at"),
    ]:
        assert _is_utc(frame[column]), column
    for frame, column in [
        (data.reps, "start_date"),
        (data.reps, "end_date"),
        (data.deals, "close_date"),
    ]:
        assert _is_dates(frame[column]), column
    for frame, column in [
        (data.deals, "amount"),
        (data.deals, "probability"),
        (data.targets, "value"),
        (data.stages, "probability"),
    ]:
        assert frame[column].dtype == np.float64, column
    for frame, column in [(data.reps, "is_active"), (data.deals, "is_deleted")]:
        assert frame[column].dtype == np.bool_, column
    assert pd.api.types.is_integer_dtype(data.stages["order"])

    assert set(data.deals["status"]) == {"open", "won", "lost"}
    assert set(data.activities["type"]) == {"call", "email", "meeting", "task"}
    assert set(data.targets["metric"]) == {"won_revenue", "activities", "won_deals"}
    assert data.targets["period"].str.fullmatch(r"\d{4}-\d{2}").all()
    assert data.deals["probability"].between(0, 1).all()
    assert (data.deals["amount"] > 0).all()


def test_default_volumes_are_realistic(data: DemoData) -> None:
    assert len(data.teams) == 5
    assert len(data.reps) == 1 + 4 + 24
    assert 2_500 <= len(data.deals) <= 5_500
    assert 40_000 <= len(data.activities) <= 100_000
    per_rep_month = len(data.deals) / (24 * 18)
    assert 5 <= per_rep_month <= 11
    calls = (data.activities["type"] == "call").mean()
    assert (
        calls
        > (data.activities["type"] == "email").mean()
        > (data.activities["type"] == "meeting").mean()
        > (data.activities["type"] == "task").mean()
    )


def test_pipeline_metadata(data: DemoData) -> None:
    stages = data.stages
    assert stages["pipeline"].eq("default").all()
    assert list(stages["stage"]) == [
        "Prospecting",
        "Qualification",
        "Proposal",
        "Negotiation",
        "Closed Won",
        "Closed Lost",
    ]
    assert list(stages["probability"]) == [0.1, 0.2, 0.5, 0.8, 1.0, 0.0]
    assert list(stages["status"]) == ["open"] * 4 + ["won", "lost"]
    assert list(stages["order"]) == [1, 2, 3, 4, 5, 6]
    assert set(data.deals["pipeline"]) == {"default"}
    assert len(STAGES) == len(stages)


def test_org_structure(data: DemoData) -> None:
    teams, reps = data.teams, data.reps
    root = teams[teams["parent_team_key"].isna()]
    assert list(root["name"]) == ["Sales Leadership"]
    root_key = root["team_key"].iloc[0]
    assert (teams.loc[teams["team_key"] != root_key, "parent_team_key"] == root_key).all()

    by_key = reps.set_index("rep_key")
    vp = by_key.loc[root["manager_key"].iloc[0]]
    assert vp["role"] == "manager" and pd.isna(vp["manager_key"]) and vp["team_key"] == root_key
    assert reps["manager_key"].isna().sum() == 1

    for team in teams[teams["team_key"] != root_key].itertuples():
        manager = by_key.loc[team.manager_key]
        assert manager["role"] == "manager" and manager["team_key"] == team.team_key
        assert manager["manager_key"] == vp.name
        members = reps[(reps["team_key"] == team.team_key) & (reps["role"] == "rep")]
        assert len(members) == 6
        assert (members["manager_key"] == team.manager_key).all()
    assert (reps["role"] == "manager").sum() == 5


def test_emails_are_unique_and_derived_from_names(data: DemoData) -> None:
    reps = data.reps
    assert reps["email"].is_unique and reps["rep_key"].is_unique
    expected = reps["name"].str.lower().str.replace(" ", ".") + "@example.com"
    assert (reps["email"] == expected).all()


def test_external_ids_are_stable_formatted_and_chronological(data: DemoData) -> None:
    deals, acts = data.deals, data.activities
    assert deals["external_id"].str.fullmatch(r"D\d{6}").all() and deals["external_id"].is_unique
    assert acts["external_id"].str.fullmatch(r"A\d{7}").all() and acts["external_id"].is_unique
    assert deals["created_at"].is_monotonic_increasing
    assert acts["occurred_at"].is_monotonic_increasing
    assert deals["external_id"].iloc[0] == "D000001"


# Integrity


def test_owners_and_links_exist(data: DemoData) -> None:
    sellers = set(_sellers(data)["rep_key"])
    assert set(data.deals["owner_key"]) <= sellers
    assert set(data.activities["owner_key"]) <= sellers
    assert set(data.targets["rep_key"]) == sellers  # managers carry no quota

    linked = data.activities.dropna(subset=["deal_external_id"])
    assert 0.3 < len(linked) / len(data.activities) < 0.8
    deals = data.deals.set_index("external_id")
    assert set(linked["deal_external_id"]) <= set(deals.index)
    target = deals.loc[linked["deal_external_id"]]
    assert (target["owner_key"].to_numpy() == linked["owner_key"].to_numpy()).all()
    assert (target["created_at"].to_numpy() <= linked["occurred_at"].to_numpy()).all()
    ended = target["closed_at"].notna().to_numpy()
    assert (target["closed_at"].to_numpy()[ended] >= linked["occurred_at"].to_numpy()[ended]).all()


def test_stage_history_matches_deals(data: DemoData) -> None:
    hist, deals = data.deal_stages, data.deals.set_index("external_id")
    assert set(hist["external_id"]) == set(deals.index)
    assert hist["external_id"].is_monotonic_increasing
    assert (
        hist.groupby("external_id")["entered_at"]
        .apply(lambda s: s.is_monotonic_increasing and s.is_unique)
        .all()
    )
    first = hist.groupby("external_id").first()
    last = hist.groupby("external_id").last()
    assert (first["stage"] == "Prospecting").all()
    assert (first["entered_at"] == deals.loc[first.index, "created_at"]).all()
    assert (last["stage"] == deals.loc[last.index, "stage"]).all()
    closed = deals["status"] != "open"
    assert (last.loc[closed[closed].index, "entered_at"] == deals.loc[closed, "closed_at"]).all()


def test_status_stage_and_timestamps_are_consistent(data: DemoData) -> None:
    deals = data.deals
    meta = data.stages.set_index("stage")
    assert (deals["status"].to_numpy() == meta.loc[deals["stage"], "status"].to_numpy()).all()
    assert np.allclose(deals["probability"], meta.loc[deals["stage"], "probability"])
    closed = deals["status"] != "open"
    assert deals.loc[closed, "closed_at"].notna().all()
    assert deals.loc[~closed, "closed_at"].isna().all()
    assert (deals.loc[closed, "closed_at"].dt.date == deals.loc[closed, "close_date"]).all()
    assert (deals.loc[closed, "closed_at"] > deals.loc[closed, "created_at"]).all()
    assert (deals["modified_at"] >= deals["created_at"]).all()
    assert (deals.loc[closed, "modified_at"] >= deals.loc[closed, "closed_at"]).all()
    assert (data.activities["modified_at"] >= data.activities["occurred_at"]).all()


def test_nothing_is_dated_after_today_except_expected_close_dates(data: DemoData) -> None:
    for frame, column in [
        (data.deals, "created_at"),
        (data.deals, "closed_at"),
        (data.deals, "modified_at"),
        (data.deal_stages, "entered_at"),
        (data.activities, "occurred_at"),
        (data.activities, "modified_at"),
    ]:
        assert frame[column].max() <= NOW, column
    assert (data.reps["start_date"] <= TODAY).all()
    # Quotas are planned to the end of the quarter under way.
    quarter_end = (pd.Period(CURRENT_MONTH, "M").asfreq("Q").asfreq("M", "end")).strftime("%Y-%m")
    assert data.targets["period"].max() == quarter_end
    assert data.activities["occurred_at"].min() >= WINDOW_START

    deals = data.deals
    open_deals = deals[deals["status"] == "open"]
    assert (deals.loc[deals["status"] != "open", "close_date"] <= TODAY).all()
    assert (open_deals["close_date"] > TODAY).mean() > 0.6  # most pipeline is forward-looking
    assert (open_deals["close_date"] < TODAY).sum() >= 10  # past-due pipeline to clean up
    assert (open_deals["close_date"].map(lambda d: d >= TODAY - timedelta(days=400))).all()


def test_recent_deals_are_mostly_open_and_old_ones_closed(data: DemoData) -> None:
    age = (NOW - data.deals["created_at"]).dt.days
    is_open = data.deals["status"] == "open"
    assert is_open[age < 30].mean() > 0.8
    assert is_open[age > 180].mean() < 0.02


def test_activities_fall_on_weekdays_in_business_hours(data: DemoData) -> None:
    occurred = data.activities["occurred_at"]
    assert (occurred.dt.day_of_week < 5).all()
    assert (data.deals["created_at"].dt.day_of_week < 5).all()
    assert (data.deals["closed_at"].dropna().dt.day_of_week < 5).all()
    currency = data.activities["owner_key"].map(
        _sellers(data)
        .set_index("rep_key")["team_key"]
        .map(data.teams.set_index("team_key")["currency"])
    )
    usd_hours = occurred[currency == "USD"].dt.hour
    assert usd_hours.between(13, 23).all()  # 08:00-18:00 US Eastern
    assert (occurred.dt.hour < 7).sum() == 0


# People


def test_ramping_and_departed_reps(data: DemoData) -> None:
    reps = _sellers(data)
    ramping = reps[_ramping(reps)]
    assert len(ramping) == 2
    for rep in ramping.itertuples():
        first_deal = data.deals.loc[data.deals["owner_key"] == rep.rep_key, "created_at"].min()
        first_act = data.activities.loc[
            data.activities["owner_key"] == rep.rep_key, "occurred_at"
        ].min()
        start = pd.Timestamp(rep.start_date, tz="UTC")
        assert first_act >= start and (pd.isna(first_deal) or first_deal >= start)

    departed = data.reps[~data.reps["is_active"]]
    assert len(departed) == 1
    rep = departed.iloc[0]
    assert rep["role"] == "rep"
    assert 90 <= (TODAY - rep["end_date"]).days <= 150
    assert data.reps.loc[data.reps["is_active"], "end_date"].isna().all()
    left = pd.Timestamp(rep["end_date"], tz="UTC") + pd.Timedelta(days=1)
    acts = data.activities[data.activities["owner_key"] == rep["rep_key"]]
    deals = data.deals[data.deals["owner_key"] == rep["rep_key"]]
    stages = data.deal_stages[data.deal_stages["external_id"].isin(deals["external_id"])]
    assert len(acts) > 1_000 and len(deals) > 20
    assert acts["occurred_at"].max() < left and acts["modified_at"].max() < left
    assert deals["modified_at"].max() < left and stages["entered_at"].max() < left
    assert deals["closed_at"].max() < left
    last_period = data.targets.loc[data.targets["rep_key"] == rep["rep_key"], "period"].max()
    assert last_period == rep["end_date"].strftime("%Y-%m")


def test_planted_weaknesses_are_valid_and_spread(data: DemoData) -> None:
    reps = data.reps
    weak = reps[reps["planted_weakness"].notna()]
    assert set(weak["planted_weakness"]) == set(WEAKNESSES)
    assert (weak["role"] == "rep").all()
    assert not _ramping(weak).any()
    assert weak["is_active"].all()
    assert len(weak) == round(0.35 * 24)
    counts = weak["planted_weakness"].value_counts()
    assert counts.max() - counts.min() <= 1
    per_team = weak.groupby("team_key").size()
    assert per_team.max() - per_team.min() <= 1


@pytest.mark.parametrize("weakness", WEAKNESSES)
def test_planted_weakness_shows_in_its_driver(data: DemoData, weakness: str) -> None:
    drivers = _drivers(data)
    baseline = drivers.loc[_steady_healthy(data)["rep_key"]].groupby("team_key")[weakness]
    team_median = baseline.median()
    planted = drivers[drivers["planted_weakness"] == weakness]
    assert len(planted) >= 1
    ratio = planted[weakness] / planted["team_key"].map(team_median)
    if weakness == "cycle":
        assert (ratio > 1.5).all(), ratio
    else:
        assert (ratio < 0.75).all(), ratio


def test_healthy_reps_stay_close_to_their_team(data: DemoData) -> None:
    drivers = _drivers(data).loc[_steady_healthy(data)["rep_key"]]
    ratio = drivers[list(WEAKNESSES)] / drivers.groupby("team_key")[list(WEAKNESSES)].transform(
        "median"
    )
    assert ratio["activity"].between(0.8, 1.25).all()
    # Noisier drivers (few won deals per rep) still stay clear of a 0.45x / 2.2x weakness.
    assert (ratio.median() > 0.9).all() and (ratio.median() < 1.1).all()


# Seasonality, targets and CRM quirks


def test_quarter_end_months_close_more_won_deals(data: DemoData) -> None:
    won = data.deals[data.deals["status"] == "won"]
    per_month = won.groupby(_month(won["closed_at"])).size()
    per_month = per_month[per_month.index != CURRENT_MONTH]
    is_quarter_end = np.array([int(p[-2:]) % 3 == 0 for p in per_month.index])
    assert per_month[is_quarter_end].mean() > 1.25 * per_month[~is_quarter_end].mean()
    acts = data.activities
    acts_per_month = acts.groupby(_month(acts["occurred_at"])).size()
    acts_per_month = acts_per_month[acts_per_month.index != CURRENT_MONTH]
    q4 = np.array([int(p[-2:]) >= 10 for p in acts_per_month.index])
    assert acts_per_month[q4].mean() > acts_per_month[~q4].mean()


def test_targets_follow_the_team_not_the_rep(data: DemoData) -> None:
    targets = data.targets
    assert not targets.duplicated(["rep_key", "metric", "period"]).any()
    assert (targets["value"] > 0).all()
    revenue = targets[targets["metric"] == "won_revenue"]
    assert (revenue.groupby("rep_key")["value"].nunique() == 1).all()

    reps = _sellers(data).set_index("rep_key")
    monthly_target = revenue.groupby("rep_key")["value"].first()
    won = data.deals[(data.deals["status"] == "won") & ~data.deals["is_deleted"]]
    won = won[_month(won["closed_at"]) != CURRENT_MONTH]
    full_months = 17
    attainment = (won.groupby("owner_key")["amount"].sum() / full_months) / monthly_target
    healthy = attainment.loc[_steady_healthy(data)["rep_key"]]
    assert 0.6 < healthy.median() < 1.25  # targets sit at 1.0-1.1x the team norm
    # Volume and value weaknesses cost revenue; a slow cycle in steady state does not.
    costly = reps["planted_weakness"].isin(["activity", "opportunities", "win_rate", "deal_size"])
    assert attainment.loc[reps.index[costly]].max() < healthy.median()
    # Reps in the same team share the same revenue expectation within the 0-10 % stretch.
    spread = monthly_target.groupby(reps["team_key"]).agg(lambda s: s.max() / s.min())
    assert (spread <= 1.11).all()
    assert data.targets.loc[data.targets["metric"] == "won_deals", "value"].ge(1).all()


def test_deleted_foreign_and_reopened_deals(data: DemoData) -> None:
    deals = data.deals
    assert 0.003 <= deals["is_deleted"].mean() <= 0.025

    team_currency = deals["owner_key"].map(
        _sellers(data)
        .set_index("rep_key")["team_key"]
        .map(data.teams.set_index("team_key")["currency"])
    )
    foreign = deals["currency"] != team_currency
    assert 0.005 <= foreign.mean() <= 0.08
    assert np.allclose(deals["amount"] * 100, np.round(deals["amount"] * 100))

    paths = data.deal_stages.groupby("external_id")["stage"].agg(tuple)
    reopened = paths[paths.map(lambda p: p[-3:] == ("Closed Lost", "Negotiation", "Closed Won"))]
    assert 1 <= len(reopened) <= 0.03 * len(deals)
    assert (deals.set_index("external_id").loc[reopened.index, "status"] == "won").all()


def test_deal_sizes_and_cycles_are_in_range(data: DemoData) -> None:
    won = data.deals[data.deals["status"] == "won"]
    assert 6_000 <= won["amount"].median() <= 30_000
    cycle = (won["closed_at"] - won["created_at"]).dt.days
    assert 20 <= cycle.median() <= 70
    closed = data.deals[data.deals["status"] != "open"]
    assert 0.2 <= (closed["status"] == "won").mean() <= 0.4


# Other configurations


def test_tiny_company_still_generates_consistent_data() -> None:
    small = generate(
        DemoConfig(
            seed=3,
            today=TODAY,
            teams=1,
            reps_per_team=2,
            months=1,
            weak_share=1.0,
            currencies=("JPY",),
        )
    )
    assert len(small.teams) == 2 and len(small.reps) == 4
    assert set(small.teams["currency"]) == {"JPY"}
    # No room for ramping or departed reps in a two-seller team, so both get a weakness.
    weak = small.reps[small.reps["planted_weakness"].notna()]
    assert len(weak) == 2 and weak["planted_weakness"].is_unique
    assert set(small.targets["period"]) == {CURRENT_MONTH, "2026-12"}  # the quarter planned
    assert set(small.deal_stages["external_id"]) == set(small.deals["external_id"])
    assert small.activities["occurred_at"].min() >= pd.Timestamp("2026-11-01", tz="UTC")


def test_no_activity_produces_empty_frames_with_schema(data: DemoData) -> None:
    empty = generate(DemoConfig(today=TODAY, teams=1, reps_per_team=1, activity_scale=1e-9))
    assert empty.activities.empty and empty.deals.empty and empty.deal_stages.empty
    assert list(empty.deals.columns) == list(data.deals.columns)
    assert list(empty.activities.columns) == list(data.activities.columns)
    assert _is_utc(empty.activities["occurred_at"])


def test_activity_scale_grows_activities_not_deals(data: DemoData) -> None:
    scaled = generate(DemoConfig(today=TODAY, activity_scale=3.0))
    assert 2.8 < len(scaled.activities) / len(data.activities) < 3.2
    assert 0.85 < len(scaled.deals) / len(data.deals) < 1.15
    acts_target = scaled.targets[scaled.targets["metric"] == "activities"]["value"].mean()
    base_target = data.targets[data.targets["metric"] == "activities"]["value"].mean()
    assert 2.8 < acts_target / base_target < 3.2


def test_reps_names_match_pattern(data: DemoData) -> None:
    assert (
        data.reps["name"].map(lambda n: re.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+", n)).notna().all()
    )
