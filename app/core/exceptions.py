"""Quota Gap's domain exceptions and the one handler that turns them into the API's error shape.

The tree (the HTTP status each maps to in brackets)::

    QuotaGapError                 [500]
    ├── NotModified               [304]  a conditional GET whose copy is current (no body)
    ├── NotFoundError             [404]  no such record, or not visible to the caller
    ├── ConflictError             [409]  the write clashes with existing data
    ├── InvalidInputError         [422]  well-formed request, wrong content; ``details`` lists
    │   │                                each problem with the field (or CSV row) it concerns
    │   ├── PeriodInputError      [422]  a period label that does not parse
    │   ├── UnknownParameterError [422]  a query parameter the route does not declare
    │   └── InvertedRangeError    [422]  a range whose start is after its end
    ├── PayloadTooLargeError      [413]
    ├── RateLimitedError          [429]  the key's request rate is exceeded (with Retry-After)
    ├── ServiceUnavailableError   [503]  the database is busy (a write waited out its lock
    │   │                                timeout); with Retry-After
    │   └── DatabaseUnavailableError [503] the database cannot be reached (stopped, restarting,
    │                                    network); with Retry-After. Both raised for
    │                                    SQLAlchemy's OperationalError by the one handler
    ├── AuthenticationError       [401]  missing, unknown, revoked or expired API key
    └── PermissionDeniedError     [403]  the key's role may not do this

Every error answer has the same shape::

    {"error": {"code": "not_found", "message": "rep 42 not found", "details": []}}

Unexpected exceptions answer ``internal_error`` with no stack trace; the trace goes to the log.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from psycopg.errors import NumericValueOutOfRange
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


class QuotaGapError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class NotModified(QuotaGapError):
    status_code = 304
    code = "not_modified"

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("not modified")
        self.headers = headers


class NotFoundError(QuotaGapError):
    status_code = 404
    code = "not_found"


class ConflictError(QuotaGapError):
    status_code = 409
    code = "conflict"


class InvalidInputError(QuotaGapError):
    status_code = 422
    code = "invalid_input"


class PeriodInputError(InvalidInputError):
    code = "invalid_period"


class UnknownParameterError(InvalidInputError):
    code = "unknown_parameter"


class InvertedRangeError(InvalidInputError):
    code = "inverted_range"


class PayloadTooLargeError(QuotaGapError):
    status_code = 413
    code = "payload_too_large"


class RateLimitedError(QuotaGapError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


class ServiceUnavailableError(QuotaGapError):
    status_code = 503
    code = "service_unavailable"

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


class DatabaseUnavailableError(ServiceUnavailableError):
    code = "database_unavailable"


# One warning per outage, not one per request (a busy service would log thousands).
OUTAGE_LOG_INTERVAL_S = 60.0
_last_outage_log = [float("-inf")]


def database_error(exc: OperationalError) -> ServiceUnavailableError:
    """What an OperationalError means to a client: SQLite's lock timeout is "busy"; anything
    else (refused, reset, timed out) is the database being away. Logged once a minute at most,
    with the driver's message only: the statement's parameters may hold a key's hash."""
    text = str(exc.orig)
    if "database is locked" in text:
        return ServiceUnavailableError("the database is busy; try again")
    now = time.monotonic()
    if now - _last_outage_log[0] >= OUTAGE_LOG_INTERVAL_S:
        _last_outage_log[0] = now
        log.warning("database unavailable (answering 503 until it is back): %s", text)
    return DatabaseUnavailableError("the database is unavailable; try again shortly")


class AuthenticationError(QuotaGapError):
    status_code = 401
    code = "unauthenticated"


class PermissionDeniedError(QuotaGapError):
    status_code = 403
    code = "forbidden"


def error_body(code: str, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}}


# The error shape, as the OpenAPI schema documents it for every error answer.
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "examples": ["not_found"]},
                "message": {"type": "string"},
                "details": {
                    "type": "array",
                    "items": {"type": "object"},
                    "description": "Each problem, with the field (or CSV row) it concerns.",
                },
            },
        }
    },
}
_ERROR_DESCRIPTIONS = {
    "400": "A body that cannot be parsed (not JSON, broken multipart)",
    "401": "Missing, unknown, revoked or expired API key",
    "403": "The key's role may not do this",
    "404": "No such record (named in the path or the request), or not visible to the caller",
    "409": "The write clashes with existing data",
    "413": "An upload is too large",
    "422": "Invalid input, or a query parameter the operation does not declare; `details` "
    "names each field",
}


def _error_response(code: str) -> dict[str, Any]:
    return {
        "description": _ERROR_DESCRIPTIONS[code],
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Make the OpenAPI schema say what errors look like and which an operation can answer.

    FastAPI documents a 422 ``HTTPValidationError`` (``{"detail": [...]}``) that this API never
    sends: every error has the one shape above. Every operation can answer 422 (a query
    parameter it does not declare: app.http.params). Authenticated operations can also answer 401,
    403 and 404 (a record the path or the request names), writes 409, bodies that do not parse
    400, uploads 413.
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            codes: set[str] = {"422"}
            if operation.get("security"):
                codes |= {"401", "403", "404"}
            if "{" in path:
                codes.add("404")
            if method in {"post", "put", "patch", "delete"}:
                codes.add("409")
            body = operation.get("requestBody", {}).get("content", {})
            if body:
                codes.add("400")
            if "multipart/form-data" in body:
                codes.add("413")
            for code in sorted(codes):
                operation["responses"][code] = _error_response(code)
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def install_handlers(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        app.openapi_schema = document_errors(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(QuotaGapError)
    async def _domain(_: Request, exc: QuotaGapError) -> Response:
        if isinstance(exc, NotModified):
            return Response(status_code=304, headers=exc.headers)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        if isinstance(exc, RateLimitedError | ServiceUnavailableError):
            headers = exc.headers
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details),
            status_code=exc.status_code,
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {
                "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body"),
                "message": err.get("msg", ""),
                "type": err.get("type", ""),
            }
            for err in exc.errors()
        ]
        fields = ", ".join(d["field"] for d in details) or "request"
        return JSONResponse(
            jsonable_encoder(error_body("validation_error", f"invalid {fields}", details)),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(OverflowError)
    @app.exception_handler(DBAPIError)
    async def _out_of_range_number(request: Request, exc: Exception) -> Response:
        if isinstance(exc, OperationalError):
            # Locked past the busy timeout, or the server is away: try again, not a bug.
            return await _domain(request, database_error(exc))
        if not _out_of_range(exc):
            raise exc  # any other database error is unexpected: see below
        # A number beyond the database's integers (an id of 2**70): bad input, not a 500.
        return JSONResponse(
            error_body("invalid_input", "a number in the request is out of range"),
            status_code=422,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)


def _out_of_range(exc: Exception) -> bool:
    """SQLite cannot bind an int beyond 64 bits; PostgreSQL refuses it as out of range."""
    if isinstance(exc, OverflowError):
        return "SQLite INTEGER" in str(exc)
    return isinstance(exc, DBAPIError) and isinstance(exc.orig, NumericValueOutOfRange)
