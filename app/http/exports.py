"""CSV answers for every read endpoint, for sales ops who live in spreadsheets.

``?format=csv`` or ``Accept: text/csv`` on any GET under ``/api/v1`` answers the same data as
CSV: a page's ``items`` (or a single object) one row each, nested objects flattened to
``parent.child`` columns, lists as JSON text. The next page's cursor travels in the
``X-Next-Cursor`` header and a ``Link: <...>; rel="next"`` header, so a script can walk every
page. Errors and 304s stay as they are (JSON error shape, empty 304).

It is an ASGI middleware around the JSON routes rather than a second serialiser per route: one
place, every endpoint, and the CSV always says exactly what the JSON says.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSV_TYPE = "text/csv; charset=utf-8"
# What a spreadsheet may take for the start of a formula (OWASP's list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A plain decimal number: a spreadsheet reads it as a value, so it needs no neutralising.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def wants_csv(query: str, accept: str) -> bool:
    if ("format", "csv") in parse_qsl(query):
        return True
    return "text/csv" in accept and "application/json" not in accept


def neutralise(value: Any) -> Any:
    """The cell as written: a text cell that could start a formula gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(value, list):
        out[prefix] = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    else:
        out[prefix] = neutralise(value)


def to_csv(payload: Any) -> tuple[str, str | None]:
    """The CSV text of a JSON answer, and the next page's cursor if it has one."""
    next_cursor = None
    if isinstance(payload, dict) and isinstance(payload.get("items"), list):
        rows, next_cursor = payload["items"], payload.get("next_cursor")
    elif isinstance(payload, list):
        rows = payload
    else:
        rows = [payload]
    flat: list[dict[str, Any]] = []
    for row in rows:
        out: dict[str, Any] = {}
        _flatten(row if isinstance(row, dict) else {"value": row}, "", out)
        flat.append(out)
    columns: dict[str, None] = {}
    for row in flat:
        columns.update(dict.fromkeys(row))
    # An object that is null in some rows (a method's projection error) leaves its fields'
    # cells empty there, rather than adding a column of its own beside them.
    nested = {c.rsplit(".", 1)[0] for c in columns if "." in c}
    columns = {c: None for c in columns if c not in nested}
    buffer = io.StringIO()
    # Column names are key paths, some through free-form dicts (a raw CRM payload): the same
    # rule as cells.
    csv.writer(buffer).writerow([neutralise(c) for c in columns])
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writerows(flat)
    return buffer.getvalue(), next_cursor


class CSVExportMiddleware:
    def __init__(self, app: ASGIApp, prefix: str = "/api/v1") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "GET"
            or not scope["path"].startswith(self.prefix)
        ):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        query = scope.get("query_string", b"").decode("latin-1")
        if not wants_csv(query, headers.get("accept", "")):
            await self.app(scope, receive, send)
            return
        start: Message = {}
        body = bytearray()

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    await self._finish(scope, start, bytes(body), send)

        await self.app(scope, receive, capture)

    async def _finish(self, scope: Scope, start: Message, body: bytes, send: Send) -> None:
        response_headers = MutableHeaders(raw=list(start.get("headers", [])))
        is_json = response_headers.get("content-type", "").startswith("application/json")
        if start.get("status") != 200 or not is_json:
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        text, next_cursor = to_csv(json.loads(body))
        data = text.encode("utf-8")
        response_headers["content-type"] = CSV_TYPE
        response_headers["content-length"] = str(len(data))
        name = scope["path"].rstrip("/").rsplit("/", 1)[-1] or "export"
        response_headers["content-disposition"] = f'attachment; filename="{name}.csv"'
        if next_cursor:
            params = [
                (k, v)
                for k, v in parse_qsl(scope.get("query_string", b"").decode())
                if k != "cursor"
            ]
            link = f"{scope['path']}?{urlencode([*params, ('cursor', next_cursor)])}"
            response_headers["x-next-cursor"] = next_cursor
            response_headers["link"] = f'<{link}>; rel="next"'
        await send({**start, "headers": response_headers.raw})
        await send({"type": "http.response.body", "body": data})


def document(app: Any) -> None:
    """Say in the OpenAPI schema that every GET under the prefix also answers CSV."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return dict(app.openapi_schema)
        schema: dict[str, Any] = original()
        for path, operations in schema.get("paths", {}).items():
            get = operations.get("get")
            if not path.startswith("/api/v1") or get is None:
                continue
            get.setdefault("parameters", []).append(
                {
                    "name": "format",
                    "in": "query",
                    "required": False,
                    "description": "`csv` answers text/csv (as does `Accept: text/csv`).",
                    "schema": {"type": "string", "enum": ["json", "csv"]},
                }
            )
            ok = get.get("responses", {}).get("200")
            if ok is not None:
                ok.setdefault("content", {})["text/csv"] = {"schema": {"type": "string"}}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
