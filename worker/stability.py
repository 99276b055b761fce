"""When to stop annotating: prediction stability between consecutive models (Bloodgood & Vijay-Shanker 2009).

A fixed *stop set* — a seeded sample of records nobody had reviewed when it was drawn — is predicted by
every promoted model. Cohen's κ between the labels two consecutive models predict on it says how much
the last round of annotation changed the model. When the mean κ of the last ``window`` promotions is at
least ``threshold`` (0.99 in the paper, window 3), more annotation is unlikely to change the model: the
signal goes to ``status`` and ``/metrics`` for the team lead (annotators never see it).

Cost: the stop set is drawn once (one streamed pass over the dataset, memory O(size)); each promotion
predicts ``size`` records once (deterministic pass).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.metrics import cohen_kappa_score

from worker.files import KeyedJsonFile, read_json, write_json_atomic
from worker.iterables import reservoir_sample
from worker.records import PulledRecord, consensus

PREDICTIONS_FILE = "stop_set_predictions.json"


@dataclass(frozen=True)
class StopSet:
    """The records every promoted model predicts: ids [n], texts [n], second texts [n] or None."""

    ids: tuple[str, ...]
    texts: tuple[str, ...]
    pairs: tuple[str, ...] | None = None


def draw_stop_set(records: Iterable[PulledRecord], size: int, seed: int = 0) -> StopSet:
    """A seeded uniform sample of at most ``size`` unreviewed records with a text (one pass, memory O(size))."""
    candidates = (r for r in records if r.has_text and consensus(r) is None)
    sample, _ = reservoir_sample(candidates, size, random.Random(seed))
    pairs = tuple(r.text_pair or "" for r in sample) if sample and sample[0].text_pair is not None else None
    return StopSet(tuple(r.record_id for r in sample), tuple(str(r.text) for r in sample), pairs)


class StopSetStore:
    """The stop set of each dataset, drawn once and kept in ``state_dir`` (``stop_sets.json``)."""

    def __init__(self, path: Path):
        self.file = KeyedJsonFile(path)

    def get(self, key: str) -> StopSet | None:
        entry = self.file.get(key)
        if not entry:
            return None
        pairs = entry.get("pairs")
        return StopSet(tuple(entry["ids"]), tuple(entry["texts"]), tuple(pairs) if pairs is not None else None)

    def put(self, key: str, stop_set: StopSet) -> None:
        self.file.put(key, {"ids": list(stop_set.ids), "texts": list(stop_set.texts),
                            "pairs": list(stop_set.pairs) if stop_set.pairs is not None else None})

    def forget(self, key: str) -> None:
        """Drop the stop set of ``key`` (its dataset is gone: the next model draws one from the new records)."""
        self.file.delete(key)


def agreement(previous: Sequence[str], current: Sequence[str]) -> float:
    """Cohen's κ between two models' predicted labels [n] on the same records (1.0 when both are constant
    and equal, where κ is undefined)."""
    if len(previous) != len(current):
        raise ValueError(f"the predictions cover {len(previous)} and {len(current)} records")
    if len(set(previous) | set(current)) == 1:
        return 1.0
    return float(cohen_kappa_score(list(previous), list(current)))


def stopping_signal(kappas: Sequence[float], *, threshold: float = 0.99, window: int = 3) -> bool:
    """Whether the mean of the last ``window`` κ values (oldest first) reaches ``threshold``; False with fewer."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    return len(kappas) >= window and float(np.mean(kappas[-window:])) >= threshold


def save_predictions(model_dir: Path, stop_set: StopSet, labels: Sequence[str]) -> None:
    write_json_atomic(model_dir / PREDICTIONS_FILE, dict(zip(stop_set.ids, labels, strict=True)))


def load_predictions(model_dir: Path) -> dict[str, str] | None:
    return read_json(model_dir / PREDICTIONS_FILE)
