"""Pipedrive's records mapped to Quota Gap's: users, deals (with stages, pipelines and
organisations from the ``Catalog``) and activities, from the v2 and v1 wire formats."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from typing import Any, Final

from connectors.base import (
    RecordError,
    clean_text,
    currency_code,
    email_address,
    local_day,
    parse_amount,
    parse_bool,
    parse_date,
    parse_datetime,
)

_TIME_OF_DAY: Final = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def _ext_id(value: Any) -> str:
    ref = _ref(value, "id")
    if ref is None:
        raise RecordError("missing id")
    return ref


def _ref(value: Any, field_name: str) -> str | None:
    """An id that may come bare (v2), as a digit string, or as a v1 object ``{"id"|"value"}``."""
    if isinstance(value, dict):
        value = value.get("id", value.get("value"))
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RecordError(f"bad {field_name}: {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    # ASCII digits only: "²" and "١٢" pass str.isdigit() but are no Pipedrive id.
    if text.isascii() and text.isdigit() and len(text) <= 20:
        return str(int(text))
    raise RecordError(f"bad {field_name}: {value!r}"[:300])


def safe_ref(value: Any) -> str | None:
    try:
        return _ref(value, "id")
    except RecordError:
        return None


def percent(value: Any, field_name: str) -> float | None:
    """Pipedrive probabilities are 0-100; the record wants 0..1."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RecordError(f"bad {field_name}: {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise RecordError(f"bad {field_name}: {value!r}") from exc
    if not 0.0 <= number <= 100.0:
        raise RecordError(f"bad {field_name}: {value!r} (not 0-100)")
    return round(number / 100.0, 6)


def stamp(raw: Any) -> datetime | None:
    """``update_time`` of a record (or of a recents row's data), None when unusable."""
    if not isinstance(raw, dict):
        return None
    if "item" in raw and "data" in raw:
        raw = raw["data"] if isinstance(raw["data"], dict) else {}
    try:
        return parse_datetime(raw.get("update_time"), "update_time")
    except RecordError:
        return None


def id_of(raw: dict[str, Any]) -> Any:
    return raw.get("id")


# ------------------------------------------------------------------ mapping


@dataclass(frozen=True)
class StageInfo:
    name: str | None
    probability: float | None
    pipeline_id: str | None


@dataclass
class Catalog:
    """Stages and pipelines by id (as strings), read once per deals run."""

    stages: dict[str, StageInfo] = field(default_factory=dict)
    pipelines: dict[str, str | None] = field(default_factory=dict)


def map_owner(raw: dict[str, Any]) -> dict[str, Any]:
    external_id = _ext_id(raw.get("id"))
    email = email_address(raw.get("email"))
    is_deleted = parse_bool(raw.get("is_deleted", False))
    return {
        "external_id": external_id,
        "name": clean_text(raw.get("name")),
        "email": email,
        "is_active": parse_bool(raw.get("active_flag", True)) and not is_deleted,
        # Pipedrive has no reporting line; teams are managed in Quota Gap.
        "manager_external_id": None,
        "team_name": None,
    }


def _closed_outcome(raw: dict[str, Any]) -> str:
    """The outcome of a deal whose status says only ``deleted`` (v1)."""
    if raw.get("won_time"):
        return "won"
    if raw.get("lost_time"):
        return "lost"
    return "open"


def _account(raw: dict[str, Any], accounts: Mapping[str, str | None]) -> str | None:
    org = raw.get("org_id")
    name = raw.get("org_name")
    if not name and isinstance(org, dict):
        name = org.get("name")
    if not name and org is not None and not isinstance(org, dict):
        ref = safe_ref(org)
        name = accounts.get(ref) if ref else None
    return clean_text(name)


def map_deal(
    raw: dict[str, Any],
    *,
    catalog: Catalog,
    accounts: Mapping[str, str | None],
    zone: tzinfo = UTC,
) -> dict[str, Any]:
    """A v2 deal, a v1 deal, or a ``/v1/recents`` row holding one. ``zone``: the company's time
    zone, in which a won or lost time (UTC) falls on its day where the answer carries no
    company-local date (``local_won_date``...)."""
    if "item" in raw and "data" in raw:
        if not isinstance(raw["data"], dict):
            raise RecordError("recents row without deal data (deleted or hidden from this token)")
        raw = raw["data"]
    external_id = _ext_id(raw.get("id"))
    owner = _ref(raw["owner_id"] if "owner_id" in raw else raw.get("user_id"), "owner_id")
    if owner is None:
        raise RecordError("missing owner_id")

    status = str(raw.get("status") or "").strip().lower()
    # v2: is_deleted; v1: status "deleted", deleted=true or active=false.
    is_deleted = (
        parse_bool(raw.get("is_deleted", False))
        or status == "deleted"
        or raw.get("deleted") is True
        or raw.get("active") is False
    )
    if status == "deleted":
        status = _closed_outcome(raw)
    elif status not in {"open", "won", "lost"}:
        raise RecordError(f"unknown status: {raw.get('status')!r}")
    # An archived deal is still a deal (an archived won deal stays won), but an archived open
    # one is in no pipeline any more: it must not count as open pipeline.
    if status == "open" and parse_bool(raw.get("is_archived", False)):
        is_deleted = True

    stage_id = _ref(raw.get("stage_id"), "stage_id")
    if stage_id is None:
        raise RecordError("missing stage_id")
    stage = catalog.stages.get(stage_id)
    if stage is None:
        raise RecordError(f"unknown stage_id: {stage_id}")
    pipeline_id = _ref(raw.get("pipeline_id"), "pipeline_id") or stage.pipeline_id
    pipeline = catalog.pipelines.get(pipeline_id) if pipeline_id else None

    amount = parse_amount(raw.get("value"), "value")
    currency = currency_code(raw.get("currency"))
    created_at = parse_datetime(raw.get("add_time"), "add_time", required=True)
    modified_at = parse_datetime(raw.get("update_time"), "update_time", required=True)

    closed_at: datetime | None = None
    close_date: date | None = None
    if status in {"won", "lost"}:
        closed_at = parse_datetime(raw.get(f"{status}_time"), f"{status}_time") or parse_datetime(
            raw.get("close_time"), "close_time"
        )
        # The company-local date is what the rep and their quota period see.
        close_date = parse_date(raw.get(f"local_{status}_date"), f"local_{status}_date")
        close_date = close_date or parse_date(raw.get("local_close_date"), "local_close_date")
        if close_date is None and closed_at is not None:
            close_date = closed_at.astimezone(zone).date()
    if close_date is None:
        close_date = parse_date(raw.get("expected_close_date"), "expected_close_date")

    if status == "won":
        probability: float | None = 1.0
    elif status == "lost":
        probability = 0.0
    else:
        own = percent(raw.get("probability"), "probability")
        probability = own if own is not None else stage.probability

    return {
        "external_id": external_id,
        "owner_external_id": owner,
        "name": clean_text(raw.get("title")),
        "account": _account(raw, accounts),
        "amount": amount,
        "currency": currency,
        "stage": stage.name,
        "pipeline": pipeline or pipeline_id,
        "probability": probability,
        "status": status,
        "created_at": created_at,
        "close_date": close_date,
        "closed_at": closed_at,
        "source_modified_at": modified_at,
        "is_deleted": is_deleted,
    }


def _occurred_at(raw: dict[str, Any]) -> datetime:
    """``due_date`` + ``due_time`` (UTC in Pipedrive), else when it was done or added. A
    ``due_date`` without a time is a local date, not 00:00 UTC (``local_day``)."""
    due = parse_date(raw.get("due_date"), "due_date")
    if due is not None:
        text = str(raw.get("due_time") or "").strip()
        if not text:
            return local_day(due)
        match = _TIME_OF_DAY.match(text)
        if match is None:
            raise RecordError(f"bad due_time: {raw.get('due_time')!r}")
        hour, minute, second = (int(part or 0) for part in match.groups())
        try:
            return datetime(due.year, due.month, due.day, hour, minute, second, tzinfo=UTC)
        except ValueError as exc:
            raise RecordError(f"bad due_time: {raw.get('due_time')!r}") from exc
    stamp = parse_datetime(raw.get("marked_as_done_time"), "marked_as_done_time")
    stamp = stamp or parse_datetime(raw.get("add_time"), "add_time")
    if stamp is None:
        raise RecordError("missing due_date")
    return stamp


def map_activity(
    raw: dict[str, Any], *, types: Mapping[str, str], default_type: str | None
) -> dict[str, Any]:
    external_id = _ext_id(raw.get("id"))
    owner = _ref(raw["owner_id"] if "owner_id" in raw else raw.get("user_id"), "owner_id")
    if owner is None:
        raise RecordError("missing owner_id")
    key = str(raw.get("type") or "").strip().lower()
    if not key:
        raise RecordError("missing type")
    kind = types.get(key) or default_type
    if kind is None:
        raise RecordError(f"unmapped activity type {key!r}: map it with the activity_types setting")
    return {
        "external_id": external_id,
        "owner_external_id": owner,
        "type": kind,
        "subject": clean_text(raw.get("subject")),
        "occurred_at": _occurred_at(raw),
        "deal_external_id": _ref(raw.get("deal_id"), "deal_id"),
        "source_modified_at": parse_datetime(raw.get("update_time"), "update_time", required=True),
        # v2: is_deleted; v1: active_flag false.
        "is_deleted": parse_bool(raw.get("is_deleted", False)) or raw.get("active_flag") is False,
    }
