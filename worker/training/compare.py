"""The promotion gate's evidence: the candidate and the current model judged on the same records, none of which
the current model was taught, with a paired bootstrap interval of the difference in macro-F1.

The records are the candidate's validation records, and with a test set (``argilla-worker test-set``) its records
answered in rank order — from ``MIN_GATE_TEST_RECORDS`` of those on, they alone (:func:`gate_records`). Validation
records are annotated records, and annotators review the records the worker puts first (the least sure, the highest
loss); the test set is a random sample no model trains on.

A model is *taught* a record when it trained on it as an annotated example, or at full weight (a first model trained
on the labels the records carry): :meth:`worker.training.data.TrainingSet.taught_ids`. Each version the worker
trains keeps those ids (``taught_ids.txt.gz``; and those of the registry version it was fine-tuned from), so a
later candidate's gate leaves them out of the comparison. Records a model learnt from their unreviewed label at
``training.original_weight`` stay in: that label is not the one the record is judged against, and every model
trained on unreviewed labels has the same advantage or handicap there.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from worker.records import label_index
from worker.scoring.model import Classifier
from worker.scoring.multilabel import cross_fitted_decisions
from worker.training.data import Example, single_label, text_pairs
from worker.training.evaluate import label_set_targets, predict_probabilities

logger = logging.getLogger(__name__)

BOOTSTRAP_RESAMPLES = 1000
INTERVAL_LEVEL = 0.95
BOOTSTRAP_CELLS = 2_000_000  # resample weights held at once (resamples × records): memory ≈ 16 MB
MIN_GATE_TEST_RECORDS = 100  # test records answered in rank order from which the gate compares on them alone


@dataclass(frozen=True)
class Comparison:
    """Macro-F1 of both models on the ``records`` records the current model was not taught (``left_out``: those it
    was) — ``test_records`` of them test-set records, the others validation records —, and the 95 % paired bootstrap
    interval of candidate − current (None below 2 records)."""

    records: int
    left_out: int
    candidate_macro_f1: float
    current_macro_f1: float
    interval: tuple[float, float] | None
    test_records: int = 0

    def describe(self) -> str:
        """e.g. ``on 24 validation records (2 the current model trained on left out): difference −0.0417, 95 %
        interval −0.1250 to +0.0417``; ``on 120 test-set records: …``; ``on 24 validation and 30 test-set
        records: …``."""
        left_out = f" ({self.left_out} the current model trained on left out)" if self.left_out else ""
        difference = self.candidate_macro_f1 - self.current_macro_f1
        interval = (f", 95 % interval {self.interval[0]:+.4f} to {self.interval[1]:+.4f}"
                    if self.interval is not None else "")
        return f"on {self._records_text()}{left_out}: difference {difference:+.4f}{interval}"

    def _records_text(self) -> str:
        validation = self.records - self.test_records
        if not self.test_records:
            return f"{validation} validation records"
        if not validation:
            return f"{self.test_records} test-set records"
        return f"{validation} validation and {self.test_records} test-set records"

    def as_dict(self) -> dict:
        return {"records": self.records, "test_records": self.test_records, "left_out_taught": self.left_out,
                "candidate_macro_f1": self.candidate_macro_f1, "current_macro_f1": self.current_macro_f1,
                "difference_interval": list(self.interval) if self.interval is not None else None}


def gate_records(validation: Sequence[Example], test: Sequence[Example],
                 taught: Collection[str] | None = None) -> tuple[list[Example], list[Example]]:
    """(the validation records, the test-set records) the gate compares on: the ``test`` records (answered in rank
    order, none trained on) alone once :data:`MIN_GATE_TEST_RECORDS` of them are records the current model was not
    taught (``taught``: its taught ids; None: unknown, every one counts), else both. A first model trained on the
    records' own labels before the test set was drawn was taught most of it (all but its validation side, about a
    fifth): the gate leaves those out, and the validation records keep counting until enough of the rest are
    answered.

    ``benchmarks/test_set_gate.py`` (BBC News, 20 Newsgroups; the second model of an active-learning loop against
    the first, and the other way round; benchmarks/RESULTS.md "The promotion gate on the test set"): on the
    validation records alone the gate promoted the worse model in 3 of 4 regressions; on the test set (50 or 200
    records) it was right in 8 of 8 decisions, with the validation records 7 of 8 (the miss on the tolerance)."""
    if len(not_taught(test, taught)) >= MIN_GATE_TEST_RECORDS:
        return [], list(test)
    return list(validation), list(test)


def not_taught(examples: Sequence[Example], taught: Collection[str] | None) -> list[Example]:
    """The ``examples`` whose id is not in ``taught`` (a model's taught ids; None: unknown, all of them)."""
    return [example for example in examples if taught is None or example.id not in taught]


def clearly_worse(interval: Sequence[float] | None, tolerance: float) -> bool:
    """Whether a comparison's 95 % interval of candidate − current (None: under 2 records) lies wholly below the
    gate's threshold ``-tolerance``; when it reaches above, a rejection on its point difference is a toss the
    records are too few (or the models too alike) to settle."""
    return interval is not None and interval[1] < -tolerance


def rejection_advice(version: str, gate: Mapping[str, Any]) -> str:
    """What a team can do about a rejected candidate ``version``, from its ``metrics.json`` ``gate`` entry: which
    model stays current, whether the comparison could tell the two apart (:func:`clearly_worse`) and, when it could
    not, what gives the gate more evidence; and the command that promotes the candidate anyway."""
    comparison = gate.get("comparison") or {}
    interval = comparison.get("difference_interval")
    kept = f"{gate.get('current_version')} stays current"
    override = f"to use {version} anyway: `argilla-worker models promote {version}`"
    if clearly_worse(interval, gate["tolerance"]):
        return f"{kept} ({version} is worse beyond the comparison's noise); {override}"
    reach = f", where the difference's 95 % interval reaches {interval[1]:+.4f}" if interval is not None else ""
    more = ("more of the test set's records answered in rank order" if comparison.get("test_records") else
            "a test set (`argilla-worker test-set`: records drawn at random, answered in rank order)")
    return (f"{kept}, but the gate could not tell the two apart on {comparison.get('records', 0)} records{reach} "
            f"(its threshold: −{gate['tolerance']}); {more} gives it records neither model learnt; {override}")


def inferred_taught_ids(directory: Path, created_at: str | None, validation: Sequence[Example]) -> set[str] | None:
    """For a version the worker trained before it kept :data:`~worker.registry.TAUGHT_IDS_FILE`: the ``validation``
    examples it may have been taught — reviewed before it was registered (``created_at``; a record without a review
    time counts as reviewed before) and not among its own validation records (``validation.jsonl``, which it never
    trained on). None when the version has no ``validation.jsonl`` or time (a registered model: unknown)."""
    own_validation = directory / "validation.jsonl"
    if created_at is None or not own_validation.is_file():
        return None
    cutoff = _utc(created_at)
    never_taught = {json.loads(line)["id"] for line in own_validation.read_text().splitlines() if line.strip()}
    return {example.id for example in validation if example.id not in never_taught
            and (example.reviewed_at is None or _utc(example.reviewed_at) < cutoff)}


def _utc(moment: str) -> datetime:
    parsed = datetime.fromisoformat(moment)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def compare_models(candidate: Classifier, current: Classifier, validation: Sequence[Example],
                   taught: set[str] | None, *, test: Sequence[Example] = (), seed: int = 0) -> Comparison:
    """Both models' deterministic macro-F1 on the ``validation`` and ``test`` examples (test-set records; see
    :func:`gate_records` for which the gate passes) whose id is not in ``taught`` (the current model's taught ids;
    None: unknown, all compared), and the paired bootstrap interval of the difference. Label sets: both models decide
    the validation records at cross-fitted thresholds (:func:`~worker.scoring.multilabel.cross_fitted_decisions`)
    — the candidate's own were tuned on them, and the current model's on those of them it held out before — and
    the test records at their own thresholds. When the current model was taught every one of them, all are compared
    and the log says its figure is inflated. Two deterministic passes over the compared records; the bootstrap is
    O(resamples × records × classes)."""
    offered = [*validation, *test]
    test_ids = {example.id for example in test}
    compared = not_taught(offered, taught)
    if taught is None:
        logger.info("the current model %s does not say which records it trained on: the gate compares on all %d "
                    "records", current.version, len(offered))
    elif not compared:
        logger.warning("the current model %s trained on all %d records offered to the gate: it compares on them "
                       "anyway, and its figure is inflated", current.version, len(offered))
        compared = offered
    tuned_on = sum(example.id not in test_ids for example in compared)  # the validation records: compared first
    hits_candidate, targets = _hits(candidate, compared, seed, tuned_on)
    hits_current, _ = _hits(current, compared, seed, tuned_on)
    parts = np.stack([hits_candidate, hits_current])  # [2, 3, N, C]: tp / fp / fn per record and class
    observed = _macro_f1(np.ones((1, len(compared))), parts, targets.ndim == 1)[0]  # [2]
    interval = None
    if len(compared) >= 2:
        differences = _bootstrap_differences(parts, targets.ndim == 1, seed)
        tail = (1 - INTERVAL_LEVEL) / 2
        interval = (float(np.quantile(differences, tail)), float(np.quantile(differences, 1 - tail)))
    return Comparison(len(compared), len(offered) - len(compared), float(observed[0]), float(observed[1]),
                      interval, test_records=sum(example.id in test_ids for example in compared))


def _hits(classifier: Classifier, examples: Sequence[Example], seed: int, tuned_on: int = 0
          ) -> tuple[np.ndarray, np.ndarray]:
    """([3, N, C] true positives / false positives / false negatives of the classifier's deterministic answer per
    record and class, the targets: [N] class indices for single-label, [N, L] bool for label sets). Label sets: the
    first ``tuned_on`` examples (validation records) are decided at cross-fitted thresholds, the rest at the
    classifier's own."""
    probabilities = predict_probabilities(classifier, [e.text for e in examples], pairs=text_pairs(examples),
                                          samples=1, seed=seed).deterministic  # [N, C]
    if classifier.multi_label:
        targets = label_set_targets([tuple(e.label) for e in examples], classifier.labels)  # [N, L]
        predicted = probabilities >= np.asarray(classifier.thresholds)
        predicted[:tuned_on] = cross_fitted_decisions(probabilities[:tuned_on], targets[:tuned_on], seed=seed)
        truth = targets
    else:
        index = label_index(classifier.labels)
        targets = np.asarray([index[single_label(e, "the promotion gate")] for e in examples])  # [N]
        classes = len(classifier.labels)
        predicted = np.eye(classes, dtype=bool)[probabilities.argmax(axis=1)]
        truth = np.eye(classes, dtype=bool)[targets]
    return np.stack([predicted & truth, predicted & ~truth, ~predicted & truth]).astype(np.float64), targets


def _macro_f1(weights: np.ndarray, parts: np.ndarray, single_label_targets: bool) -> np.ndarray:
    """Macro-F1 [B, M] of M models under B record weightings ``weights`` [B, N] (a resample's counts), from
    ``parts`` [M, 3, N, C]. Single-label: averaged over the classes the weighted targets hold (as
    :func:`~worker.training.evaluate.classification_metrics`); label sets: over every label, an F1 of 0 where a
    label is neither present nor predicted (as scikit-learn's macro average with zero_division=0)."""
    models, _, records, classes = parts.shape
    flat = parts.transpose(2, 0, 1, 3).reshape(records, models * 3 * classes)  # [N, M·3·C]
    counts = (weights @ flat).reshape(len(weights), models, 3, classes)  # [B, M, 3, C]: one matrix product
    tp, fp, fn = counts[:, :, 0], counts[:, :, 1], counts[:, :, 2]
    denominator = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)  # [B, M, C]
    if not single_label_targets:
        return f1.mean(axis=2)
    present = (tp + fn) > 0  # the same for both models: the targets are shared
    return (f1 * present).sum(axis=2) / np.maximum(present.sum(axis=2), 1)


def _bootstrap_differences(parts: np.ndarray, single_label_targets: bool, seed: int) -> np.ndarray:
    """[BOOTSTRAP_RESAMPLES] candidate − current macro-F1, each on one resample of the records with replacement
    (the same resample for both models: paired), drawn in chunks of at most BOOTSTRAP_CELLS weights."""
    records = parts.shape[2]
    rng = np.random.default_rng(seed)
    chunk = max(1, min(BOOTSTRAP_RESAMPLES, BOOTSTRAP_CELLS // records))
    differences = []
    for start in range(0, BOOTSTRAP_RESAMPLES, chunk):
        size = min(chunk, BOOTSTRAP_RESAMPLES - start)
        weights = rng.multinomial(records, np.full(records, 1 / records), size=size).astype(np.float64)
        scores = _macro_f1(weights, parts, single_label_targets)  # [size, 2]
        differences.append(scores[:, 0] - scores[:, 1])
    return np.concatenate(differences)
