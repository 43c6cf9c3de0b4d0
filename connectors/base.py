"""The connector contract: a source is a set of streams; each stream yields mapped pages.

A per-CRM module holds only endpoints, paging and field mapping. It never touches the
database: the sync engine (``app/pipeline/sync.py``) stores each page's records and the stream's
cursor in one transaction, so a sync killed at any point resumes where it stopped and never
writes a record twice.

Record shapes (plain dicts, the storage columns; times are aware UTC datetimes):

* owner: ``external_id, name, email, is_active, manager_external_id, team_name``
* deal: ``external_id, owner_external_id, name, account, amount, currency, stage, pipeline,
  probability (0..1), status ('open'|'won'|'lost'), created_at, close_date (date),
  closed_at, source_modified_at, is_deleted``
* activity: ``external_id, owner_external_id, type ('call'|'email'|'meeting'|'task'),
  subject, occurred_at, deal_external_id, source_modified_at, is_deleted``

A record that cannot be mapped is not raised: it is returned in ``Page.rejects`` with its
reason and raw payload, and the engine quarantines it while the sync goes on.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any, ClassVar

from connectors.http import CrmClient

STREAMS = ("owners", "deals", "activities")
DEAL_FIELDS = (
    "external_id",
    "owner_external_id",
    "name",
    "account",
    "amount",
    "currency",
    "stage",
    "pipeline",
    "probability",
    "status",
    "created_at",
    "close_date",
    "closed_at",
    "source_modified_at",
    "is_deleted",
)
ACTIVITY_FIELDS = (
    "external_id",
    "owner_external_id",
    "type",
    "subject",
    "occurred_at",
    "deal_external_id",
    "source_modified_at",
    "is_deleted",
)
OWNER_FIELDS = ("external_id", "name", "email", "is_active", "manager_external_id", "team_name")
# Amounts beyond this are data-entry errors (or attacks), not deals.
MAX_AMOUNT = 1e12


class RecordError(ValueError):
    """A record that cannot be mapped; its message is the quarantine reason."""


@dataclass
class Reject:
    external_id: str | None
    reason: str
    raw: dict[str, Any]


@dataclass
class Page:
    """One page of a stream, mapped.

    ``cursor`` is the highest cursor value among the page's records (ISO-8601 UTC); the engine
    stores it with the records, capped at the run's start time. ``fetched`` counts raw records.
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    cursor: str | None = None
    fetched: int = 0
    # How many records the CRM says the stream's query matches, where it says (Salesforce's
    # totalSize): lets a job show a percentage.
    total: int | None = None
    # External ids the CRM reports deleted without their data (Pipedrive's recents feed):
    # the engine marks the stored records deleted.
    deleted: list[str] = field(default_factory=list)


class Stream(ABC):
    name: ClassVar[str]
    primary_key: ClassVar[str] = "id"
    cursor_field: ClassVar[str]

    @abstractmethod
    def pages(self, since: datetime | None) -> Iterator[Page]:
        """Pages in cursor order from ``since`` (inclusive: ``>=``), or everything if None."""

    def remap(self, raws: list[dict[str, Any]]) -> Page | None:
        """Raw records this stream rejected before, mapped again with today's catalogs and
        settings (a catalog is read again when a record names an id it lacks), as a page
        without a cursor; None where nothing the mapping depends on can change (no catalog,
        no setting): replaying would only reject them again."""
        return None


class Connector(ABC):
    kind: ClassVar[str]

    def __init__(self, client: CrmClient, config: Mapping[str, Any] | None = None) -> None:
        self.client = client
        self.config = dict(config or {})

    @abstractmethod
    def streams(self) -> list[Stream]:
        """The streams in the order they must run (owners first: deals refer to them)."""


def map_page(
    raw_records: list[dict[str, Any]],
    mapper: Callable[[dict[str, Any]], dict[str, Any]],
    *,
    id_of: Callable[[dict[str, Any]], Any],
    cursor_of: Callable[[dict[str, Any]], datetime | None],
) -> Page:
    """Map every raw record, collecting rejects instead of failing the page."""
    page = Page(fetched=len(raw_records))
    highest: datetime | None = None
    for raw in raw_records:
        ext = id_of(raw) if isinstance(raw, dict) else None
        try:
            if not isinstance(raw, dict):
                raise RecordError(f"not an object: {type(raw).__name__}")
            record = mapper(raw)
        except RecordError as exc:
            page.rejects.append(
                Reject(
                    None if ext is None else str(ext),
                    str(exc),
                    raw if isinstance(raw, dict) else {"value": raw},
                )
            )
            continue
        page.records.append(record)
        try:
            stamp = cursor_of(raw)
        except RecordError:
            stamp = None
        if stamp is not None and (highest is None or stamp > highest):
            highest = stamp
    page.cursor = iso(highest) if highest else None
    return page


# ------------------------------------------------------------------ parsing helpers
# CRMs send numbers as strings, dates in three formats and nulls where you least expect them;
# these helpers turn each into a typed value or a RecordError naming the field.


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_datetime(value: Any, field_name: str, *, required: bool = False) -> datetime | None:
    """ISO-8601 (with Z, offset or ``+0000``), ``YYYY-MM-DD HH:MM:SS`` (UTC), or epoch ms."""
    if value is None or value == "":
        if required:
            raise RecordError(f"missing {field_name}")
        return None
    if type(value) is str and value[:1].isdigit() and not value.isdigit():
        # The common case, ISO-8601 as CRMs send it: Python 3.11 parses "Z" and "+0000"
        # itself. Anything it refuses takes the tolerant path below.
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            elif parsed.utcoffset():
                parsed = parsed.astimezone(UTC)
            return _plausible(parsed, field_name)
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return _plausible(datetime.fromtimestamp(float(value) / 1000, UTC), field_name)
        text = str(value).strip()
        if text.isdigit():
            return _plausible(datetime.fromtimestamp(int(text) / 1000, UTC), field_name)
        text = text.replace("Z", "+00:00")
        if len(text) >= 5 and text[-5] in "+-" and text[-3] != ":" and "T" in text:
            text = text[:-2] + ":" + text[-2:]  # Salesforce: +0000
        parsed = datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError) as exc:
        raise RecordError(f"bad {field_name}: {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return _plausible(parsed.astimezone(UTC), field_name)


def _plausible(value: datetime, field_name: str) -> datetime:
    if not 1990 <= value.year <= 2100:
        raise RecordError(f"implausible {field_name}: {value.date().isoformat()}")
    return value


def local_day(value: date) -> datetime:
    """A date-only activity (a Salesforce all-day Event, a Pipedrive activity without a time)
    as an instant: 12:00 UTC of that date, which is on the same calendar day in every time
    zone from UTC−11 to UTC+11, so local-day and local-month counts keep it on the rep's day
    (00:00 UTC is the day before anywhere west of Greenwich)."""
    return datetime.combine(value, time(12, 0), tzinfo=UTC)


def parse_date(value: Any, field_name: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and len(value) == 10:
        try:
            parsed = date.fromisoformat(value)
        except ValueError as exc:
            raise RecordError(f"bad {field_name}: {value!r}") from exc
        if not 1990 <= parsed.year <= 2100:
            raise RecordError(f"implausible {field_name}: {value}")
        return parsed
    stamp = parse_datetime(value, field_name)
    return stamp.date() if stamp else None


def parse_amount(value: Any, field_name: str = "amount") -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RecordError(f"bad {field_name}: {value!r}")
    try:
        amount = float(str(value).replace(",", "")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError) as exc:
        raise RecordError(f"bad {field_name}: {value!r}") from exc
    if math.isnan(amount) or math.isinf(amount) or abs(amount) > MAX_AMOUNT:
        raise RecordError(f"implausible {field_name}: {value!r}")
    if amount < 0:
        raise RecordError(f"negative {field_name}: {value!r}")
    return amount


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"true", "1", "yes"}


def clean_text(value: Any, limit: int = 500) -> str | None:
    """Names from CRMs may carry markup or control characters: keep printable plain text."""
    if value is None:
        return None
    text = str(value)
    if not text.isprintable():  # rare: checked whole first, in C
        text = "".join(ch for ch in text if ch.isprintable())
    text = text.replace("<", "‹").replace(">", "›").strip()
    return text[:limit] or None


MAX_ID_LENGTH = 200


def record_id(value: Any, field_name: str, *, required: bool = False) -> str | None:
    """A CRM id or reference as text: printable, at most 200 characters, or a RecordError.

    Ids become keys and foreign keys; a NUL byte (PostgreSQL refuses it in text) or a
    megabyte-long "id" must not get that far. Numbers are accepted (Pipedrive sends them),
    booleans, lists and objects are not.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise RecordError(f"missing {field_name}")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise RecordError(f"bad {field_name}: {type(value).__name__}")
    text = str(value).strip()
    if len(text) > MAX_ID_LENGTH or not text.isprintable():
        raise RecordError(f"bad {field_name}: not a printable id of at most {MAX_ID_LENGTH}")
    return text


def email_address(value: Any) -> str | None:
    """Lower-cased (people are matched across CRMs by email), or None when it is not one."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if not text or len(text) > 320 or not text.isprintable() or " " in text:
        return None
    local, at, domain = text.rpartition("@")
    return text if at and local and "." in domain else None


def currency_code(value: Any, default: str = "USD") -> str:
    code = str(value or default).strip().upper()
    if len(code) != 3 or not code.isalpha():
        raise RecordError(f"bad currency: {value!r}")
    return code
