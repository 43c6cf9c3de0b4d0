"""Sandbox Pipedrive's paging: v2 keyset cursors (base64 JSON of the last row's sort value and
id, as Pipedrive's) and v1 ``start``/``limit`` offsets, each capped at the app's page size."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from fastapi import Request

MAX_LIMIT: Final = 500


class BadRequest(Exception):
    pass


def _limit(request: Request, page_size: int) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return min(100, page_size)
    try:
        value = int(raw)
    except ValueError as exc:
        raise BadRequest(f"limit must be an integer, not {raw!r}") from exc
    if not 1 <= value <= MAX_LIMIT:
        raise BadRequest(f"limit must be within 1..{MAX_LIMIT}")
    return min(value, page_size)


def since_param(raw: str | None, name: str) -> pd.Timestamp | None:
    if not raw:
        return None
    try:
        stamp = pd.Timestamp(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} is not a valid time: {raw!r}") from exc
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _encode(field: str, value: Any, last_id: int) -> str:
    token = {"field": field, "fieldValue": value, "sortDirection": "asc", "id": last_id}
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")


def _decode(cursor: str) -> dict[str, Any]:
    try:
        token = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("invalid cursor") from exc
    if not isinstance(token, dict) or not {"field", "fieldValue", "id"} <= token.keys():
        raise BadRequest("invalid cursor")
    return token


@dataclass(frozen=True)
class Order:
    """A frame's rows sorted by (key, id): pages are then binary searches and a slice.

    Sorting and filtering the whole frame for every page made a full read quadratic (the
    sandbox, not the client, was the bottleneck of a 1M-record sync).
    """

    positions: npt.NDArray[np.int64]  # row positions, in sort order
    keys: npt.NDArray[np.int64]  # the sort key in that order (epoch ns for times)
    ids: npt.NDArray[np.int64]

    @classmethod
    def of(cls, frame: pd.DataFrame, key: str) -> Order:
        keys = _int64(frame[key])
        ids = _int64(frame["id"])
        order = np.lexsort((ids, keys))
        return cls(order.astype(np.int64), keys[order], ids[order])

    def after(self, value: int, last_id: int) -> int:
        """The first position past (value, last_id)."""
        lo = int(np.searchsorted(self.keys, value, side="left"))
        hi = int(np.searchsorted(self.keys, value, side="right"))
        return lo + int(np.searchsorted(self.ids[lo:hi], last_id, side="right"))


def _int64(values: pd.Series) -> npt.NDArray[np.int64]:
    if isinstance(values.dtype, pd.DatetimeTZDtype) or values.dtype.kind == "M":
        stamps = pd.to_datetime(values, utc=True)
        # NaT (no update time) sorts last, as pandas' sort_values puts it.
        out = stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64)
        out[stamps.isna().to_numpy()] = np.iinfo(np.int64).max
        return out
    return values.to_numpy(dtype=np.int64)


def _ns(stamp: pd.Timestamp) -> int:
    return int(stamp.value)


def v2_page(
    frame: pd.DataFrame,
    request: Request,
    page_size: int,
    orders: Callable[[str], Order] | None = None,
) -> tuple[pd.DataFrame, str | None]:
    """Filter by ``updated_since``, order by (``sort_by``, id), resume after ``cursor``.

    ``frame`` carries ``id`` (int) and, for records with an update time, ``modified_at``.
    ``orders`` (the frame's cached ``Order`` per sort column) makes a page cost a binary
    search instead of a sort of the whole frame.
    """
    q = request.query_params
    timed = "modified_at" in frame.columns
    since = since_param(q.get("updated_since"), "updated_since")
    sort_by = q.get("sort_by", "id")
    if sort_by not in {"id", "update_time"} or q.get("sort_direction", "asc") != "asc":
        raise BadRequest("the sandbox sorts by id or update_time, ascending")
    if sort_by == "update_time" and not timed:
        raise BadRequest("this list cannot be sorted by update_time")
    key = "modified_at" if sort_by == "update_time" else "id"
    cursor = q.get("cursor")
    token = _decode(cursor) if cursor else None
    if token is not None and token["field"] != sort_by:
        raise BadRequest("cursor belongs to another sort order")
    limit = _limit(request, page_size)
    if orders is not None and (since is None or not timed or key == "modified_at"):
        order = orders(key)
        start = 0
        if since is not None and timed:
            start = int(np.searchsorted(order.keys, _ns(since), side="left"))
        if token is not None:
            value = token["fieldValue"]
            marker_value = _ns(pd.Timestamp(value)) if key == "modified_at" else int(value)
            start = max(start, order.after(marker_value, int(token["id"])))
        chosen = order.positions[start : start + limit]
        page = frame.iloc[chosen]
        more = start + limit < order.positions.size
    else:
        if since is not None and timed:
            frame = frame[frame["modified_at"] >= since]
        frame = frame.sort_values([key, "id"], kind="stable")
        if token is not None:
            value = token["fieldValue"]
            value = pd.Timestamp(value) if key == "modified_at" else int(value)
            after = (frame[key] > value) | (
                (frame[key] == value) & (frame["id"] > int(token["id"]))
            )
            frame = frame[after]
        page = frame.head(limit)
        more = len(frame) > limit
    if not more or page.empty:
        return page, None
    last = page.iloc[-1]
    marker = last[key].isoformat() if key == "modified_at" else int(last[key])
    return page, _encode(sort_by, marker, int(last["id"]))


def v1_page(
    frame: pd.DataFrame, request: Request, page_size: int
) -> tuple[pd.DataFrame, dict[str, Any]]:
    q = request.query_params
    try:
        start = int(q.get("start", "0"))
    except ValueError as exc:
        raise BadRequest("start must be an integer") from exc
    limit = _limit(request, page_size)
    page = frame.iloc[max(0, start) : max(0, start) + limit]
    more = len(frame) > start + limit
    pagination: dict[str, Any] = {"start": start, "limit": limit, "more_items_in_collection": more}
    if more:
        pagination["next_start"] = start + limit
    return page, pagination
