"""A stop request (what SIGTERM / Ctrl-C sets) that arrives at a set point of a job, without a timing-dependent
signal: the job reads its stop event once a step, batch, page or record."""

from __future__ import annotations

import threading


class SetAfterLooks(threading.Event):
    """Reads as set from its ``looks + 1``-th look on (or once ``set()``); ``looked`` counts the looks."""

    def __init__(self, looks: int) -> None:
        super().__init__()
        self.looks, self.looked = looks, 0

    def is_set(self) -> bool:
        self.looked += 1
        return self.looked > self.looks or super().is_set()
