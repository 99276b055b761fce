"""Which of the question's labels each output of a model stands for, read from the records that carry a label.

A classifier fine-tuned without label names keeps transformers' defaults (``LABEL_0``, ``LABEL_1``, …): its outputs
are in the order its training used, which the worker cannot know. ``models register DIR --label-map auto`` reads it
from the dataset instead: the model predicts a sample of the records that carry a label (the annotators' consensus,
else the label the record came with: ``argilla.reference``), and each output is matched to the label it agrees with
most, one label each (the assignment of most agreement: the Hungarian algorithm on the outputs × labels counts).

A multi-label model's outputs are read the same way from label sets: an output is predicted where its sigmoid reaches
its threshold (the model's ``thresholds.json``, else 0.5), and the counts are of the records where an output is
predicted and a label carried. Over one-to-one maps, agreeing with most of the records' label decisions (each record ×
label present or not) is the map of most such counts — the other terms of the agreement are the same for every map —
so the same assignment reads it, and the same checks refuse what the sample does not tell.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from worker.errors import DataError
from worker.records import LabelValue, PulledRecord, consensus

AUTO_LABEL_MAP = "auto"  # ``--label-map auto``: read the map from the records (see read_label_map)
DEFAULT_LABEL_NAME = re.compile(r"LABEL_\d+")  # transformers' name of an output its config names no label for
SAMPLE_RECORDS = 2_000  # labelled records the model predicts to read its map (benchmarks/label_order.py: 500 let
# a weak 20-label model's confusable pairs be read the wrong way round, 2,000 read them right)
LOOK_THROUGH = 50_000  # records read at most to find them: O(1) in the dataset's size
MIN_AGREEMENT = 0.5  # the share of the sample the map must agree with: below it the model and the labels disagree
MIN_SET_AGREEMENT = 0.3  # label sets: the F1 of the map's label decisions at least. Lower than one label's floor: a
# weak 6-label model (Friends characters, F1 0.42; benchmarks/label_order.py) was read right from 2,000 records, and
# no wrong map of 450 readings came through the other checks even with no floor at all
MAX_P_VALUE = 0.001  # predictions and labels must be related beyond chance (χ² test of independence; label sets: a
# permutation test) for any map
PERMUTATIONS = 999  # label sets' test of independence: the best map's count against that of the labels shuffled
# over the records, this many times (p ≥ 1 / (PERMUTATIONS + 1) = MAX_P_VALUE)
DEFAULT_THRESHOLD = 0.5  # a multi-label output is predicted at this sigmoid, where its model names no threshold
MAX_SWAP_P_VALUE = 0.05  # each two outputs must be told apart: the map beats them swapped (sign test) at this level
MIN_PER_LABEL = 3  # labelled records a label needs at least: two outputs right on 2 + 2 records and never swapped
# are still not told apart (sign test p = 1/16 > MAX_SWAP_P_VALUE); 3 + 3 are (1/64)
PREDICT_BATCH = 32


@dataclass(frozen=True)
class LabelledInput:
    """One record of the sample: what the model reads and the label (a label set: a tuple) it carries."""

    record_id: str
    text: str
    text_pair: str | None
    label: LabelValue


@dataclass(frozen=True)
class LabelMapReading:
    """The map read from ``records`` labelled records: ``mapping`` (model label → question label), and for each
    model label the records it predicted (``predicted``) and of those the ones labelled as its mapped label
    (``agreeing``); ``carried``: the labels the records carry (one a record; label sets: their sizes summed)."""

    mapping: dict[str, str]
    records: int
    predicted: dict[str, int]
    agreeing: dict[str, int]
    carried: int
    label_sets: bool = False

    @property
    def agreement(self) -> float:
        """The F1 of the mapped predictions against the labels: 2·agreeing / (predicted + carried). One label a
        record: the share of the sample whose label the mapped prediction equals (each record predicts one)."""
        total = sum(self.predicted.values()) + self.carried
        return 2 * sum(self.agreeing.values()) / total if total else 0.0

    def as_option(self) -> str:
        """The map as ``--label-map`` takes it (to keep, or to correct by hand)."""
        return ",".join(f"{model}={label}" for model, label in self.mapping.items())


def has_default_names(model_labels: Sequence[str]) -> bool:
    """Whether every label of the model is transformers' default name (``LABEL_<n>``): trained without names."""
    return bool(model_labels) and all(DEFAULT_LABEL_NAME.fullmatch(label) for label in model_labels)


def labelled_sample(records: Iterable[PulledRecord], size: int = SAMPLE_RECORDS, look_through: int = LOOK_THROUGH
                    ) -> list[LabelledInput]:
    """Up to ``size`` records that carry a label (a label set: a tuple, empty for "none of them") and a text, from
    the first ``look_through`` of ``records``: the annotators' consensus where they reviewed it (a tie: none), else
    the label it came with. Memory O(size)."""
    sample: list[LabelledInput] = []
    for record in itertools.islice(records, look_through):
        verdict = consensus(record)
        label = verdict.label if verdict is not None else record.reference
        if isinstance(label, str | tuple) and record.has_text and isinstance(record.text, str):
            sample.append(LabelledInput(record.record_id, record.text, record.text_pair, label))
            if len(sample) >= size:
                break
    return sample


def read_label_map(model, tokenizer, model_labels: Sequence[str], dataset_labels: Sequence[str],
                   sample: Sequence[LabelledInput], *, max_length: int, multi_label: bool = False,
                   thresholds: Sequence[float] | None = None) -> LabelMapReading:
    """Match each of the model's outputs to one of the question's labels by what it predicts on ``sample``.

    ``model``: a transformers sequence classifier of ``len(model_labels)`` outputs; ``max_length``: tokens read per
    text; ``multi_label``: the model predicts label sets (one sigmoid per output, predicted at its ``thresholds``
    [outputs], else :data:`DEFAULT_THRESHOLD`) and the sample carries label sets. Time O(len(sample)) forward passes
    (batches of :data:`PREDICT_BATCH`), memory O(len(sample) × labels + labels²).

    Raises:
        DataError: as :func:`map_from_predictions` (label sets: :func:`map_from_label_sets`).
    """
    _check_sample_size(len(sample), model_labels, dataset_labels)
    max_length = min(max_length, getattr(model.config, "max_position_embeddings", None) or max_length)
    if multi_label:  # a plain label is the set of that one label
        predicted_sets = predicted_output_sets(model, tokenizer, sample, max_length, thresholds)
        label_sets = [(item.label,) if isinstance(item.label, str) else item.label for item in sample]
        return map_from_label_sets(predicted_sets, label_sets, model_labels, dataset_labels)
    labels = [item.label if isinstance(item.label, str) else "" for item in sample]  # a label set: not counted
    return map_from_predictions(predicted_outputs(model, tokenizer, sample, max_length), labels, model_labels,
                                dataset_labels)


def map_from_predictions(predicted: Sequence[int], labels: Sequence[str], model_labels: Sequence[str],
                         dataset_labels: Sequence[str]) -> LabelMapReading:
    """The map of most agreement between the model's predicted outputs (``predicted`` [N], output indices) and the
    labels the same records carry (``labels`` [N]; a record whose label is not among ``dataset_labels`` is not
    counted). O(N × labels + labels³) (the assignment).

    Raises:
        DataError: fewer than :data:`MIN_PER_LABEL` labelled records per label; the predictions are no more
            related to the labels than chance (a χ² test, p > :data:`MAX_P_VALUE`); the best map agrees with fewer than
            :data:`MIN_AGREEMENT` of them (label sets: F1 under :data:`MIN_SET_AGREEMENT`; the model was not trained
            for these labels, or the labels are mostly wrong); or two outputs are not told apart
            (:func:`_untold_pairs`; the map read for the others is in the message, to complete by hand).
    """
    _check_sample_size(len(labels), model_labels, dataset_labels)
    index = {label: position for position, label in enumerate(dataset_labels)}
    kept = [position for position, label in enumerate(labels) if label in index]
    outputs = np.zeros((len(kept), len(model_labels)), dtype=bool)  # [N, outputs]
    carried = np.zeros((len(kept), len(dataset_labels)), dtype=bool)  # [N, labels]
    rows = np.arange(len(kept))
    outputs[rows, [predicted[position] for position in kept]] = True
    carried[rows, [index[labels[position]] for position in kept]] = True
    return _map_of_most_agreement(outputs, carried, model_labels, dataset_labels, label_sets=False)


def map_from_label_sets(predicted: Sequence[Collection[int]], labels: Sequence[Collection[str]],
                        model_labels: Sequence[str], dataset_labels: Sequence[str]) -> LabelMapReading:
    """:func:`map_from_predictions` for label sets: ``predicted`` [N] the outputs each record is predicted as (any
    number), ``labels`` [N] the label set it carries (labels not among ``dataset_labels`` left out). The relation
    beyond chance is a permutation test (:func:`_permutation_p_value`), the agreement the F1 of the label decisions.
    O(N × labels² + PERMUTATIONS × (N × labels² + labels³)).

    Raises:
        DataError: as :func:`map_from_predictions`.
    """
    _check_sample_size(len(labels), model_labels, dataset_labels)
    index = {label: position for position, label in enumerate(dataset_labels)}
    outputs = np.zeros((len(labels), len(model_labels)), dtype=bool)  # [N, outputs]
    carried = np.zeros((len(labels), len(dataset_labels)), dtype=bool)  # [N, labels]
    for row, (chosen, label_set) in enumerate(zip(predicted, labels, strict=True)):
        outputs[row, list(chosen)] = True
        carried[row, [index[label] for label in label_set if label in index]] = True
    return _map_of_most_agreement(outputs, carried, model_labels, dataset_labels, label_sets=True)


def _map_of_most_agreement(outputs: np.ndarray, carried: np.ndarray, model_labels: Sequence[str],
                           dataset_labels: Sequence[str], *, label_sets: bool) -> LabelMapReading:
    """The assignment of most records predicted as an output and carrying its label (``outputs`` [N, outputs] and
    ``carried`` [N, labels], bool), checked (see :func:`map_from_predictions`)."""
    from scipy.optimize import linear_sum_assignment

    counts = outputs.T.astype(np.int64) @ carried.astype(np.int64)  # [outputs, labels]
    rows, columns = linear_sum_assignment(counts, maximize=True)
    mapping = {model_labels[row]: dataset_labels[column] for row, column in zip(rows, columns, strict=True)}
    reading = LabelMapReading(
        mapping, len(outputs),
        predicted={model_labels[row]: int(outputs[:, row].sum()) for row in rows},
        agreeing={model_labels[row]: int(counts[row, column]) for row, column in zip(rows, columns, strict=True)},
        carried=int(carried.sum()), label_sets=label_sets)
    p_value = _permutation_p_value(outputs, carried, int(counts[rows, columns].sum())) if label_sets \
        else _independence_p_value(counts)
    _check_reading(reading, p_value, [(model_labels[first], model_labels[second])
                                      for first, second in _untold_pairs(outputs, carried, columns)])
    return reading


def _untold_pairs(outputs: np.ndarray, carried: np.ndarray, columns: np.ndarray) -> list[tuple[int, int]]:
    """The pairs of outputs the sample does not tell apart: for outputs ``a``, ``b`` mapped to labels ``A``, ``B``
    (``columns``: each output's label), the records that agree with the map (``a``→``A``, ``b``→``B``) against those
    that would agree with the two swapped (``a``→``B``, ``b``→``A``) — a one-sided sign test at
    :data:`MAX_SWAP_P_VALUE`. A record tells the two apart when it is predicted as one of ``a``, ``b`` and carries one
    of ``A``, ``B`` (one label a record: every record predicted as ``a`` or ``b`` that carries ``A`` or ``B``; a label
    set with both, or neither, agrees with both maps alike). A wrong map is mostly two labels the model confuses, read
    the wrong way round: measured on 20 Newsgroups with a model right on 73 % of them (benchmarks/label_order.py),
    agreement and the χ² test let 1 to 7 of 30 such maps through; with this test none of the 150 wrong maps of 100 to
    2,000 records came through, and from 2,000 records 88 to 100 % of the right ones did. An output no record was
    predicted as is told apart from the others only where their records carry their own labels (by elimination); two
    such outputs never are. ``outputs`` [N, outputs], ``carried`` [N, labels] bool; O(outputs² × N)."""
    from scipy.stats import binomtest

    mapped = carried[:, columns]  # [N, outputs]: carries the label each output is mapped to
    as_mapped = (outputs & mapped).astype(np.int64)  # predicted as a, carries A
    neither = (~outputs & ~mapped).astype(np.int64)  # not predicted as b, does not carry B
    kept_one_way = as_mapped.T @ neither  # [a, b]: a and A alone of the two pairs (the map's side)
    swapped_one_way = (outputs & ~mapped).astype(np.int64).T @ (~outputs & mapped).astype(np.int64)  # a alone, B alone
    untold = []
    for first, second in itertools.combinations(range(len(columns)), 2):
        kept = int(kept_one_way[first, second] + kept_one_way[second, first])
        swapped = int(swapped_one_way[first, second] + swapped_one_way[second, first])
        if kept + swapped == 0 or binomtest(kept, kept + swapped, 0.5, alternative="greater").pvalue > MAX_SWAP_P_VALUE:
            untold.append((first, second))
    return untold


def _check_sample_size(size: int, model_labels: Sequence[str], dataset_labels: Sequence[str]) -> None:
    """Refuse to read a map from fewer than :data:`MIN_PER_LABEL` labelled records per label (before predicting)."""
    needed = MIN_PER_LABEL * len(dataset_labels)
    if size < needed:
        raise DataError(f"--label-map auto reads the model's labels from records that carry a label (a review, or the "
                        f"label they came with: argilla.reference), and found {size}, fewer than {needed} "
                        f"({MIN_PER_LABEL} per label; a model that confuses some labels needs many more): review some "
                        f"records of each label first (`argilla-worker cold-start` ranks a varied first batch) and run "
                        f"it again, or name them by hand, --label-map {model_labels[0]}=LABEL,…")


def _independence_p_value(counts: np.ndarray) -> float:
    """The χ² test's p-value that the predictions ([outputs, labels] ``counts``) are unrelated to the labels: with two
    labels the best of two maps agrees with at least half of any sample, so agreement alone proves nothing. 1.0 when
    the records fall in one row or one column (nothing to relate)."""
    from scipy.stats import chi2_contingency

    table = counts[counts.sum(axis=1) > 0][:, counts.sum(axis=0) > 0]
    if min(table.shape) < 2:
        return 1.0
    return float(chi2_contingency(table).pvalue)


def _permutation_p_value(outputs: np.ndarray, carried: np.ndarray, best: int, seed: int = 0) -> float:
    """Label sets: the p-value that the predictions (``outputs`` [N, outputs]) are unrelated to the label sets
    (``carried`` [N, labels]): the share of :data:`PERMUTATIONS` shufflings of the label sets over the records whose
    best map counts at least ``best`` (the best map's count on the sample), counting the sample itself. A χ² table
    does not apply: a record is in as many cells as it has labels. Seeded: the same sample gives the same answer.
    O(PERMUTATIONS × (N × outputs × labels + labels³))."""
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(seed)
    predicted = outputs.T.astype(np.int64)  # [outputs, N]
    carried = carried.astype(np.int64)
    as_good = 0
    for _ in range(PERMUTATIONS):
        counts = predicted @ carried[rng.permutation(len(carried))]
        rows, columns = linear_sum_assignment(counts, maximize=True)
        as_good += int(counts[rows, columns].sum()) >= best
    return (as_good + 1) / (PERMUTATIONS + 1)


def _check_reading(reading: LabelMapReading, p_value: float, untold: Sequence[tuple[str, str]]) -> None:
    """Refuse a map the sample does not support (see :func:`map_from_predictions`); ``untold``: the pairs of outputs
    it does not tell apart (:func:`_untold_pairs`)."""
    if p_value > MAX_P_VALUE:
        test = "permutation test" if reading.label_sets else "χ² test"
        raise DataError(f"--label-map auto: on {reading.records} labelled records, what the model predicts is no more "
                        f"related to their labels than chance ({test} p = {p_value:.2g}): it was not trained for "
                        f"this question, or too few records carry a label yet — name its labels by hand with "
                        f"--label-map, or train a model here (training.base_model = the model)")
    if reading.agreement < (MIN_SET_AGREEMENT if reading.label_sets else MIN_AGREEMENT):
        raise DataError(f"--label-map auto: read from {reading.records} labelled records, the model's best map "
                        f"({reading.as_option()}) agrees with {_agreement_words(reading, only=True)}: the model was "
                        f"not trained for this question's labels, or those labels are mostly wrong — name them by "
                        f"hand with --label-map, or train a model here (training.base_model = the model)")
    if untold:
        doubtful = sorted({output for pair in untold for output in pair}, key=list(reading.mapping).index)
        pairs = ", ".join(f"{first} / {second}" for first, second in untold[:5]) + (
            f" and {len(untold) - 5} more pairs" if len(untold) > 5 else "")
        raise DataError(f"--label-map auto: {reading.records} labelled records do not tell apart the model's {pairs} "
                        f"(read either way round, the map would agree with about as many records): with more records "
                        f"that carry a label it reads them, or name {', '.join(doubtful)} by hand — the map read for "
                        f"the others: " + ",".join(f"{model}={label}" for model, label in reading.mapping.items()
                                                  if model not in doubtful))


def predicted_outputs(model, tokenizer, sample: Sequence[LabelledInput], max_length: int) -> list[int]:
    """The model's predicted output index for each item of ``sample`` (deterministic: dropout off)."""
    return [int(row.argmax()) for row in _logits(model, tokenizer, sample, max_length)]


def predicted_output_sets(model, tokenizer, sample: Sequence[LabelledInput], max_length: int,
                          thresholds: Sequence[float] | None = None) -> list[tuple[int, ...]]:
    """A multi-label model's predicted outputs for each item of ``sample``: those whose sigmoid reaches its threshold
    (``thresholds`` [outputs]; None: :data:`DEFAULT_THRESHOLD` each), any number of them (deterministic)."""
    cut = None if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    predicted = []
    for row in _logits(model, tokenizer, sample, max_length):
        probabilities = 1.0 / (1.0 + np.exp(-row.astype(np.float64)))  # [outputs]
        chosen = probabilities >= (DEFAULT_THRESHOLD if cut is None else cut)
        predicted.append(tuple(int(output) for output in np.flatnonzero(chosen)))
    return predicted


def _logits(model, tokenizer, sample: Sequence[LabelledInput], max_length: int) -> Iterable[np.ndarray]:
    """The model's logits [outputs] for each item of ``sample``, in order (batches of :data:`PREDICT_BATCH`,
    dropout off)."""
    import torch

    model.eval()
    for start in range(0, len(sample), PREDICT_BATCH):
        batch = sample[start:start + PREDICT_BATCH]
        pairs = [item.text_pair or "" for item in batch] if any(item.text_pair for item in batch) else None
        encoded = tokenizer([item.text for item in batch], pairs, truncation=True, max_length=max_length,
                            padding=True, return_tensors="pt")
        with torch.inference_mode():
            logits = model(**encoded.to(model.device)).logits  # [batch, outputs]
        yield from logits.float().cpu().numpy()


def _agreement_words(reading: LabelMapReading, only: bool = False) -> str:
    """How far the map agrees with the sample, in words: a share of the labels, or the F1 of label decisions."""
    only_word = "only " if only else ""
    if reading.label_sets:
        return f"their label sets at {only_word}F1 {reading.agreement:.2f} ({reading.carried} labels carried)"
    return f"{only_word}{reading.agreement:.0%} of their labels"


def reading_note(reading: LabelMapReading) -> str:
    """The log's and the CLI's words on a map read from the records: agreement, and each output's evidence."""
    evidence = ", ".join(f"{model} → {label} ({reading.agreeing[model]} of {reading.predicted[model]})"
                         for model, label in reading.mapping.items())
    return (f"read the model's labels from {reading.records} labelled records (the map agrees with "
            f"{_agreement_words(reading)}): {evidence}")
