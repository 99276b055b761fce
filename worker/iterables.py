"""Small iterator and seeded-sampling helpers shared by the gateway, the jobs, training and publishing
(Python 3.11 has no ``itertools.batched``)."""

from __future__ import annotations

import hashlib
import heapq
import random
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K")


def most_common(counts: Mapping[K, int], n: int | None = None) -> list[tuple[K, int]]:
    """``Counter.most_common`` with ties in the keys' order, not in the order they were first counted: what a
    message lists reads the same whatever order the records came in."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
    return ranked if n is None else ranked[:n]


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter); lazy: memory O(size)."""
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def timed(items: Iterable[T], waited: Callable[[float], None]) -> Iterator[T]:
    """``items``, each wait for the next one (in seconds) handed to ``waited`` — where a pipeline's consumer waits
    for its producer; two clock reads an item. Closing it closes ``items``."""
    iterator = iter(items)
    try:
        while True:
            started = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                return
            finally:
                waited(time.perf_counter() - started)
            yield item
    finally:  # closed early: so is the producer (a generator's cleanup runs now, not when it is collected)
        close = getattr(iterator, "close", None)
        if close is not None:
            close()


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


class KeyedSample(Generic[T]):
    """A seeded sample of at most ``size`` items from a stream of unknown length, chosen by a hash of each item's
    key and the seed (bottom-k): the same keys give the same sample in any order, and a stream that changed a
    little gives nearly the same sample (an item enters or leaves only by its own hash). Besides, each stratum an
    item names keeps its ``floor`` lowest-hash items however large the stream: a rare label is not sampled away.
    One pass; memory O(size + strata × floor) items; O(log size) per item."""

    def __init__(self, size: int, *, seed: int = 0, floor: int = 0) -> None:
        if size < 1:
            raise ValueError(f"sample size must be at least 1, got {size}")
        self.size, self.seed, self.floor = size, seed, floor
        self.seen = 0
        # max-heaps by hash (negated; then the key and the arrival, so items are never compared)
        self._kept: list[tuple[int, str, int, T]] = []  # the `size` lowest hashes
        self._per_stratum: dict[Hashable, list[tuple[int, str, int, T]]] = defaultdict(list)

    def add(self, key: str, item: T, strata: Iterable[Hashable] = ()) -> None:
        """Offer ``item``; ``key`` must be unique in the stream (a record id)."""
        self.seen += 1
        entry = (-self._hash(key), key, self.seen, item)
        _keep_lowest(self._kept, entry, self.size)
        if self.floor:
            for stratum in strata:
                _keep_lowest(self._per_stratum[stratum], entry, self.floor)

    def items(self) -> list[T]:
        """The sampled items, by key."""
        chosen = {key: item for heap in (self._kept, *self._per_stratum.values()) for _, key, _, item in heap}
        return [chosen[key] for key in sorted(chosen)]

    def _hash(self, key: str) -> int:
        return int.from_bytes(hashlib.blake2b(f"{self.seed}\0{key}".encode(), digest_size=8).digest(), "big")


def _keep_lowest(heap: list, entry: tuple, size: int) -> None:
    """Push ``entry`` (negated hash first) into the max-heap ``heap`` of at most ``size`` lowest hashes."""
    if len(heap) < size:
        heapq.heappush(heap, entry)
    elif entry[:2] > heap[0][:2]:
        heapq.heapreplace(heap, entry)


def shuffled_label_groups(labels: Sequence[Hashable], rng: random.Random) -> list[list[int]]:
    """Positions into ``labels`` [N] grouped by label — groups in sorted label order, each shuffled by ``rng``
    in that order: the seeded core of every stratified split (validation, folds, publishing's test split)."""
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for position, label in enumerate(labels):
        groups[label].append(position)
    ordered = [groups[label] for label in sorted(groups)]  # type: ignore[type-var]
    for group in ordered:
        rng.shuffle(group)
    return ordered


def shuffled_label_clusters(labels: Sequence[Hashable], keys: Sequence[Hashable],
                            rng: random.Random) -> list[list[list[int]]]:
    """Positions into ``labels`` [N] in clusters of equal ``keys`` [N], the clusters grouped by stratum as
    :func:`shuffled_label_groups` groups positions — a cluster's stratum is its first position's label — so a
    split that takes or leaves whole clusters never puts two positions of one key on both sides. With every key
    distinct each cluster is one position, in exactly :func:`shuffled_label_groups`' order. O(N)."""
    members: dict[Hashable, list[int]] = {}
    for position, key in enumerate(keys):
        members.setdefault(key, []).append(position)
    clusters = list(members.values())  # in order of first occurrence
    return [[clusters[index] for index in group]
            for group in shuffled_label_groups([labels[cluster[0]] for cluster in clusters], rng)]


def hashed_label_clusters(labels: Sequence[Hashable], keys: Sequence[str], seed: int) -> list[list[list[int]]]:
    """Positions into ``labels`` [N] in clusters of equal ``keys`` [N], grouped by stratum as
    :func:`shuffled_label_clusters` groups them, each stratum's clusters ordered by a seeded hash of their key
    instead of a shuffle of the whole set. A cluster's place among the others depends on its key alone, so a split
    that holds the first clusters of each stratum keeps its sides as the set grows: a record joins the held side
    only when too few of the newcomers hash below it, and leaves it only when enough of them do (a retrain on more
    annotations validates mostly the records the last one validated, and trains on those it trained on). O(N log N)."""
    members: dict[str, list[int]] = {}
    for position, key in enumerate(keys):
        members.setdefault(key, []).append(position)
    by_stratum: dict[Hashable, list[tuple[int, list[int]]]] = defaultdict(list)
    for cluster_key, cluster in members.items():
        rank = int.from_bytes(hashlib.blake2b(f"{seed}\0{cluster_key}".encode(), digest_size=8).digest(), "big")
        by_stratum[labels[cluster[0]]].append((rank, cluster))
    return [[cluster for _, cluster in sorted(by_stratum[stratum], key=lambda ranked: ranked[0])]
            for stratum in sorted(by_stratum)]  # type: ignore[type-var]


def take_clusters(clusters: Sequence[list[int]], target: int) -> tuple[list[int], list[int]]:
    """(held, kept): whole ``clusters``, in their order, held until at least ``target`` positions are, with two
    limits. The kept side of a stratum is never left empty by a split (the last cluster is held only when another
    was kept). A cluster that would take the held side past 1.5 × ``target`` (one text copied hundreds of times, a
    template's near copies) is kept while others can fill it; when every cluster is that large, the smallest one is
    held."""
    held: list[int] = []
    kept: list[list[int]] = []
    ceiling = max(target + 1, target * 3 // 2)
    for position, cluster in enumerate(clusters):
        room = len(held) < target and len(held) + len(cluster) <= ceiling
        if room and (kept or position < len(clusters) - 1):
            held.extend(cluster)
        else:
            kept.append(cluster)
    if target > 0 and not held and len(kept) > 1:
        held = kept.pop(min(range(len(kept)), key=lambda index: len(kept[index])))
    return held, [position for cluster in kept for position in cluster]
