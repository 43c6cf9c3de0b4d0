"""Salesforce REST: users, opportunities, tasks and events through SOQL ``queryAll``.

Every stream reads its objects with SOQL, ``WHERE SystemModstamp >= <since> ORDER BY
SystemModstamp, Id``, paged through ``nextRecordsUrl`` in chunks of at most ``query_chunk``
records (50,000), each chunk a new query starting after the last record read, so that no
query cursor stays open long enough to expire (``connectors.salesforce_paging``).
``queryAll`` rather than ``query`` so rows deleted since the last sync come back (from the
recycle bin) with ``IsDeleted = true`` and the engine can mark them deleted instead of keeping
ghosts.

``SystemModstamp`` (not ``LastModifiedDate``) is the cursor because system updates such as
roll-ups and owner reassignment by automation change it too, and it is indexed.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

import httpx

from connectors import http
from connectors.base import (
    Connector,
    Page,
    RecordError,
    Stream,
    clean_text,
    currency_code,
    email_address,
    local_day,
    parse_amount,
    parse_bool,
    parse_date,
    parse_datetime,
    record_id,
)
from connectors.http import CrmClient, CrmError, Limits
from connectors.salesforce_paging import (
    CHUNK,
    Chunked,
    Key,
    Query,
    chunked,
    merged_pages,
    soql,
)

log = logging.getLogger(__name__)

KIND = "salesforce"
# No global host: every org lives on its own instance (``https://acme.my.salesforce.com``).
DEFAULT_BASE_URL: str | None = None
API_VERSION = "v60.0"
DEFAULT_LOGIN_URL = "https://login.salesforce.com"
# Salesforce's API allowance is a rolling 24-hour budget shared by every integration of the org.
DAILY_WINDOW_SECONDS = 86_400.0
# Slow down only in the last 5% of that budget: earlier pacing would stretch a sync over hours
# while the budget is nowhere near gone.
SLOW_DOWN_BELOW = 0.05
# Opportunity Ids start with this key prefix; a WhatId may also point at an Account, Case, ...
OPPORTUNITY_PREFIX = "006"

USER_FIELDS = ("Id", "Name", "Email", "IsActive", "ManagerId", "SystemModstamp")
OPPORTUNITY_FIELDS = (
    "Id",
    "Name",
    "OwnerId",
    "Amount",
    "StageName",
    "IsClosed",
    "IsWon",
    "CloseDate",
    "CreatedDate",
    "SystemModstamp",
    "Probability",
    "Account.Name",
    "IsDeleted",
)
TASK_FIELDS = (
    "Id",
    "OwnerId",
    "Subject",
    "ActivityDate",
    "CreatedDate",
    "TaskSubtype",
    "Type",
    "WhatId",
    "SystemModstamp",
    "IsDeleted",
)
EVENT_FIELDS = (
    "Id",
    "OwnerId",
    "Subject",
    "StartDateTime",
    "ActivityDateTime",
    "ActivityDate",
    "IsAllDayEvent",
    "EventSubtype",
    "WhatId",
    "SystemModstamp",
    "IsDeleted",
)
CURRENCY_FIELD = "CurrencyIsoCode"

_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")
_TASK_TYPES = {"call": "call", "email": "email", "listemail": "email", "meeting": "meeting"}


# ------------------------------------------------------------------ client


class SalesforceClient(CrmClient):
    """A CrmClient that also knows the org's API version (from the credentials)."""

    api_version: str = API_VERSION


def build_client(
    *,
    base_url: str | None,
    credentials: Mapping[str, Any],
    on_refresh: Callable[[dict[str, Any]], None] | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> CrmClient:
    """A client for one org; ``base_url`` or ``credentials["instance_url"]`` is its instance."""
    instance_url = base_url or credentials.get("instance_url")
    if not instance_url:
        raise ValueError("Salesforce needs the org's instance_url (https://acme.my.salesforce.com)")
    login_url = str(credentials.get("login_url") or DEFAULT_LOGIN_URL).rstrip("/")
    client = http.build_client(
        str(instance_url),
        wire=WIRE,
        credentials=credentials,
        token_url=f"{login_url}/services/oauth2/token",
        on_refresh=on_refresh,
        transport=transport,
        sleep=sleep,
    )
    assert isinstance(client, SalesforceClient)  # WIRE.client_class
    client.api_version = _version(credentials.get("api_version"))
    return client


def error_codes(body: str | bytes) -> list[str]:
    """The ``errorCode``s of a Salesforce error array (``[{"message", "errorCode"}]``)."""
    try:
        payload = json.loads(body)
    except ValueError:
        return []
    items = payload if isinstance(payload, list) else [payload]
    return [str(i.get("errorCode")) for i in items if isinstance(i, dict) and i.get("errorCode")]


def is_retryable(response: httpx.Response) -> bool:
    """403 REQUEST_LIMIT_EXCEEDED is Salesforce's "too many requests": back off, not give up."""
    return response.status_code == 403 and "REQUEST_LIMIT_EXCEEDED" in error_codes(response.content)


def limits_from_headers(response: httpx.Response) -> Limits:
    """``Sforce-Limit-Info: api-usage=10018/100000`` (a rolling 24-hour budget)."""
    match = _USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
    if not match:
        return Limits()
    used, limit = int(match.group(1)), int(match.group(2))
    return Limits(remaining=max(0, limit - used), limit=limit, reset_seconds=DAILY_WINDOW_SECONDS)


WIRE = http.CrmWire(
    needs="Salesforce needs an access_token, or client_id and refresh_token",
    limits=limits_from_headers,
    slow_down_below=SLOW_DOWN_BELOW,
    # Every 401 from the REST API is INVALID_SESSION_ID: refresh once, then retry.
    is_retryable=is_retryable,
    client_class=SalesforceClient,
)


def _version(value: Any) -> str:
    text = str(value or API_VERSION).strip()
    return text if text.startswith("v") else f"v{text}"


# ------------------------------------------------------------------ mapping


def _required(raw: dict[str, Any], name: str) -> str:
    text = record_id(raw.get(name), name, required=True)
    assert text is not None
    return text


def _modstamp(raw: dict[str, Any]) -> datetime:
    stamp = parse_datetime(raw.get("SystemModstamp"), "SystemModstamp", required=True)
    assert stamp is not None
    return stamp


def map_owner(raw: dict[str, Any]) -> dict[str, Any]:
    email = raw.get("Email")
    return {
        "external_id": _required(raw, "Id"),
        "name": clean_text(raw.get("Name"), 200),
        # Lower-cased: the same person is matched across CRMs by email.
        "email": email_address(email),
        "is_active": parse_bool(raw.get("IsActive", True)),
        "manager_external_id": record_id(raw.get("ManagerId"), "ManagerId"),
        # Salesforce has no sales-team field on User; teams come from the manager hierarchy.
        "team_name": None,
    }


def deal_mapper(
    currency: str | None, default_currency: str
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """``currency`` is the field to read (None in single-currency orgs: the org default)."""

    def mapper(raw: dict[str, Any]) -> dict[str, Any]:
        probability = raw.get("Probability")
        if probability is not None:
            try:
                probability = float(probability)
            except (TypeError, ValueError) as exc:
                raise RecordError(f"bad Probability: {probability!r}") from exc
            if not 0.0 <= probability <= 100.0:
                raise RecordError(f"implausible Probability: {probability!r}")
            probability /= 100.0
        won = parse_bool(raw.get("IsWon", False))
        closed = won or parse_bool(raw.get("IsClosed", False))
        account = raw.get("Account")
        return {
            "external_id": _required(raw, "Id"),
            "owner_external_id": _required(raw, "OwnerId"),
            "name": clean_text(raw.get("Name")),
            "account": clean_text(account.get("Name")) if isinstance(account, dict) else None,
            "amount": parse_amount(raw.get("Amount"), "Amount"),
            "currency": currency_code(
                raw.get(currency) if currency else None, default=default_currency
            ),
            "stage": clean_text(_required(raw, "StageName"), 200),
            # Salesforce has no pipelines; record types or sales processes are the closest
            # thing and are not needed for the metrics.
            "pipeline": "default",
            "probability": probability,
            "status": "won" if won else ("lost" if closed else "open"),
            "created_at": parse_datetime(raw.get("CreatedDate"), "CreatedDate", required=True),
            "close_date": parse_date(raw.get("CloseDate"), "CloseDate"),
            # Opportunity has no "closed at" timestamp; metrics fall back to close_date.
            "closed_at": None,
            "source_modified_at": _modstamp(raw),
            "is_deleted": parse_bool(raw.get("IsDeleted", False)),
        }

    return mapper


def _task_type(raw: dict[str, Any]) -> str:
    # TaskSubtype is set by Salesforce itself (logged call, sent email); Type is a picklist
    # users fill in, so it only decides when the subtype is the generic "Task".
    for name in ("TaskSubtype", "Type"):
        value = str(raw.get(name) or "").strip().lower().replace(" ", "")
        if value in _TASK_TYPES:
            return _TASK_TYPES[value]
    return "task"


def _object_of(raw: dict[str, Any]) -> str:
    attributes = raw.get("attributes")
    if isinstance(attributes, dict) and attributes.get("type"):
        return str(attributes["type"])
    ident = str(raw.get("Id") or "")
    return {"00T": "Task", "00U": "Event"}.get(ident[:3], "")


def map_activity(raw: dict[str, Any]) -> dict[str, Any]:
    obj = _object_of(raw)
    occurred: datetime | None
    if obj == "Task":
        kind = _task_type(raw)
        created = parse_datetime(raw.get("CreatedDate"), "CreatedDate")
        due = parse_date(raw.get("ActivityDate"), "ActivityDate")
        # ActivityDate is the day of the call/task; CreatedDate is when it was logged, which
        # can be days later. Use the exact time only when it is on that same day.
        if due is not None and (created is None or created.date() != due):
            occurred = local_day(due)
        else:
            occurred = created
        if occurred is None:
            raise RecordError("missing ActivityDate and CreatedDate")
    elif obj == "Event":
        kind = "meeting"
        # An all-day Event's StartDateTime is 00:00 GMT of its day, which is the day before in
        # the Americas: its ActivityDate is the day.
        all_day = parse_bool(raw.get("IsAllDayEvent", False))
        occurred = (
            None
            if all_day
            else parse_datetime(
                raw.get("StartDateTime") or raw.get("ActivityDateTime"), "StartDateTime"
            )
        )
        if occurred is None:
            due = parse_date(raw.get("ActivityDate"), "ActivityDate")
            if due is None:
                raise RecordError("missing StartDateTime")
            occurred = local_day(due)
    else:
        raise RecordError(f"not a Task or Event: {obj or 'unknown object'}")
    what = record_id(raw.get("WhatId"), "WhatId") or ""
    return {
        "external_id": _required(raw, "Id"),
        "owner_external_id": _required(raw, "OwnerId"),
        "type": kind,
        "subject": clean_text(raw.get("Subject")),
        "occurred_at": occurred,
        # WhatId may be an Account, Case, Campaign...: only opportunities are deals.
        "deal_external_id": what if what.startswith(OPPORTUNITY_PREFIX) else None,
        "source_modified_at": _modstamp(raw),
        "is_deleted": parse_bool(raw.get("IsDeleted", False)),
    }


# ------------------------------------------------------------------ connector


class SalesforceConnector(Connector):
    """Config: ``api_version``, ``query_chunk`` (records per query, 50,000),
    ``multi_currency`` (True/False; detected when absent),
    ``default_currency`` (the currency of a single-currency org's amounts; read from the org,
    ``SELECT DefaultCurrencyIsoCode FROM Organization``, when absent)."""

    kind = KIND

    def __init__(self, client: CrmClient, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(client, config)
        version = self.config.get("api_version") or getattr(client, "api_version", None)
        self.api_version = _version(version)
        currency = self.config.get("default_currency")
        self._org_currency = currency_code(currency) if currency else None
        multi = self.config.get("multi_currency")
        # None = not known yet: the first deals query asks for CurrencyIsoCode and learns.
        self.multi_currency: bool | None = None if multi is None else parse_bool(multi)
        # Records per query before the next one starts (salesforce_paging): 200 at least,
        # Salesforce's smallest page.
        self.chunk = max(200, int(self.config.get("query_chunk", CHUNK)))

    def streams(self) -> list[Stream]:
        return [OwnersStream(self), DealsStream(self), ActivitiesStream(self)]

    def query(self, query: str, *, include_deleted: bool = True) -> Query:
        endpoint = "queryAll" if include_deleted else "query"
        return Query(self.client, f"/services/data/{self.api_version}/{endpoint}", query)

    def records(self, obj: str, fields: tuple[str, ...], since: datetime | None) -> Chunked:
        """An object's records from ``since`` (with the deleted ones), in bounded chunks."""
        path = f"/services/data/{self.api_version}/queryAll"

        def build(after: Key | None) -> str:
            return soql(obj, fields, since, after=after, limit=self.chunk)

        return chunked(self.client, path, build, self.chunk)

    def raw_pages(self, query: str, *, include_deleted: bool = True) -> Iterator[list[Any]]:
        """The raw record batches of one SOQL query, following ``nextRecordsUrl``."""
        source = self.query(query, include_deleted=include_deleted)
        while not source.done:
            source.fetch()
            yield list(source.buffer)
            source.buffer.clear()

    def org_currency(self) -> str:
        """A single-currency org's currency: its amounts carry none (no ``CurrencyIsoCode``)
        and are in ``Organization.DefaultCurrencyIsoCode``, never USD by assumption. Read once
        per connector, unless the source's settings name it."""
        if self._org_currency is None:
            query = "SELECT DefaultCurrencyIsoCode FROM Organization"
            try:
                rows = [r for batch in self.raw_pages(query, include_deleted=False) for r in batch]
            except CrmError as exc:
                # A user or proxy the query is refused to: amounts still flow, said loudly.
                if exc.status not in (400, 403, 404):
                    raise
                rows = []
            first = rows[0] if rows and isinstance(rows[0], dict) else {}
            code = first.get("DefaultCurrencyIsoCode")
            if not code:
                log.warning("Salesforce: the org's currency is unknown: amounts taken as USD")
            self._org_currency = currency_code(code) if code else "USD"
        return self._org_currency

    def deals_query(self, since: datetime | None) -> tuple[Chunked, str | None]:
        """The opportunities, their first page fetched; and the currency field they carry.

        CurrencyIsoCode exists only in multi-currency orgs; elsewhere the query fails with
        INVALID_FIELD. The first answer decides, once per connector.
        """
        if self.multi_currency is not False:
            source = self.records("Opportunity", (*OPPORTUNITY_FIELDS, CURRENCY_FIELD), since)
            try:
                source.fetch()
            except CrmError as exc:
                if self.multi_currency or not _invalid_field(exc, CURRENCY_FIELD):
                    raise
                self.multi_currency = False
            else:
                self.multi_currency = True
                return source, CURRENCY_FIELD
        return self.records("Opportunity", OPPORTUNITY_FIELDS, since), None


def _invalid_field(exc: CrmError, field_name: str) -> bool:
    if exc.status != 400 or "INVALID_FIELD" not in error_codes(exc.body):
        return False
    # Salesforce names the column ("No such column 'CurrencyIsoCode'"); a message that names
    # another field is a different problem and must surface.
    named = re.findall(r"'(\w+)'", exc.body)
    return not named or field_name in named


class _SalesforceStream(Stream):
    primary_key = "Id"
    cursor_field = "SystemModstamp"

    def __init__(self, connector: SalesforceConnector) -> None:
        self.connector = connector


class OwnersStream(_SalesforceStream):
    name = "owners"

    def pages(self, since: datetime | None) -> Iterator[Page]:
        # User has no IsDeleted (users are deactivated, never deleted).
        source = self.connector.records("User", USER_FIELDS, since)
        yield from merged_pages([source], map_owner)


class DealsStream(_SalesforceStream):
    name = "deals"

    def pages(self, since: datetime | None) -> Iterator[Page]:
        source, currency = self.connector.deals_query(since)
        # A multi-currency org's deals each carry theirs: the org's is not needed.
        default = self.connector.org_currency() if currency is None else "USD"
        yield from merged_pages([source], deal_mapper(currency, default))


class ActivitiesStream(_SalesforceStream):
    name = "activities"

    def pages(self, since: datetime | None) -> Iterator[Page]:
        sources = [
            self.connector.records("Task", TASK_FIELDS, since),
            self.connector.records("Event", EVENT_FIELDS, since),
        ]
        yield from merged_pages(sources, map_activity)
