"""The runner's queue: what the worker does next. The schedule and webhook events only put work here."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class JobKind(StrEnum):
    """What a work item does, most urgent first (the queue serves them in this order)."""

    RESCORE = "rescore"  # the records webhook events named
    RETRAIN = "retrain"
    MEASURE = "measure"  # the current model on the test set, after more of its records were answered: O(test set)
    FULL_SCORE = "full_score"  # every record, after the model changed (hours at 10^6: the test figures come first)
    COLD_START = "cold_start"  # rank a first batch to annotate: no model, no labels, the dataset never ranked
    SCORE = "score"  # incremental: what changed since the last run
    PUBLISH = "publish"
    COPIES = "copies"  # mark the records that carry the same text


PRIORITY = tuple(JobKind)


@dataclass
class WorkItem:
    kind: JobKind
    record_ids: set[str] | None = None  # server ids (a webhook's records); None: every record the job would consider
    not_before: float = 0.0
    attempts: int = 0


class WorkQueue:
    """At most one pending item per kind; a new request merges into it. Thread-safe."""

    def __init__(self):
        self._items: dict[JobKind, WorkItem] = {}
        self._changed = threading.Condition()

    def put(self, kind: JobKind | str, record_ids: Iterable[str] | None = None, *, delay: float = 0.0,
            attempts: int = 0) -> None:
        kind = JobKind(kind)
        with self._changed:
            due = time.monotonic() + delay
            item = self._items.get(kind)
            if item is None:
                self._items[kind] = WorkItem(kind, set(record_ids) if record_ids is not None else None, due, attempts)
            else:
                item.record_ids = None if item.record_ids is None or record_ids is None else (
                    item.record_ids | set(record_ids))
                item.not_before = max(item.not_before, due)
                item.attempts = max(item.attempts, attempts)
            self._changed.notify_all()

    def get(self, timeout: float) -> WorkItem | None:
        """The most urgent due item, waiting up to ``timeout`` seconds for one."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                now = time.monotonic()
                due = [self._items[k] for k in PRIORITY if k in self._items and self._items[k].not_before <= now]
                if due:
                    return self._items.pop(due[0].kind)
                if now >= deadline:
                    return None
                soonest = min((i.not_before for i in self._items.values()), default=deadline)
                self._changed.wait(max(0.01, min(deadline, soonest) - now))

    def waiting_before(self, kind: JobKind) -> bool:
        """Whether an item more urgent than ``kind`` is due (what a long run of ``kind`` may pause for)."""
        now = time.monotonic()
        urgent = PRIORITY[:PRIORITY.index(kind)]
        with self._changed:
            return any(k in self._items and self._items[k].not_before <= now for k in urgent)

    def depth(self) -> int:
        with self._changed:
            return len(self._items)

    def pending(self) -> list[str]:
        with self._changed:
            return sorted(str(kind) for kind in self._items)

    def drained(self) -> bool:
        """Nothing pending but retries waiting out a backoff (what a burst run stops at)."""
        with self._changed:
            return all(item.attempts > 0 for item in self._items.values())
