"""The scoring engine: a stream of records in, one :class:`RecordScore` per record out."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from worker.errors import DataError
from worker.scoring.batching import Batch, ScoringInput, Window, windows
from worker.scoring.mc import MCLayers, MCPredictor
from worker.scoring.model import Classifier
from worker.scoring.uncertainty import label_losses, uncertainty_scores

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordScore:
    """What the model says about one record. Every float is finite; None means "not applicable".

    ``probabilities`` is the mean MC-dropout distribution; ``predicted_label`` its argmax and
    ``score`` its probability. ``loss`` / ``expected_loss`` / ``disagreement`` need a reference
    label. A skipped record has only ``record_id`` and ``skipped_reason``.
    """

    record_id: str
    predicted_label: str | None = None
    score: float | None = None
    probabilities: dict[str, float] | None = None
    deterministic_label: str | None = None
    bald: float | None = None
    entropy: float | None = None
    margin: float | None = None
    variance: float | None = None
    variation_ratio: float | None = None
    reference_label: str | None = None
    loss: float | None = None
    expected_loss: float | None = None
    disagreement: bool | None = None
    skipped_reason: str | None = None
    extra: dict[str, float] = field(default_factory=dict)  # plugin scores by name

    @property
    def skipped(self) -> bool:
        return self.skipped_reason is not None


@dataclass
class ScoringStats:
    records: int = 0
    scored: int = 0
    skipped: int = 0
    truncated: int = 0
    seconds: float = 0.0
    skip_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def records_per_second(self) -> float:
        return self.scored / self.seconds if self.seconds else 0.0


class Scorer:
    """Scores records with a classifier: deterministic prediction, MC-dropout uncertainty, label loss.

    Args:
        classifier: the loaded model.
        samples: T, MC-dropout samples per record (default 20).
        strategy / mc_layers: see :class:`~worker.scoring.mc.MCPredictor` (default: fast MC over the
            last two thirds of the encoder layers).
        batch_size: records per forward pass (the MC pass runs batch_size × samples_per_forward).
        window_batches: batches per length-sorting window (memory is O(batch_size × window_batches)).
        seed: seeds torch's RNG at the start of each :meth:`score` call, so runs are reproducible.
    """

    def __init__(
        self,
        classifier: Classifier,
        *,
        samples: int = 20,
        strategy: Literal["partial", "full"] = "partial",
        mc_layers: MCLayers = "auto",
        batch_size: int = 32,
        window_batches: int = 16,
        samples_per_forward: int | None = None,
        seed: int = 0,
        progress: bool | None = None,
        extra_scorers: dict[str, Callable[[np.ndarray], np.ndarray]] | None = None,
    ):
        self.classifier = classifier
        self.predictor = MCPredictor(classifier, samples=samples, strategy=strategy, mc_layers=mc_layers,
                                     samples_per_forward=samples_per_forward)
        self.batch_size = batch_size
        self.window_batches = window_batches
        self.seed = seed
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.label_index = {label: index for index, label in enumerate(classifier.labels)}
        self.extra_scorers = dict(extra_scorers or {})
        self.stats = ScoringStats()

    def __repr__(self) -> str:
        return f"Scorer({self.predictor!r}, batch_size={self.batch_size}, seed={self.seed})"

    def score(self, records: Iterable[ScoringInput]) -> Iterator[RecordScore]:
        """Yield one RecordScore per input record, in input order (skipped ones included).

        Raises:
            DataError: a text is not a string, or a reference label is not one of the model's labels.
        """
        torch.manual_seed(self.seed)
        self.stats = ScoringStats()
        started = time.perf_counter()
        with tqdm(desc="scoring", unit="rec", disable=not self.progress) as bar:
            for window in windows(records, self.classifier.tokenizer, batch_size=self.batch_size,
                                  max_length=self.classifier.max_length, window_batches=self.window_batches):
                yield from self._score_window(window)
                self._count(window)
                self.stats.seconds = time.perf_counter() - started
                bar.update(len(window.records))
        if self.stats.truncated:
            logger.warning("%d of %d texts were longer than %d tokens and were truncated",
                           self.stats.truncated, self.stats.records, self.classifier.max_length)

    def _count(self, window: Window) -> None:
        self.stats.records += len(window.records)
        self.stats.skipped += len(window.skipped)
        self.stats.scored += len(window.records) - len(window.skipped)
        self.stats.truncated += window.truncated
        for reason in window.skipped.values():
            self.stats.skip_reasons[reason] = self.stats.skip_reasons.get(reason, 0) + 1

    def _score_window(self, window: Window) -> list[RecordScore]:
        results: list[RecordScore | None] = [None] * len(window.records)
        for batch in window.batches:
            for position, result in zip(batch.positions, self._score_batch(batch), strict=True):
                results[position] = result
        for position, reason in window.skipped.items():
            results[position] = RecordScore(record_id=window.records[position].record_id, skipped_reason=reason)
        return results

    def _reference_indices(self, batch: Batch) -> np.ndarray:
        indices = []
        for record in batch.records:
            if record.reference_label is None:
                indices.append(-1)
            elif record.reference_label in self.label_index:
                indices.append(self.label_index[record.reference_label])
            else:
                raise DataError(
                    f"record {record.record_id!r}: label {record.reference_label!r} is not one of the "
                    f"model's labels {list(self.classifier.labels)}"
                )
        return np.asarray(indices, dtype=np.int64)

    def _score_batch(self, batch: Batch) -> list[RecordScore]:
        reference = self._reference_indices(batch)
        prediction = self.predictor.predict(batch.inputs)
        deterministic_log_probs = prediction.deterministic.numpy()  # [B, C]
        mc_log_probs = prediction.mc.numpy()  # [B, C, T]
        mc_probs = np.exp(mc_log_probs)
        mean_probs = mc_probs.mean(axis=2)  # [B, C]
        uncertainty = uncertainty_scores(mc_probs)
        loss, expected_loss = label_losses(deterministic_log_probs, mc_log_probs, reference)
        extra = self._extra_scores(mc_probs)
        predicted = mean_probs.argmax(axis=1)
        deterministic_predicted = deterministic_log_probs.argmax(axis=1)
        labels = self.classifier.labels
        results = []
        for row, record in enumerate(batch.records):
            has_reference = reference[row] >= 0
            results.append(RecordScore(
                record_id=record.record_id,
                predicted_label=labels[predicted[row]],
                score=float(mean_probs[row, predicted[row]]),
                probabilities={label: float(mean_probs[row, index]) for index, label in enumerate(labels)},
                deterministic_label=labels[deterministic_predicted[row]],
                **{name: float(values[row]) for name, values in uncertainty.items()},
                reference_label=record.reference_label,
                loss=float(loss[row]) if has_reference else None,
                expected_loss=float(expected_loss[row]) if has_reference else None,
                disagreement=bool(predicted[row] != reference[row]) if has_reference else None,
                extra={name: float(values[row]) for name, values in extra.items() if np.isfinite(values[row])},
            ))
        return results

    def _extra_scores(self, mc_probs: np.ndarray) -> dict[str, np.ndarray]:
        """Plugin scores [B] from MC probabilities [B, C, T]; a scorer that fails or returns a wrong
        shape is logged by name and dropped (the built-in scores are unaffected)."""
        scores = {}
        for name, function in list(self.extra_scorers.items()):
            try:
                values = np.asarray(function(mc_probs), dtype=np.float64)
                if values.shape != (mc_probs.shape[0],):
                    raise ValueError(f"returned shape {values.shape}, expected ({mc_probs.shape[0]},)")
            except Exception:
                logger.exception("scorer %r failed; it is disabled for this run", name)
                del self.extra_scorers[name]
                continue
            scores[name] = values
        return scores
