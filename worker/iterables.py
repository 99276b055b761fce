"""Small iterator helpers shared by the gateway and the jobs (Python 3.11 has no ``itertools.batched``)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter); lazy: memory O(size)."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def reservoir_sample(items: Iterable[T], size: int, rng: random.Random) -> tuple[list[T], int]:
    """A uniform random sample of at most ``size`` items of a stream of unknown length, in stream order,
    and the stream's length (Vitter's algorithm R: one pass, memory O(size)). Every item is kept when the
    stream has at most ``size`` of them."""
    kept: list[tuple[int, T]] = []
    seen = 0
    for seen, item in enumerate(items, start=1):
        if len(kept) < size:
            kept.append((seen, item))
        elif (slot := rng.randrange(seen)) < size:
            kept[slot] = (seen, item)
    return [item for _, item in sorted(kept, key=lambda pair: pair[0])], seen
