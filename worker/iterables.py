"""Small iterator helpers shared by the gateway and the jobs (Python 3.11 has no ``itertools.batched``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter); lazy: memory O(size)."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
