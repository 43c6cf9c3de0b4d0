"""Hostile input through validation: random CSV imports and random CRM pages.

Whatever arrives (wrong types, unicode, control characters, HTML, empty cells, huge or
negative amounts, dates in year 1 or 9999, unknown owners, duplicate ids), nothing may raise
past validation and nothing may be dropped: every CSV row is loaded or quarantined with a
reason, every CRM record becomes a mapped row or a Reject with a reason, and mapped rows hold
sane values (finite amounts within bounds, plausible dates, names without control characters).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.activities.models import Activity
from app.deals.models import Deal
from app.pipeline.imports import service
from app.pipeline.imports.mapping import Mapping
from app.reps import service as reps_service
from app.sources.models import QuarantinedRecord
from connectors import base, hubspot, hubspot_records, pipedrive, pipedrive_records, salesforce

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
DB_FUZZ = settings(FUZZ, max_examples=100)

# ------------------------------------------------------------------ hostile values

CONTROL = st.sampled_from(
    ["\x00", "\x01", "\x07", "\x1b[31m", "\u200b", "\u2028", "\ufeff", "\x7f"]
)
HTML = st.sampled_from(
    ["<script>alert(1)</script>", "<b>Bold</b>", "&amp;", '"><img src=x onerror=alert(1)>']
)
HOSTILE_TEXT = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.builds(lambda a, c, b: a + c + b, st.text(max_size=8), CONTROL, st.text(max_size=8)),
    HTML,
    st.just(""),
    st.just(" "),
    st.sampled_from(["null", "None", "NaN", "nan", "inf", "-inf", "true", "²", "١٢", "0x10"]),
)
ABSURD_AMOUNTS = st.one_of(
    st.sampled_from(["1e30", "-5", "NaN", "nan", "inf", "-inf", "1e12", "1000000000001", "0"]),
    st.sampled_from(["1,000.50", "12.5.3", "$100", "1e400", "-0", " 42 ", "٤٢"]),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
)
HOSTILE_DATES = st.one_of(
    st.sampled_from(
        [
            "0001-01-01",
            "9999-12-31",
            "1899-12-31",
            "2262-04-12",
            "1677-09-21",
            "2026-02-30",
            "2026-13-01",
            "2026-02-01T25:00:00Z",
            "2026-02-01T10:00:00+25:00",
            "99999999999999999999",
            "-1",
            "0",
            "2026-02-01",
            "2026-02-01T10:00:00Z",
            "2026-02-01 10:00:00",
            "1700000000000",
        ]
    ),
    st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)).map(date.isoformat),
    st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
)

# ------------------------------------------------------------------ sane mapped rows

NAME_FIELDS = ("name", "account", "stage", "pipeline", "subject", "team_name")
SANE_YEARS = range(1990, 2101)


def _insane(record: dict[str, Any]) -> list[str]:
    """What is wrong with a mapped record (empty when it is fit to store)."""
    problems: list[str] = []
    for key, value in record.items():
        if isinstance(value, str) and "\x00" in value:
            problems.append(f"{key} holds a NUL byte (PostgreSQL cannot store it): {value!r}")
        if (
            key in NAME_FIELDS
            and isinstance(value, str)
            and (any(not ch.isprintable() for ch in value) or "<" in value or ">" in value)
        ):
            problems.append(f"{key} holds control characters or markup: {value!r}")
        if key.endswith("external_id") and value is not None:
            if not isinstance(value, str) or (key == "external_id" and not value.strip()):
                problems.append(f"{key} is not a (non-empty) string: {value!r}")
            elif len(value) > 200:
                problems.append(f"{key} is longer than the 200 characters stored: {value!r}")
        if isinstance(value, datetime | date) and value.year not in SANE_YEARS:
            problems.append(f"{key} is not a plausible date: {value!r}")
        if isinstance(value, datetime) and value.tzinfo is None:
            problems.append(f"{key} is a naive datetime: {value!r}")
    amount = record.get("amount")
    if amount is not None and (
        not isinstance(amount, float) or not math.isfinite(amount) or not 0 <= amount <= 1e12
    ):
        problems.append(f"amount out of bounds: {amount!r}")
    probability = record.get("probability")
    if probability is not None and not 0 <= probability <= 1:
        problems.append(f"probability out of 0..1: {probability!r}")
    if "currency" in record and not (
        isinstance(record["currency"], str) and len(record["currency"]) == 3
    ):
        problems.append(f"bad currency: {record['currency']!r}")
    if "status" in record and record["status"] not in {"open", "won", "lost"}:
        problems.append(f"bad status: {record['status']!r}")
    if "type" in record and record["type"] not in {"call", "email", "meeting", "task"}:
        problems.append(f"bad activity type: {record['type']!r}")
    for key in ("name", "email") if "team_name" in record else ():
        value = record.get(key)
        if value is not None and len(value) > 200 + 120 * (key == "email"):
            problems.append(f"{key} longer than stored: {value!r}")
    return problems


def _check_page(
    raws: list[Any],
    mapper: Callable[[dict[str, Any]], dict[str, Any]],
    id_of: Callable[[dict[str, Any]], Any],
) -> None:
    try:
        page = base.map_page(raws, mapper, id_of=id_of, cursor_of=lambda _r: None)
    except Exception as exc:
        raise AssertionError(
            f"the mapper raised {type(exc).__name__}: {exc} instead of rejecting a record"
        ) from exc
    assert page.fetched == len(raws) == len(page.records) + len(page.rejects), "a record was lost"
    for reject in page.rejects:
        assert reject.reason.strip(), f"a reject without a reason: {reject!r}"
    for record in page.records:
        problems = _insane(record)
        assert not problems, f"mapped an unfit record {record!r}: {problems}"


# ------------------------------------------------------------------ CRM pages


def _maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field that may also be null or of the wrong type."""
    return st.one_of(
        value,
        st.none(),
        st.integers(min_value=-(10**20), max_value=10**20),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.sampled_from(["id", "value", "name"]), st.integers(), max_size=2),
        HOSTILE_TEXT,
    )


def _record(
    valid: dict[str, st.SearchStrategy[Any]], hostile: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    """A valid record with a few fields spoiled: removed, or set to a hostile value (or to
    any wrong-typed one), so most records get far enough through the mapper to be mapped."""
    keys = sorted(set(valid) | set(hostile))

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        record = {k: draw(v) for k, v in valid.items()}
        for key in draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)):
            how = draw(st.sampled_from(["drop", "hostile", "hostile", "wrong type"]))
            if how == "drop":
                record.pop(key, None)
            elif how == "hostile" and key in hostile:
                record[key] = draw(hostile[key])
            else:
                record[key] = draw(_maybe(st.nothing()))
        return record

    return build()


def _page(record: st.SearchStrategy[Any], id_field: str = "id") -> st.SearchStrategy[list[Any]]:
    """A page of records; some share an id (duplicates in one page); a few are not objects."""
    junk = st.one_of(st.none(), st.integers(), st.text(max_size=5), st.lists(st.integers()))
    items = st.lists(st.one_of(record, record, record, junk), max_size=6)

    def duplicate(raws: list[Any]) -> list[Any]:
        dicts = [r for r in raws if isinstance(r, dict)]
        if len(dicts) >= 2 and id_field in dicts[0]:
            dicts[1][id_field] = dicts[0][id_field]
        return raws

    return items.map(duplicate)


HOSTILE_IDS = st.one_of(
    st.sampled_from(["\x00", "1\x00", "<b>1</b>", " ", "x" * 300, "²", "١٢", "-5", "1e3"]),
    HOSTILE_TEXT,
    st.integers(min_value=-(10**30), max_value=10**30),
)
NUMERIC_IDS = st.integers(min_value=1, max_value=10**6)
VALID_TIMES = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
)
ISO = VALID_TIMES.map(lambda d: d.isoformat().replace("+00:00", "Z"))
DAY = VALID_TIMES.map(lambda d: d.date().isoformat())
UNKNOWN_OWNER = st.sampled_from(["999999999", "unknown-owner"])

# HubSpot: every property is a string or null.
HUBSPOT_STAGES = hubspot.parse_pipelines(
    {
        "results": [
            {
                "id": "default",
                "label": "Sales <Pipeline>",
                "stages": [
                    {"id": "open1", "label": "Qualified", "metadata": {"probability": "0.2"}},
                    {
                        "id": "won",
                        "label": "Won",
                        "metadata": {"isClosed": "true", "probability": "1.0"},
                    },
                    {
                        "id": "lost",
                        "label": "Lost\x07",
                        "metadata": {"isClosed": "true", "probability": "0.0"},
                    },
                    {
                        "id": "odd",
                        "label": "Closed?",
                        "metadata": {"isClosed": "true", "probability": "0.5"},
                    },
                ],
            }
        ]
    }
)


def _properties(
    valid: dict[str, st.SearchStrategy[Any]], hostile: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    common = {
        "hubspot_owner_id": st.one_of(NUMERIC_IDS.map(str), UNKNOWN_OWNER),
        "hs_lastmodifieddate": ISO,
        "createdate": ISO,
    }
    common_hostile = {
        "hubspot_owner_id": HOSTILE_IDS,
        "hs_lastmodifieddate": HOSTILE_DATES,
        "createdate": HOSTILE_DATES,
    }
    return _record({**common, **valid}, {**common_hostile, **hostile})


HS_DEAL = _record(
    {
        "id": NUMERIC_IDS.map(str),
        "properties": _properties(
            {
                "dealname": st.text(max_size=20),
                "amount": st.integers(0, 10**6).map(str),
                "dealstage": st.sampled_from(["open1", "won", "lost", "odd"]),
                "pipeline": st.just("default"),
                "closedate": ISO,
                "hs_is_closed_won": st.sampled_from(["true", "false"]),
                "deal_currency_code": st.sampled_from(["EUR", "usd"]),
            },
            {
                "dealname": HOSTILE_TEXT,
                "amount": ABSURD_AMOUNTS,
                "dealstage": HOSTILE_TEXT,
                "pipeline": HOSTILE_TEXT,
                "closedate": HOSTILE_DATES,
                "deal_currency_code": HOSTILE_TEXT,
            },
        ),
        "archived": st.booleans(),
        "archivedAt": ISO,
    },
    {"id": HOSTILE_IDS, "archivedAt": HOSTILE_DATES, "createdAt": HOSTILE_DATES},
)
HS_ACTIVITY = _record(
    {
        "id": NUMERIC_IDS.map(str),
        "properties": _properties(
            {
                "hs_timestamp": ISO,
                "hs_call_title": st.text(max_size=20),
                "hs_email_subject": st.text(max_size=20),
                "hs_meeting_title": st.text(max_size=20),
                "hs_task_subject": st.text(max_size=20),
            },
            {
                "hs_timestamp": HOSTILE_DATES,
                "hs_meeting_start_time": HOSTILE_DATES,
                "hs_call_title": HOSTILE_TEXT,
                "hs_email_subject": HOSTILE_TEXT,
                "hs_meeting_title": HOSTILE_TEXT,
                "hs_task_subject": HOSTILE_TEXT,
            },
        ),
        "associations": st.fixed_dictionaries(
            {
                "deals": st.fixed_dictionaries(
                    {"results": st.lists(st.fixed_dictionaries({"id": NUMERIC_IDS}), max_size=3)}
                )
            }
        ),
        "archived": st.booleans(),
    },
    {
        "id": HOSTILE_IDS,
        "associations": st.fixed_dictionaries(
            {
                "deals": st.fixed_dictionaries(
                    {"results": st.lists(st.fixed_dictionaries({"id": HOSTILE_IDS}), max_size=3)}
                )
            }
        ),
    },
)
HS_OWNER = _record(
    {
        "id": NUMERIC_IDS.map(str),
        "email": st.sampled_from(["ann@example.com", "ANN@EXAMPLE.COM"]),
        "firstName": st.text(max_size=10),
        "lastName": st.text(max_size=10),
        "type": st.just("PERSON"),
        "archived": st.booleans(),
        "teams": st.lists(
            st.fixed_dictionaries({"name": st.text(max_size=10), "primary": st.booleans()}),
            max_size=2,
        ),
        "updatedAt": ISO,
    },
    {
        "id": HOSTILE_IDS,
        "email": HOSTILE_TEXT,
        "firstName": HOSTILE_TEXT,
        "lastName": HOSTILE_TEXT,
        "type": st.sampled_from(["QUEUE", "person", ""]),
        "teams": st.lists(st.fixed_dictionaries({"name": HOSTILE_TEXT}), max_size=2),
        "updatedAt": HOSTILE_DATES,
    },
)


@FUZZ
@given(_page(HS_DEAL))
def test_hubspot_deals(raws: list[Any]) -> None:
    _check_page(raws, hubspot.deal_mapper(HUBSPOT_STAGES, "USD"), hubspot_records.id_of)


# Salesforce: typed JSON, but any field may be null, missing or of another type.
SF_OPPORTUNITY = _record(
    {
        "Id": NUMERIC_IDS.map(lambda n: f"006{n:012d}"),
        "Name": st.text(max_size=20),
        "OwnerId": st.one_of(NUMERIC_IDS.map(lambda n: f"005{n:012d}"), UNKNOWN_OWNER),
        "Amount": st.floats(0, 1e6),
        "StageName": st.sampled_from(["Prospecting", "Closed Won"]),
        "IsClosed": st.booleans(),
        "IsWon": st.booleans(),
        "CloseDate": DAY,
        "CreatedDate": ISO,
        "SystemModstamp": ISO,
        "Probability": st.floats(0, 100),
        "Account": st.fixed_dictionaries({"Name": st.text(max_size=10)}),
        "IsDeleted": st.booleans(),
        "CurrencyIsoCode": st.sampled_from(["EUR", "usd"]),
    },
    {
        "Id": HOSTILE_IDS,
        "Name": HOSTILE_TEXT,
        "OwnerId": HOSTILE_IDS,
        "Amount": st.one_of(ABSURD_AMOUNTS, st.floats()),
        "StageName": HOSTILE_TEXT,
        "CloseDate": HOSTILE_DATES,
        "CreatedDate": HOSTILE_DATES,
        "SystemModstamp": HOSTILE_DATES,
        "Probability": st.floats(),
        "Account": st.fixed_dictionaries({"Name": HOSTILE_TEXT}),
        "CurrencyIsoCode": HOSTILE_TEXT,
    },
)
SF_ACTIVITY = _record(
    {
        "attributes": st.fixed_dictionaries({"type": st.sampled_from(["Task", "Event"])}),
        "Id": NUMERIC_IDS.map(lambda n: f"00T{n:012d}"),
        "OwnerId": st.one_of(NUMERIC_IDS.map(lambda n: f"005{n:012d}"), UNKNOWN_OWNER),
        "Subject": st.text(max_size=20),
        "ActivityDate": DAY,
        "StartDateTime": ISO,
        "CreatedDate": ISO,
        "TaskSubtype": st.sampled_from(["Call", "Email", "Task"]),
        "WhatId": st.sampled_from(["006000000000001", "001X"]),
        "SystemModstamp": ISO,
        "IsDeleted": st.booleans(),
    },
    {
        "attributes": st.fixed_dictionaries({"type": HOSTILE_TEXT}),
        "Id": HOSTILE_IDS,
        "OwnerId": HOSTILE_IDS,
        "Subject": HOSTILE_TEXT,
        "ActivityDate": HOSTILE_DATES,
        "ActivityDateTime": HOSTILE_DATES,
        "StartDateTime": HOSTILE_DATES,
        "CreatedDate": HOSTILE_DATES,
        "Type": HOSTILE_TEXT,
        "WhatId": st.one_of(HOSTILE_IDS, HOSTILE_IDS.map(lambda i: f"006{i}")),
        "SystemModstamp": HOSTILE_DATES,
    },
)
SF_USER = _record(
    {
        "Id": NUMERIC_IDS.map(lambda n: f"005{n:012d}"),
        "Name": st.text(max_size=20),
        "Email": st.just("Ann@Example.com"),
        "IsActive": st.booleans(),
        "ManagerId": NUMERIC_IDS.map(lambda n: f"005{n:012d}"),
        "SystemModstamp": ISO,
    },
    {"Id": HOSTILE_IDS, "Name": HOSTILE_TEXT, "Email": HOSTILE_TEXT, "ManagerId": HOSTILE_IDS},
)


@FUZZ
@given(_page(SF_OPPORTUNITY, "Id"), st.sampled_from([None, "CurrencyIsoCode"]))
def test_salesforce_deals(raws: list[Any], currency: str | None) -> None:
    _check_page(raws, salesforce.deal_mapper(currency, "USD"), lambda r: r.get("Id"))


@FUZZ
@given(_page(SF_ACTIVITY, "Id"))
def test_salesforce_activities(raws: list[Any]) -> None:
    _check_page(raws, salesforce.map_activity, lambda r: r.get("Id"))


# Pipedrive: v2 items carry bare ids, v1 items objects ({"id"|"value", "name"}); recents rows
# wrap a deal in {"item": "deal", "data": ...}.
PD_CATALOG = pipedrive.Catalog(
    stages={
        "1": pipedrive.StageInfo(name="Lead", probability=0.1, pipeline_id="1"),
        "2": pipedrive.StageInfo(name="Won", probability=None, pipeline_id="1"),
    },
    pipelines={"1": "Sales"},
)
PD_TIME = VALID_TIMES.map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S"))
PD_REF = st.one_of(
    NUMERIC_IDS, st.fixed_dictionaries({"id": NUMERIC_IDS, "name": st.text(max_size=5)})
)
PD_HOSTILE_REF = st.one_of(
    HOSTILE_IDS,
    st.fixed_dictionaries({"id": HOSTILE_IDS}),
    st.fixed_dictionaries({"value": HOSTILE_IDS, "name": HOSTILE_TEXT}),
)
PD_DEAL = _record(
    {
        "id": NUMERIC_IDS,
        "title": st.text(max_size=20),
        "owner_id": PD_REF,
        "value": st.floats(0, 1e6),
        "currency": st.sampled_from(["EUR", "usd"]),
        "status": st.sampled_from(["open", "won", "lost", "deleted"]),
        "stage_id": st.sampled_from([1, 2, "1"]),
        "pipeline_id": st.sampled_from([1, "1"]),
        "add_time": PD_TIME,
        "update_time": PD_TIME,
        "won_time": PD_TIME,
        "expected_close_date": DAY,
        "org_id": st.one_of(st.just(7), st.fixed_dictionaries({"name": st.text(max_size=5)})),
    },
    {
        "id": HOSTILE_IDS,
        "title": HOSTILE_TEXT,
        "owner_id": PD_HOSTILE_REF,
        "user_id": PD_HOSTILE_REF,
        "value": st.one_of(ABSURD_AMOUNTS, st.floats()),
        "currency": HOSTILE_TEXT,
        "status": HOSTILE_TEXT,
        "stage_id": st.one_of(st.just(3), HOSTILE_IDS),
        "pipeline_id": st.one_of(st.just(9), HOSTILE_IDS),
        "probability": st.one_of(st.floats(), ABSURD_AMOUNTS),
        "add_time": HOSTILE_DATES,
        "update_time": HOSTILE_DATES,
        "won_time": HOSTILE_DATES,
        "lost_time": HOSTILE_DATES,
        "close_time": HOSTILE_DATES,
        "local_won_date": HOSTILE_DATES,
        "local_lost_date": HOSTILE_DATES,
        "expected_close_date": HOSTILE_DATES,
        "org_id": PD_HOSTILE_REF,
        "org_name": HOSTILE_TEXT,
    },
)
PD_RECENT = st.fixed_dictionaries(
    {"item": st.just("deal"), "id": NUMERIC_IDS, "data": st.one_of(PD_DEAL, _maybe(st.nothing()))}
)
PD_ACTIVITY = _record(
    {
        "id": NUMERIC_IDS,
        "owner_id": NUMERIC_IDS,
        "type": st.sampled_from(["call", "Meeting", "lunch", "deadline"]),
        "subject": st.text(max_size=20),
        "due_date": DAY,
        "due_time": st.sampled_from(["10:00", "9:05", ""]),
        "add_time": PD_TIME,
        "update_time": PD_TIME,
        "deal_id": NUMERIC_IDS,
    },
    {
        "id": HOSTILE_IDS,
        "owner_id": PD_HOSTILE_REF,
        "user_id": PD_HOSTILE_REF,
        "type": st.one_of(st.just("demo"), HOSTILE_TEXT),
        "subject": HOSTILE_TEXT,
        "due_date": HOSTILE_DATES,
        "due_time": st.one_of(
            st.sampled_from(["25:61", "١٠:٠٠", "10:00:99", "10:00\n"]), HOSTILE_TEXT
        ),
        "marked_as_done_time": HOSTILE_DATES,
        "add_time": HOSTILE_DATES,
        "update_time": HOSTILE_DATES,
        "deal_id": PD_HOSTILE_REF,
    },
)
PD_USER = _record(
    {
        "id": NUMERIC_IDS,
        "name": st.text(max_size=20),
        "email": st.just("ann@example.com"),
        "active_flag": st.booleans(),
        "modified": PD_TIME,
    },
    {"id": HOSTILE_IDS, "name": HOSTILE_TEXT, "email": HOSTILE_TEXT, "modified": HOSTILE_DATES},
)


@FUZZ
@given(_page(st.one_of(PD_DEAL, PD_RECENT)))
def test_pipedrive_deals(raws: list[Any]) -> None:
    mapper = partial(pipedrive.map_deal, catalog=PD_CATALOG, accounts={"7": "Acme <Corp>"})
    _check_page(raws, mapper, pipedrive_records.id_of)


@FUZZ
@given(_page(PD_ACTIVITY), st.sampled_from([None, "task"]))
def test_pipedrive_activities(raws: list[Any], default_type: str | None) -> None:
    mapper = partial(
        pipedrive.map_activity, types=pipedrive.ACTIVITY_TYPES, default_type=default_type
    )
    _check_page(raws, mapper, pipedrive_records.id_of)


# ------------------------------------------------------------------ CSV imports

MAPPING = Mapping.model_validate(
    {
        "source": "fuzz-csv",
        "owner_key": "email",
        "reps": {"name": "rep", "email": "email", "team": "team", "manager": "manager"},
        "deals": {
            "id": "id",
            "owner": "owner",
            "name": "{product} for {account}",
            "account": "account",
            "amount": "amount",
            "currency": "currency",
            "stage": "stage",
            "created": "created",
            "close_date": "close_date",
            "stages": {
                "Open": {"status": "open", "probability": 0.3},
                "Won": {"status": "won"},
                "Lost": {"status": "lost"},
            },
        },
        "activities": {
            "id": "id",
            "owner": "owner",
            "type": "type",
            "occurred_at": "when",
            "subject": "subject",
            "deal_id": "deal",
        },
    }
)
KNOWN_REPS = [("Ann", "ann@example.com"), ("Bob", "bob@example.com")]
CSV_TEXT = st.one_of(HOSTILE_TEXT, st.sampled_from(["", "", "Acme", "x" * 300]))
CSV_IDS = st.one_of(st.sampled_from(["D1", "D1", "D2", "", " ", "d" * 250]), HOSTILE_TEXT)
CSV_OWNERS = st.one_of(
    st.sampled_from(["ann@example.com", "ANN@example.com ", "bob@example.com", "nobody@x.io", ""]),
    HOSTILE_TEXT,
)


def _cells(columns: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries(columns)


DEAL_ROW = _cells(
    {
        "id": CSV_IDS,
        "owner": CSV_OWNERS,
        "product": CSV_TEXT,
        "account": CSV_TEXT,
        "amount": st.one_of(ABSURD_AMOUNTS, st.sampled_from(["", "100", "2500.5"])),
        "currency": st.one_of(st.sampled_from(["USD", "eur", "", "EURO", "€"]), CSV_TEXT),
        "stage": st.one_of(st.sampled_from(["Open", "won", "Lost", "Negotiation", ""]), CSV_TEXT),
        "created": st.one_of(HOSTILE_DATES, st.just("")),
        "close_date": st.one_of(HOSTILE_DATES, st.just("")),
    }
)
ACTIVITY_ROW = _cells(
    {
        "id": CSV_IDS,
        "owner": CSV_OWNERS,
        "type": st.one_of(st.sampled_from(["call", "Email", "meeting", "fax", ""]), CSV_TEXT),
        "when": st.one_of(HOSTILE_DATES, st.just("")),
        "subject": CSV_TEXT,
        "deal": CSV_TEXT,
    }
)
REP_ROW = _cells(
    {
        "rep": CSV_TEXT,
        "email": st.one_of(st.sampled_from(["", "carl@example.com", "CARL@example.com"]), CSV_TEXT),
        "team": CSV_TEXT,
        "manager": CSV_TEXT,
    }
)


def _csv(rows: list[dict[str, str]], columns: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def _frame(rows: list[dict[str, str]], columns: list[str], name: str) -> Any:
    """The file as the API reads it; every row written must come back as one row."""
    frame = service.read_csv(_csv(rows, columns), name=name, max_rows=10_000)
    assert len(frame) == len(rows), f"read_csv silently dropped rows of {name}: {rows!r}"
    return frame


def _check_object(result: Any, rows: int, what: str) -> None:
    assert result is not None and result.rows == rows
    loaded = result.inserted + result.updated + result.unchanged
    assert loaded + result.quarantined == rows, f"{what}: rows lost: {result!r}"
    assert len(result.errors) == result.quarantined
    for error in result.errors:
        assert str(error.get("message", "")).strip(), f"{what}: a quarantined row without reason"


@pytest.fixture
def fuzz_session(session: Session) -> Session:
    # The reps every file may refer to, known to the CSV source by email.
    source = service.source_for(session, MAPPING.source)
    for name, email in KNOWN_REPS:
        reps_service.resolve_identity(
            session=session, source_id=source.id, external_id=email, name=name, email=email
        )
    session.flush()
    return session


def _in_savepoint(session: Session, body: Callable[[], None]) -> None:
    """Each example in its own savepoint, rolled back: examples never see each other."""
    nested = session.begin_nested()
    try:
        body()
    finally:
        nested.rollback()


@DB_FUZZ
@given(deals=st.lists(DEAL_ROW, max_size=12), activities=st.lists(ACTIVITY_ROW, max_size=12))
def test_csv_import_loads_or_quarantines_every_row(
    fuzz_session: Session, deals: list[dict[str, str]], activities: list[dict[str, str]]
) -> None:
    session = fuzz_session

    def body() -> None:
        deal_frame = _frame(deals, list(DEAL_ROW_COLUMNS), "deals")
        activity_frame = _frame(activities, list(ACTIVITY_ROW_COLUMNS), "activities")
        try:
            result = service.run_import(
                session=session, mapping=MAPPING, deals=deal_frame, activities=activity_frame
            )
            session.flush()
        except Exception as exc:
            raise AssertionError(
                f"import crashed with {type(exc).__name__}: {exc}\ndeals={deals!r}\n"
                f"activities={activities!r}"
            ) from exc
        _check_object(result.deals, len(deals), "deals")
        _check_object(result.activities, len(activities), "activities")
        source_id = result.source_id
        stored = session.scalar(
            select(func.count()).select_from(Deal).where(Deal.source_id == source_id)
        )
        good_ids = {
            d["id"].strip() for i, d in enumerate(deals) if i + 1 not in _error_rows(result.deals)
        }
        assert stored == len(good_ids) == result.deals.inserted
        stored_activities = session.scalar(
            select(func.count()).select_from(Activity).where(Activity.source_id == source_id)
        )
        assert stored_activities == result.activities.inserted
        quarantined_ids = {
            e["external_id"]
            for part in (result.deals, result.activities)
            for e in part.errors
            if e["external_id"] and service._quarantine_id(e["external_id"])
        }
        kept = set(
            session.scalars(
                select(QuarantinedRecord.external_id).where(
                    QuarantinedRecord.source_id == source_id
                )
            )
        )
        assert quarantined_ids <= kept, "a quarantined row is missing from the quarantine"

    _in_savepoint(session, body)


def _error_rows(part: Any) -> set[int]:
    return {int(e["row"]) for e in part.errors}


DEAL_ROW_COLUMNS = (
    "id",
    "owner",
    "product",
    "account",
    "amount",
    "currency",
    "stage",
    "created",
    "close_date",
)
ACTIVITY_ROW_COLUMNS = ("id", "owner", "type", "when", "subject", "deal")


@DB_FUZZ
@given(reps=st.lists(REP_ROW, max_size=10))
def test_csv_rep_import_loads_or_quarantines_every_row(
    fuzz_session: Session, reps: list[dict[str, str]]
) -> None:
    session = fuzz_session

    def body() -> None:
        frame = _frame(reps, ["rep", "email", "team", "manager"], "reps")
        try:
            result = service.run_import(session=session, mapping=MAPPING, reps=frame)
            session.flush()
        except Exception as exc:
            raise AssertionError(
                f"rep import crashed with {type(exc).__name__}: {exc}\nreps={reps!r}"
            ) from exc
        part = result.reps
        assert part is not None and part.rows == len(reps)
        bad = _error_rows(part)
        assert part.quarantined == len(bad)
        for i, row in enumerate(reps, start=1):
            if i in bad:
                continue
            # A loaded row's person is known to the source (by email, else by name).
            name = base.clean_text(row["rep"].strip(), service.NAME_LENGTH) or ""
            key = (row["email"].strip() or name).strip().lower()
            ids = reps_service.identity_map(session=session, source_id=result.source_id)
            assert key in ids, f"row {i} was neither loaded nor quarantined: {row!r}"

    _in_savepoint(session, body)


@FUZZ
@given(_page(HS_ACTIVITY), st.sampled_from(sorted(hubspot.ACTIVITY_OBJECTS)))
def test_hubspot_activities(raws: list[Any], object_type: str) -> None:
    _check_page(raws, hubspot.activity_mapper(object_type), hubspot_records.id_of)


@FUZZ
@given(_page(HS_OWNER))
def test_hubspot_owners(raws: list[Any]) -> None:
    _check_page(raws, hubspot.map_owner, hubspot_records.id_of)


@FUZZ
@given(_page(SF_USER, "Id"))
def test_salesforce_owners(raws: list[Any]) -> None:
    _check_page(raws, salesforce.map_owner, lambda r: r.get("Id"))


@FUZZ
@given(_page(PD_USER))
def test_pipedrive_owners(raws: list[Any]) -> None:
    _check_page(raws, pipedrive.map_owner, pipedrive_records.id_of)
