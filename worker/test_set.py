"""A test set: records drawn at random from those nobody had reviewed, to measure a model without the bias of
the records the worker puts first.

The validation records are annotated records, and annotators review the records the worker puts first — the
cold start's typical ones, then the most uncertain, the highest loss. Those are harder than the data at large:
on a forum dataset (3,000 newsgroups posts) a first model read 0.32 accuracy on its validation records and 0.58
on 600 posts nobody had picked. A test set is a seeded uniform sample of the records nobody had reviewed when it
was drawn; the worker marks them with the metadata property ``test_set_rank`` (1 … n, in a random order) so
annotators can filter them in the UI, never trains a model on them (nor on another record carrying the same
text), and once some are reviewed each training and ``argilla-worker test-set`` measure the model on them:
accuracy with a 95 % Wilson interval, macro-F1. That figure estimates the model's accuracy on the records it
makes suggestions for.

Cost: the draw is one streamed pass (memory O(size)); a measure predicts the reviewed test records once
(deterministic pass).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from worker.constants import TEST_SET_PROPERTY
from worker.duplicates import text_key
from worker.errors import DataError
from worker.files import KeyedJsonFile
from worker.iterables import reservoir_sample
from worker.records import PulledRecord, label_index

if TYPE_CHECKING:  # the ML stack loads when a model is measured, not when the settings' stores are read
    from worker.scoring.model import Classifier
    from worker.training.data import Example

logger = logging.getLogger(__name__)

INTERVAL_Z = 1.959964  # the normal quantile of a two-sided 95 % interval


@dataclass(frozen=True)
class TestSet:
    """The records drawn for testing, in rank order: external ids [n], server ids [n], text keys [n]
    (:func:`~worker.duplicates.text_key`: a copy of one of these texts is not trained on either)."""

    __test__ = False  # a name pytest would otherwise try to collect

    ids: tuple[str, ...]
    server_ids: tuple[str, ...]
    keys: tuple[str, ...]
    drawn_from: int  # records nobody had reviewed when it was drawn
    drawn_at: str  # ISO 8601, UTC

    def ranks(self) -> dict[str, int]:
        """External id → rank (1 for the first)."""
        return {record_id: rank for rank, record_id in enumerate(self.ids, start=1)}


def draw_test_set(records: Iterable[PulledRecord], size: int, seed: int = 0) -> TestSet:
    """A seeded uniform sample of at most ``size`` records with a text and no response at all (nobody has
    reviewed or started to), in a random rank order. One pass, memory O(size).

    Raises:
        ValueError: ``size`` is below 1.
    """
    if size < 1:
        raise ValueError(f"a test set needs at least 1 record, got {size}")
    rng = random.Random(seed)
    candidates = (record for record in records if record.has_text and not record.responses)
    sample, seen = reservoir_sample(candidates, size, rng)
    rng.shuffle(sample)
    return TestSet(tuple(r.record_id for r in sample), tuple(r.server_id for r in sample),
                   tuple(text_key(str(r.text), r.text_pair) for r in sample), seen,
                   datetime.now(UTC).isoformat(timespec="seconds"))


class TestSetStore:
    """The test set of each dataset, drawn once and kept in ``state_dir`` (``test_sets.json``)."""

    __test__ = False  # a name pytest would otherwise try to collect

    def __init__(self, path: Path):
        self.file = KeyedJsonFile(path)

    def get(self, key: str) -> TestSet | None:
        entry = self.file.get(key)
        if not entry:
            return None
        return TestSet(tuple(entry["ids"]), tuple(entry["server_ids"]), tuple(entry["keys"]), entry["drawn_from"],
                       entry["drawn_at"])

    def put(self, key: str, test_set: TestSet) -> None:
        self.file.put(key, {"ids": list(test_set.ids), "server_ids": list(test_set.server_ids),
                            "keys": list(test_set.keys), "drawn_from": test_set.drawn_from,
                            "drawn_at": test_set.drawn_at})

    def forget(self, key: str) -> None:
        """Drop the test set of ``key`` (its dataset is gone)."""
        self.file.delete(key)


class TestSetFilter:
    """Keeps a test set's records, and other records carrying one of its texts, out of a training stream.

    A record is a test record when its id is in the stored test set or it carries ``test_set_rank`` (the
    dataset's own word: a lost state directory does not let a model train on the test set). :meth:`without`
    passes the other records on and keeps the test records (O(test set) memory); a record whose text is a test
    record's, but which is not one, is dropped and counted (it would let the model learn the answer)."""

    __test__ = False  # a name pytest would otherwise try to collect

    def __init__(self, test_set: TestSet | None) -> None:
        self.ids = frozenset(test_set.ids) if test_set is not None else frozenset()
        self.keys = frozenset(test_set.keys) if test_set is not None else frozenset()
        self.held: list[PulledRecord] = []
        self.copies_dropped = 0

    def without(self, records: Iterable[PulledRecord]) -> Iterator[PulledRecord]:
        for record in records:
            if record.record_id in self.ids or record.metadata.get(TEST_SET_PROPERTY) is not None:
                self.held.append(record)
            elif self.keys and record.has_text and text_key(str(record.text), record.text_pair) in self.keys:
                self.copies_dropped += 1
            else:
                yield record


@dataclass(frozen=True)
class TestMeasure:
    """A model's figures on the reviewed test records: accuracy (exact match for label sets) with its 95 % Wilson
    interval, macro-F1 over the labels the records carry."""

    __test__ = False  # a name pytest would otherwise try to collect

    version: str
    records: int  # reviewed test records measured on
    accuracy: float
    interval: tuple[float, float]
    macro_f1: float
    left_out: int = 0  # reviewed test records the model was taught (trained before the test set was drawn)

    def describe(self) -> str:
        """e.g. ``v0002 on 48 reviewed test records: accuracy 0.6667 (95 % interval 0.5254 to 0.7832), macro-F1
        0.6012``."""
        left_out = f", {self.left_out} it trained on left out" if self.left_out else ""
        return (f"{self.version} on {self.records} reviewed test records{left_out}: accuracy {self.accuracy:.4f} "
                f"(95 % interval {self.interval[0]:.4f} to {self.interval[1]:.4f}), macro-F1 {self.macro_f1:.4f}")

    def as_dict(self) -> dict:
        return {"records": self.records, "accuracy": self.accuracy, "accuracy_interval": list(self.interval),
                "macro_f1": self.macro_f1, "left_out_taught": self.left_out}


def wilson_interval(correct: int, total: int, z: float = INTERVAL_Z) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``correct`` / ``total`` (not the normal one: it stays inside
    [0, 1] and holds at 0 or ``total`` correct out of a few). (0, 1) for ``total`` 0."""
    if total <= 0:
        return 0.0, 1.0
    share = correct / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def measure(classifier: Classifier, version: str, examples: Sequence[Example], *, left_out: int = 0,
            seed: int = 0) -> TestMeasure:
    """``classifier``'s deterministic answers on the reviewed test ``examples`` (N of them, N ≥ 1): the model's
    own thresholds for label sets.

    Raises:
        DataError: a label is not one of the classifier's labels.
    """
    from worker.training.data import text_pairs
    from worker.training.evaluate import (
        classification_metrics,
        label_set_metrics,
        label_set_targets,
        predict_probabilities,
    )

    texts = [example.text for example in examples]
    probabilities = predict_probabilities(classifier, texts, pairs=text_pairs(examples), samples=1,
                                          seed=seed).deterministic  # [N, C]
    if classifier.multi_label:
        targets = label_set_targets([example.label for example in examples], classifier.labels)  # [N, L]
        predicted = probabilities >= np.asarray(classifier.thresholds)
        accuracy, macro_f1, _ = label_set_metrics(predicted, targets)
    else:
        index = label_index(classifier.labels)
        targets = np.asarray([_index_of(index, example) for example in examples])  # [N]
        accuracy, macro_f1 = classification_metrics(probabilities, targets, len(classifier.labels))
    correct = round(accuracy * len(examples))
    return TestMeasure(version, len(examples), accuracy, wilson_interval(correct, len(examples)), macro_f1,
                       left_out)


def _index_of(index: dict[str, int], example: Example) -> int:
    """The class index of ``example``'s label; a DataError naming the record when the model has no such label."""
    if not isinstance(example.label, str) or example.label not in index:
        raise DataError(f"test record {example.id!r}: label {example.label!r} is not one of the model's labels "
                        f"{sorted(index)}")
    return index[example.label]
