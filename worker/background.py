"""One background stage of a pipeline: the next batch is scored while the previous one is pushed."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
_DONE = object()


class BackgroundStage(Generic[Item]):
    """Calls ``handle(item)`` for each item put, in order, on one background thread.

    At most ``depth`` items wait (``put`` blocks beyond that): memory O(depth × item). The first exception
    ``handle`` raises stops the stage: the items still waiting are dropped (not handled) and the next
    ``put`` — or the end of the ``with`` block — raises it in the caller's thread. Leaving the ``with``
    block waits until every item put before is handled, also when the block ends with an exception (what
    was handed over is finished; the block's own exception then propagates).
    """

    def __init__(self, handle: Callable[[Item], None], *, depth: int = 2, name: str = "background-stage"):
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self._handle = handle
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._failed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.blocked_seconds = 0.0  # the caller's time in put() with the queue full, and waiting at the end

    def __enter__(self) -> BackgroundStage[Item]:
        self._thread.start()
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self._finish()
        if kind is None and self._error is not None:
            raise self._error

    def put(self, item: Item) -> None:
        """Hand ``item`` over; raises the stage's error if it stopped (``item`` is then not handled)."""
        started = time.perf_counter()
        try:
            self._put(item)
        finally:
            self.blocked_seconds += time.perf_counter() - started

    def _put(self, item: Item) -> None:
        while True:
            if self._failed.is_set():
                raise self._error  # type: ignore[misc]
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _finish(self) -> None:
        started = time.perf_counter()
        try:
            self._join()
        finally:
            self.blocked_seconds += time.perf_counter() - started

    def _join(self) -> None:
        while self._thread.is_alive():
            try:
                self._queue.put(_DONE, timeout=0.1)
                break
            except queue.Full:
                continue
        self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._failed.is_set():
                continue  # drop what waits after a failure
            try:
                self._handle(item)
            except BaseException as error:  # noqa: BLE001 - handed to the caller's thread, raised there
                self._error = error
                self._failed.set()
