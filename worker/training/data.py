"""What a model trains on: consensus corrections (and optionally original labels), split for validation.

An :class:`Example` is one labelled text with a weight. Annotated examples (consensus of submitted
responses) have weight 1; records nobody reviewed can join with their original label and a lower
weight. Validation is held out from annotated examples only, stratified by label, so the metric the
promotion gate compares is measured on labels a person confirmed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from worker.crowd import CrowdModel, blind, verdict
from worker.duplicates import EXACT, copy_keys
from worker.errors import DataError
from worker.iterables import KeyedSample, hashed_label_clusters, shuffled_label_groups, take_clusters
from worker.records import LabelValue, PulledRecord

logger = logging.getLogger(__name__)

TrainingData = Literal["annotated", "annotated+original"]
ANNOTATED = "annotated"
ORIGINAL = "original"
RARE_LABEL_FLOOR = 50  # a sample of the records' own labels keeps up to this many of each label, however rare


@dataclass(frozen=True)
class Example:
    """One labelled text; ``source`` is ``annotated`` (consensus) or ``original`` (unreviewed record's label)."""

    id: str
    text: str
    label: str | tuple[str, ...]  # a tuple: the record's label set (multi-label)
    weight: float = 1.0
    source: str = ANNOTATED
    text_pair: str | None = None  # the second text of a two-field binding
    reviewed_at: str | None = None  # annotated: the earliest submitted response's time (ISO 8601), when the server says
    model_tipped: bool = False  # a tie of the votes the model's view decided: trained on, never validated on


def single_label(example: Example, what: str) -> str:
    """The example's label where only single-label examples are handled yet.

    Raises:
        DataError: the example carries a label set (names the record and ``what`` does not support it).
    """
    if isinstance(example.label, tuple):
        raise DataError(f"record {example.id!r} has a label set {list(example.label)}: {what} handles single-label "
                        f"examples only so far")
    return example.label


def text_pairs(examples: Sequence[Example]) -> list[str] | None:
    """The examples' second texts (two-field datasets), else None."""
    return [e.text_pair or "" for e in examples] if examples and examples[0].text_pair is not None else None


@dataclass(frozen=True)
class TrainingSet:
    train: tuple[Example, ...]
    validation: tuple[Example, ...]
    labels: tuple[str, ...]
    fingerprint: str

    def counts(self) -> dict:
        unlearned = without_examples(self.train, self.labels)
        return {
            "train": len(self.train),
            "validation": len(self.validation),
            "validation_reviewed": sum(e.source == ANNOTATED for e in self.validation),  # the rest: records' own labels
            "annotated": sum(e.source == ANNOTATED for e in (*self.train, *self.validation)),
            "original": sum(e.source == ORIGINAL for e in self.train),
            "per_class": dict(label_counts((*self.train, *self.validation))),
            **({"without_examples": unlearned} if unlearned else {}),
        }


def own_label_validations(training: Mapping, records: int) -> int:
    """How many of a model's ``records`` validation records were judged by the labels they came with, not by a
    review: its figures there measure agreement with labels that may be wrong, not accuracy. ``training``: the
    model's registry training counts (:meth:`TrainingSet.counts`; entries older than ``validation_reviewed`` tell a
    model validated on own labels alone by ``annotated`` 0)."""
    reviewed = training.get("validation_reviewed", 0 if training.get("annotated") == 0 else records)
    return max(records - reviewed, 0)


def taught_ids(train: Iterable[Example]) -> list[str]:
    """The ids of the ``train`` examples a model is taught: annotated ones, and any trained at full weight (a first
    model on the labels the records carry) — not an unreviewed label at ``training.original_weight`` (see
    :mod:`worker.training.compare`)."""
    return [example.id for example in train if example.source == ANNOTATED or example.weight >= 1.0]


def without_examples(train: Sequence[Example], labels: Sequence[str]) -> list[str]:
    """The labels no example of ``train`` carries, in question order."""
    per_class = label_counts(train)
    return [label for label in labels if per_class[label] == 0]


def label_counts(examples: Iterable[Example]) -> Counter[str]:
    """Examples per label; an example with a label set counts once for each of its labels."""
    return Counter(label for e in examples for label in (e.label if isinstance(e.label, tuple) else (e.label,)))


def strata(examples: Sequence[Example]) -> list[str]:
    """The key each example is stratified by [N]: its label; for a label set its rarest label among
    ``examples`` (``""`` for the empty set) — exact label sets would fall into groups too small to hold out."""
    counts = label_counts(examples)
    return [e.label if isinstance(e.label, str)
            else min(e.label, key=lambda label: (counts[label], label), default="") for e in examples]


def examples_from_records(
    records: Iterable[PulledRecord],
    labels: Sequence[str],
    *,
    data: TrainingData = "annotated",
    original_weight: float = 0.3,
    crowd: CrowdModel | None = None,
    max_original: int | None = None,
    seed: int = 0,
) -> tuple[list[Example], list[Example], list[str]]:
    """Split pulled records into (annotated examples, original-label examples, ids of tied records).

    Records with a tie between annotators are left out (reported by id); records without a text too.
    With ``crowd`` (see :mod:`worker.crowd`) the consensus weighs each annotator's vote and an annotated
    example's weight is the weighted share of the votes behind its label (1 for a single or unanimous
    vote); without it, the majority at weight 1.

    Every annotated example is kept; the original-label examples are a seeded sample of at most ``max_original``
    (``training.max_original``; None: all) plus up to :data:`RARE_LABEL_FLOOR` of each label (a
    :class:`~worker.iterables.KeyedSample` by record id: the same records give the same sample). One pass over
    ``records``; memory O(annotated + max_original), whatever the dataset's size.

    Raises:
        DataError: a consensus or original label is not one of ``labels`` (names the record and the value).
    """
    if data not in ("annotated", "annotated+original"):
        raise DataError(f"training data must be 'annotated' or 'annotated+original', got {data!r}")
    allowed = set(labels)
    annotated, tied = [], []
    original: KeyedSample[Example] = KeyedSample(max_original or sys.maxsize, seed=seed,
                                                 floor=RARE_LABEL_FLOOR if max_original else 0)
    for record in records:
        if not record.has_text:
            continue
        decided = verdict(record, crowd)
        if decided is not None:
            if decided.label is None:
                tied.append(record.record_id)
            else:
                label = checked_label(record.record_id, decided.label, allowed)
                weight = 1.0 if crowd is None else decided.agreement
                annotated.append(Example(record.record_id, str(record.text), label, weight, text_pair=record.text_pair,
                                         reviewed_at=_first_submitted(record),
                                         model_tipped=_model_tipped(record, decided.label, crowd)))
        elif data == "annotated+original" and record.reference is not None:
            label = checked_label(record.record_id, record.reference, allowed)
            original.add(record.record_id, Example(record.record_id, str(record.text), label, original_weight,
                                                   ORIGINAL, text_pair=record.text_pair),
                         strata=label if isinstance(label, tuple) else (label,))
    sample = original.items()
    if len(sample) < original.seen:
        logger.info("training takes a seeded sample of %d of the %d unreviewed records' own labels "
                    "(training.max_original = %d, and up to %d of each label)", len(sample), original.seen,
                    max_original, RARE_LABEL_FLOOR)
    return annotated, sample, tied


def _model_tipped(record: PulledRecord, label: LabelValue, crowd: CrowdModel | None) -> bool:
    """Whether ``label`` (the record's consensus under ``crowd``) is one the annotators' weights alone do not give: a
    tie the model's stored view decided (``consensus.ties = "resolve"``). O(votes)."""
    if crowd is None or not crowd.resolve_ties or crowd.model_blind:
        return False
    alone = verdict(record, blind(crowd))
    return alone is None or alone.label != label


def _first_submitted(record: PulledRecord) -> str | None:
    """When the record's earliest submitted response was last written (server clock), or None when none says."""
    times = [response.updated_at for response in record.responses
             if response.status == "submitted" and response.updated_at is not None]
    return min(times).isoformat() if times else None


def checked_label(record_id: str, label: LabelValue, allowed: set[str]) -> LabelValue:
    """``label`` when it (every label of a set) is one of ``allowed``; else a DataError naming the record."""
    outside = [name for name in (label if isinstance(label, tuple) else (label,)) if name not in allowed]
    if outside:
        raise DataError(f"record {record_id!r}: label {outside[0]!r} is not one of {sorted(allowed)}")
    return label


def stratified_split(
    examples: Sequence[Example], fraction: float, *, seed: int, keys: Mapping[str, str] | None = None
) -> tuple[list[Example], list[Example]]:
    """(train, validation): per label, ``round(n × fraction)`` examples (at least 1 when n ≥ 2) go to validation;
    examples with the same copy key (``keys``: example id → key, default :func:`example_keys` of exact copies)
    go to the same side, so validation never holds a text the model trains on. The sides are drawn by a seeded hash
    of each text's key (:func:`~worker.iterables.hashed_label_clusters`), so a retrain on more annotations validates
    nearly the records the last model validated and trains on those it trained on: the promotion gate then
    judges the current model on records it did not learn from (it leaves out the few it did)."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"validation fraction must lie strictly between 0 and 1, got {fraction}")
    ordered = sorted(examples, key=lambda e: e.id)
    keys = keys if keys is not None else example_keys(ordered)
    train: list[Example] = []
    validation: list[Example] = []
    for clusters in hashed_label_clusters(strata(ordered), [keys[e.id] for e in ordered], seed):
        size = sum(map(len, clusters))
        held, kept = take_clusters(clusters, 0 if size < 2 else max(1, min(size - 1, round(size * fraction))))
        validation.extend(ordered[position] for position in held)
        train.extend(ordered[position] for position in kept)
    return train, validation


def example_keys(examples: Sequence[Example], similarity: float = EXACT) -> dict[str, str]:
    """Example id → its copy key (:func:`worker.duplicates.copy_keys`: one key for copies of one text and, with
    ``similarity`` below 1, for a group of near copies). O(N × text length)."""
    keys = copy_keys([(example.text, example.text_pair) for example in examples], similarity)
    return {example.id: key for example, key in zip(examples, keys, strict=True)}


def not_validated(original: Iterable[Example], validation: Sequence[Example],
                  keys: Mapping[str, str]) -> list[Example]:
    """The ``original`` examples whose copy key (``keys``) no validation example has (a copy in training would be
    seen)."""
    held = {keys[example.id] for example in validation}
    return [example for example in original if keys[example.id] not in held]


def build_training_set(
    annotated: Sequence[Example],
    original: Sequence[Example],
    labels: Sequence[str],
    *,
    validation_fraction: float = 0.2,
    min_annotated: int = 20,
    seed: int = 0,
    similarity: float = EXACT,
) -> TrainingSet:
    """Hold out a stratified validation split of the annotated examples; train on the rest (+ original labels
    whose text, or a near copy of it at ``similarity`` < 1, is not validated). A tie the model's view decided
    (``Example.model_tipped``) is never validated on: the epoch choice, the temperature and the promotion gate would
    read the current model's own view as the truth.

    Raises:
        DataError: fewer than ``min_annotated`` annotated examples, or a class with no training example
            (the message names the counts, the classes, and what to do).
    """
    if len(annotated) < min_annotated:
        raise DataError(
            f"only {len(annotated)} records have a consensus label; training needs at least {min_annotated} "
            f"(annotate more records or lower training.min_annotated)"
        )
    keys = example_keys([*annotated, *original], similarity)
    train, validation = _split_never_validating_tipped(annotated, validation_fraction, seed=seed, keys=keys)
    train = train + not_validated(original, validation, keys)
    _check_classes(train, labels)
    if not validation:
        raise DataError("no validation examples: every class has fewer than 2 annotated records with different "
                        "texts (copies of one text are never split between training and validation): annotate more "
                        "records")
    return TrainingSet(tuple(train), tuple(validation), tuple(labels), fingerprint(train, validation))


def build_first_training_set(
    annotated: Sequence[Example],
    original: Sequence[Example],
    labels: Sequence[str],
    *,
    validation_fraction: float = 0.2,
    min_examples: int = 20,
    seed: int = 0,
    similarity: float = EXACT,
) -> TrainingSet:
    """A first model's data when too few records are annotated: every label the records carry (annotators'
    consensus where there is one, else the reference label), all at weight 1, with a stratified validation
    split of those same labels. The validation metric then measures agreement with possibly noisy labels.

    Raises:
        DataError: fewer than ``min_examples`` labelled records, or a class without a training example.
    """
    annotated_ids = {example.id for example in annotated}
    examples = [*annotated, *(replace(e, weight=1.0) for e in original if e.id not in annotated_ids)]
    if len(examples) < min_examples:
        raise DataError(
            f"only {len(examples)} records carry a label (annotated or from argilla.reference); a first model "
            f"needs at least {min_examples}: annotate records (no label yet: `argilla-worker cold-start` ranks a "
            f"first batch to annotate), point argilla.reference at the labels the records carry, or register a "
            f"model you have (`argilla-worker models register`)"
        )
    train, validation = _split_never_validating_tipped(examples, validation_fraction, seed=seed,
                                                       keys=example_keys(examples, similarity))
    _check_classes(train, labels)
    return TrainingSet(tuple(train), tuple(validation), tuple(labels), fingerprint(train, validation))


def _split_never_validating_tipped(examples: Sequence[Example], fraction: float, *, seed: int,
                                   keys: Mapping[str, str]) -> tuple[list[Example], list[Example]]:
    """:func:`stratified_split` of the examples whose label the model's view did not decide; those it did
    (``Example.model_tipped``) join the training side, unless a copy of their text is validated."""
    tipped = [example for example in examples if example.model_tipped]
    train, validation = stratified_split([e for e in examples if not e.model_tipped], fraction, seed=seed, keys=keys)
    return train + not_validated(tipped, validation, keys), validation


def _check_classes(train: Sequence[Example], labels: Sequence[str]) -> None:
    """Classes without a training example are allowed (a question with many labels rarely has every one annotated
    early): the model learns the others and is told so in the log. Too few learnable classes is a DataError naming
    the classes without an example and the per-class counts: a single-label model needs two classes, a
    multi-label one a label that occurs."""
    missing = without_examples(train, labels)
    if not missing:
        return
    needed = 1 if any(isinstance(e.label, tuple) for e in train) else 2
    if len(labels) - len(missing) < needed:
        raise DataError(
            f"no training examples for class(es) {missing} (per-class counts: {dict(label_counts(train))}); "
            f"{'a model needs examples of at least two classes' if needed > 1 else 'no label occurs'}: annotate "
            f"records of these classes, or remove the classes from the label question"
        )
    logger.warning("no training examples yet for %d of %d classes %s: the model learns the other %d and will "
                   "rarely predict these until records of them are annotated", len(missing), len(labels),
                   _named(missing), len(labels) - len(missing))


def _named(labels: Sequence[str], shown: int = 10) -> str:
    """The first ``shown`` labels, then how many more."""
    return str(list(labels[:shown])) + (f" and {len(labels) - shown} more" if len(labels) > shown else "")


def fingerprint(train: Sequence[Example], validation: Sequence[Example]) -> str:
    """A hash of exactly what the model trained and validated on (ids, texts, labels, weights)."""
    digest = hashlib.sha256()
    for part, examples in (("train", train), ("validation", validation)):
        for example in sorted(examples, key=lambda e: e.id):
            values = [part, example.id, example.text, example.label, example.weight]
            if example.text_pair is not None:
                values.append(example.text_pair)
            digest.update(json.dumps(values).encode())
    return digest.hexdigest()[:16]


def stratified_folds(examples: Sequence[Example], k: int, *, seed: int) -> list[int]:
    """Fold index (0..k-1) for each example, in input order, balanced per label. Unlike the validation split, copies
    of one text may fall in different folds: another copy's label is evidence about the record's — a copy labelled
    otherwise is caught at once. Measured on two seeds (benchmarks/RESULTS.md "Copies of one text"): the held-out
    loss finds wrong labels better so overall; keeping copies together found a wrong label given to every copy
    better in one seed of two; `argilla-worker copies` marks copies labelled differently outright.

    Raises:
        DataError: k < 2 or more folds than examples.
    """
    if k < 2:
        raise DataError(f"K-fold needs k >= 2, got {k}")
    if len(examples) < k:
        raise DataError(f"K-fold with k={k} needs at least {k} examples, got {len(examples)}")
    folds = [0] * len(examples)
    offset = 0
    for members in shuffled_label_groups(strata(examples), random.Random(seed)):
        for position, index in enumerate(members):
            folds[index] = (offset + position) % k
        offset += len(members)
    return folds
