"""Sandbox Salesforce: SOQL ``query``/``queryAll`` with server-side cursors, OAuth refresh.

Serves the demo data as Users (005…), Opportunities (006…), Tasks (00T…) and Events (00U…,
the demo's meetings) for the SOQL shapes the connector sends::

    SELECT <fields> FROM <object> [WHERE SystemModstamp >= <datetime> [AND IsDeleted = <bool>]]
    [ORDER BY SystemModstamp [ASC]] [LIMIT n]

Like Salesforce, a query opens a server-side cursor: the result set is fixed when the query
runs, and ``nextRecordsUrl`` (``/services/data/vXX.X/query/01g…-<offset>``) pages through that
snapshot, so records changed meanwhile are neither skipped nor served twice; they show up in
the next query. ``query`` leaves deleted opportunities out, ``queryAll`` returns them with
``IsDeleted: true``. Unknown fields get Salesforce's 400 ``INVALID_FIELD`` array body (with
``multi_currency=False``, ``CurrencyIsoCode`` too), unknown tokens its 401
``INVALID_SESSION_ID``, and every data answer carries ``Sforce-Limit-Info``.

The common rate-limit fault answers 429 + Retry-After with a ``REQUEST_LIMIT_EXCEEDED`` body
(real orgs answer 403 with that body; the connector backs off on both).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from connectors.sandbox.common import CrmRecords, SandboxState, flag, install

PREFIXES = {"User": "005", "Opportunity": "006", "Task": "00T", "Event": "00U"}
DAILY_LIMIT = 100_000
# Salesforce keeps a handful of cursors per user and drops the oldest.
MAX_CURSORS = 20
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_SOQL = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<obj>\w+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?"
    r"(?:\s+ORDER\s+BY\s+(?P<order>[\w\s,]+?))?"
    r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_SINCE = re.compile(r"^SystemModstamp\s*>=\s*(\S+)$", re.IGNORECASE)
# The keyset that starts a chunk after the record (stamp, Id): connectors.salesforce_paging.
_AFTER = re.compile(
    r"^\(SystemModstamp\s*>\s*(\S+)\s+OR\s+\(SystemModstamp\s*=\s*(\S+)\s+AND\s+"
    r"Id\s*>\s*'(\w+)'\)\)$",
    re.IGNORECASE,
)
_DELETED = re.compile(r"^IsDeleted\s*=\s*(TRUE|FALSE)$", re.IGNORECASE)
_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?(Z|[+-]\d\d:\d\d)$")
_VERSION = re.compile(r"^v\d+\.\d$")


class SoqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# ------------------------------------------------------------------ demo frames -> sObjects


def _id_suffix(body: str) -> str:
    """The 3-character checksum that turns a 15-character Id into an 18-character one."""
    chunks = (body[i : i + 5] for i in range(0, 15, 5))
    return "".join(
        _ID_ALPHABET[sum(1 << j for j, ch in enumerate(c) if "A" <= ch <= "Z")] for c in chunks
    )


def sf_ids(obj: str, keys: pd.Series) -> pd.Series:
    """Demo keys (R0007, D000123, A0000042) as 18-character Ids; nulls stay null."""
    prefix = PREFIXES[obj] + "5g"
    # Only the prefix can hold capitals, so one checksum fits every Id of the object.
    suffix = _id_suffix(prefix + "0" * 10)
    text = keys.astype("string")
    return prefix + text.str[1:].str.zfill(10) + suffix


def sf_datetime(values: pd.Series) -> pd.Series:
    """``2013-05-20T20:49:32.000+0000``."""
    # Salesforce keeps datetimes to the second: the milliseconds are always .000.
    stamps = pd.to_datetime(values, utc=True).dt.floor("s")
    return stamps.dt.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def sf_date(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True).dt.strftime("%Y-%m-%d")


def _users(data: CrmRecords) -> pd.DataFrame:
    r = data.reps
    # Users change when they join or leave: that is their SystemModstamp here.
    stamp = pd.to_datetime(r["end_date"].where(r["end_date"].notna(), r["start_date"]), utc=True)
    return pd.DataFrame(
        {
            "Id": sf_ids("User", r["rep_key"]),
            "Name": r["name"],
            "Email": r["email"],
            "Username": r["email"] + ".sandbox",
            "IsActive": r["is_active"].astype(bool),
            "ManagerId": sf_ids("User", r["manager_key"]),
            "CreatedDate": sf_datetime(r["start_date"]),
            "SystemModstamp": sf_datetime(stamp),
            "_stamp": stamp,
            "_deleted": False,
        }
    )


def _opportunities(data: CrmRecords) -> pd.DataFrame:
    d = _present(data.deals)
    return pd.DataFrame(
        {
            "Id": sf_ids("Opportunity", d["external_id"]),
            "Name": d["name"],
            "OwnerId": sf_ids("User", d["owner_key"]),
            "Amount": d["amount"],
            "StageName": d["stage"],
            "IsClosed": d["status"] != "open",
            "IsWon": d["status"] == "won",
            "CloseDate": sf_date(d["close_date"]),
            "CreatedDate": sf_datetime(d["created_at"]),
            "LastModifiedDate": sf_datetime(d["modified_at"]),
            "SystemModstamp": sf_datetime(d["modified_at"]),
            "Probability": (d["probability"] * 100).round(1),
            "Account.Name": d["account"],
            "CurrencyIsoCode": d["currency"],
            "IsDeleted": d["is_deleted"].astype(bool),
            "_stamp": d["modified_at"],
            "_deleted": d["is_deleted"].astype(bool),
        }
    )


def _activity_columns(a: pd.DataFrame, obj: str) -> dict[str, Any]:
    return {
        "Id": sf_ids(obj, a["external_id"]),
        "OwnerId": sf_ids("User", a["owner_key"]),
        "Subject": a["subject"],
        "ActivityDate": sf_date(a["occurred_at"]),
        "CreatedDate": sf_datetime(a["occurred_at"]),
        "WhatId": sf_ids("Opportunity", a["deal_external_id"]),
        "SystemModstamp": sf_datetime(a["modified_at"]),
        "IsDeleted": False,
        "_stamp": a["modified_at"],
        "_deleted": False,
    }


def _present(frame: pd.DataFrame) -> pd.DataFrame:
    """Not even in the recycle bin (``queryAll``) any more: purged."""
    return frame[~flag(frame, "is_purged")]


def _tasks(data: CrmRecords) -> pd.DataFrame:
    a = _present(data.activities)
    a = a[a["type"] != "meeting"]
    return pd.DataFrame(
        {
            **_activity_columns(a, "Task"),
            "TaskSubtype": a["type"].map({"call": "Call", "email": "Email", "task": "Task"}),
            "Type": a["type"].map({"call": "Call", "email": "Email", "task": "Other"}),
            "Status": "Completed",
            "IsClosed": True,
        }
    )


def _events(data: CrmRecords) -> pd.DataFrame:
    a = _present(data.activities)
    a = a[a["type"] == "meeting"]
    start = sf_datetime(a["occurred_at"])
    return pd.DataFrame(
        {
            **_activity_columns(a, "Event"),
            "StartDateTime": start,
            "ActivityDateTime": start,
            "EndDateTime": sf_datetime(a["occurred_at"] + pd.Timedelta(minutes=30)),
            "DurationInMinutes": 30,
            "IsAllDayEvent": False,
            "EventSubtype": "Event",
            "Type": "Meeting",
        }
    )


def _organization(state: SandboxState) -> pd.DataFrame:
    """The org itself: one row, its currency and time zone the state's."""
    return pd.DataFrame(
        {
            "Id": ["00D5g000000SANDBOX"],
            "Name": ["Sandbox Org"],
            "DefaultCurrencyIsoCode": [state.currency],
            "TimeZoneSidKey": [state.timezone],
            "_stamp": [pd.Timestamp("2020-01-01", tz="UTC")],
            "_deleted": [False],
        }
    )


OBJECTS: dict[str, Callable[[CrmRecords], pd.DataFrame]] = {
    "User": _users,
    "Opportunity": _opportunities,
    "Task": _tasks,
    "Event": _events,
}


# ------------------------------------------------------------------ SOQL


def run_soql(
    state: SandboxState, query: str, *, include_deleted: bool, multi_currency: bool = True
) -> tuple[str, pd.DataFrame]:
    """(object, result rows as JSON-ready objects) for one query, as of now."""
    match = _SOQL.match(query)
    if not match:
        raise SoqlError("MALFORMED_QUERY", f"unexpected token in: {query[:80]}")
    obj = next((o for o in (*OBJECTS, "Organization") if o.lower() == match["obj"].lower()), None)
    if obj is None:
        raise SoqlError("INVALID_TYPE", f"sObject type '{match['obj']}' is not supported.")
    with state.lock:
        frame = _organization(state) if obj == "Organization" else OBJECTS[obj](state.data)
    if not multi_currency:
        frame = frame.drop(columns="CurrencyIsoCode", errors="ignore")
    names = {c.lower(): c for c in frame.columns if not c.startswith("_")}
    fields: list[str] = []
    for raw in match["fields"].split(","):
        name = names.get(raw.strip().lower())
        if name is None:
            raise SoqlError(
                "INVALID_FIELD",
                f"No such column '{raw.strip()}' on entity '{obj}'. If you are attempting to use "
                "a custom field, be sure to append the '__c' after the custom field name.",
            )
        fields.append(name)
    deleted = frame["_deleted"].astype(bool)
    keep = pd.Series(True, index=frame.index) if include_deleted else ~deleted
    # Stamps as Salesforce keeps them, to the second: what is compared is what is served.
    frame = frame.assign(_stamp=pd.to_datetime(frame["_stamp"], utc=True).dt.floor("s"))
    where = (match["where"] or "").strip()
    if after := _AFTER.match(where):
        keep &= _after(frame, after)
        where = ""
    for term in re.split(r"\s+AND\s+", where, flags=re.IGNORECASE):
        if not term.strip():
            continue
        keep &= _condition(frame, obj, term.strip())
    rows = frame[keep].sort_values(["_stamp", "Id"], kind="stable")[fields]
    if match["limit"]:
        rows = rows.head(int(match["limit"]))
    return obj, rows.astype(object).where(rows.notna(), None)


def _after(frame: pd.DataFrame, match: re.Match[str]) -> pd.Series:
    over, same, ident = match.group(1), match.group(2), match.group(3)
    if over != same:
        raise SoqlError("MALFORMED_QUERY", "the keyset's two datetimes differ")
    stamp = _literal(over)
    return (frame["_stamp"] > stamp) | ((frame["_stamp"] == stamp) & (frame["Id"] > ident))


def _literal(text: str) -> pd.Timestamp:
    if text[:1] in "'\"":
        raise SoqlError(
            "INVALID_QUERY_FILTER_OPERATOR",
            "value of filter criterion for field 'SystemModstamp' must be of type dateTime "
            "and should not be enclosed in quotes",
        )
    if not _DATETIME.match(text):
        raise SoqlError("MALFORMED_QUERY", f"line 1: invalid date: {text}")
    return pd.Timestamp(text.replace("Z", "+00:00"))


def _condition(frame: pd.DataFrame, obj: str, term: str) -> pd.Series:
    if m := _SINCE.match(term):
        return frame["_stamp"] >= _literal(m.group(1))
    if m := _DELETED.match(term):
        if "IsDeleted" not in frame.columns:
            raise SoqlError("INVALID_FIELD", f"No such column 'IsDeleted' on entity '{obj}'.")
        return frame["_deleted"].astype(bool) == (m.group(1).upper() == "TRUE")
    raise SoqlError("MALFORMED_QUERY", f"unsupported condition: {term[:80]}")


def _records(obj: str, version: str, rows: pd.DataFrame) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for row in rows.to_dict("records"):
        record: dict[str, Any] = {"attributes": {"type": obj}}
        if row.get("Id"):
            record["attributes"]["url"] = f"/services/data/{version}/sobjects/{obj}/{row['Id']}"
        for key, value in row.items():
            name = str(key)
            if "." not in name:
                record[name] = value
                continue
            # Relationship fields come back nested: "Account": {"attributes": ..., "Name": ..}
            parent, child = name.split(".", 1)
            if value is None and not record.get(parent):
                record[parent] = None
            else:
                nested = record.get(parent) or {"attributes": {"type": parent}}
                nested[child] = value
                record[parent] = nested
        out.append(record)
    return out


# ------------------------------------------------------------------ app


def _errors(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse([{"message": message, "errorCode": code}], status, headers=headers)


class _Cursors:
    """Open query cursors (the oldest dropped past ``MAX_CURSORS``) and their pages."""

    def __init__(self, state: SandboxState, page_size: int, multi_currency: bool) -> None:
        self.state = state
        self.page_size = page_size
        self.multi_currency = multi_currency
        self.cursors: OrderedDict[str, tuple[str, pd.DataFrame]] = OrderedDict()
        self.opened = 0

    def usage(self) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.state.requests}/{DAILY_LIMIT}"}

    def refused(self, request: Request, version: str) -> Response | None:
        if not _VERSION.match(version):
            return _errors(404, "NOT_FOUND", "The requested resource does not exist")
        if not self.state.token_ok(request.headers.get("authorization")):
            return _errors(401, "INVALID_SESSION_ID", "Session expired or invalid")
        return None

    def page(self, version: str, locator: str, offset: int) -> Response:
        obj, rows = self.cursors[locator]
        self.cursors.move_to_end(locator)
        end = offset + self.page_size
        body: dict[str, Any] = {
            "totalSize": len(rows),
            "done": end >= len(rows),
            "records": _records(obj, version, rows.iloc[offset:end]),
        }
        if end < len(rows):
            body["nextRecordsUrl"] = f"/services/data/{version}/query/{locator}-{end}"
        self.state.page_served()
        return JSONResponse(body, headers=self.usage())

    def start(self, request: Request, version: str, q: str, include_deleted: bool) -> Response:
        if (denied := self.refused(request, version)) is not None:
            return denied
        try:
            obj, rows = run_soql(
                self.state, q, include_deleted=include_deleted, multi_currency=self.multi_currency
            )
        except SoqlError as exc:
            return _errors(400, exc.code, str(exc), **self.usage())
        self.opened += 1
        locator = f"01g5g{self.opened:010d}IAA"
        self.cursors[locator] = (obj, rows)
        while len(self.cursors) > MAX_CURSORS:
            self.cursors.popitem(last=False)
        return self.page(version, locator, 0)

    def more(self, request: Request, version: str, cursor: str) -> Response:
        if (denied := self.refused(request, version)) is not None:
            return denied
        locator, _, offset = cursor.rpartition("-")
        if locator not in self.cursors or not offset.isdigit():
            return _errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator", **self.usage())
        return self.page(version, locator, int(offset))


def create_app(
    state: SandboxState, *, page_size: int = 200, multi_currency: bool = True
) -> FastAPI:
    app = FastAPI(title="Sandbox Salesforce")
    cursors = _Cursors(state, page_size, multi_currency)
    # The limit headers always report the daily budget: Salesforce has no short-window header,
    # and the fault's window is not what its clients pace against.
    install(
        app,
        state,
        limit_headers=lambda _remaining, _limit, _left: cursors.usage(),
        limit_body=lambda: [
            {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
        ],
    )
    _query_routes(app, cursors)
    _oauth_routes(app, state)
    return app


def _query_routes(app: FastAPI, cursors: _Cursors) -> None:
    @app.get("/services/data/{version}/query")
    async def query(request: Request, version: str, q: str = "") -> Response:
        return cursors.start(request, version, q, include_deleted=False)

    @app.get("/services/data/{version}/queryAll")
    async def query_all(request: Request, version: str, q: str = "") -> Response:
        return cursors.start(request, version, q, include_deleted=True)

    # Cursors remember whether deleted rows were asked for, so both paths page alike.
    @app.get("/services/data/{version}/query/{cursor}")
    async def query_more(request: Request, version: str, cursor: str) -> Response:
        return cursors.more(request, version, cursor)

    @app.get("/services/data/{version}/queryAll/{cursor}")
    async def query_all_more(request: Request, version: str, cursor: str) -> Response:
        return cursors.more(request, version, cursor)

    @app.get("/services/data")
    async def versions() -> list[dict[str, str]]:
        return [{"version": "60.0", "url": "/services/data/v60.0", "label": "Spring '24"}]


def _oauth_routes(app: FastAPI, state: SandboxState) -> None:
    @app.post("/services/oauth2/token")
    async def token(request: Request) -> JSONResponse:
        form = await request.form()
        grant, refresh = form.get("grant_type"), form.get("refresh_token")
        if grant != "refresh_token":
            return JSONResponse(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                },
                400,
            )
        access = state.refresh(refresh if isinstance(refresh, str) else None)
        if access is None:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "expired access/refresh token"},
                400,
            )
        base = str(request.base_url).rstrip("/")
        issued = str(int(time.time() * 1000))
        ident = f"{base}/id/00D5g000000SANDBOX/0055g0000000001AAA"
        digest = hmac.new(b"sandbox", (ident + issued).encode(), hashlib.sha256).digest()
        return JSONResponse(
            {
                "access_token": access,
                "instance_url": base,
                "id": ident,
                "token_type": "Bearer",
                "issued_at": issued,
                "signature": base64.b64encode(digest).decode(),
                "scope": "api refresh_token",
            }
        )
