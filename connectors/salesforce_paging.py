"""Salesforce SOQL paging: queries read in bounded chunks, and several merged in stamp order.

A SOQL query's result set is a server-side cursor that ``nextRecordsUrl`` pages through; it
expires after 15 minutes without a fetch, and an org holds only a few open ones per user. A
first sync of a large org read as one query per object keeps one cursor open for the whole
object, long enough to meet that limit whenever the writer falls behind or the API budget
pauses the run. So every stream is read in **chunks** of at most ``chunk`` records
(:class:`Chunked`): ``ORDER BY SystemModstamp, Id LIMIT chunk``, and the next chunk starts
after the last record read, by keyset: ``SystemModstamp > s OR (SystemModstamp = s AND
Id > 'id')``. No cursor outlives one chunk's pages, each chunk is a fresh query, and the key
(stamp, Id) is unique, so a chunk boundary neither skips nor repeats a record.
Salesforce keeps datetimes to the second (``.000``), so the literal, floored to the second, is
the record's own stamp.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from connectors.base import Page, RecordError, map_page, parse_datetime
from connectors.http import CrmClient, CrmError

# Records per chunk: Salesforce pages 2,000 at a time, so a chunk is 25 requests.
CHUNK = 50_000
_SALESFORCE_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
Key = tuple[datetime, str]


def soql_datetime(value: datetime) -> str:
    """An unquoted SOQL datetime literal, floored to the second.

    Flooring keeps ``>=`` inclusive of the cursor's own record, and whole seconds are the
    documented literal format.
    """
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def soql(
    obj: str,
    fields: tuple[str, ...],
    since: datetime | None,
    *,
    after: Key | None = None,
    limit: int | None = None,
) -> str:
    """One chunk's query: records from ``since`` (``>=``), or after the key ``after``."""
    if after is not None:
        stamp, ident = soql_datetime(after[0]), after[1]
        if not _SALESFORCE_ID.fullmatch(ident):  # it goes into the query text
            raise CrmError(f"SOQL paging: not a Salesforce Id: {ident[:40]!r}")
        where = (
            f" WHERE (SystemModstamp > {stamp} OR (SystemModstamp = {stamp} AND Id > '{ident}'))"
        )
    else:
        where = f" WHERE SystemModstamp >= {soql_datetime(since)}" if since else ""
    tail = f" LIMIT {int(limit)}" if limit else ""
    # Only constant field lists, formatted datetimes and checked Ids go in.
    fields_sql = ", ".join(fields)
    return f"SELECT {fields_sql} FROM {obj}{where} ORDER BY SystemModstamp ASC, Id ASC{tail}"  # noqa: S608


class Query:
    """One SOQL query's pages, fetched lazily into a buffer of raw records."""

    def __init__(self, client: CrmClient, path: str, query: str) -> None:
        self.client = client
        self.url: str | None = path
        self.params: dict[str, str] | None = {"q": query}
        self.buffer: deque[Any] = deque()
        self.total: int | None = None  # the query's totalSize, from its first answer

    @property
    def done(self) -> bool:
        return self.url is None

    def fetch(self) -> None:
        assert self.url is not None
        body = self.client.get_json(self.url, params=self.params)
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise CrmError(f"GET {self.url}: unexpected query response", body=str(body))
        self.buffer.extend(body["records"])
        if self.total is None and isinstance(body.get("totalSize"), int):
            self.total = body["totalSize"]
        if body.get("done", True):
            self.url = None
            return
        next_url = body.get("nextRecordsUrl")
        if not next_url:
            # Stopping here would silently drop the rest of the result set.
            raise CrmError(f"GET {self.url}: done=false without nextRecordsUrl", body=str(body))
        self.url, self.params = str(next_url), None

    def head_stamp(self) -> datetime:
        return _stamp_key(self.buffer[0])


def _stamp_key(raw: Any) -> datetime:
    try:
        stamp = parse_datetime(raw.get("SystemModstamp"), "SystemModstamp")
    except (RecordError, AttributeError):
        stamp = None
    # Unreadable stamps sort first; the mapper rejects them anyway.
    return stamp or datetime.min.replace(tzinfo=UTC)


def _stamp(raw: dict[str, Any]) -> datetime | None:
    return parse_datetime(raw.get("SystemModstamp"), "SystemModstamp")


def merged_pages(
    queries: Sequence[Query | Chunked], mapper: Callable[[dict[str, Any]], dict[str, Any]]
) -> Iterator[Page]:
    """Pages of several SystemModstamp-ordered queries, merged into one SystemModstamp order.

    Activities come from two objects (Task, Event) but keep one cursor: reading all tasks and
    then all events would store a task cursor that skips older events if the sync stops in
    between. Merging keeps every page cursor a safe resume point. A page is flushed before
    each network fetch, so pages follow the server's batches.
    """
    out: list[Any] = []

    def page() -> Page:
        mapped = _map(out, mapper)
        totals = [q.total for q in queries]
        mapped.total = sum(t for t in totals if t is not None) if None not in totals else None
        return mapped

    while True:
        for query in queries:
            # Every unfinished query needs a record in hand before the smallest can be picked
            # (a batch may be empty without being the last).
            while not query.buffer and not query.done:
                if out:
                    yield page()
                    out = []
                query.fetch()
        live = [q for q in queries if q.buffer]
        if not live:
            break
        first = live[0] if len(live) == 1 else min(live, key=lambda q: q.head_stamp())
        out.append(first.buffer.popleft())
    if out:
        yield page()


def _map(raw: list[Any], mapper: Callable[[dict[str, Any]], dict[str, Any]]) -> Page:
    return map_page(raw, mapper, id_of=lambda r: r.get("Id"), cursor_of=_stamp)


class Chunked:
    """One object's records from ``since``, read as successive queries of at most ``chunk``
    records each (module docstring); the same face as one query's (``buffer``, ``done``,
    ``fetch``, ``total``, ``head_stamp``), so :func:`merged_pages` merges either.

    ``total`` is the object's count where the first chunk held everything; None (unknown)
    where it was full, since a query with LIMIT counts at most its limit.
    """

    def __init__(self, open_query: Callable[[Key | None], Query], chunk: int) -> None:
        self._open = open_query
        self._chunk = chunk
        self._current = open_query(None)
        self._read = 0  # records of the current chunk
        self._last: Key | None = None
        self.buffer: deque[Any] = deque()
        self.total: int | None = None
        self._first = True

    @property
    def done(self) -> bool:
        return self._current.done and not self._current.buffer and self._read < self._chunk

    def fetch(self) -> None:
        if self._current.done:
            self._next_chunk()
        else:
            self._current.fetch()
        if self._first and self._current.total is not None:
            self.total = self._current.total if self._current.total < self._chunk else None
            self._first = False
        self._take()

    def head_stamp(self) -> datetime:
        return _stamp_key(self.buffer[0])

    def _take(self) -> None:
        batch = self._current.buffer
        if batch:
            self._read += len(batch)
            last = batch[-1]
            key = (_stamp_key(last), str(last.get("Id") if isinstance(last, dict) else ""))
            self._last = key
            self.buffer.extend(batch)
            batch.clear()

    def _next_chunk(self) -> None:
        """The chunk after the last record read (called once the current one is exhausted
        with ``chunk`` records: fewer means the object ended)."""
        if self._last is None:
            raise CrmError("SOQL paging: a full chunk without a record to continue from")
        start = self._last
        self._current, self._read = self._open(start), 0
        self._current.fetch()
        batch = self._current.buffer
        last = batch[-1] if batch else None
        if isinstance(last, dict) and (_stamp_key(last), str(last.get("Id"))) <= start:
            raise CrmError("SOQL paging: the next chunk does not advance: cannot page")


def chunked(
    client: CrmClient, path: str, build: Callable[[Key | None], str], chunk: int = CHUNK
) -> Chunked:
    """``build(after)`` is the SOQL of the chunk after ``after`` (None: the first)."""
    return Chunked(lambda after: Query(client, path, build(after)), chunk)
