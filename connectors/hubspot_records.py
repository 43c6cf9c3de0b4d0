"""HubSpot's records mapped to Quota Gap's: owners, deals (with their pipeline stages and
their company's name) and the four activity objects. Every HubSpot property arrives as a
string or null."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from connectors.base import (
    RecordError,
    clean_text,
    currency_code,
    email_address,
    parse_amount,
    parse_bool,
    parse_date,
    parse_datetime,
    record_id,
)
from connectors.http import CrmError

MODIFIED = "hs_lastmodifieddate"
# Object type -> our activity type; the order is the tie-break of the merged stream.
ACTIVITY_OBJECTS = {"calls": "call", "emails": "email", "meetings": "meeting", "tasks": "task"}
SUBJECT_PROPERTY = {
    "calls": "hs_call_title",
    "emails": "hs_email_subject",
    "meetings": "hs_meeting_title",
    "tasks": "hs_task_subject",
}

# ------------------------------------------------------------------ pipelines


@dataclass(frozen=True)
class StageInfo:
    pipeline_id: str
    pipeline: str
    stage: str
    probability: float | None
    # None: a closed stage whose probability is neither 1 nor 0 (the deal decides).
    status: str | None


def parse_pipelines(payload: Any) -> dict[tuple[str, str], StageInfo]:
    """``GET /crm/v3/pipelines/deals`` as ``(pipeline id, stage id) -> StageInfo``."""
    if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
        raise CrmError("GET /crm/v3/pipelines/deals: unexpected response", body=str(payload))
    stages: dict[tuple[str, str], StageInfo] = {}
    for pipeline in payload["results"]:
        if not isinstance(pipeline, dict) or pipeline.get("id") is None:
            continue
        pipeline_id = str(pipeline["id"])
        label = clean_text(pipeline.get("label"), 200) or pipeline_id
        for stage in pipeline.get("stages") or []:
            if not isinstance(stage, dict) or stage.get("id") is None:
                continue
            meta = stage.get("metadata")
            if not isinstance(meta, dict):
                meta = {}
            probability = _probability(meta.get("probability"))
            closed = parse_bool(meta.get("isClosed", False))
            status: str | None = "open"
            if closed:
                won, lost = probability == 1.0, probability == 0.0
                status = "won" if won else ("lost" if lost else None)
            stages[(pipeline_id, str(stage["id"]))] = StageInfo(
                pipeline_id=pipeline_id,
                pipeline=label,
                stage=clean_text(stage.get("label"), 200) or str(stage["id"]),
                probability=probability,
                status=status,
            )
    return stages


def _probability(value: Any) -> float | None:
    try:
        probability = float(value)
    except (TypeError, ValueError):
        return None
    return probability if 0.0 <= probability <= 1.0 else None


# ------------------------------------------------------------------ mapping


def _properties(raw: dict[str, Any]) -> dict[str, Any]:
    props = raw.get("properties")
    if not isinstance(props, dict):
        raise RecordError("missing properties")
    return props


def _required(value: Any, name: str) -> str:
    text = record_id(value, name, required=True)
    assert text is not None
    return text


def modified_at(raw: Any) -> datetime | None:
    """``hs_lastmodifieddate`` (``updatedAt`` when the property was not returned)."""
    if not isinstance(raw, dict):
        return None
    props = raw.get("properties")
    value = props.get(MODIFIED) if isinstance(props, dict) else None
    return parse_datetime(value or raw.get("updatedAt"), MODIFIED)


def _source_modified(raw: dict[str, Any]) -> datetime:
    # An archived record's latest change is its archiving.
    stamp = parse_datetime(raw.get("archivedAt"), "archivedAt") if raw.get("archived") else None
    stamp = stamp or modified_at(raw)
    if stamp is None:
        raise RecordError(f"missing {MODIFIED}")
    return stamp


def map_owner(raw: dict[str, Any]) -> dict[str, Any]:
    kind = str(raw.get("type") or "PERSON").upper()
    if kind != "PERSON":
        # Queues own records too, but they are not people a quota belongs to.
        raise RecordError(f"owner type {kind} is not a person")
    email = email_address(raw.get("email"))
    name = " ".join(str(raw.get(k) or "").strip() for k in ("firstName", "lastName")).strip()
    listed = raw.get("teams")
    teams = [t for t in listed if isinstance(t, dict)] if isinstance(listed, list) else []
    primary = next((t for t in teams if parse_bool(t.get("primary", False))), None)
    team = primary or (teams[0] if teams else None)
    return {
        # Deals and activities point at the owner id (not userId).
        "external_id": _required(raw.get("id"), "id"),
        "name": clean_text(name or email, 200),
        # Lower-cased: the same person is matched across CRMs by email.
        "email": email,
        # Deactivated users become archived owners.
        "is_active": not parse_bool(raw.get("archived", False)),
        # HubSpot has no reporting line on owners; teams are the only grouping.
        "manager_external_id": None,
        "team_name": clean_text(team.get("name"), 200) if team else None,
    }


class UnknownStage(RecordError):
    """A deal in a stage the pipelines read did not list (added since they were read)."""


def deal_mapper(
    stages: Mapping[tuple[str, str], StageInfo],
    default_currency: str,
    zone: tzinfo = UTC,
    account: Callable[[dict[str, Any]], str | None] | None = None,
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Deals in our shape; ``closedate`` (an instant) falls on its date in ``zone``, the
    portal's time zone, as in HubSpot's reports. ``account`` names a raw deal's company (the
    company is an association, not a deal property: ``hubspot_associations``); without it,
    or without a company, the account is None."""
    by_stage: dict[str, StageInfo] = {}
    for (_, stage_id), info in stages.items():
        by_stage.setdefault(stage_id, info)

    def mapper(raw: dict[str, Any]) -> dict[str, Any]:
        props = _properties(raw)
        stage_id = _required(props.get("dealstage"), "dealstage")
        pipeline_id = str(props.get("pipeline") or "").strip()
        info = stages.get((pipeline_id, stage_id)) if pipeline_id else by_stage.get(stage_id)
        if info is None:
            where = f" in pipeline {pipeline_id!r}" if pipeline_id else ""
            raise UnknownStage(f"unknown dealstage {stage_id!r}{where}")
        status = info.status
        if status is None:
            won = props.get("hs_is_closed_won")
            if won is None:
                raise RecordError(
                    f"closed stage {stage_id!r} has probability {info.probability}: "
                    "neither won nor lost"
                )
            status = "won" if parse_bool(won) else "lost"
        closedate = props.get("closedate")
        return {
            "external_id": _required(raw.get("id"), "id"),
            "owner_external_id": _required(props.get("hubspot_owner_id"), "hubspot_owner_id"),
            "name": clean_text(props.get("dealname")),
            "account": account(raw) if account is not None else None,
            "amount": parse_amount(props.get("amount"), "amount"),
            "currency": currency_code(props.get("deal_currency_code"), default=default_currency),
            "stage": info.stage,
            "pipeline": info.pipeline,
            "probability": info.probability,
            "status": status,
            "created_at": parse_datetime(
                props.get("createdate") or raw.get("createdAt"), "createdate", required=True
            ),
            "close_date": _local_date(closedate, zone),
            # On a closed deal closedate is when it closed; on an open one, the forecast.
            "closed_at": parse_datetime(closedate, "closedate") if status != "open" else None,
            "source_modified_at": _source_modified(raw),
            "is_deleted": parse_bool(raw.get("archived", False)),
        }

    return mapper


def _local_date(value: Any, zone: tzinfo) -> date | None:
    """The day of ``closedate`` in the portal's zone (a bare date stays as it is)."""
    if isinstance(value, str) and len(value) == 10:
        return parse_date(value, "closedate")
    stamp = parse_datetime(value, "closedate")
    return stamp.astimezone(zone).date() if stamp else None


def activity_mapper(object_type: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    kind = ACTIVITY_OBJECTS[object_type]
    subject = SUBJECT_PROPERTY[object_type]

    def mapper(raw: dict[str, Any]) -> dict[str, Any]:
        props = _properties(raw)
        stamp = props.get("hs_timestamp")
        if not stamp and object_type == "meetings":
            stamp = props.get("hs_meeting_start_time")
        return {
            "external_id": _required(raw.get("id"), "id"),
            "owner_external_id": _required(props.get("hubspot_owner_id"), "hubspot_owner_id"),
            "type": kind,
            "subject": clean_text(props.get(subject)),
            "occurred_at": parse_datetime(stamp, "hs_timestamp", required=True),
            "deal_external_id": deal_of(raw),
            "source_modified_at": _source_modified(raw),
            "is_deleted": parse_bool(raw.get("archived", False)),
        }

    return mapper


def deal_of(raw: dict[str, Any]) -> str | None:
    """The associated deal (``associations.deals.results[].id``; the lowest id if several)."""
    associations = raw.get("associations")
    deals = associations.get("deals") if isinstance(associations, dict) else None
    results = deals.get("results") if isinstance(deals, dict) else None
    ids = [
        ref
        for d in (results if isinstance(results, list) else [])
        if isinstance(d, dict) and (ref := record_id(d.get("id"), "associated deal id"))
    ]
    return min(ids, key=lambda d: (len(d), d)) if ids else None


def id_of(raw: dict[str, Any]) -> Any:
    return raw.get("id")


def safe_modified(raw: dict[str, Any]) -> datetime | None:
    try:
        return modified_at(raw)
    except RecordError:
        return None


def no_cursor(raw: dict[str, Any]) -> datetime | None:
    return None
