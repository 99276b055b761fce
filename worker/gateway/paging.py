"""Keyset paging over Argilla's record search: a cursor on ``(inserted_at, id)`` instead of an offset.

Offset paging costs O(N²) index work over a full pass (each page skips every record before it) and ends
at the search index's ``max_result_window`` (500,000 records on an Argilla deployment). A cursor does
neither: each page asks for the records at or after the last one read, so a full pass is O(N) and has
no ceiling. Records inserted during a pass have later ``inserted_at`` values and are read at its end;
records deleted during a pass are simply not returned; none is read twice.

The search endpoint has no strict "greater than" filter, so the cursor's own instant is asked again and
the records already read at it are dropped here. Records inserted in the same microsecond (a tie) are
ordered by id; when a tie outnumbers a page, that instant is paged by id alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

INSERTED_AT = {"entity": "record", "property": "inserted_at"}
RECORD_ID = {"entity": "record", "property": "id"}
KEYSET_ORDER = [{"scope": INSERTED_AT, "order": "asc"}, {"scope": RECORD_ID, "order": "asc"}]
ID_ORDER = [{"scope": RECORD_ID, "order": "asc"}]
ONE_TICK = timedelta(microseconds=1)  # the database's time resolution: the next instant after a cursor

# search(conditions, sort, limit) -> the first `limit` raw records matching every condition, in `sort` order
Search = Callable[[list[dict], list[dict], int], list[dict]]


def keyset_pages(search: Search, conditions: list[dict], page_size: int,
                 after: tuple[datetime, str] | None = None) -> Iterator[list[dict]]:
    """Pages (lists of raw server records) of every record matching ``conditions``, each record once, in
    ``(inserted_at, id)`` order; with ``after`` (a record's :func:`position`), only the records after it (a pass that
    goes on where an earlier one stopped). One search request per page (plus one per tie larger than a page); each
    asks for one record more than a page, as the cursor's own record comes back first.

    Time O(N) over the pass; memory O(page_size).
    """
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    cursor = after
    while True:
        from_cursor = [] if cursor is None else [_range(INSERTED_AT, ge=cursor[0])]
        limit = page_size if cursor is None else page_size + 1
        items = search(conditions + from_cursor, KEYSET_ORDER, limit)
        fresh = [item for item in items if cursor is None or position(item) > cursor]
        if fresh:
            yield fresh
            cursor = position(fresh[-1])
        elif len(items) == limit:  # a full page, all at the cursor's instant and already read: a tie
            assert cursor is not None
            yield from _tie_pages(search, conditions, cursor, page_size)
            cursor = (cursor[0] + ONE_TICK, "")
            continue
        if len(items) < limit:
            return


def _tie_pages(search: Search, conditions: list[dict], cursor: tuple[datetime, str],
               page_size: int) -> Iterator[list[dict]]:
    """The records inserted at the cursor's instant after the cursor's id, by id (one more than a page is
    asked for: the cursor's own record comes back first)."""
    instant, last_id = cursor
    same_instant = _range(INSERTED_AT, ge=instant, le=instant)
    while True:
        items = search(conditions + [same_instant, _range(RECORD_ID, ge=last_id)], ID_ORDER, page_size + 1)
        fresh = [item for item in items if str(item["id"]) > last_id]
        if fresh:
            yield fresh
            last_id = str(fresh[-1]["id"])
        if len(items) < page_size + 1 or not fresh:
            return


def position(item: dict) -> tuple[datetime, str]:
    """A raw server record's place in the keyset order: (inserted_at, id)."""
    return datetime.fromisoformat(item["inserted_at"]), str(item["id"])



def _range(scope: dict, *, ge: datetime | str, le: datetime | str | None = None) -> dict:
    bound = {"type": "range", "scope": scope, "ge": _value(ge)}
    return bound if le is None else {**bound, "le": _value(le)}


def _value(value: datetime | str) -> str:
    return value.isoformat() if isinstance(value, datetime) else value
