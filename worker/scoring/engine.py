"""The scoring engine: a stream of records in, one :class:`RecordScore` per record out."""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, fields
from itertools import repeat
from typing import Literal, Self

import numpy as np
import torch
from tqdm.auto import tqdm

from worker.calibration import tempered
from worker.errors import DataError, ScoringError
from worker.iterables import timed
from worker.records import LabelValue, label_set
from worker.scoring.adaptive import AdaptiveSampling
from worker.scoring.batching import Batch, ScoringInput, Window, prefetch, tokenizer_pool, windows
from worker.scoring.device import model_failures
from worker.scoring.mc import BatchPrediction, MCLayers, MCPredictor, PendingPrediction
from worker.scoring.model import Classifier
from worker.scoring.multilabel import binary_cross_entropy, decide, multilabel_scores
from worker.scoring.uncertainty import UNCERTAINTY_NAMES, label_losses, mc_statistics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordScore:
    """What the model says about one record. Every float is finite; None means "not applicable".

    ``probabilities`` is the mean MC-dropout distribution; ``predicted_label`` its argmax and
    ``score`` its probability. ``loss`` / ``expected_loss`` / ``disagreement`` need a reference
    label. A skipped record has only ``record_id`` and ``skipped_reason``.

    A multi-label model (see :mod:`worker.scoring.multilabel`): ``probabilities`` holds each label's mean
    probability of being present; ``predicted_label`` is the predicted label set (a tuple, never empty) and
    ``score`` the probability of exactly that set; ``bald`` / ``entropy`` are the most doubtful label's,
    ``bald_mean`` their mean; ``margin`` the smallest distance of a label's probability from its threshold;
    ``loss`` the reference set's worst label decision's BCE (see :mod:`worker.scoring.multilabel`), ``to_add`` /
    ``to_remove`` the labels the model would change.
    """

    record_id: str
    predicted_label: LabelValue | None = None
    score: float | None = None
    probabilities: dict[str, float] | None = None
    deterministic_label: LabelValue | None = None
    bald: float | None = None
    entropy: float | None = None
    margin: float | None = None
    variance: float | None = None
    variation_ratio: float | None = None
    reference_label: LabelValue | None = None
    loss: float | None = None
    expected_loss: float | None = None
    disagreement: bool | None = None
    bald_mean: float | None = None  # multi-label only, as the four below
    to_add: tuple[str, ...] | None = None
    to_remove: tuple[str, ...] | None = None
    label_changes: int | None = None
    mc_samples: int | None = None  # the MC samples this record got (fewer than T when adaptive sampling stopped early)
    skipped_reason: str | None = None
    extra: dict[str, float] = field(default_factory=dict)  # plugin scores by name

    @property
    def skipped(self) -> bool:
        return self.skipped_reason is not None

    @classmethod
    def from_rows(cls, names: Sequence[str], rows: Iterable[tuple]) -> list[RecordScore]:
        """RecordScores of ``rows`` (one tuple per record: the values of ``names``, which name every field once)
        without the dataclass's ``__init__``: a frozen dataclass sets each of its 21 fields through
        ``object.__setattr__`` (3.4 µs a record, more than a GPU's deterministic pass per record); here each instance
        is given the dict of its row at once. The scorer's hot path only: the values are not checked.

        Raises:
            ValueError: ``names`` are not the fields, each once.
        """
        if sorted(names) != _RECORD_SCORE_FIELDS:
            raise ValueError(f"RecordScore rows must name every field once, got {sorted(names)}")
        make, assign = object.__new__, object.__setattr__
        scores = []
        for row in rows:
            score = make(cls)
            assign(score, "__dict__", dict(zip(names, row, strict=True)))
            scores.append(score)
        return scores


_RECORD_SCORE_FIELDS = sorted(item.name for item in fields(RecordScore))
# The fields a single-label model's score leaves at None (multi-label ones; a skipped record's reason).
_SINGLE_LABEL_UNSET = ("bald_mean", "to_add", "to_remove", "label_changes", "skipped_reason")


@dataclass
class ScoringStats:
    """What one score call did, and where its caller's thread waited: ``input_wait_seconds`` for the next records to
    be read and tokenized (what the pipeline's prefetch thread did not hide; the Ray engine: reading the records it
    sends), ``model_seconds`` in the model (launching its passes and waiting for their results — on a CPU the passes
    themselves; the Ray engine: waiting for the actors' results). ``seconds`` runs from the call to its last result,
    the caller's own time between results included."""

    records: int = 0
    scored: int = 0
    skipped: int = 0
    truncated: int = 0
    seconds: float = 0.0
    skip_reasons: dict[str, int] = field(default_factory=dict)
    mc_samples: int = 0  # MC samples drawn over all scored records
    input_wait_seconds: float = 0.0
    model_seconds: float = 0.0

    @property
    def records_per_second(self) -> float:
        return self.scored / self.seconds if self.seconds else 0.0

    def waited_for_input(self, seconds: float) -> None:
        """Count ``seconds`` the caller's thread waited for its next input (see :func:`worker.iterables.timed`)."""
        self.input_wait_seconds += seconds


BatchSize = int | Literal["auto"]

# Records per forward pass when batch_size is "auto" off CUDA: on CPU cores larger batches gain nothing.
CPU_BATCH_SIZE = 32
# … and padded tokens per pass (the MC pass holds T times as many): short texts still fill 32 records, a batch of
# 512-token documents holds 4. Measured on 64 BBC articles, MiniLM, T = 20 (benchmarks/long_documents.py): 32 of them
# a batch peaked at 6.6 GB and ran 1.6× slower than this budget (1.5 GB).
CPU_BATCH_TOKENS = 2048


class Scorer:
    """Scores records with a classifier: deterministic prediction, MC-dropout uncertainty, label loss.

    Args:
        classifier: the loaded model.
        samples: T, MC-dropout samples per record (default 20).
        strategy / mc_layers: see :class:`~worker.scoring.mc.MCPredictor` (default: fast MC over the
            last two thirds of the encoder layers).
        batch_size: records per forward pass (the MC pass runs batch_size × samples_per_forward), or
            ``"auto"``: 32 off CUDA; on CUDA up to ``max_batch_size`` records within the largest token
            budget that fits the GPU's free memory (probed once, see :func:`probe_batch_tokens`); elsewhere up to
            32 records and ``CPU_BATCH_TOKENS`` padded tokens (long documents get smaller batches).
        max_batch_size: the upper bound of ``"auto"`` on CUDA.
        window_batches: batches per length-sorting window (memory is O(batch_size × window_batches)).
        seed: seeds torch's RNG at the start of each :meth:`score` call, so runs are reproducible.
        compile: ``torch.compile`` the forward passes (CUDA only).
        pipeline: on CUDA, tokenize on a background thread and keep one batch queued on the GPU while
            the previous one is post-processed (default: on for CUDA, off elsewhere).
        tokenizer_workers: processes that tokenize and pad windows ahead of the GPU (default 0: on the
            prefetch thread of this process). Experimental: on an H100 host the first configuration
            (8 processes) was 3.5× slower than 0 (benchmarks/RESULTS.md); started at the first
            :meth:`score` call and kept until :meth:`close`.
        adaptive: stop sampling a record once its estimates have settled (see
            :mod:`worker.scoring.adaptive`); None: T samples for every record, exactly as without it.
        consistent: consistent MC-dropout masks (:mod:`worker.scoring.consistent`); default: with
            ``adaptive`` only.
        dropout_rate: one rate for every sampled dropout layer (None: the model's own; see MCPredictor).
        calibrated: report a single-label model's class probabilities (the suggestion's score, ``confidence``,
            ``probabilities``) read at its fitted temperature (``classifier.temperature``, see
            :func:`~worker.scoring.model.temperature_of`); False: the MC-dropout mean as it is. The sort keys
            (``loss``, ``bald`` …) and the predicted label do not change with it.
        extra_scorers: plugin scores ``{name: function}``, each mapping a batch's MC probabilities — class
            distributions [N, C, T], or for a multi-label model each label's probability [N, L, T] — to [N]
            floats (written as ``RecordScore.extra``; a record's non-finite value is left out).

    Each :meth:`score` call is O(N) in time and O(window) in memory.
    """

    def __init__(
        self,
        classifier: Classifier,
        *,
        samples: int = 20,
        strategy: Literal["partial", "full"] = "partial",
        mc_layers: MCLayers = "auto",
        batch_size: BatchSize = 32,
        max_batch_size: int = 1024,
        window_batches: int = 16,
        samples_per_forward: int | None = None,
        seed: int = 0,
        progress: bool | None = None,
        extra_scorers: dict[str, Callable[[np.ndarray], np.ndarray]] | None = None,
        compile: bool = False,
        pipeline: bool | None = None,
        tokenizer_workers: int = 0,
        adaptive: AdaptiveSampling | None = None,
        consistent: bool | None = None,
        dropout_rate: float | None = None,
        calibrated: bool = True,
    ):
        self.classifier = classifier
        self.temperature = classifier.temperature if calibrated and not classifier.multi_label else 1.0
        self.predictor = MCPredictor(classifier, samples=samples, strategy=strategy, mc_layers=mc_layers,
                                     samples_per_forward=samples_per_forward, compile=compile, adaptive=adaptive,
                                     consistent=consistent, seed=seed, dropout_rate=dropout_rate)
        on_cuda = classifier.device.type == "cuda"
        if batch_size != "auto" and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or 'auto', got {batch_size!r}")
        self.requested_batch_size = batch_size
        self.max_batch_size = max_batch_size
        self.batch_size = (max_batch_size if on_cuda else CPU_BATCH_SIZE) if batch_size == "auto" else batch_size
        # "auto" on CUDA: set by the first score() call (probed); elsewhere a fixed budget
        self.batch_tokens: int | None = CPU_BATCH_TOKENS if batch_size == "auto" and not on_cuda else None
        self._bound_sample_passes()
        self.window_batches = window_batches
        self.seed = seed
        self.pipeline = on_cuda if pipeline is None else pipeline
        if tokenizer_workers < 0:
            raise ValueError(f"tokenizer_workers must be >= 0, got {tokenizer_workers}")
        self.tokenizer_workers = tokenizer_workers
        self._pool: ProcessPoolExecutor | None = None
        self._unfit: int | None = None  # records × padded length of the smallest batch that did not fit the GPU
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.label_index = {label: index for index, label in enumerate(classifier.labels)}
        self.extra_scorers = dict(extra_scorers or {})
        self.stats = ScoringStats()

    def __repr__(self) -> str:
        budget = f", batch_tokens={self.batch_tokens}" if self.batch_tokens else ""
        return f"Scorer({self.predictor!r}, batch_size={self.batch_size}{budget}, seed={self.seed})"

    def score(self, records: Iterable[ScoringInput]) -> Iterator[RecordScore]:
        """Yield one RecordScore per input record, in input order (skipped ones included).

        Raises:
            DataError: a text is not a string, or a reference label is not one of the model's labels.
        """
        self._size_batches()
        torch.manual_seed(self.seed)
        self.stats = ScoringStats()
        started = time.perf_counter()
        on_cuda = self.classifier.device.type == "cuda"
        if self.tokenizer_workers and self._pool is None:
            self._pool = tokenizer_pool(self.classifier.tokenizer, self.tokenizer_workers)
        stream = windows(records, self.classifier.tokenizer, batch_size=self.batch_size,
                         max_length=self.classifier.max_length, window_batches=self.window_batches,
                         batch_tokens=self.batch_tokens, pin_memory=on_cuda and self.pipeline, pool=self._pool)
        if self.pipeline:
            stream = prefetch(stream)
        in_flight: deque[tuple[_WindowResults, Batch, np.ndarray, PendingPrediction]] = deque()
        open_windows: deque[_WindowResults] = deque()
        depth = 1 if self.pipeline else 0  # batches left queued on the device while one is post-processed
        with tqdm(desc="scoring", unit="rec", disable=not self.progress) as bar:
            for window in timed(stream, self.stats.waited_for_input):
                results = _WindowResults(window)
                open_windows.append(results)
                for batch in window.batches:
                    reference = self._reference_indices(batch)
                    pending = self._launch_fitting(batch, reference, in_flight)
                    in_flight.append((results, batch, reference, pending))
                    while len(in_flight) > depth:
                        self._finish(*in_flight.popleft())
                yield from self._completed(open_windows, bar, started)
            while in_flight:
                self._finish(*in_flight.popleft())
            yield from self._completed(open_windows, bar, started)
        if self.stats.truncated:
            cut = "start" if getattr(self.classifier.tokenizer, "truncation_side", "right") == "left" else "end"
            logger.warning("%d of %d texts were longer than %d tokens and were truncated (their %s cut: "
                           "training.truncation_side; the length the model was trained at: training.max_length)",
                           self.stats.truncated, self.stats.records, self.classifier.max_length, cut)

    def close(self) -> None:
        """Stop the tokenizer processes (a later :meth:`score` starts them again)."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _launch(self, batch: Batch, reference: np.ndarray) -> PendingPrediction:
        """Queue the batch's passes; a model that fails on it (not for want of GPU memory) is a ScoringError
        naming the model and the batch's records."""
        ids = [record.record_id for record in batch.records]
        named = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        started = time.perf_counter()
        try:
            with model_failures(lambda error: ScoringError(
                    f"model {self.classifier.version} ({type(self.classifier.model).__name__}) failed on the batch of "
                    f"records {named}: {type(error).__name__}: {error}")):
                return self.predictor.launch(batch.inputs, torch.from_numpy(reference))
        finally:
            self.stats.model_seconds += time.perf_counter() - started

    def _result(self, pending: PendingPrediction) -> BatchPrediction:
        """The batch's prediction, once the device has it (the wait counted in ``stats.model_seconds``)."""
        started = time.perf_counter()
        try:
            return pending.result()
        finally:
            self.stats.model_seconds += time.perf_counter() - started

    def _launch_fitting(self, batch: Batch, reference: np.ndarray,
                        in_flight: deque[tuple[_WindowResults, Batch, np.ndarray, PendingPrediction]]
                        ) -> PendingPrediction:
        """:meth:`_launch`, or — when the batch does not fit the GPU's free memory now (another process took some,
        or a fixed ``batch_size`` is too large) — the batches in flight finished (their memory freed) and the batch
        run in parts (:meth:`_launch_in_parts`). A batch at least as large (records × padded length) as one that did
        not fit goes to parts at once; this scorer's later :meth:`score` calls batch half as many records (logged;
        a scorer kept between runs: the Ray engine's actors; the local engine makes a new one, which probes the free
        memory again with ``batch_size = "auto"``)."""
        size = batch.inputs["input_ids"].numel()
        if self._unfit is None or size < self._unfit:
            try:
                return self._launch(batch, reference)
            except torch.cuda.OutOfMemoryError:
                pass  # (handled outside the except block: its traceback would keep the failed pass's tensors alive)
            self._unfit = size
            while in_flight:
                self._finish(*in_flight.popleft())
            self._shrink_batches(len(batch.records))
        return self._launch_in_parts(batch, reference)

    def _launch_in_parts(self, batch: Batch, reference: np.ndarray) -> PendingPrediction:
        """The batch's passes in two halves, each run to its end before the next (a half that does not fit either
        is split again): the same scores as one pass (consistent masks: the same samples per record), in less
        memory. O(log batch) extra passes.

        Raises:
            ScoringError: one record alone does not fit (names it, its length and T).
        """
        torch.cuda.empty_cache()
        rows = len(batch.records)
        if rows == 1:
            tokens = int(batch.inputs["attention_mask"].sum()) if "attention_mask" in batch.inputs else None
            raise ScoringError(f"record {batch.records[0].record_id!r}: {tokens} tokens with "
                               f"{self.predictor.samples} MC samples do not fit the GPU's free memory "
                               f"({_free_mib(self.classifier.device)}); lower scoring.samples, or free the GPU")
        middle = rows // 2
        parts: list[BatchPrediction] = []
        for part in (slice(0, middle), slice(middle, rows)):
            half = Batch(batch.records[part], batch.positions[part],
                         {name: tensor[part] for name, tensor in batch.inputs.items()})
            try:
                parts.append(self._result(self._launch(half, reference[part])))
                continue
            except torch.cuda.OutOfMemoryError:
                pass
            parts.append(self._result(self._launch_in_parts(half, reference[part])))
        return _joined(parts, self.predictor.samples)

    def _shrink_batches(self, rows: int) -> None:
        """Halve the batches of this scorer's later :meth:`score` calls (records, and the token budget when there is
        one)."""
        before = f"{rows} records" + (f" / {self.batch_tokens} padded tokens" if self.batch_tokens else "")
        self.batch_size = max(1, self.batch_size // 2)
        if self.batch_tokens:
            self.batch_tokens = max(1, self.batch_tokens // 2)
            self._bound_sample_passes()
        logger.warning("a batch of %s with %d MC samples did not fit the GPU's free memory (%s): scored in parts, "
                       "as is any batch as large from now on; this scorer's next runs batch at most %d records%s",
                       before, self.predictor.samples,
                       _free_mib(self.classifier.device), self.batch_size,
                       f" / {self.batch_tokens} padded tokens" if self.batch_tokens else "")

    def _bound_sample_passes(self) -> None:
        """With a token budget, one MC pass holds at most what a full batch's pass holds (budget × the samples a
        pass draws): a text longer than the budget, alone in its batch, gets its samples fewer at a time instead
        of T (or a round) times its length at once."""
        if self.batch_tokens:
            predictor = self.predictor
            per_pass = predictor.adaptive.round_size if predictor.adaptive else predictor.samples_per_forward
            predictor.sample_tokens = self.batch_tokens * min(per_pass, predictor.samples_per_forward)

    def _size_batches(self) -> None:
        """On CUDA with batch_size "auto", probe the token budget once (the first score() call)."""
        if self.requested_batch_size != "auto" or self.classifier.device.type != "cuda" or self.batch_tokens:
            return
        self.batch_tokens = probe_batch_tokens(self.predictor, self.classifier.max_length,
                                               max_records=self.max_batch_size)
        self._bound_sample_passes()
        logger.info("scoring batches on %s: up to %d records and %d padded tokens per forward pass",
                    self.classifier.device, self.batch_size, self.batch_tokens)

    def _finish(self, results: _WindowResults, batch: Batch, reference: np.ndarray,
                pending: PendingPrediction) -> None:
        for position, result in zip(batch.positions, self._score_batch(batch, reference, self._result(pending)),
                                    strict=True):
            results.scores[position] = result
        results.remaining -= 1

    def _completed(self, open_windows: deque[_WindowResults], bar, started: float) -> Iterator[RecordScore]:
        """Yield the finished windows at the front of the queue (input order is kept)."""
        while open_windows and open_windows[0].remaining == 0:
            finished = open_windows.popleft()
            self._count(finished.window)
            self.stats.seconds = time.perf_counter() - started
            bar.update(len(finished.window.records))
            yield from finished.complete()

    def _count(self, window: Window) -> None:
        self.stats.records += len(window.records)
        self.stats.skipped += len(window.skipped)
        self.stats.scored += len(window.records) - len(window.skipped)
        self.stats.truncated += window.truncated
        for reason in window.skipped.values():
            self.stats.skip_reasons[reason] = self.stats.skip_reasons.get(reason, 0) + 1

    def _reference_indices(self, batch: Batch) -> np.ndarray:
        """[B] class index of each record's reference label (−1: none); multi-label: [B, L] 0/1 membership of
        each label in the reference set, a row of −1 where there is none.

        Raises:
            DataError: a reference label is not one of the model's labels (names the record and label).
        """
        if self.classifier.multi_label:
            rows = np.zeros((len(batch.records), len(self.label_index)), dtype=np.int64)
            for row, record in enumerate(batch.records):
                if record.reference_label is None:
                    rows[row] = -1
                    continue
                chosen = record.reference_label
                for label in chosen if isinstance(chosen, tuple) else (chosen,):
                    rows[row, self._index_of(record.record_id, label)] = 1
            return rows
        indices = []
        for record in batch.records:
            if record.reference_label is None:
                indices.append(-1)
            elif isinstance(record.reference_label, tuple):
                raise DataError(f"record {record.record_id!r}: label set {list(record.reference_label)} for a "
                                f"single-label model ({self.classifier.version})")
            else:
                indices.append(self._index_of(record.record_id, record.reference_label))
        return np.asarray(indices, dtype=np.int64)

    def _index_of(self, record_id: str, label: str) -> int:
        if label not in self.label_index:
            raise DataError(f"record {record_id!r}: label {label!r} is not one of the model's labels "
                            f"{list(self.classifier.labels)}")
        return self.label_index[label]

    def _score_label_sets(self, batch: Batch, reference: np.ndarray, prediction: BatchPrediction
                          ) -> list[RecordScore]:
        """RecordScores of a multi-label model's batch (see :class:`RecordScore`); reference [B, L] as from
        :meth:`_reference_indices`, prediction log-sigmoids [B, L] and [B, L, T]. With adaptive sampling the
        records are scored per group of equal sample count, on their samples only."""
        mc = prediction.mc.numpy()
        deterministic = prediction.deterministic.numpy()
        if prediction.samples_used is None:
            return self._score_label_set_group(batch.records, reference, deterministic, mc)
        samples_used = prediction.samples_used.numpy()
        results: list[RecordScore | None] = [None] * len(batch.records)
        for count in np.unique(samples_used).tolist():
            members = np.flatnonzero(samples_used == count)
            group = self._score_label_set_group([batch.records[i] for i in members.tolist()], reference[members],
                                                deterministic[members], mc[members, :, :count])
            for row, score in zip(members.tolist(), group, strict=True):
                results[row] = score
        return [score for score in results if score is not None]

    def _score_label_set_group(self, records: Sequence[ScoringInput], reference: np.ndarray,
                               deterministic_log_probs: np.ndarray, mc_log_probs: np.ndarray) -> list[RecordScore]:
        """RecordScores of records that all have the same samples: reference [n, L], log-sigmoids [n, L] and
        [n, L, t]."""
        labels = self.classifier.labels
        thresholds = np.asarray(self.classifier.thresholds, dtype=np.float64)
        has_reference = reference[:, 0] >= 0 if reference.shape[1] else np.zeros(len(reference), dtype=bool)
        mc_probs = np.exp(mc_log_probs.astype(np.float64))  # [n, L, t]
        scores = multilabel_scores(mc_probs, reference > 0, thresholds, at_least_one=True)
        assert scores.loss is not None and scores.expected_loss is not None  # scored against a reference
        assert scores.to_add is not None and scores.to_remove is not None
        deterministic = decide(np.exp(deterministic_log_probs.astype(np.float64)), thresholds, at_least_one=True)
        set_probability = np.exp(-binary_cross_entropy(scores.probabilities, scores.predicted).sum(axis=1))
        extra = self._extra_scores(mc_probs)
        finite_extra = {name: (values.tolist(), np.isfinite(values).tolist()) for name, values in extra.items()}
        margin = np.abs(scores.probabilities - thresholds).min(axis=1)
        samples = mc_probs.shape[2]
        self.stats.mc_samples += samples * len(records)

        def names(row: np.ndarray) -> tuple[str, ...]:  # a label set as the worker compares them: sorted
            return label_set(label for label, chosen in zip(labels, row.tolist(), strict=True) if chosen)

        results = []
        for row, record in enumerate(records):
            predicted = names(scores.predicted[row])
            judged = bool(has_reference[row])
            to_add, to_remove = names(scores.to_add[row]), names(scores.to_remove[row])
            results.append(RecordScore(
                record_id=record.record_id, predicted_label=predicted, score=float(set_probability[row]),
                probabilities=dict(zip(labels, scores.probabilities[row].tolist(), strict=True)),
                deterministic_label=names(deterministic[row]), bald=float(scores.bald_max[row]),
                entropy=float(scores.entropy_max[row]), margin=float(margin[row]),
                bald_mean=float(scores.bald_mean[row]), reference_label=record.reference_label,
                loss=float(scores.loss[row]) if judged else None,
                expected_loss=float(scores.expected_loss[row]) if judged else None,
                disagreement=predicted != record.reference_label if judged else None,
                to_add=to_add if judged else None, to_remove=to_remove if judged else None,
                label_changes=len(to_add) + len(to_remove) if judged else None, mc_samples=samples,
                extra={name: values[row] for name, (values, finite) in finite_extra.items() if finite[row]},
            ))
        return results

    def _score_batch(self, batch: Batch, reference: np.ndarray, prediction: BatchPrediction) -> list[RecordScore]:
        if self.classifier.multi_label:
            return self._score_label_sets(batch, reference, prediction)
        deterministic_log_probs = prediction.deterministic.numpy()  # [B, C]
        mc_log_probs = prediction.mc.numpy()  # [B, C, T]
        if prediction.samples_used is None:
            samples_used = np.full(len(reference), mc_log_probs.shape[2], dtype=np.int64)
            arrays = self._batch_arrays(deterministic_log_probs, mc_log_probs, reference)
        else:
            samples_used = prediction.samples_used.numpy()
            arrays = self._arrays_by_sample_count(deterministic_log_probs, mc_log_probs, reference, samples_used)
        self.stats.mc_samples += int(samples_used.sum())
        mean_probs = tempered(arrays.pop("mean_probs"), self.temperature)  # [B, C]
        extra = arrays.pop("extra")
        predicted = mean_probs.argmax(axis=1)
        labelled = (reference >= 0).tolist()
        labels = self.classifier.labels
        records = batch.records
        # Plain Python lists, converted once per batch: per-record numpy indexing costs more than the GPU pass.
        columns = {
            "record_id": [record.record_id for record in records],
            "reference_label": [record.reference_label for record in records],
            "predicted_label": [labels[index] for index in predicted.tolist()],
            "score": mean_probs[np.arange(len(predicted)), predicted].tolist(),
            "probabilities": [dict(zip(labels, row, strict=True)) for row in mean_probs.tolist()],
            "deterministic_label": [labels[index] for index in deterministic_log_probs.argmax(axis=1).tolist()],
            **{name: arrays[name].tolist() for name in UNCERTAINTY_NAMES},
            "loss": _where(labelled, arrays["loss"].tolist()),
            "expected_loss": _where(labelled, arrays["expected_loss"].tolist()),
            "disagreement": _where(labelled, (predicted != reference).tolist()),
            "mc_samples": samples_used.tolist(),
            "extra": _extra_rows(extra, len(records)),
            **{name: repeat(None) for name in _SINGLE_LABEL_UNSET},
        }
        return RecordScore.from_rows(list(columns), zip(*columns.values()))

    def _batch_arrays(self, deterministic_log_probs: np.ndarray, mc_log_probs: np.ndarray,
                      reference: np.ndarray) -> dict:
        """Per-record arrays of B records that all have the same T samples: ``mean_probs`` [B, C], each of
        UNCERTAINTY_NAMES, ``loss`` and ``expected_loss`` [B], ``extra`` {plugin score: [B]}.

        deterministic_log_probs: [B, C]; mc_log_probs: [B, C, T]; reference: [B] class index or −1."""
        mean_probs, uncertainty = mc_statistics(mc_log_probs)
        loss, expected_loss = label_losses(deterministic_log_probs, mc_log_probs, reference)
        extra = self._extra_scores(np.exp(mc_log_probs)) if self.extra_scorers else {}
        return {"mean_probs": mean_probs, **uncertainty, "loss": loss, "expected_loss": expected_loss,
                "extra": extra}

    def _arrays_by_sample_count(self, deterministic_log_probs: np.ndarray, mc_log_probs: np.ndarray,
                                reference: np.ndarray, samples_used: np.ndarray) -> dict:
        """:meth:`_batch_arrays` for records with different sample counts (adaptive sampling): computed per
        group of records with the same count (at most T / round size groups), on their samples only."""
        rows = len(reference)
        merged: dict = {"extra": {}}
        for count in np.unique(samples_used).tolist():
            members = np.flatnonzero(samples_used == count)
            group = self._batch_arrays(deterministic_log_probs[members], mc_log_probs[members, :, :count],
                                       reference[members])
            for name, values in group.pop("extra").items():
                merged["extra"].setdefault(name, np.full(rows, np.nan))[members] = values
            for name, values in group.items():
                merged.setdefault(name, np.full((rows, *values.shape[1:]), np.nan))[members] = values
        return merged

    def _extra_scores(self, mc_probs: np.ndarray) -> dict[str, np.ndarray]:
        """Plugin scores [B] from MC probabilities [B, C, T] (a multi-label model: per-label [B, L, T]); a scorer
        that fails or returns a wrong shape is logged by name and dropped (the built-in scores are unaffected)."""
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


def _where(chosen: list[bool], values: list) -> list:
    """``values`` where ``chosen``, None elsewhere (a record without a reference label has no loss)."""
    return [value if keep else None for value, keep in zip(values, chosen, strict=True)]


def _extra_rows(extra: dict[str, np.ndarray], rows: int) -> list[dict[str, float]]:
    """Each record's plugin scores {name: value} from ``extra`` {name: [rows]}, the non-finite ones left out; a
    dict of its own per record."""
    if not extra:
        return [{} for _ in range(rows)]
    columns = [(name, values.tolist(), np.isfinite(values).tolist()) for name, values in extra.items()]
    return [{name: values[row] for name, values, finite in columns if finite[row]} for row in range(rows)]


class _WindowResults:
    """The scores of one window as its batches finish (skipped records are filled in at once)."""

    def __init__(self, window: Window):
        self.window = window
        self.scores: list[RecordScore | None] = [None] * len(window.records)
        for position, reason in window.skipped.items():
            self.scores[position] = RecordScore(record_id=window.records[position].record_id, skipped_reason=reason)
        self.remaining = len(window.batches)

    def complete(self) -> list[RecordScore]:
        """The window's scores in input order, once every batch has finished (``remaining`` = 0)."""
        missing = [position for position, score in enumerate(self.scores) if score is None]
        if missing:
            raise ScoringError(f"window finished without scores for {len(missing)} record(s)")
        return [score for score in self.scores if score is not None]


def _joined(parts: Sequence[BatchPrediction], samples: int) -> PendingPrediction:
    """One batch's prediction from its parts' (in order): [rows, C] and [rows, C, T] stacked; ``samples_used``
    where a part has it (a part without it drew all ``samples``)."""
    used = None
    if any(part.samples_used is not None for part in parts):
        used = torch.cat([part.samples_used if part.samples_used is not None
                          else torch.full((len(part.deterministic),), samples, dtype=torch.int64) for part in parts])
    return PendingPrediction(deterministic=torch.cat([part.deterministic for part in parts]),
                             mc=torch.cat([part.mc for part in parts]), samples_used=used)


def _free_mib(device: torch.device) -> str:
    """The device's free memory, as words for a log line."""
    if device.type != "cuda":
        return f"on {device}"
    free, total = torch.cuda.mem_get_info(device)
    return f"{free / 2**20:,.0f} MiB free of {total / 2**20:,.0f}"


def probe_batch_tokens(predictor: MCPredictor, max_length: int, *, max_records: int,
                       headroom: float = 0.8) -> int:
    """The largest padded-token budget per forward pass that fits the device, times ``headroom``.

    Tries ``max_records × max_length`` tokens (the worst case: every text at the model's limit), then
    halves on CUDA out-of-memory until a full deterministic + MC forward pass of
    ``budget // max_length`` texts of ``max_length`` tokens runs. Memory per pass grows with
    tokens × samples, so the budget holds for shorter texts too (they just fit more records).

    Raises:
        ScoringError: not even one text of ``max_length`` tokens fits.
    """
    budget = max_records * max_length
    while True:
        rows = max(1, budget // max_length)
        token = min(100, predictor.classifier.model.config.vocab_size - 1)  # any real token id
        inputs = {"input_ids": torch.full((rows, max_length), token, dtype=torch.long),
                  "attention_mask": torch.ones((rows, max_length), dtype=torch.long)}
        try:
            predictor.launch(inputs).result()
            return max(max_length, int(budget * headroom))
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            if rows == 1:
                raise ScoringError(f"one text of {max_length} tokens with {predictor.samples} MC samples does not "
                                   f"fit the GPU's free memory; lower scoring.samples") from None
            budget //= 2
