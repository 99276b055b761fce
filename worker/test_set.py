"""A test set: records drawn at random from those nobody had reviewed, to measure a model without the bias of
the records the worker puts first.

The validation records are annotated records, and annotators review the records the worker puts first — the
cold start's typical ones, then the most uncertain, the highest loss. Once the uncertain ones are among them the
validation figure reads low (benchmarks/test_set_estimate.py: 0.610 vs 0.757 on the other unreviewed records of a
newsgroups pool; a test set of 200 read 0.700). A test set is a seeded uniform sample of the records nobody had
reviewed when it was drawn; the worker marks them with the metadata property ``test_set_rank`` (1 … n, in a random
order) so annotators can filter them in the UI, never trains a model on them (nor on another record carrying the
same text), and once some are reviewed each training and ``argilla-worker test-set`` measure the model on them:
accuracy with a 95 % Wilson interval, macro-F1. That figure estimates the model's accuracy on the records it
makes suggestions for. Only the records answered from rank 1 on count (:class:`TestProgress`): one reviewed out
of rank order was picked, and counts once every rank before it is answered.

A test set grows (:func:`grow_test_set`): more records drawn the same way from those nobody has reviewed then, at
the ranks after the last — a narrower interval once they are answered. Each draw is a uniform sample of the records
the model made suggestions for at its time (:class:`Draw`), as the first one was of its own.

Cost: the draw (and each growth) is one streamed pass (memory O(size)); a measure predicts the reviewed test
records once (deterministic pass).
"""

from __future__ import annotations

import itertools
import logging
import math
import random
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from worker.constants import PROBABILITY_FLOOR, TEST_SET_PROPERTY
from worker.duplicates import text_key
from worker.errors import DataError
from worker.files import KeyedJsonFile
from worker.iterables import reservoir_sample
from worker.records import DISCARDED, SUBMITTED, PulledRecord, label_index

if TYPE_CHECKING:  # the ML stack loads when a model is measured, not when the settings' stores are read
    from worker.scoring.model import Classifier
    from worker.training.data import Example

logger = logging.getLogger(__name__)

INTERVAL_Z = 1.959964  # the normal quantile of a two-sided 95 % interval


@dataclass(frozen=True)
class Draw:
    """Records added to a test set after its first draw: how many (at the ranks after those before), from how many
    nobody had responded to then, and when (ISO 8601, UTC)."""

    added: int
    drawn_from: int
    drawn_at: str


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
    copies_cleared: bool = False  # the model's answers were taken off the copies of its texts (argilla-worker test-set)
    grown: tuple[Draw, ...] = ()  # later draws, at the ranks after the first draw's

    def ranks(self) -> dict[str, int]:
        """External id → rank (1 for the first)."""
        return {record_id: rank for rank, record_id in enumerate(self.ids, start=1)}


def draw_test_set(records: Iterable[PulledRecord], size: int, seed: int = 0, share: float = 1.0) -> TestSet:
    """A seeded uniform sample of at most ``size`` records with a text and no response at all (nobody has
    reviewed or started to), in a random rank order, and of at most ``share`` of those records (rounded up: a
    default size that would take most of a small dataset). One pass, memory O(size).

    Raises:
        ValueError: ``size`` is below 1, or ``share`` is not in (0, 1].
    """
    if size < 1:
        raise ValueError(f"a test set needs at least 1 record, got {size}")
    if not 0 < share <= 1:
        raise ValueError(f"a test set's share of the records is in (0, 1], got {share}")
    rng = random.Random(seed)
    candidates = (record for record in records if record.has_text and not record.responses)
    sample, seen = reservoir_sample(candidates, size, rng)
    rng.shuffle(sample)
    del sample[shared_size(seen, share):]  # the first k of a uniform sample in a random order: a uniform sample of k
    return TestSet(tuple(r.record_id for r in sample), tuple(r.server_id for r in sample),
                   tuple(text_key(str(r.text), r.text_pair) for r in sample), seen,
                   datetime.now(UTC).isoformat(timespec="seconds"))


def shared_size(candidates: int, share: float) -> int:
    """Records a draw of at most ``share`` of ``candidates`` takes: rounded up (1 of 3 at a fifth), none of none."""
    return math.ceil(candidates * share - 1e-9)


RECOVERED = "unknown: recovered from the dataset's test_set_rank marks"


def recovered_or_drawn(records: Iterable[PulledRecord], size: int, seed: int = 0,
                       share: float = 1.0) -> tuple[TestSet, bool]:
    """(the test set, whether it was drawn now). One pass: the records marked with ``test_set_rank`` are the test set
    when there are any (the state directory that kept it was lost, or another machine drew it), in rank order; else
    a new draw (:func:`draw_test_set`, ``size`` and ``share``). Memory O(size + marked records)."""
    marked: list[tuple[float, str, PulledRecord]] = []

    def unmarked(stream: Iterable[PulledRecord]) -> Iterator[PulledRecord]:
        for record in stream:
            rank = record.metadata.get(TEST_SET_PROPERTY)
            if rank is None:
                yield record
            else:
                marked.append((float(rank), record.record_id, record))

    drawn = draw_test_set(unmarked(records), size, seed, share)
    if not marked:
        return drawn, True
    marked.sort(key=lambda entry: entry[:2])
    found = [record for _, _, record in marked]
    return TestSet(tuple(r.record_id for r in found), tuple(r.server_id for r in found),
                   tuple(text_key(str(r.text), r.text_pair) for r in found), 0, RECOVERED), False


def grow_test_set(test_set: TestSet, records: Iterable[PulledRecord], size: int, seed: int = 0) -> TestSet:
    """``test_set`` with records added at ranks n + 1 … ``size`` (n: its records now): a seeded uniform sample of the
    records nobody has responded to that are neither test records nor carry one of their texts (:class:`TestSetFilter`),
    in a random order. Fewer are added when fewer are left; ``test_set`` itself when ``size`` ≤ n. The copies of the
    new texts are not cleared yet (``copies_cleared`` False: the next ``test-set`` run clears them). One pass,
    memory O(size)."""
    wanted = size - len(test_set.ids)
    if wanted < 1:
        return test_set
    held = TestSetFilter(test_set)
    more = draw_test_set((record for record in records if not held.covers(record)), wanted,
                         seed=seed + len(test_set.ids))  # another stream than the first draw's, the same each run
    if not more.ids:
        return test_set
    return replace(test_set, ids=test_set.ids + more.ids, server_ids=test_set.server_ids + more.server_ids,
                   keys=test_set.keys + more.keys, copies_cleared=False,
                   grown=(*test_set.grown, Draw(len(more.ids), more.drawn_from, more.drawn_at)))


def answered(record: PulledRecord) -> bool:
    """Whether someone submitted or discarded a response to ``record`` (a draft is not an answer yet)."""
    return any(response.status in (SUBMITTED, DISCARDED) for response in record.responses)


@dataclass(frozen=True)
class TestProgress:
    """How far the test set is reviewed. Only an unbroken run of answered records from rank 1 is a random sample:
    a test record reviewed out of rank order was picked (by a sort on uncertainty, by a filter), so it is counted
    once every rank before it is answered."""

    __test__ = False  # a name pytest would otherwise try to collect

    in_order: tuple[PulledRecord, ...]  # the answered records from rank 1 up to the first unanswered one
    beyond: int  # answered records after the first unanswered rank
    found: int  # test records still in the dataset (a deleted one is skipped, not a gap)

    @property
    def answered(self) -> int:
        return len(self.in_order) + self.beyond


def progress(test_set: TestSet, records: Iterable[PulledRecord]) -> TestProgress:
    """``records`` (the test set's records as the server holds them now, any order) read against its rank order.
    O(test set)."""
    by_id = {record.record_id: record for record in records}
    found = [by_id[record_id] for record_id in test_set.ids if record_id in by_id]  # rank order
    in_order = list(itertools.takewhile(answered, found))
    return TestProgress(tuple(in_order), sum(answered(r) for r in found[len(in_order):]), len(found))


class TestSetStore:
    """The test set of each dataset, drawn once (then grown on request) and kept in ``state_dir``
    (``test_sets.json``)."""

    __test__ = False  # a name pytest would otherwise try to collect

    def __init__(self, path: Path):
        self.file = KeyedJsonFile(path)

    def get(self, key: str) -> TestSet | None:
        entry = self.file.get(key)
        if not entry:
            return None
        return TestSet(tuple(entry["ids"]), tuple(entry["server_ids"]), tuple(entry["keys"]), entry["drawn_from"],
                       entry["drawn_at"], entry.get("copies_cleared", False),
                       tuple(Draw(**draw) for draw in entry.get("grown", ())))

    def put(self, key: str, test_set: TestSet) -> None:
        self.file.put(key, {"ids": list(test_set.ids), "server_ids": list(test_set.server_ids),
                            "keys": list(test_set.keys), "drawn_from": test_set.drawn_from,
                            "drawn_at": test_set.drawn_at, "copies_cleared": test_set.copies_cleared,
                            "grown": [asdict(draw) for draw in test_set.grown]})

    def forget(self, key: str) -> None:
        """Drop the test set of ``key`` (its dataset is gone)."""
        self.file.delete(key)


def is_test_record(record: PulledRecord, ids: Collection[str]) -> bool:
    """Whether ``record`` is in the test set: its id is among the stored test set's ``ids``, or it carries
    ``test_set_rank`` (the dataset's own word, when the state directory that kept the ids is lost)."""
    return record.record_id in ids or record.metadata.get(TEST_SET_PROPERTY) is not None


class TestSetFilter:
    """Keeps a test set's records, and other records carrying one of its texts, out of a training stream.

    A record is a test record when its id is in the stored test set or it carries ``test_set_rank`` (the
    dataset's own word: a lost state directory does not let a model train on the test set). :meth:`without`
    passes the other records on and counts the test records it leaves out; a record whose text is a test record's,
    but which is not one, is left out and counted too (it would let the model learn the answer). O(1) per record
    (a hash of its text when a test set is stored), memory O(test set)."""

    __test__ = False  # a name pytest would otherwise try to collect

    def __init__(self, test_set: TestSet | None) -> None:
        self.ids = frozenset(test_set.ids) if test_set is not None else frozenset()
        self.keys = frozenset(test_set.keys) if test_set is not None else frozenset()
        self.held = 0
        self.copies_dropped = 0

    def without(self, records: Iterable[PulledRecord]) -> Iterator[PulledRecord]:
        for record in records:
            if is_test_record(record, self.ids):
                self.held += 1
            elif self.is_copy(record):
                self.copies_dropped += 1
            else:
                yield record

    def is_copy(self, record: PulledRecord) -> bool:
        """Whether ``record`` carries a test record's text (letter case and spacing aside) without being one."""
        return bool(self.keys) and record.has_text and not is_test_record(record, self.ids) \
            and text_key(str(record.text), record.text_pair) in self.keys

    def covers(self, record: PulledRecord) -> bool:
        """Whether ``record`` is a test record or a copy of one's text (:meth:`is_copy`)."""
        return is_test_record(record, self.ids) or self.is_copy(record)


@dataclass(frozen=True)
class TestMeasure:
    """A model's figures on the reviewed test records: accuracy (exact match for label sets) with its 95 % Wilson
    interval, macro-F1 over the labels the records carry; for one label a record, the expected calibration error
    of the confidence the worker writes (``ece``: the MC-dropout mean read at the temperature scoring uses) and of
    the deterministic model's (``ece_deterministic``) — on records drawn at random, unlike the validation records'."""

    __test__ = False  # a name pytest would otherwise try to collect

    version: str
    records: int  # reviewed test records measured on
    accuracy: float
    interval: tuple[float, float]
    macro_f1: float
    left_out: int = 0  # reviewed test records the model was taught (trained before the test set was drawn)
    beyond: int = 0  # reviewed out of rank order (see TestProgress): not counted yet
    in_order: int = 0  # answered records from rank 1 on (:attr:`TestProgress.in_order`): what ``records`` came from
    ece: float | None = None
    ece_deterministic: float | None = None
    label_sets: bool = False  # accuracy is the share of records whose whole label set is right

    def describe(self) -> str:
        """e.g. ``v0002 on 48 reviewed test records: accuracy 0.6667 (95 % interval 0.5254 to 0.7832), macro-F1
        0.6012, calibration error 0.0410 (deterministic 0.0803)``."""
        return (f"{self.version} on {self.records} reviewed test records{test_notes(self.left_out, self.beyond)}: "
                f"{accuracy_name(self.label_sets)} {self.accuracy:.4f} (95 % interval {self.interval[0]:.4f} to "
                f"{self.interval[1]:.4f}), macro-F1 {self.macro_f1:.4f}"
                + calibration_note(self.ece, self.ece_deterministic))

    def as_dict(self) -> dict:
        calibration = {"ece": self.ece, "ece_deterministic": self.ece_deterministic} if self.ece is not None else {}
        return {"records": self.records, "accuracy": self.accuracy, "accuracy_interval": list(self.interval),
                "macro_f1": self.macro_f1, "left_out_taught": self.left_out, "reviewed_out_of_order": self.beyond,
                "answered_in_order": self.in_order, **calibration, **({"label_sets": True} if self.label_sets else {})}


def accuracy_name(label_sets: bool) -> str:
    """What accuracy is called where it is shown: of label sets, the share of records whose whole set is right —
    low beside macro-F1 with many labels, and not the share of right label decisions."""
    return "exact-set accuracy" if label_sets else "accuracy"


def calibration_note(ece: float | None, ece_deterministic: float | None) -> str:
    """``, calibration error 0.0410 (deterministic 0.0803)`` — of the confidence the worker writes; empty without."""
    if ece is None:
        return ""
    return f", calibration error {ece:.4f}" + (f" (deterministic {ece_deterministic:.4f})"
                                               if ece_deterministic is not None else "")


def test_notes(left_out: int, beyond: int) -> str:
    """What a test figure leaves out: records the model trained on, records reviewed out of rank order."""
    notes = ([f"{left_out} it trained on left out"] if left_out else []) + (
        [f"{beyond} reviewed out of rank order not counted until the ranks before them are"] if beyond else [])
    return "".join(f", {note}" for note in notes)


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
            beyond: int = 0, in_order: int = 0, seed: int = 0, scorer_options: Mapping[str, Any] | None = None,
            temperature: float = 1.0, crossfit: bool = False, scored: np.ndarray | None = None) -> TestMeasure:
    """``classifier``'s deterministic answers on the reviewed test ``examples`` (N of them, N ≥ 1): the model's
    own thresholds for label sets. With ``scorer_options`` (one label a record), also the calibration error of the
    confidence the worker writes: the examples scored as records are (a :class:`~worker.scoring.engine.Scorer` with
    those options: the MC-dropout mean), read at ``temperature`` — or, with ``crossfit`` (the temperature was fitted
    on these records), each half read at a temperature fitted on the other half: not a figure of the records the
    temperature was fitted on. ``scored`` [N, C]: those scores, computed before (the training that fitted the
    temperature scored the same records with the same model and options). Cost: one deterministic pass, and one
    score run over the N texts unless ``scored`` is given.

    Raises:
        DataError: a label is not one of the classifier's labels.
    """
    from worker.calibration import crossfit_temperature_ece, expected_calibration_error, tempered
    from worker.training.calibrate import scored_probabilities
    from worker.training.data import text_pairs
    from worker.training.evaluate import (
        classification_metrics,
        label_set_metrics,
        label_set_targets,
        predict_probabilities,
    )

    texts = [example.text for example in examples]
    deterministic = predict_probabilities(classifier, texts, pairs=text_pairs(examples), samples=1,
                                          seed=seed).deterministic  # [N, C]
    ece = ece_deterministic = None
    if classifier.multi_label:
        targets = label_set_targets([example.label for example in examples], classifier.labels)  # [N, L]
        predicted = deterministic >= np.asarray(classifier.thresholds)
        accuracy, macro_f1, _ = label_set_metrics(predicted, targets)
    else:
        index = label_index(classifier.labels)
        targets = np.asarray([_index_of(index, example) for example in examples])  # [N]
        accuracy, macro_f1 = classification_metrics(deterministic, targets, len(classifier.labels))
        if scored is None and scorer_options:
            scored = scored_probabilities(classifier, examples, scorer_options, seed=seed)
        if scored is not None:  # [N, C]; None when the scorer skipped a text
            ece = (crossfit_temperature_ece(np.log(np.clip(scored, PROBABILITY_FLOOR, 1.0)), targets, seed)
                   if crossfit else expected_calibration_error(tempered(scored, temperature), targets))
            ece_deterministic = expected_calibration_error(deterministic, targets)
    correct = round(accuracy * len(examples))
    return TestMeasure(version, len(examples), accuracy, wilson_interval(correct, len(examples)), macro_f1,
                       left_out, beyond, in_order, ece, ece_deterministic, classifier.multi_label)


def _index_of(index: dict[str, int], example: Example) -> int:
    """The class index of ``example``'s label; a DataError naming the record when the model has no such label."""
    if not isinstance(example.label, str) or example.label not in index:
        raise DataError(f"test record {example.id!r}: label {example.label!r} is not one of the model's labels "
                        f"{sorted(index)}")
    return index[example.label]
