"""The sync engine's reader thread and page coalescing: storing the waiting pages together must
end in the same state as storing them one by one."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from app.pipeline.prefetch import Prefetch, coalesce
from connectors.base import Page, Reject


def _page(cursor: str | None, *records: tuple[str, int], rejects: tuple[str, ...] = ()) -> Page:
    return Page(
        records=[{"external_id": ext, "amount": amount} for ext, amount in records],
        rejects=[Reject(ext, "bad amount", {"id": ext}) for ext in rejects],
        cursor=cursor,
        fetched=len(records) + len(rejects),
    )


def test_coalesced_pages_keep_the_latest_version_and_the_highest_cursor() -> None:
    merged = coalesce(
        [
            _page(None, ("d9", 1)),  # an archived listing: no cursor
            _page("2026-11-01T10:00:00.500Z", ("d1", 1), ("d2", 1)),
            _page("2026-11-01T10:00:00Z", ("d1", 2), ("d3", 1)),
        ]
    )
    assert {r["external_id"]: r["amount"] for r in merged.records} == {
        "d9": 1,
        "d1": 2,
        "d2": 1,
        "d3": 1,
    }
    assert len(merged.records) == 4
    # compared as times, not text
    assert merged.cursor == "2026-11-01T10:00:00.500000Z"
    assert merged.fetched == 5


def test_a_reject_fixed_by_a_later_page_is_not_quarantined() -> None:
    merged = coalesce(
        [
            _page("2026-11-01T10:00:00Z", ("d1", 1), rejects=("d2", "d3")),
            _page("2026-11-01T11:00:00Z", ("d2", 5)),
        ]
    )
    assert [r.external_id for r in merged.rejects] == ["d3"]
    assert {r["external_id"] for r in merged.records} == {"d1", "d2"}


def test_a_record_rejected_by_a_later_page_stays_stored_and_quarantined() -> None:
    # One page at a time: stored by the first, quarantined by the second. Same when coalesced.
    merged = coalesce(
        [
            _page("2026-11-01T10:00:00Z", ("d1", 1)),
            _page("2026-11-01T11:00:00Z", rejects=("d1",)),
        ]
    )
    assert [r["external_id"] for r in merged.records] == ["d1"]
    assert [r.external_id for r in merged.rejects] == ["d1"]


def _pages(n: int, size: int, fail_at: int | None = None) -> Iterator[Page]:
    for i in range(n):
        if i == fail_at:
            raise ConnectionError("killed mid-sync")
        yield _page(f"2026-11-01T10:00:{i:02d}Z", *((f"d{i}-{j}", j) for j in range(size)))


def test_prefetched_pages_arrive_in_order_and_batch_within_the_limit() -> None:
    reader = Prefetch(_pages(20, 3), budget=9)
    try:
        batches = list(reader.batches(6))
    finally:
        reader.close()
    pages = [p for b in batches for p in b]
    assert [p.cursor for p in pages] == [f"2026-11-01T10:00:{i:02d}Z" for i in range(20)]
    assert all(sum(len(p.records) for p in b) <= 6 for b in batches)


def test_a_reader_error_comes_after_the_pages_read_before_it() -> None:
    reader = Prefetch(_pages(5, 2, fail_at=3), budget=100)
    got: list[Page] = []
    try:
        with pytest.raises(ConnectionError, match="killed mid-sync"):
            for batch in reader.batches(1000):
                got.extend(batch)
    finally:
        reader.close()
    assert len(got) == 3


def test_the_reader_stays_within_its_budget() -> None:
    produced: list[int] = []
    consumed = threading.Event()

    def pages() -> Iterator[Page]:
        for page_no, page in enumerate(_pages(50, 10)):
            produced.append(page_no)
            yield page

    reader = Prefetch(pages(), budget=30)
    try:
        batches = reader.batches(10)
        first = next(batches)
        consumed.wait(0.3)  # give the reader time to run ahead as far as it may
        # 3 pages of 10 fit the budget; the reader may hold one more page in hand, unqueued.
        assert len(first) == 1 and len(produced) <= 5
        rest = [p for b in batches for p in b]
    finally:
        reader.close()
    assert len(rest) == 49


def test_closing_stops_a_reader_that_the_writer_abandoned() -> None:
    reader = Prefetch(_pages(1000, 10), budget=20)
    next(reader.batches(10))
    reader.close()
    assert not reader._thread.is_alive()
