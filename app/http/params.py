"""What a request may say in its query string, checked in one place for every operation.

A client that misspells a filter (``?rep=9`` for ``?rep_id=9``) or names a record that does not
exist must not get an answer that looks like a real one (every row, or none). So:

* **Unknown parameters** (:func:`reject_unknown`, a dependency of the whole app, so /health
  and /metrics too): a query parameter that the matched route does not declare, itself or
  through one of its dependencies, answers 422 naming each one, with a "did you mean" when a
  declared name is close. The declared names come from the route's ``dependant``, the same
  source the OpenAPI document is generated from, so what is documented and what is accepted
  cannot drift apart. ``format`` is accepted on every GET under /api/v1: :mod:`app.http.exports`
  answers it (and documents it on each of them).
* **Ids in filters** (:func:`check_filter_ids`): ``team_id``, ``rep_id``, ``manager_id``,
  ``source_id``, ``rule_id`` and ``actor_key_id`` in the query name a record like the path
  form does, so an unknown one answers 404 like the path form. A manager's key gets 404 for a
  rep or team outside their tree, as on ``/reps/{id}`` and ``/teams/{id}``.
* **NUL characters** (:func:`reject_nul`, a dependency of the whole app): text with a NUL
  (U+0000) in a query parameter or a JSON body answers 422 naming where it is. PostgreSQL
  cannot store it in text or jsonb (it raised a DataError, a 500); SQLite would store it and
  the two backends would disagree.
* **Ranges** (:func:`check_range`): a start after its end answers 422 naming both; the routes
  call it, since only they know which of their parameters pair up.
"""

from __future__ import annotations

import contextlib
import difflib
import json
from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.alerts.models import AlertRule
from app.auth.models import ApiKey
from app.auth.service import Principal
from app.core.exceptions import (
    InvalidInputError,
    InvertedRangeError,
    NotFoundError,
    UnknownParameterError,
)
from app.http.deps import CurrentKey, SessionDep
from app.reps.models import Rep
from app.sources.models import Source
from app.teams.models import Team

# Answered by app.http.exports on every GET under /api/v1 (which also documents it per route).
GET_PARAMETERS = frozenset({"format"})
CSV_PREFIX = "/api/v1"

# Names a client may reach for that mean something else here, with what to use instead.
HINTS = {
    "as_of": "use computed_on (the figures as computed on that date, i.e. by the latest "
    "snapshot computed on or before it); as_of means 'as if today were' and is only "
    "accepted in the body of POST /api/v1/compute and by the CLI",
}

_CACHE = "qg_declared_query_parameters"


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def declared_query_parameters(route: APIRoute) -> frozenset[str]:
    """The query parameters a route accepts: its own and its dependencies', by the name a
    client sends (the alias: ``from``, not ``from_``).

    ``scope["route"]`` is the route as its own router declared it: the dependencies
    ``api_router`` adds are not in its ``dependant``, so those must take no query parameters.
    Kept on the route (routes compare by value, so they cannot key a weak mapping).
    """
    names: frozenset[str] | None = route.__dict__.get(_CACHE)
    if names is None:
        names = frozenset(_query_names(route.dependant))
        route.__dict__[_CACHE] = names
    return names


def _problem(name: str, accepted: list[str]) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "field": name,
        "message": "unknown query parameter",
        "type": "unknown_parameter",
    }
    if name in HINTS and "computed_on" in accepted:
        detail["message"] += f": {HINTS[name]}"
        detail["did_you_mean"] = "computed_on"
    elif close := difflib.get_close_matches(name, accepted, n=1, cutoff=0.6):
        detail["message"] += f": did you mean {close[0]!r}?"
        detail["did_you_mean"] = close[0]
    detail["accepted"] = accepted
    return detail


def _nul_paths(value: Any, path: str) -> list[str]:
    """Where in a decoded JSON value a string holds a NUL (keys included)."""
    if isinstance(value, str):
        return [path] if "\x00" in value else []
    if isinstance(value, dict):
        out = [f"{path}.{k}".lstrip(".") for k in value if "\x00" in str(k)]
        for k, v in value.items():
            out += _nul_paths(v, f"{path}.{k}".lstrip("."))
        return out
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _nul_paths(v, f"{path}[{i}]")]
    return []


async def reject_nul(request: Request) -> None:
    """422 for a NUL character in a query parameter or anywhere in a JSON body."""
    fields = [name for name, value in request.query_params.multi_items() if "\x00" in value]
    if request.headers.get("content-type", "").startswith("application/json"):
        body = await request.body()  # Starlette keeps it for the route
        # JSON can only carry a NUL escaped; a body without the escape has none to find.
        # Not JSON at all: the route's own parsing answers it.
        if b"\\u0000" in body.lower():
            with contextlib.suppress(ValueError):
                fields += _nul_paths(json.loads(body), "")
    if fields:
        raise InvalidInputError(
            "text may not contain a NUL (U+0000) character",
            details=[{"field": f, "message": "contains a NUL (U+0000) character"} for f in fields],
        )


async def reject_unknown(request: Request) -> None:
    """422 for any query parameter the matched route does not declare.

    Not on routes outside the OpenAPI document (the dashboard's pages): a browser or a link
    tracker may add parameters a person never sees, and the page ignores them.
    """
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not route.include_in_schema or not request.query_params:
        return
    declared = declared_query_parameters(route)
    if request.method in ("GET", "HEAD") and request.url.path.startswith(CSV_PREFIX):
        declared = declared | GET_PARAMETERS
    unknown = [name for name in dict.fromkeys(request.query_params.keys()) if name not in declared]
    if not unknown:
        return
    accepted = sorted(declared)
    details = [_problem(name, accepted) for name in unknown]
    hints = [d["message"].split(": ", 1)[1] for d in details if ": " in d["message"]]
    message = f"unknown query parameter{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}"
    if hints:
        message += f" ({'; '.join(hints)})"
    elif accepted:
        message += f" (accepted: {', '.join(accepted)})"
    else:
        message += " (this endpoint takes no query parameters)"
    raise UnknownParameterError(message, details=details)


# query parameter -> (the table its id is in, the noun of the path form's 404, visibility)
FILTER_IDS: dict[str, tuple[Any, str, str | None]] = {
    "team_id": (Team, "team", "team"),
    "rep_id": (Rep, "rep", "rep"),
    "manager_id": (Rep, "rep", "rep"),
    "source_id": (Source, "source", None),
    "rule_id": (AlertRule, "alert rule", None),
    "actor_key_id": (ApiKey, "API key", None),
}


def _visible(principal: Principal, scope: str | None, value: int) -> bool:
    if scope == "team":
        return principal.can_see_team(value)
    if scope == "rep":
        return principal.can_see_rep(value)
    return True


def _check_ids(session: Session, principal: Principal, ids: dict[str, int]) -> None:
    for name, value in ids.items():
        model, noun, scope = FILTER_IDS[name]
        found = _visible(principal, scope, value) and (
            session.scalar(select(model.id).where(model.id == value)) is not None
        )
        if not found:
            raise NotFoundError(
                f"{noun} {value} not found",
                details=[{"field": name, "message": f"no {noun} with id {value}"}],
            )


async def check_filter_ids(request: Request, session: SessionDep, principal: CurrentKey) -> None:
    """404 for an id filter naming a record that does not exist or the key may not see."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    declared = declared_query_parameters(route)
    ids: dict[str, int] = {}
    for name in sorted(FILTER_IDS.keys() & declared):
        raw = request.query_params.get(name)
        if not raw:
            continue
        try:
            ids[name] = int(raw)
        except ValueError:
            continue  # not an integer: the route's own validation answers the 422
    if ids:
        await run_in_threadpool(_check_ids, session, principal, ids)


def check_range(low: tuple[str, Any], high: tuple[str, Any], *, half_open: bool = False) -> None:
    """422 naming both parameters when a range starts after it ends.

    ``half_open`` ranges (``created_from`` .. ``created_before``) exclude their end, so an
    equal start and end is empty too and is refused the same way.
    """
    (low_name, low_value), (high_name, high_value) = low, high
    if low_value is None or high_value is None:
        return
    if low_value > high_value or (half_open and low_value == high_value):
        relation = "before" if half_open else "on or before"
        message = f"{low_name} ({low_value}) must be {relation} {high_name} ({high_value})"
        raise InvertedRangeError(
            message,
            details=[
                {"field": low_name, "message": message, "type": "inverted_range"},
                {"field": high_name, "message": message, "type": "inverted_range"},
            ],
        )
