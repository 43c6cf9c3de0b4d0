"""The sync's reader thread and its batches: pages fetched ahead of the writer, stored together.

A sync mostly waits, on the CRM for the next page and on the database to write the last one.
:class:`Prefetch` therefore fetches and maps pages in a thread, within a bounded number of
records, and the writer stores consecutive pages together (:func:`coalesce`): fewer, larger
transactions than the CRM's page size allows, with the same all-or-nothing guarantee, since
the cursor stored is the last page's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from connectors.base import Page, Reject, iso, parse_datetime


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetch:
    """A stream's pages read in a thread, at most ``budget`` records ahead of the writer.

    The pages keep their order; an error of the reader reaches the writer after the pages read
    before it, exactly where a plain loop over the pages would have raised it.
    """

    def __init__(self, pages: Iterator[Page], budget: int) -> None:
        self._budget = budget
        self._items: list[Page | _Failed | None] = []  # None: the stream ended
        self._held = 0  # records in self._items
        self._stop = False
        self._ready = threading.Condition()
        self._thread = threading.Thread(
            target=self._read, args=(pages,), name="sync-reader", daemon=True
        )
        self._thread.start()

    def _read(self, pages: Iterator[Page]) -> None:
        item: Page | _Failed | None
        try:
            for page in pages:
                if not self._put(page, len(page.records) + len(page.rejects)):
                    return
            item = None
        except BaseException as exc:  # handed to the writer, which raises it
            item = _Failed(exc)
        self._put(item, 0)

    def _put(self, item: Page | _Failed | None, size: int) -> bool:
        with self._ready:
            # One page always fits, however large: a stream must be able to progress.
            while self._items and self._held + size > self._budget and not self._stop:
                self._ready.wait()
            if self._stop:
                return False
            self._items.append(item)
            self._held += size
            self._ready.notify_all()
            return True

    def batches(self, limit: int) -> Iterator[list[Page]]:
        """Consecutive pages of about ``limit`` records (fewer at the end of the stream or
        before an error; a single page may be more).

        The writer waits for a full batch rather than storing whatever is ready: the reader
        goes on meanwhile, so waiting costs nothing, while small transactions would cost the
        writer more per record exactly when it is behind.
        """
        while True:
            batch: list[Page] = []
            size = 0
            failed: _Failed | None = None
            ended = full = False
            with self._ready:
                while not (ended or full or failed):
                    while not self._items:
                        self._ready.wait()
                    while self._items:
                        head = self._items[0]
                        if isinstance(head, Page):
                            n = len(head.records) + len(head.rejects)
                            if batch and size + n > limit:
                                full = True
                                break
                            batch.append(head)
                            size += n
                            self._held -= n
                        elif head is None:
                            ended = True
                        else:
                            failed = head
                        self._items.pop(0)
                        if ended or failed:
                            break
                    full = full or size >= limit
                    self._ready.notify_all()
            if batch:
                yield batch
            if failed is not None:
                raise failed.error
            if ended:
                return

    def close(self) -> None:
        with self._ready:
            self._stop = True
            self._ready.notify_all()
        # A reader inside a request finishes it (or times out) on its own; not waited for.
        self._thread.join(timeout=1.0)


def coalesce(batch: list[Page]) -> Page:
    """Consecutive pages of one stream as one page that stores the same end state.

    A record repeated in a later page (changed while paging, or re-read at a boundary) is stored
    as its latest version only, and an earlier page's reject of a record that a later page
    carries is dropped: processed one page at a time, the later page would have released it.
    """
    if len(batch) == 1:
        return batch[0]
    latest: dict[Any, dict[str, Any]] = {}
    rejects: list[Reject] = []
    deleted: list[str] = []
    cursors: list[datetime] = []
    fetched = 0
    for page in batch:
        for record in page.records:
            key = record.get("external_id")
            latest.pop(key, None)  # re-inserted: keeps the order of the latest versions
            latest[key] = record
        fresh = {r.get("external_id") for r in page.records}
        rejects = [r for r in rejects if r.external_id not in fresh]
        rejects.extend(page.rejects)
        deleted.extend(page.deleted)
        fetched += page.fetched
        if page.cursor is not None:
            stamp = parse_datetime(page.cursor, "cursor")
            assert stamp is not None
            cursors.append(stamp)
    return Page(
        records=list(latest.values()),
        rejects=rejects,
        cursor=iso(max(cursors)) if cursors else None,
        fetched=fetched,
        total=next((p.total for p in batch if p.total is not None), None),
        deleted=deleted,
    )
