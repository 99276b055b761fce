"""Keyset paging (worker.gateway.paging) against an in-memory index that answers range filters and sorts the
way Argilla's search endpoint does. The real server is paged in tests/integration/test_gateway_sync.py; here
the index can hold what a live server rarely produces on demand: many records inserted in the same
microsecond, inserts and deletions between two pages."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from worker.gateway.paging import keyset_pages, position

T0 = datetime(2026, 1, 1, 12, 0, 0)


class MemoryIndex:
    """Records as the server returns them; ``search`` applies range filters on record properties."""

    def __init__(self):
        self.records: list[dict] = []
        self.requests = 0

    def insert(self, at: datetime, record_id: str) -> None:
        self.records.append({"id": record_id, "inserted_at": at.isoformat()})

    def search(self, conditions: list[dict], sort: list[dict], limit: int) -> list[dict]:
        self.requests += 1
        found = [r for r in self.records if all(_matches(r, c) for c in conditions)]
        keys = [order["scope"]["property"] for order in sort]
        found.sort(key=lambda r: tuple(_value(r, key) for key in keys))
        return found[:limit]


def _value(record: dict, key: str):
    return datetime.fromisoformat(record[key]) if key == "inserted_at" else record[key]


def _matches(record: dict, condition: dict) -> bool:
    if condition["type"] != "range":
        return record.get("kind") in condition["values"]
    key = condition["scope"]["property"]
    value = _value(record, key)
    parse = datetime.fromisoformat if key == "inserted_at" else str
    return ((condition.get("ge") is None or value >= parse(condition["ge"]))
            and (condition.get("le") is None or value <= parse(condition["le"])))


def _ids(pages) -> list[str]:
    return [record["id"] for page in pages for record in page]


def _index(count: int, *, same_instant_every: int = 1, seed: int = 0) -> MemoryIndex:
    """``count`` records with random ids; ``same_instant_every`` consecutive records share an instant."""
    rng = random.Random(seed)
    index = MemoryIndex()
    for i in range(count):
        index.insert(T0 + timedelta(microseconds=i // same_instant_every), f"{rng.getrandbits(64):016x}")
    return index


@pytest.mark.parametrize("page_size", [1, 2, 7, 100])
@pytest.mark.parametrize("same_instant_every", [1, 3, 25])
def test_every_record_is_read_once_whatever_the_ties(page_size, same_instant_every):
    index = _index(60, same_instant_every=same_instant_every)
    read = _ids(keyset_pages(index.search, [], page_size))
    assert sorted(read) == sorted(r["id"] for r in index.records)
    assert len(read) == len(set(read))


@pytest.mark.parametrize("same_instant_every", [1, 25])
@pytest.mark.parametrize("stopped_after", [1, 9, 24, 40, 59])
def test_a_pass_resumed_after_its_last_record_read_reads_the_rest_once(same_instant_every, stopped_after):
    """A full score run stopped anywhere (inside a tie larger than a page too) goes on from the last record it
    handled: ``after`` = that record's position."""
    index = _index(60, same_instant_every=same_instant_every)
    everything = _ids(keyset_pages(index.search, [], 7))
    by_id = {r["id"]: r for r in index.records}
    rest = _ids(keyset_pages(index.search, [], 7, after=position(by_id[everything[stopped_after - 1]])))
    assert rest == everything[stopped_after:]
    assert _ids(keyset_pages(index.search, [], 7, after=position(by_id[everything[-1]]))) == []


def test_a_full_pass_costs_one_request_per_page_without_ties():
    index = _index(1000)
    pages = list(keyset_pages(index.search, [], 100))
    assert [len(page) for page in pages] == [100] * 10
    assert index.requests == 11  # ten pages and the empty answer that ends the pass


def test_records_inserted_or_deleted_during_a_pass():
    """Inserted during the pass: read at its end; deleted before their page: not read; nothing twice."""
    index = _index(50)
    pages = keyset_pages(index.search, [], 10)
    first = next(pages)
    late = T0 + timedelta(seconds=1)
    for i in range(15):
        index.insert(late + timedelta(microseconds=i), f"new-{i:02d}")
    deleted = index.records[30]
    index.records.remove(deleted)
    rest = _ids(pages)
    read = [r["id"] for r in first] + rest
    assert len(read) == len(set(read)) == 50 - 1 + 15
    assert deleted["id"] not in read
    assert read[-15:] == [f"new-{i:02d}" for i in range(15)]


def test_conditions_are_kept_on_every_page():
    index = _index(40, same_instant_every=8)
    for i, record in enumerate(index.records):
        record["kind"] = "annotated" if i % 3 == 0 else "plain"
    condition = {"type": "terms", "scope": {"entity": "response", "property": "status"}, "values": ["annotated"]}
    read = _ids(keyset_pages(index.search, [condition], 3))
    assert sorted(read) == sorted(r["id"] for i, r in enumerate(index.records) if i % 3 == 0)


def test_a_page_size_below_one_is_refused():
    with pytest.raises(ValueError, match="page_size"):
        list(keyset_pages(MemoryIndex().search, [], 0))
