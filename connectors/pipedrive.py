"""Pipedrive: endpoints, paging and field mapping for owners, deals and activities.

Wire facts (``../shared/docs/crm-apis.md`` and Pipedrive's published examples):

* v2 lists (``/api/v2/deals``, ``/api/v2/activities``, ``/api/v2/stages``...) page with an
  opaque ``cursor``; ``additional_data.next_cursor`` is null on the last page. Deals and
  activities take ``updated_since`` (RFC 3339, ``>=``) and ``sort_by=update_time``, so an
  incremental read is one keyset-ordered scan: a record changed while we page gets a newer
  ``update_time`` and is met again further on instead of being skipped.
* v1 lists (``/v1/deals``) page with ``start``/``limit`` and
  ``additional_data.pagination.more_items_in_collection``/``next_start``; owners are
  ``user_id`` objects and times are ``YYYY-MM-DD HH:MM:SS`` in UTC. v1 deals have no
  ``updated_since``: the incremental path is ``/v1/recents?items=deal``.
* Deleted deals are not in the default listing: ``status=deleted`` lists them (Pipedrive keeps
  them 30 days), so the deals stream merges both listings by ``update_time``.
* Auth: the API token goes in the ``x-api-token`` header, never in ``?api_token=``: URLs end up
  in proxy and server logs. OAuth refreshes at ``oauth.pipedrive.com`` with HTTP Basic client
  auth; its token answer carries ``api_domain``, the company host later calls should use.

Mapping choices:

* Status: ``open|won|lost``; a v1 ``status: "deleted"`` keeps its last outcome from
  ``won_time``/``lost_time`` and sets ``is_deleted``. Archived deals (v2 lists them apart,
  ``/api/v2/deals/archived``) are read too: a won or lost one stays won or lost, an open one
  is in no pipeline any more and is marked deleted.
* Probability: won 1.0, lost 0.0; an open deal's own ``probability`` (0-100) when set, else its
  stage's ``deal_probability`` (0-100). A deal in a stage we cannot find is rejected (after
  one re-read of the stages, in case the stage was created during the sync).
* Close date: for closed deals the company-local ``local_won_date``/``local_lost_date`` when
  sent, else the day of ``won_time``/``lost_time``/``close_time`` (UTC instants) in the
  company's time zone (:meth:`PipedriveConnector.zone`: setting ``timezone``, else the API
  user's ``timezone_name``); for open deals ``expected_close_date``.
* Activity types: Pipedrive's built-in keys map as ``call, meeting, email, task`` ->
  themselves, ``deadline`` -> task (a dated to-do), ``lunch`` -> meeting (time with a client).
  A company's custom type maps by the icon its admin chose for it in the account's catalog
  (``GET /v1/activityTypes``: ``key_string``, ``icon_key``; :data:`ICON_TYPES`), read once per
  run and again when an activity has a key it does not list (a type added during the run).
  A custom type whose icon says nothing (``pricetag``, ``car``...) is *rejected* with a
  reason naming it, not guessed. Config ``activity_types`` maps keys over all of this,
  ``default_activity_type`` maps all the rest.

Config: ``api_version`` ("v2" default; "v1" reads deals from the v1 list and recents
endpoints, which Pipedrive deprecated in favour of v2 and is retiring: kept only for accounts
not on v2 yet, and logged as deprecated when chosen), ``timezone`` (an IANA name),
``page_size`` (<= 500),
``include_deleted`` (default True), ``resolve_accounts`` (v2 deals only carry ``org_id``: look
organisation names up, 100 ids a call, cached; default True), ``activity_types``,
``default_activity_type``, ``v1_overlap`` (records re-read at each v1 offset page, see
``_v1_pages``).
"""

from __future__ import annotations

import heapq
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from functools import partial
from typing import Any, ClassVar, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from connectors import http
from connectors.base import (
    Connector,
    Page,
    RecordError,
    Stream,
    clean_text,
    map_page,
    parse_bool,
    parse_datetime,
)
from connectors.http import CrmClient, CrmError, HeaderTokenAuth, Limits
from connectors.pipedrive_records import (
    Catalog,
    StageInfo,
    id_of,
    map_activity,
    map_deal,
    map_owner,
    percent,
    safe_ref,
    stamp,
)

log = logging.getLogger(__name__)

KIND: Final = "pipedrive"
DEFAULT_BASE_URL: Final = "https://api.pipedrive.com"
TOKEN_URL: Final = "https://oauth.pipedrive.com/oauth/token"  # noqa: S105 - a URL, no secret
MAX_PAGE_SIZE: Final = 500
# Pipedrive's rate-limit window; used when a response names a limit but not its reset.
WINDOW_SECONDS: Final = 2.0
# A reset far beyond the window is not a per-window reset (e.g. a daily budget): pacing must
# not stall a worker for hours on it; 429 + Retry-After handles that case.
_MAX_RESET_SECONDS: Final = 60.0
ACTIVITY_TYPES: Final[Mapping[str, str]] = {
    "call": "call",
    "meeting": "meeting",
    "email": "email",
    "task": "task",
    "deadline": "task",
    "lunch": "meeting",
}
_TYPES: Final = frozenset({"call", "email", "meeting", "task"})
# A custom activity type's kind by its icon (Pipedrive's icon_key values that say one).
ICON_TYPES: Final[Mapping[str, str]] = {
    "call": "call",
    "smartphone": "call",
    "email": "email",
    "meeting": "meeting",
    "lunch": "meeting",
    "calendar": "meeting",
    "presentation": "meeting",
    "task": "task",
    "deadline": "task",
    "checkbox": "task",
}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ORG_BATCH: Final = 100


# ------------------------------------------------------------------ client


def _api_root(url: str) -> str:
    """``https://x.pipedrive.com/api/v2`` and ``.../v1`` -> ``https://x.pipedrive.com``.

    Paths below carry their version, so one client serves v1 and v2 on either host form.
    """
    root = url.strip().rstrip("/")
    for suffix in ("/api/v2", "/api/v1", "/v1", "/v2"):
        if root.endswith(suffix):
            return root[: -len(suffix)]
    return root


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


def rate_limits(response: httpx.Response) -> Limits:
    """``x-ratelimit-limit/-remaining/-reset`` (seconds left in the 2-second window)."""
    headers = response.headers
    limit = _number(headers.get("x-ratelimit-limit"))
    remaining = _number(headers.get("x-ratelimit-remaining"))
    reset = _number(headers.get("x-ratelimit-reset"))
    if reset is None and limit is not None:
        reset = WINDOW_SECONDS
    return Limits(
        remaining=None if remaining is None else int(remaining),
        limit=None if limit is None else int(limit),
        reset_seconds=None if reset is None else min(max(reset, 0.0), _MAX_RESET_SECONDS),
    )


def is_daily_budget(response: httpx.Response) -> bool:
    """A 429 with ``x-daily-requests-left`` at 0: the token's daily budget is spent until its
    reset, hours away: the sync pauses (``BudgetPaused``) instead of retrying into it."""
    if response.status_code != 429:
        return False
    left = _number(response.headers.get("x-daily-requests-left"))
    return left is not None and left <= 0


def is_auth_error(response: httpx.Response) -> bool:
    # ``{"success": false, "error": "unauthorized access", "errorCode": 401}``. A 403 is a
    # permission (e.g. a non-admin token) that a refresh cannot fix: it stays a plain error.
    return response.status_code == 401


def build_client(
    *,
    base_url: str | None,
    credentials: Mapping[str, Any],
    on_refresh: Callable[[dict[str, Any]], None] | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> CrmClient:
    """A client for ``{"api_token"}`` or OAuth ``{client_id, client_secret, refresh_token}``.

    Without ``base_url`` an OAuth source uses the ``api_domain`` its token answer named
    (stored with the credentials), else ``api.pipedrive.com``.
    """
    root = _api_root(base_url or str(credentials.get("api_domain") or "") or DEFAULT_BASE_URL)
    return http.build_client(
        root,
        wire=WIRE,
        credentials=credentials,
        token_url=str(credentials.get("token_url") or TOKEN_URL),
        on_refresh=on_refresh,
        transport=transport,
        sleep=sleep,
    )


def _api_token(credentials: Mapping[str, Any]) -> HeaderTokenAuth | None:
    token = credentials.get("api_token")
    return HeaderTokenAuth("x-api-token", str(token)) if token else None


WIRE = http.CrmWire(
    needs="pipedrive credentials need api_token, or client_id, client_secret and refresh_token",
    static_auth=_api_token,
    static_first=True,
    basic_client_auth=True,
    limits=rate_limits,
    is_auth_error=is_auth_error,
    is_final=is_daily_budget,
)


# ------------------------------------------------------------------ request helpers


def rfc3339(value: datetime) -> str:
    """``updated_since`` value; floored to the second so ``>=`` never skips the boundary."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def v1_time(value: datetime) -> str:
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _chunks(records: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _flatten(pages: Iterable[list[Any]]) -> Iterator[Any]:
    for page in pages:
        yield from page


def _merged(listings: list[Iterator[Any]]) -> Iterator[Any]:
    """Listings each sorted by ``update_time`` -> one stream in that order.

    Page cursors then only move forward, so a sync resumed from any page's cursor has
    already seen every earlier record of *both* listings. Ties keep listing order (stable).
    """
    if len(listings) == 1:
        return listings[0]
    return heapq.merge(*listings, key=lambda raw: stamp(raw) or _EPOCH)


def _archived(records: Iterator[Any]) -> Iterator[Any]:
    """The archived-deals listing, or nothing where the account has none (404: an API
    version without it), said in the log."""
    try:
        yield from records
    except CrmError as exc:
        if exc.status != 404:
            raise
        log.warning("pipedrive: /api/v2/deals/archived is not served: archived deals not read")


def _mark_deleted(records: Iterable[Any]) -> Iterator[Any]:
    # Everything in the status=deleted listing is deleted, whatever its flags say.
    for raw in records:
        if isinstance(raw, dict) and raw.get("is_deleted") is not True:
            raw = {**raw, "is_deleted": True}
        yield raw


# ------------------------------------------------------------------ connector


def _pagination(payload: Mapping[str, Any]) -> tuple[bool, int | None]:
    """``(more_items_in_collection, next_start)`` from v1 ``additional_data.pagination``.

    Tolerant on purpose: Pipedrive's own /v1/recents example spells the key ``pagination"``
    and sends ``"0,"``-style strings.
    """
    extra = payload.get("additional_data")
    if not isinstance(extra, dict):
        return False, None
    block: Any = extra.get("pagination")
    if not isinstance(block, dict):
        block = next(
            (
                v
                for k, v in extra.items()
                if str(k).startswith("pagination") and isinstance(v, dict)
            ),
            {},
        )
    more = block.get("more_items_in_collection")
    more_flag = parse_bool(str(more).strip(" ,")) if more is not None else False
    digits = re.sub(r"\D", "", str(block.get("next_start", "")))
    return more_flag, int(digits) if digits else None


def _v1_key(raw: Any) -> tuple[str, str]:
    if not isinstance(raw, dict):
        return ("raw", repr(raw))
    data = raw.get("data") if "item" in raw and "data" in raw else raw
    stamp = data.get("update_time") if isinstance(data, dict) else None
    return (str(raw.get("id")), str(stamp))


class PipedriveConnector(Connector):
    kind: ClassVar[str] = KIND

    def __init__(self, client: CrmClient, config: Mapping[str, Any] | None = None) -> None:
        super().__init__(client, config)
        cfg = self.config
        self.api_version = str(cfg.get("api_version", "v2")).strip().lower()
        if self.api_version not in {"v1", "v2"}:
            raise ValueError(
                f"pipedrive api_version must be 'v1' or 'v2', not {cfg['api_version']!r}"
            )
        if self.api_version == "v1":
            log.warning(
                "Pipedrive: api_version v1 reads deals from endpoints Pipedrive deprecated and "
                "is retiring; use v2 (the default) unless the account cannot"
            )
        self.page_size = max(1, min(int(cfg.get("page_size", MAX_PAGE_SIZE)), MAX_PAGE_SIZE))
        self.include_deleted = bool(cfg.get("include_deleted", True))
        self.resolve_accounts = bool(cfg.get("resolve_accounts", True))
        # The overlap must leave each v1 page some progress.
        self.v1_overlap = max(0, min(int(cfg.get("v1_overlap", 20)), self.page_size // 5))
        extra = {
            str(k).strip().lower(): str(v).strip().lower()
            for k, v in dict(cfg.get("activity_types") or {}).items()
        }
        self.configured_types = extra
        self.activity_types = {**ACTIVITY_TYPES, **extra}
        default = cfg.get("default_activity_type")
        self.default_activity_type = str(default).strip().lower() if default else None
        bad = {v for v in self.activity_types.values() if v not in _TYPES}
        if self.default_activity_type and self.default_activity_type not in _TYPES:
            bad.add(self.default_activity_type)
        if bad:
            raise ValueError(
                f"pipedrive activity types must map to {sorted(_TYPES)}: {sorted(bad)}"
            )
        self._orgs: dict[str, str | None] = {}
        self._zone: tzinfo | None = _zone(cfg["timezone"]) if cfg.get("timezone") else None

    def zone(self) -> tzinfo:
        """The company's time zone: the settings' ``timezone``, else the API user's
        (``GET /v1/users/me``: ``timezone_name``, the zone Pipedrive's own reports use for
        them), else UTC with a warning. Read once per connector."""
        if self._zone is None:
            name = None
            try:
                me = self.get("/v1/users/me", {}).get("data")
                name = me.get("timezone_name") if isinstance(me, dict) else None
            except CrmError as exc:
                if exc.status not in (401, 403, 404):
                    raise
            try:
                self._zone = _zone(name) if name else None
            except ValueError:
                self._zone = None
            if self._zone is None:
                log.warning("Pipedrive: the company's time zone is unknown: close days in UTC")
                self._zone = UTC
        return self._zone

    def streams(self) -> list[Stream]:
        return [OwnersStream(self), DealsStream(self), ActivitiesStream(self)]

    # -- requests

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        payload = self.client.get_json(path, params=dict(params or {}))
        if not isinstance(payload, dict):
            raise CrmError(f"GET {path}: answer is not an object", body=str(payload))
        if payload.get("success") is False:
            raise CrmError(
                f"GET {path}: {payload.get('error') or 'unsuccessful'}", body=str(payload)
            )
        return payload

    @staticmethod
    def data(payload: Mapping[str, Any], path: str) -> list[Any]:
        data = payload.get("data")
        if data is None:  # v1 answers an empty list as null
            return []
        if not isinstance(data, list):
            raise CrmError(f"GET {path}: data is not a list", body=str(payload))
        return data

    def v2_pages(self, path: str, params: Mapping[str, Any]) -> Iterator[list[Any]]:
        """Raw pages of a v2 cursor listing, until ``next_cursor`` is null."""
        cursor: str | None = None
        while True:
            query = {**params, "limit": self.page_size}
            if cursor:
                query["cursor"] = cursor
            payload = self.get(path, query)
            rows = self.data(payload, path)
            yield rows
            extra = payload.get("additional_data")
            following = extra.get("next_cursor") if isinstance(extra, dict) else None
            if not following or not rows:
                return
            if following == cursor:
                raise CrmError(f"GET {path}: next_cursor did not advance")
            cursor = str(following)

    def v1_pages(self, path: str, params: Mapping[str, Any]) -> Iterator[list[Any]]:
        """Raw pages of a v1 ``start``/``limit`` listing sorted by ``update_time``.

        Offsets shift when an earlier record is updated while we page (it moves to the end),
        which would skip the record that slid into the gap. Each page therefore starts
        ``v1_overlap`` records early and drops what this run already saw (same id and
        ``update_time``). More concurrent updates than the overlap between two requests can
        still skip a record until the next full read: prefer v2, whose cursor is a keyset.
        """
        seen: set[tuple[str, str]] = set()
        next_start = 0
        while True:
            start = max(0, next_start - self.v1_overlap) if next_start else 0
            payload = self.get(path, {**params, "start": start, "limit": self.page_size})
            rows = self.data(payload, path)
            fresh = []
            for row in rows:
                key = _v1_key(row)
                if key not in seen:
                    seen.add(key)
                    fresh.append(row)
            yield fresh
            more, following = _pagination(payload)
            if not more or not rows:
                return
            following = following if following is not None else start + len(rows)
            if following <= next_start:
                raise CrmError(f"GET {path}: next_start did not advance")
            next_start = following

    # -- lookups

    def activity_catalog(self) -> dict[str, str]:
        """Activity type key -> our type: the built-in keys, the account's custom types by
        their icon (module docstring), then the ``activity_types`` setting over both."""
        payload = self.get("/v1/activityTypes", {})
        by_icon = {
            str(t.get("key_string") or "").strip().lower(): ICON_TYPES[str(t.get("icon_key"))]
            for t in self.data(payload, "/v1/activityTypes")
            if isinstance(t, dict) and str(t.get("icon_key")) in ICON_TYPES
        }
        by_icon.pop("", None)
        return {**by_icon, **ACTIVITY_TYPES, **self.configured_types}

    def catalog(self) -> Catalog:
        catalog = Catalog()
        for raw in _flatten(self.v2_pages("/api/v2/pipelines", {})):
            ref = safe_ref(raw.get("id")) if isinstance(raw, dict) else None
            if ref is not None:
                catalog.pipelines[ref] = clean_text(raw.get("name"))
        for raw in _flatten(self.v2_pages("/api/v2/stages", {})):
            ref = safe_ref(raw.get("id")) if isinstance(raw, dict) else None
            if ref is None:
                continue
            try:
                probability = percent(raw.get("deal_probability"), "deal_probability")
            except RecordError:
                probability = None
            catalog.stages[ref] = StageInfo(
                name=clean_text(raw.get("name")),
                probability=probability,
                pipeline_id=safe_ref(raw.get("pipeline_id")),
            )
        return catalog

    def account_names(self, records: Iterable[Any]) -> dict[str, str | None]:
        """Organisation names for the scalar ``org_id``s of v2 deals (v1 deals embed them)."""
        if not self.resolve_accounts:
            return self._orgs
        wanted = sorted(
            {
                ref
                for raw in records
                if isinstance(raw, dict)
                and raw.get("org_id") is not None
                and not isinstance(raw.get("org_id"), dict)
                and (ref := safe_ref(raw.get("org_id"))) is not None
                and ref not in self._orgs
            },
            key=int,
        )
        for i in range(0, len(wanted), _ORG_BATCH):
            batch = wanted[i : i + _ORG_BATCH]
            try:
                # Paged like any v2 list: a server may answer fewer than the ids asked for.
                for raw in _flatten(
                    self.v2_pages("/api/v2/organizations", {"ids": ",".join(batch)})
                ):
                    ref = safe_ref(raw.get("id")) if isinstance(raw, dict) else None
                    if ref is not None:
                        self._orgs[ref] = clean_text(raw.get("name"))
            except CrmError as exc:
                if type(exc) is not CrmError or exc.status not in {400, 403, 404}:
                    raise
                # A token without access to organisations: deals still sync, without account.
                log.warning("pipedrive organisation lookup refused (%s); accounts left empty", exc)
                self.resolve_accounts = False
                return self._orgs
            for ref in batch:  # not visible or deleted: do not ask again
                self._orgs.setdefault(ref, None)
        return self._orgs


class _PipedriveStream(Stream):
    primary_key: ClassVar[str] = "id"
    cursor_field: ClassVar[str] = "update_time"

    def __init__(self, connector: PipedriveConnector) -> None:
        self.connector = connector


class OwnersStream(_PipedriveStream):
    """``GET /v1/users``: one unpaged list; always read whole (no filter, and it is small)."""

    name: ClassVar[str] = "owners"
    cursor_field: ClassVar[str] = "modified"

    def pages(self, since: datetime | None) -> Iterator[Page]:
        c = self.connector
        users = c.data(c.get("/v1/users"), "/v1/users")

        def modified(raw: Any) -> datetime:
            try:
                stamp = parse_datetime(raw.get("modified"), "modified")
            except (RecordError, AttributeError):
                stamp = None
            return stamp or _EPOCH

        users.sort(key=modified)
        for chunk in _chunks(users, c.page_size):
            yield map_page(
                chunk,
                map_owner,
                id_of=id_of,
                cursor_of=lambda raw: parse_datetime(raw.get("modified"), "modified"),
            )


class DealsStream(_PipedriveStream):
    name: ClassVar[str] = "deals"

    def pages(self, since: datetime | None) -> Iterator[Page]:
        c = self.connector
        catalog = c.catalog()
        refreshed = False
        records = self._v1(since) if c.api_version == "v1" else self._v2(since)
        for chunk in _chunks(records, c.page_size):
            if not refreshed and self._unknown_stage(chunk, catalog):
                # A stage added since we read the catalog: read it once more, not per page.
                catalog, refreshed = c.catalog(), True
            accounts = c.account_names(chunk) if c.api_version == "v2" else {}
            yield map_page(
                chunk,
                partial(map_deal, catalog=catalog, accounts=accounts, zone=c.zone()),
                id_of=id_of,
                cursor_of=stamp,
            )

    def remap(self, raws: list[dict[str, Any]]) -> Page:
        c = self.connector
        accounts = c.account_names(raws) if c.api_version == "v2" else {}
        mapper = partial(map_deal, catalog=c.catalog(), accounts=accounts, zone=c.zone())
        return map_page(raws, mapper, id_of=id_of, cursor_of=lambda _: None)

    @staticmethod
    def _unknown_stage(chunk: list[Any], catalog: Catalog) -> bool:
        for raw in chunk:
            deal = raw.get("data") if isinstance(raw, dict) and "item" in raw else raw
            if isinstance(deal, dict):
                ref = safe_ref(deal.get("stage_id"))
                if ref is not None and ref not in catalog.stages:
                    return True
        return False

    def _v2(self, since: datetime | None) -> Iterator[Any]:
        c = self.connector
        params: dict[str, Any] = {"sort_by": "update_time", "sort_direction": "asc"}
        if since is not None:
            params["updated_since"] = rfc3339(since)
        listings = [
            _flatten(c.v2_pages("/api/v2/deals", params)),
            # v2 /deals leaves archived deals out: a deal archived since the last run would
            # keep its old state here (an open one in the pipeline) without this listing.
            _archived(_flatten(c.v2_pages("/api/v2/deals/archived", params))),
        ]
        if c.include_deleted:
            deleted = c.v2_pages("/api/v2/deals", {**params, "status": "deleted"})
            listings.append(_mark_deleted(_flatten(deleted)))
        return _merged(listings)

    def _v1(self, since: datetime | None) -> Iterator[Any]:
        c = self.connector
        if since is None:
            params = {"sort": "update_time ASC"}
            listings = [_flatten(c.v1_pages("/v1/deals", {**params, "status": "all_not_deleted"}))]
            if c.include_deleted:
                deleted = c.v1_pages("/v1/deals", {**params, "status": "deleted"})
                listings.append(_mark_deleted(_flatten(deleted)))
            return _merged(listings)
        # One second early: whether since_timestamp is inclusive is not documented, and a
        # record met twice is only upserted twice.
        params = {"since_timestamp": v1_time(since - timedelta(seconds=1)), "items": "deal"}
        rows = _flatten(c.v1_pages("/v1/recents", params))
        # items=deal should be enough, but Pipedrive's own example mixes in activities.
        return (r for r in rows if not isinstance(r, dict) or r.get("item") in {None, "deal"})


class ActivitiesStream(_PipedriveStream):
    name: ClassVar[str] = "activities"

    def pages(self, since: datetime | None) -> Iterator[Page]:
        c = self.connector
        params: dict[str, Any] = {"sort_by": "update_time", "sort_direction": "asc"}
        if since is not None:
            params["updated_since"] = rfc3339(since)
        if since is not None and c.include_deleted:
            yield from self._deleted(since)
        types, refreshed = c.activity_catalog(), False
        for rows in c.v2_pages("/api/v2/activities", params):
            if not rows:
                continue
            if not refreshed and any(_type_key(r) not in types for r in rows):
                # A type added since the catalog was read: read it once more, not per page.
                types, refreshed = c.activity_catalog(), True
            mapper = partial(map_activity, types=types, default_type=c.default_activity_type)
            yield map_page(rows, mapper, id_of=id_of, cursor_of=stamp)

    def remap(self, raws: list[dict[str, Any]]) -> Page:
        # Custom types are the catalog, and the source's activity_types setting may map them.
        c = self.connector
        mapper = partial(
            map_activity, types=c.activity_catalog(), default_type=c.default_activity_type
        )
        return map_page(raws, mapper, id_of=id_of, cursor_of=lambda _: None)

    def _deleted(self, since: datetime) -> Iterator[Page]:
        """Activities deleted since ``since``: they leave v2 ``/activities`` without a trace,
        and only ``/v1/recents?items=activity`` reports them (``data: null``). First, on pages
        without a cursor, as the deals' deletions come first."""
        params = {"since_timestamp": v1_time(since - timedelta(seconds=1)), "items": "activity"}
        for rows in self.connector.v1_pages("/v1/recents", params):
            gone = [
                str(r["id"])
                for r in rows
                if isinstance(r, dict)
                and r.get("item") == "activity"
                and r.get("data") is None
                and safe_ref(r.get("id")) is not None
            ]
            yield Page(fetched=len(rows), deleted=gone)


def _zone(name: Any) -> ZoneInfo:
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone: {name!r}") from exc


def _type_key(raw: Any) -> str:
    return str(raw.get("type") or "").strip().lower() if isinstance(raw, dict) else ""
