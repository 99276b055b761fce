"""The worker's jobs — score, train, calibrate — as plain functions over the configuration.

The CLI runs them once; the long-running loop runs them from its queue. Every job is idempotent:

* **score** writes, per record, the model version and the label the loss was measured against
  (metadata ``model_version`` / ``reference_label``). A record whose values are already those of the
  current model and label is not scored again, so Argilla itself is the checkpoint: a run stopped
  after any pushed batch resumes where it stopped, with no record pushed twice. A run over every record also
  keeps its place (:mod:`worker.full_pass`), so that the next one need not read the records before it again.
* **train** runs in the registry's staging area: a crash leaves the current model untouched.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import random
import shutil
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from worker.background import BackgroundStage
from worker.binding import PRESERVED_AGENT, DatasetBinding, is_foreign
from worker.coldstart import OUTLIER_PROPERTY, RANK_PROPERTY, ColdStartSettings, cold_start_ranks, vector_ranks
from worker.config import ScoringSettings, TrainingSettings, WorkerSettings
from worker.constants import (
    AUTO_HEAD_LEARNING_RATE,
    AUTO_HEAD_MIN_LABELS,
    DEFAULT_TEST_SET_SHARE,
    DEFAULT_TEST_SET_SIZE,
    PROBABILITY_FLOOR,
    TEST_SET_PROPERTY,
)
from worker.crowd import (
    TIES_HINT,
    CrowdEstimator,
    CrowdModel,
    blind,
    echoes_training,
    needs_another_label,
    needs_another_label_set,
    verdict,
)
from worker.duplicates import COPIES, EXACT, NO_LABEL, CopyCounts, CopyIndex, text_key
from worker.errors import ConfigError, DataError, Interrupted, NothingNewError, WorkerError
from worker.files import Scratch
from worker.full_pass import CHECKPOINT_EVERY_S, REVIEWED, UNREVIEWED, FullPass
from worker.gateway import ArgillaGateway
from worker.gateway.client import PAGE_SIZE, SUBMITTED_FILTER, PushReport, Reconciliation, Watermark
from worker.gateway.schema import MODEL_ANSWER_METADATA, SUBMITTED_RESPONSES
from worker.gateway.sync_state import ScoredBy
from worker.iterables import KeyedSample, batched, reservoir_sample
from worker.label_issues import label_issue_scores
from worker.plugins import call_each
from worker.predictions import SuggestionPolicy, prediction_from_score, readable, suggests_reference
from worker.publish import PublishOptions, build_publication
from worker.publish.build import PublicationStats
from worker.publish.card import labelled_from_scratch
from worker.publish.sinks import CardInfo, HubSink, LocalDirectorySink, PublishResult, check_sink
from worker.records import SUBMITTED, LabelValue, Prediction, PulledRecord, consensus, same_value
from worker.registry import CURRENT, ModelVersion, check_writable, read_taught_ids
from worker.scoring import Scorer, ScoringInput, check_head_fits, load_classifier
from worker.scoring.adaptive import AdaptiveSampling
from worker.scoring.engine import RecordScore
from worker.scoring.multilabel import binary_cross_entropy
from worker.services import Services
from worker.stability import (
    StopSet,
    agreement,
    draw_stop_set,
    load_predictions,
    save_predictions,
    stopping_signal,
)
from worker.test_set import (
    TestMeasure,
    TestProgress,
    TestSet,
    TestSetFilter,
    grow_test_set,
    measure,
    progress,
    recovered_or_drawn,
    wilson_interval,
)
from worker.training.calibrate import VALIDATION_RECORDS, CalibrationReport, calibration_report
from worker.training.compare import compare_models, rejection_advice
from worker.training.data import (
    RARE_LABEL_FLOOR,
    Example,
    TrainingSet,
    checked_label,
    examples_from_records,
    stratified_folds,
)
from worker.training.evaluate import few_labels_predicted, not_learned, predict_probabilities
from worker.training.job import (
    HeldOutScores,
    TrainingOutcome,
    aligned_start,
    prepare_training_set,
    read_examples,
    retrain,
    settings_digest,
    start_model,
    taught_by,
    trained_before,
)
from worker.training.kfold import (
    LabelledRecords,
    MarginAverage,
    completed_folds,
    fold_models_dir,
    stream_out_of_fold_scores,
)
from worker.training.trainer import check_model_source, trained_head_learning_rate
from worker.view import (
    QuantileSketch,
    ValueQuantiles,
    ViewTolerance,
    new_values,
    stored_values,
)

if TYPE_CHECKING:
    from worker.scoring.distributed import RayScorer

logger = logging.getLogger(__name__)


TRAINED_ON_METADATA = ("area_under_margin", "label_issue")  # `score --oof`: only for records the fold models saw
FOLD_MODELS = "folds"  # the registry's directory of an out-of-fold run's models (kept for a rerun if it stops)
OOF_MARK = "-oof"  # "v0003-oof5": out-of-fold values computed alongside model v0003
BASE_VERSION = "base"  # "base-oof5": out-of-fold values computed before any model was registered


@dataclass
class HeldOutAgreement:
    """How often the fold models predict the label of the records they did not train on, beside how often the
    most common label alone would (the same records): near it, the models have not learned the task and their
    losses rank little. Single-label only."""

    records: int = 0
    agreed: int = 0
    label_counts: Counter[str] = field(default_factory=Counter)

    def add(self, score: RecordScore) -> None:
        if score.skipped or not isinstance(score.reference_label, str):
            return
        self.records += 1
        self.agreed += score.predicted_label == score.reference_label
        self.label_counts[score.reference_label] += 1

    @property
    def accuracy(self) -> float:
        return self.agreed / self.records if self.records else 0.0

    @property
    def majority(self) -> float:
        return max(self.label_counts.values()) / self.records if self.records else 0.0

    def summary(self) -> str:
        return (f"the fold models predict {self.accuracy:.1%} of the held-out labels "
                f"(the most common label alone: {self.majority:.1%})")


@dataclass
class ScoreReport:
    model_version: str
    considered: int = 0
    up_to_date: int = 0
    scored: int = 0
    skipped: int = 0
    pushed: int = 0
    unchanged: int = 0
    failed: int = 0
    kept: int = 0  # scored, not pushed: the annotators' view would not change (see worker.view)
    new_submissions: int = 0  # records with a submitted response since the last run (incremental runs)
    new_test_answers: int = 0  # … of them, test records (or copies of their texts): they train no model
    stopped: bool = False
    paused: bool = False  # stopped for more urgent work (score_job's pause): the runner asks for the rest again
    resumed_after: int = 0  # a full run going on from a checkpoint: the records its earlier runs read
    seconds: float = 0.0
    failed_ids: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # record id -> why its push failed (kept for retry)
    mc_samples: int = 0  # MC samples drawn over the scored records (fewer than T each when adaptive)
    held_out: HeldOutAgreement | None = None  # out-of-fold runs: how often the fold models agree with the labels
    label_issues: int = 0  # out-of-fold runs: records given label_issue (those the fold models trained on)
    blind: int = 0  # test records (or copies) nobody has reviewed: no model answer (see blind_test_records)
    unlabelled: int = 0  # out-of-fold runs: records without a label, which no held-out loss can be measured for
    # where the run's thread waited (see time_shares): for records to be read and tokenized, for the model's
    # results (on a CPU: its passes; the Ray engine: its actors), for the pusher (Argilla's bulk upserts)
    setup_seconds: float = 0.0  # before the first record was read: binding, the model loaded, the engine started
    input_wait_seconds: float = 0.0
    model_seconds: float = 0.0
    push_wait_seconds: float = 0.0
    actor_shares: dict[str, float] = field(default_factory=dict)  # the Ray engine: its actors' own time (see RayScorer)

    @property
    def records_per_second(self) -> float:
        return self.scored / self.seconds if self.seconds else 0.0

    def time_shares(self) -> dict[str, float]:
        """Shares of ``seconds``: ``setup`` (before the first record was read: the dataset's binding checked, the
        model loaded, the Ray engine's actors started) and the time spent waiting for each stage of the pipeline —
        ``records`` (pages read from Argilla, texts tokenized: what the prefetch thread did not hide), ``model`` and
        ``push``. The largest wait is the stage that bounds the run's speed; the rest of the time is the scorer's own
        work on each record's results."""
        waits = self.input_wait_seconds + self.model_seconds + self.push_wait_seconds
        if not self.seconds or not waits:  # (out-of-fold runs do not measure them)
            return {}
        return {stage: seconds / self.seconds for stage, seconds in
                (("setup", self.setup_seconds), ("records", self.input_wait_seconds), ("model", self.model_seconds),
                 ("push", self.push_wait_seconds))}

    def progress(self) -> str:
        """How far a run under way got (``status`` shows it)."""
        return (f"{self.considered} records read, {self.scored} scored, {self.pushed} pushed"
                f" ({self.records_per_second:.1f}/s){self._going_on()}")

    def _going_on(self) -> str:
        return (f" (a full run going on after the {self.resumed_after} records its earlier runs read)"
                if self.resumed_after else "")

    @property
    def mean_mc_samples(self) -> float:
        return self.mc_samples / self.scored if self.scored else 0.0

    def summary(self) -> str:
        state = "paused for more urgent work" if self.paused else "stopped early" if self.stopped else "complete"
        return (f"scoring with {self.model_version} {state}{self._going_on()}: {self.considered} records considered, "
                f"{self.up_to_date} already up to date, {self.scored} scored ({self.records_per_second:.1f}/s), "
                f"{self.skipped} skipped, {self.pushed} pushed, {self.unchanged} unchanged, {self.failed} failed"
                + (f", {self.kept} kept (the view would not change)" if self.kept else "")
                + (f", {self.blind} test records (or copies of their texts) left without the model's answer until "
                   f"reviewed" if self.blind else "")
                + (f", {self.unlabelled} without a label (left to the current model's score run)"
                   if self.unlabelled else "")
                + (f"; {self.mean_mc_samples:.1f} MC samples a record" if self.scored else "")
                + (f"; of its {self.seconds:.1f} s it set up {shares['setup']:.0%} (binding, model, engine) and "
                   f"waited for records (read, tokenized) {shares['records']:.0%}, for the model "
                   f"{shares['model']:.0%}, for pushes {shares['push']:.0%}"
                   if self.scored and (shares := self.time_shares()) else "")
                + (f" (the Ray actors: in the model {self.actor_shares['model']:.0%} of their time, tokenizing "
                   f"{self.actor_shares['records']:.0%})" if self.scored and self.actor_shares else "")
                + (f"; {self.held_out.summary()}" if self.held_out and self.held_out.records else ""))


def scorer_options(settings: ScoringSettings) -> dict[str, Any]:
    """The :class:`Scorer` options of ``[scoring]`` that decide the numbers a record gets (not how fast): MC
    samples, layers, dropout rate, the stopping rule. Training fits the temperature on its validation records
    scored with these."""
    return {"samples": settings.samples, "mc_layers": settings.mc_layers, "dropout_rate": settings.dropout_rate,
            "adaptive": adaptive_sampling(settings)}


def written_options(settings: ScoringSettings, plugin_scores: Iterable[str] = ()) -> dict[str, Any]:
    """:func:`scorer_options`, ``calibrated``, ``power_beta`` (the ``bald_power`` key) and the names of the plugins'
    scores as JSON values: what a record's written values depend on besides the model and its label (a change
    rescores the records: :func:`_stale_before`)."""
    options = scorer_options(settings)
    adaptive = options["adaptive"]
    return {**options, "adaptive": asdict(adaptive) if adaptive is not None else None,
            "calibrated": settings.calibrated, "power_beta": settings.power_beta,
            "plugin_scores": sorted(plugin_scores)}


def adaptive_sampling(settings: ScoringSettings) -> AdaptiveSampling | None:
    """The stopping rule of ``[scoring]``, or None when ``adaptive = false`` (fixed T)."""
    if not settings.adaptive:
        return None
    return AdaptiveSampling(round_size=settings.adaptive_round, bald_rse=settings.adaptive_bald_rse,
                            loss_se=settings.adaptive_loss_se)


def reference_label(record: PulledRecord, crowd: CrowdModel | None = None) -> LabelValue | None:
    """The label a record's loss is measured against: the annotators' consensus (votes weighed by ``crowd``,
    see :mod:`worker.crowd`; None: majority), else the label it came with as the dataset binding resolves it
    (``record.reference``; None: uncertainty only)."""
    decided = verdict(record, crowd)
    if decided is not None and decided.label is not None:
        return decided.label
    return record.reference


def is_up_to_date(record: PulledRecord, model_version: str, policy: SuggestionPolicy = "model",
                  crowd: CrowdModel | None = None, stale_before: datetime | None = None) -> bool:
    """Whether the record already carries this model's values for its current reference label (votes
    weighed by ``crowd``) and number of submitted responses, and the suggestion ``policy`` asks for (a
    changed policy rescores), written after ``stale_before`` (server clock: other ``[scoring]`` options scored the
    records written before; out-of-fold values stay, computed by their own run). When it was written is the
    suggestion's ``updated_at`` — a push writes it with the values, and nobody else writes this question's
    suggestion, while other workers, ingest and the team's own scripts change the record's — else the record's."""
    written = record.metadata.get("model_version")
    reference = reference_label(record, crowd)
    if (written is None or written.split(OOF_MARK)[0] != model_version or record.suggestion is None
            or not same_value(record.metadata.get("reference_label"), reference)
            or record.metadata.get(SUBMITTED_RESPONSES) != submitted_responses(record)):
        return False
    written_at = record.suggestion.updated_at or record.updated_at
    if stale_before is not None and written_at is not None and written_at <= stale_before and OOF_MARK not in written:
        return False
    # an empty label set cannot be suggested (the model's set is): it counts as no reference here
    if suggests_reference(policy, has_reference=bool(reference), reviewed=_reviewed(record, crowd)):
        return record.suggestion.value == reference
    return record.suggestion.agent == written


def blind_test_records(services: Services, crowd: CrowdModel | None = None,
                       test_records: TestSetFilter | None = None) -> Callable[[PulledRecord], bool]:
    """Whether a record is a test record (:func:`~worker.test_set.is_test_record`), or another record carrying one
    of their texts (:meth:`~worker.test_set.TestSetFilter.is_copy`), that the annotators' votes (weighed by
    ``crowd``) give no label yet, or fewer submitted responses than the dataset's task distribution asks of a
    record (``min_submitted``: the next annotator would see the model's answer). The worker writes no suggestion
    and no model metadata on those: Argilla pre-selects a suggestion, and a label accepted unread would measure the
    model against itself — the model's answer on a copy is its answer on the test record. O(1) a record (a hash of
    its text when a test set is stored; one request to read the distribution). ``test_records``: the stored test
    set's filter when the caller has one."""
    if test_records is None:
        test_records = TestSetFilter(services.test_sets.get(services.gateway.dataset_key))
    needed, annotators_only = services.gateway.min_submitted(), blind(crowd)
    return lambda record: test_records.covers(record) and (
        not _reviewed(record, annotators_only) or submitted_responses(record) < needed)


def submitted_responses(record: PulledRecord) -> int:
    return sum(response.status == SUBMITTED for response in record.responses)


def _reviewed(record: PulledRecord, crowd: CrowdModel | None = None) -> bool:
    """Whether the annotators' votes give the record a label (a kept tie does not)."""
    decided = verdict(record, crowd)
    return decided is not None and decided.label is not None


def reference_agent(record: PulledRecord, binding: DatasetBinding) -> str:
    """Who an unreviewed record's reference label came from: the agent preserved with it, else the other
    agent whose suggestion it is, else the binding's reference source."""
    preserved = record.metadata.get(PRESERVED_AGENT)
    if preserved:
        return str(preserved)
    suggestion = record.suggestion
    if suggestion is not None and suggestion.agent and suggestion.value == record.reference \
            and is_foreign(suggestion.agent, record.metadata):
        return suggestion.agent
    return binding.reference.name or "reference"


def review_priority(record: PulledRecord) -> int:
    """0 for records nobody submitted (pending review: scored first), 1 for reviewed ones."""
    return 0 if consensus(record) is None else 1


def score_job(services: Services, *, full: bool = False, stop: threading.Event | None = None,
              on_batch: Callable[[ScoreReport, list[RecordScore]], None] | None = None,
              server_ids: Sequence[str] | None = None, pause: Callable[[], bool] | None = None) -> ScoreReport:
    """Score what is not up to date and push it, one batch at a time (each pushed batch is durable).

    ``full`` reads every record (after a promotion, or a change of the ``[scoring]`` options: :func:`_stale_before`,
    until a run reads them all to the end); otherwise only records changed since the last complete incremental run,
    and every ``scoring.reconcile_minutes`` the annotated records whose responses changed without touching their
    record (see :meth:`ArgillaGateway.pull`). ``server_ids``
    limits the run to those records, read by id (webhook rescoring: O(len(server_ids)) requests whatever
    the dataset's size; no watermark moves). Records whose last push failed (see :class:`FailedPushes`)
    are read again by id and pushed whatever their state; a record that fails again is reported and kept
    for the next run while the rest of the run goes on. ``stop`` ends the run after the current batch; so does
    ``pause`` when it says so (asked after each batch: the runner has more urgent work), with ``report.paused`` —
    in a run over every record only: an incremental run is short, and stopped it would leave its next run to read
    (and count) the same changes again.

    A full run that stops part way (a stop, a pause, an error) leaves a checkpoint (:mod:`worker.full_pass`): the
    next full run with the same model and options reads only the records after the last one it pushed.

    Streaming: records are read a page at a time (records nobody reviewed first, then the reviewed ones) and
    flow through one scorer call (the local engine's length-sorting window, or the Ray engine's chunks in
    flight); its output is cut into batches of ``scoring.push_batch``, each pushed by a background thread
    while scoring goes on. Memory O(push_batch + page + the scorer's window) whatever the dataset's size; a
    full run reads N + (records with a submitted response) records.
    """
    started = time.perf_counter()
    check_writable(services.settings.state_dir, "state_dir")  # the watermark and failed pushes are kept there
    labels = services.labels()  # binds first (reads only): a dataset that does not fit the config is said first
    head = services.model_head()  # no model, or one for other labels: said before anything is written
    binding = services.gateway.binding
    check_head_fits(head, labels, question=binding.question, multi_label=binding.multi_label)
    extra = services.extra_scorers()
    _prepare_for_scores(services, extra)  # now the writes
    gateway, settings, state = services.gateway, services.settings.scoring, services.sync_state
    key = gateway.dataset_key
    since = state.watermark(key) if not full and server_ids is None else None
    if since is not None and state.scored_with(key) != head.version:
        logger.info("the records were last scored in full with %s, the current model is %s (changed while no run "
                    "could notice it, or a full run was stopped): this run reads every record",
                    state.scored_with(key) or "an earlier version", head.version)
        since, full = None, True
    options = written_options(settings, extra)
    stale_before = _stale_before(services, options)
    if since is not None and stale_before is not None:
        logger.info("records scored with other [scoring] options than now are left (written up to %s, server "
                    "clock): this run reads every record", stale_before.isoformat(sep=" ", timespec="seconds"))
        since, full = None, True
    reconcile = since is not None and state.reconcile_due(key, settings.reconcile_minutes)
    full = server_ids is None and since is None  # every record is read (asked for, or no complete run yet)
    report = ScoreReport(head.version)
    # records scored with other options get the new values exactly: a monotone change (the temperature) moves no rank
    view = _ViewPolicy.of(services, full=full, exact=stale_before is not None)
    passing = _full_pass(services, head.version, options, stale_before) if full else None
    reconciliation: Reconciliation | None
    watermark: Watermark | None
    if passing is not None:  # what the pass carries from its first run to its end
        reconciliation = Reconciliation(state.reconciled(key)[0], limit=passing.reconciled_to)
        watermark = Watermark(passing.watermark, ceiling=passing.ceiling)
        view.sketch = passing.sketch
        report.resumed_after = passing.read if passing.runs > 1 else 0
    else:
        reconciliation = gateway.reconciliation(state.reconciled(key)[0]) if reconcile else None
        watermark = gateway.watermark(since) if server_ids is None else None
    crowd = services.crowd(labels)
    scorer = record_scorer(services, extra)
    test_records = TestSetFilter(services.test_sets.get(key))
    failing = _failing_records(services) if server_ids is None else []
    forced = {r.record_id for r in failing}
    candidates = _candidates(gateway, failing, since=since, reconciliation=reconciliation if reconcile else None,
                             server_ids=server_ids, start=(passing.phase, passing.position) if passing else None)
    progress = _PassProgress(services, passing, watermark, report, forced=forced)
    todo = _todo(candidates, head.version, settings.suggestion, report, since=since,
                 forced=forced, watermark=watermark, sketch=view.sketch, crowd=crowd,
                 blind=blind_test_records(services, crowd, test_records), tested=test_records.covers,
                 stale_before=stale_before)
    in_flight: deque[PulledRecord] = deque()  # read and handed to the scorer, not yet back (O(scorer's window))

    def inputs() -> Iterator[ScoringInput]:
        for record in todo:
            in_flight.append(record)
            yield ScoringInput(record.record_id, record.text, reference_label(record, crowd), record.text_pair)

    def push(work: tuple[list[RecordScore], dict[str, PulledRecord]]) -> None:
        scores, current = work
        _push_scores(services, scores, current, head.version, report, view=view, crowd=crowd)
        report.seconds = time.perf_counter() - started
        call_each(services.plugins, "on_records_scored", model_version=head.version, scores=scores)
        progress.pushed(current.values())
        if on_batch is not None:
            on_batch(report, scores)

    report.setup_seconds = time.perf_counter() - started
    with progress, BackgroundStage(push, depth=settings.push_queue, name="pusher") as pusher, \
            _engine_run(services, scorer):
        for scores in batched(scorer.score(inputs()), settings.push_batch):
            batch = [in_flight.popleft() for _ in scores]  # the scorer keeps the input order
            pusher.put((scores, {r.record_id: r for r in batch}))
            if stop is not None and stop.is_set():
                # (not probing the record stream for more: the scorer's prefetch thread may be reading it; a
                # stop after the last batch costs the next run one re-read of what is now up to date)
                report.stopped = True
                logger.info("stop requested: finished the current batch, the rest is left for the next run")
                break
            if passing is not None and pause is not None and pause():
                report.stopped = report.paused = True
                logger.info("more urgent work is waiting: this score run stops after the current batch; the next "
                            "full run goes on from there")
                break
    report.input_wait_seconds, report.model_seconds = scorer.stats.input_wait_seconds, scorer.stats.model_seconds
    report.push_wait_seconds = pusher.blocked_seconds
    if not isinstance(scorer, Scorer):  # the Ray engine
        report.actor_shares = scorer.actor_shares()
    if not report.stopped and view.sketch is not None:
        services.view_quantiles.put(key, view.sketch.quantiles())
    if not report.stopped and watermark is not None:
        state.set_watermark(key, watermark.value)
        if since is None:
            state.set_scored_with(key, head.version)
            if stale_before is not None:  # every record read: those left stale were scored again (or kept)
                state.set_scored_by(key, ScoredBy(options))
        if reconciliation is not None:
            state.set_reconciled(key, reconciliation.value if reconcile else reconciliation.limit)
        if passing is not None:
            services.full_passes.clear(key)
    report.seconds = time.perf_counter() - started
    # an incremental run that found nothing changed: the service says so once (StatusBook.job_result), not here
    logger.log(logging.INFO if report.considered else logging.DEBUG, report.summary())
    return report


# how far the server's Date header can be behind its clock: cut to the second, and refreshed once a second (uvicorn)
DATE_HEADER_LAG = timedelta(seconds=2)


def _stale_before(services: Services, options: dict[str, Any]) -> datetime | None:
    """The server time up to which the dataset's records were written with other ``[scoring]`` options than now
    (``options``: :func:`written_options`), or None: none left. A change of options sets it to the server's clock
    plus :data:`DATE_HEADER_LAG` (its Date header is cut to the second and, from uvicorn, refreshed once a second: up
    to 2 s behind), then waits that long, so that what this run writes is later; and says what changed. A run that
    reads every record to its end clears it, so a stopped one goes on where it stopped (the records it pushed are
    newer). The first run on a dataset keeps the options it finds. One request and 2 s when they changed, nothing
    otherwise."""
    state, key = services.sync_state, services.gateway.dataset_key
    scored = state.scored_by(key)
    if scored is None:
        state.set_scored_by(key, ScoredBy(options))
        return None
    changes = scored.changes(options)
    if not changes:
        return scored.stale_before
    stale_before = services.gateway.server_time() + DATE_HEADER_LAG
    time.sleep(DATE_HEADER_LAG.total_seconds())
    logger.info("[scoring] changed since the records of %r were scored (%s): each is scored again once, the "
                "out-of-fold values aside", services.gateway.dataset_name, "; ".join(changes))
    state.set_scored_by(key, ScoredBy(options, stale_before))
    return stale_before


def record_scorer(services: Services,
                  extra: dict[str, Callable[[np.ndarray], np.ndarray]]) -> Scorer | RayScorer:
    """The ``[scoring]`` engine for the current model: this process's :class:`Scorer` (closed by the run), or
    scoring actors on Ray (``engine = "ray"``, :mod:`worker.scoring.distributed`) with the same options, kept
    by ``services``."""
    settings = services.settings.scoring
    options = {**scorer_options(settings), "batch_size": settings.batch_size, "max_batch_size": settings.max_batch_size,
               "compile": settings.compile, "extra_scorers": extra, "calibrated": settings.calibrated}
    if settings.engine == "ray":
        return services.ray_scorer(options)  # kept between runs: closing it is the Services' business
    return Scorer(services.classifier(), **options)


@contextmanager
def _engine_run(services: Services, scorer: Scorer | RayScorer) -> Iterator[None]:
    """One score run's use of the engine: this process's Scorer is closed after it; the Ray engine's actors are
    kept by ``services``, which leaves a joined cluster once they idle (``ray.keep_joined_s``)."""
    try:
        yield
    finally:
        if isinstance(scorer, Scorer):
            scorer.close()
        else:
            services.ray_run_ended()


def _candidates(gateway: ArgillaGateway, failing: list[PulledRecord], *, since: datetime | None,
                reconciliation: Reconciliation | None, server_ids: Sequence[str] | None,
                start: tuple[int, tuple[datetime, str] | None] | None = None) -> Iterator[PulledRecord]:
    """The records a score run considers, in the order they are scored: those whose last push failed, then
    the records nobody reviewed, then the reviewed ones (two passes over the same query, the second
    filtered by the server to records with a submitted response). ``start`` (a full run going on from a
    checkpoint): the phase — 0 the records nobody reviewed, 1 the reviewed ones — and the position of the last
    record pushed in it, which the run reads after. O(page) memory; ``server_ids``: O(len(server_ids))."""
    yield from failing
    if server_ids is not None:
        yield from sorted(gateway.read(server_ids), key=review_priority)
        return
    start_phase, start_after = start or (UNREVIEWED, None)
    for priority, condition in ((UNREVIEWED, None), (REVIEWED, SUBMITTED_FILTER)):
        if priority < start_phase:
            continue
        after = start_after if priority == start_phase else None
        for record in gateway.pull(since=since, reconciliation=reconciliation, condition=condition, after=after):
            if review_priority(record) == priority:
                yield record


def _full_pass(services: Services, version: str, options: dict[str, Any],
               stale_before: datetime | None) -> FullPass:
    """The checkpoint a full run with ``version`` and ``options`` goes on from, else a new one (two requests: the
    newest change and the server's clock, as the pass begins). A checkpoint of another model or other options is
    dropped: its records are all to be scored again."""
    store, key, gateway = services.full_passes, services.gateway.dataset_key, services.gateway
    saved = store.get(key)
    if saved is not None and saved.fits(version, options, stale_before):
        saved.runs += 1
        logger.info("a full score run with %s stopped after reading %d records: this run goes on after the last record "
                    "it pushed", version, saved.read)
        return saved
    if saved is not None:
        logger.info("a full score run with %s stopped part way; the records are now scored with %s%s: every record "
                    "is read again", saved.version, version,
                    "" if saved.version != version else " and other [scoring] options")
        store.clear(key)
    ceiling = gateway.watermark(None).ceiling
    return FullPass(version, options, stale_before, ceiling=ceiling, watermark=None,
                    reconciled_to=gateway.reconciliation(services.sync_state.reconciled(key)[0]).limit)


class _PassProgress:
    """A full run's checkpoint (:class:`FullPass`, or None: not a full run), kept as its batches are pushed: written
    every :data:`CHECKPOINT_EVERY_S` seconds and when the run ends part way (stopped, paused, failed); the run
    removes it once complete. The records in ``forced`` (failed pushes, read by id first) have no place in its
    order."""

    def __init__(self, services: Services, passing: FullPass | None, watermark: Watermark | None,
                 report: ScoreReport, *, forced: Collection[str]):
        self.services, self.passing, self.watermark, self.report = services, passing, watermark, report
        self.forced = forced
        self.read_before = passing.read if passing is not None else 0
        self.saved_at = time.monotonic()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self.passing is None or (kind is None and not self.report.stopped):
            return
        self._save()
        logger.info("the full score run with %s stopped after reading %d records (its runs together): the next full "
                    "run goes on after the last record it pushed", self.passing.version, self.passing.read)

    def pushed(self, records: Iterable[PulledRecord]) -> None:
        """A batch was pushed: ``records``, in the run's order. (The pusher thread.)"""
        if self.passing is None:
            return
        for record in records:
            if record.record_id not in self.forced:
                self.passing.reached(review_priority(record), record.position)
        if time.monotonic() - self.saved_at >= CHECKPOINT_EVERY_S:
            self._save()

    def _save(self) -> None:
        assert self.passing is not None
        self.passing.read = self.read_before + self.report.considered
        if self.watermark is not None:
            self.passing.watermark = self.watermark.value
        try:
            self.services.full_passes.put(self.services.gateway.dataset_key, self.passing)
        except OSError as error:  # the run goes on; a later checkpoint, or the next run from the first record
            logger.warning("could not write the full score run's checkpoint: %s", error)
        self.saved_at = time.monotonic()


def _todo(candidates: Iterable[PulledRecord], version: str, policy: SuggestionPolicy, report: ScoreReport, *,
          since: datetime | None, forced: set[str], watermark: Watermark | None,
          sketch: QuantileSketch | None = None, crowd: CrowdModel | None = None,
          blind: Callable[[PulledRecord], bool] | None = None,
          tested: Callable[[PulledRecord], bool] | None = None,
          stale_before: datetime | None = None) -> Iterator[PulledRecord]:
    """The candidates that are not up to date (or whose last push failed: ``forced``, each once), counted in
    ``report``; every candidate moves the ``watermark``; the values of those up to date go to ``sketch``; those
    ``blind`` says to leave without the model's answer (unreviewed test records) are counted and passed over. A new
    submission counts as a test answer when ``tested`` says the record is a test record (or a copy of one's text).
    ``stale_before``: see :func:`is_up_to_date`."""
    forced_seen: set[str] = set()
    for record in candidates:
        if watermark is not None:
            watermark.see(record)
        if record.record_id in forced:
            if record.record_id in forced_seen:
                continue  # read again by the pull: scored once, as a failed push
            forced_seen.add(record.record_id)
        report.considered += 1
        if since is not None and any(r.status == SUBMITTED and r.updated_at is not None and r.updated_at > since
                                     for r in record.responses):
            report.new_submissions += 1
            if tested is not None and tested(record):
                report.new_test_answers += 1
        if blind is not None and blind(record):
            report.blind += 1
            continue
        if record.record_id not in forced and is_up_to_date(record, version, policy, crowd, stale_before):
            report.up_to_date += 1
            if sketch is not None:
                sketch.add(stored_values(record))
            continue
        yield record


def _failing_records(services: Services) -> list[PulledRecord]:
    """The records whose last push failed (see :class:`FailedPushes`), read by id; those deleted from the
    dataset are forgotten. O(failing records)."""
    key = services.gateway.dataset_key
    failing = services.failed_pushes.of(key)
    if not failing:
        return []
    records = [r for r in services.gateway.read(entry["server_id"] for entry in failing.values())
               if r.record_id in failing]
    gone = set(failing) - {r.record_id for r in records}
    services.failed_pushes.update(key, failed={}, landed=gone)
    logger.info("%d record(s) whose last push failed are pushed again", len(records))
    return records


@dataclass
class _ViewPolicy:
    """What a score run needs of :mod:`worker.view`: the tolerance (None: off), the stored values'
    quantiles of the last full run, and (full runs) the sketch of the values this run leaves stored."""

    tolerance: ViewTolerance | None = None
    quantiles: ValueQuantiles | None = None
    sketch: QuantileSketch | None = None

    @classmethod
    def of(cls, services: Services, *, full: bool, exact: bool = False) -> _ViewPolicy:
        """``exact``: no tolerance (every record scored gets its new values)."""
        settings = services.settings.scoring
        tolerance = (ViewTolerance(settings.view_rank_tolerance, settings.view_exact_top)
                     if settings.view_rank_tolerance > 0 and not exact else None)
        quantiles = services.view_quantiles.get(services.gateway.dataset_key) if tolerance else None
        return cls(tolerance, quantiles, QuantileSketch() if full else None)

    def keeps(self, record: PulledRecord, prediction: Prediction) -> bool:
        """Whether ``record`` keeps its stored values (the view would not change); feeds the sketch either way."""
        keep = self.tolerance is not None and self.tolerance.keeps_view(record, prediction, self.quantiles)
        if self.sketch is not None:
            self.sketch.add(stored_values(record) if keep else new_values(prediction))
        return keep


def _push_scores(services: Services, scores: Iterable[RecordScore], current: dict[str, PulledRecord],
                 version: str, report: ScoreReport, *, crowd: CrowdModel, view: _ViewPolicy | None = None) -> None:
    predictions = []
    policy, binding = services.settings.scoring.suggestion, services.gateway.binding
    for score in scores:
        if score.skipped:
            report.skipped += 1
            logger.warning("record %s not scored: %s", score.record_id, score.skipped_reason)
            continue
        report.scored += 1
        report.mc_samples += score.mc_samples or 0
        record = current[score.record_id]
        prediction = prediction_from_score(score, version, policy=policy, reviewed=_reviewed(record, crowd),
                                           power_beta=services.settings.scoring.power_beta,
                                           reference_agent=reference_agent(record, binding), rating=binding.rating)
        prediction.metadata[SUBMITTED_RESPONSES] = submitted_responses(record)
        original = binding.label_value(record.metadata.get("original_label"))
        if original is not None and score.probabilities:
            loss = label_loss(score.probabilities, original)
            if loss is not None:
                prediction.metadata["original_loss"] = readable(loss)
        # the model's answer on a reviewed record it was taught repeats that label: the votes alone weigh there
        echo = submitted_responses(record) > 0 and echoes_training(record, version, crowd.taught)
        heard = None if echo else score.probabilities
        if score.probabilities and binding.multi_label:
            prediction.metadata["needs_another_label"] = readable(needs_another_label_set(record, crowd, heard))
        elif score.probabilities:
            model = [heard.get(label, 0.0) for label in crowd.labels] if heard else None
            prediction.metadata["needs_another_label"] = readable(needs_another_label(record, crowd, model))
        predictions.append(prediction)
    key = services.gateway.dataset_key
    failing = services.failed_pushes.of(key)
    if view is not None:
        kept = {p.record_id for p in predictions if p.record_id not in failing and view.keeps(current[p.record_id], p)}
        report.kept += len(kept)
        predictions = [p for p in predictions if p.record_id not in kept]
    push = services.gateway.push(predictions, current=current, force=failing.keys(),
                                 concurrency=services.settings.scoring.push_concurrency)
    services.failed_pushes.update(key, failed={record_id: (current[record_id].server_id, reason)
                                               for record_id, reason in push.failed.items()},
                                  landed=push.sent_ids)
    report.pushed += push.sent
    report.unchanged += push.unchanged
    report.failed += len(push.failed) + len(push.rejected)
    report.failed_ids += [*push.failed, *push.rejected]
    report.failures.update(push.failed)


def label_loss(probabilities: Mapping[str, float], label: LabelValue) -> float | None:
    """The model's loss of ``label`` given its mean probabilities (label → p): −log p(label), or for a label set
    the worst label decision's BCE, max_l BCE(p_l, l in the set) — the loss a score run writes, for another
    label. None when a label is not the model's."""
    if isinstance(label, str):
        return -math.log(max(probabilities[label], PROBABILITY_FLOOR)) if label in probabilities else None
    if not set(label) <= probabilities.keys():
        return None
    names = list(probabilities)
    chosen = np.asarray([name in label for name in names], dtype=np.float64)
    return float(binary_cross_entropy(np.asarray([probabilities[name] for name in names]), chosen).max())


_OOF_READING = "the out-of-fold run stopped on request while reading the labelled records: nothing trained yet"


def oof_score_job(services: Services, k: int, stop: threading.Event | None = None) -> ScoreReport:
    """Out-of-fold scores for every labelled record (K models, each scoring the fold it did not see),
    pushed with agent ``<current version>-oof<K>`` (``base-oof<K>`` before any model exists: the K fold
    models start from ``training.base_model`` either way); unlabelled records are left to :func:`score_job`.

    The fold models train on every annotated record and a seeded sample of at most ``training.max_original`` of
    the others (their own labels; plus up to 50 of each label, as a training samples them), split in K stratified
    folds. A record outside the sample is scored by the model of the fold its id hashes to: no fold model trained on
    it either. Once every fold model has trained, each record they trained on also gets ``area_under_margin``
    (averaged over the K − 1 models that trained on it) and ``label_issue`` (see :mod:`worker.label_issues`), pushed
    as metadata in a second pass over those records, by id; a record outside the sample has no margin, so its
    held-out ``loss`` is what ranks it (and an earlier run's ``label_issue`` / ``area_under_margin`` are removed
    from it: a sort would mix them with this run's).

    The held-out records are scored at a fixed T = ``scoring.samples`` (no adaptive stopping: the label-issue
    figures were measured so), in ``scoring.batch_size`` batches, with the plugins' scores a score run writes.

    A run that stops keeps the fold models it completed (in the registry's ``folds/``): rerun on the same records
    and settings, it trains only the others, and the scores it had pushed are found unchanged. ``stop`` set (the
    first SIGTERM / Ctrl-C of ``argilla-worker score --oof``) ends the run at its next safe point — a page of the
    first pass, a fold model's training step (that fold model is trained again by the rerun), a pushed batch — with
    :class:`~worker.errors.Interrupted`, which says how many fold models are kept.

    Time: one pull, K trainings on at most (annotated + max_original) records, one scoring per labelled record.
    Memory O(annotated + max_original) examples and two floats per sampled record; the records outside the sample
    wait in an SQLite file in the registry's staging area (disk O(N)); each batch re-reads its records by id to
    push (O(batch))."""
    if k < 2:
        raise ConfigError(f"out-of-fold scoring needs K >= 2 folds, got {k} (each fold model holds one fold out)")
    started = time.perf_counter()
    current = services.registry.current()
    current_version = current.version if current is not None else BASE_VERSION
    settings = services.settings.training
    if not settings.base_model:
        raise ConfigError("training.base_model is not set (the K fold models start from it)")
    _check_before_training(services, settings.base_model)
    labels = services.labels()  # binds first (reads only): nothing is written before the labels are counted
    crowd = services.crowd(labels)
    version = f"{current_version}{OOF_MARK}{k}"
    held_out = HeldOutAgreement()
    report = ScoreReport(version, held_out=held_out)
    margins, label_probability = MarginAverage(), {}
    scoring = services.settings.scoring
    extra = services.extra_scorers()
    options = {"batch_size": scoring.batch_size, "max_batch_size": scoring.max_batch_size,
               "compile": scoring.compile, "extra_scorers": extra}
    with services.registry.staging() as work_dir:
        with closing(LabelledRecords(work_dir / "labelled.sqlite", k=k, seed=settings.seed)) as labelled:
            pulled = _until_stopped(services.gateway.pull(), stop, _OOF_READING)
            sample, trained_server_ids = labelled_sample(pulled, labels, labelled, settings, crowd=crowd, report=report,
                                                         fields=services.gateway.binding.fields)
            if len(sample) < k:
                raise DataError(f"only {len(sample)} records with a text carry a label (annotated or from "
                                f"argilla.reference); `score --oof {k}` needs at least {k}, one per fold: annotate "
                                f"records or point argilla.reference at the labels the records carry")
            _prepare_for_scores(services, extra)
            folds = stratified_folds(sample, k, seed=settings.seed)
            labelled.assign({example.id: fold for example, fold in zip(sample, folds, strict=True)})
            start = aligned_start(settings.base_model, services.registry, settings,
                                  functools.partial(_alignment_texts, services, sample, settings.align_texts),
                                  services.settings.registry.trust_remote_code, stop)
            models_dir = fold_models_dir(services.registry.root / FOLD_MODELS, version, sample, folds, settings,
                                         start)
            scores = stream_out_of_fold_scores(sample, labels, start, settings, models_dir, k=k,
                                               version=version, samples=scoring.samples,
                                               mc_layers=scoring.mc_layers, dropout_rate=scoring.dropout_rate,
                                               folds=folds, held_out=labelled.fold, on_trained=margins.add,
                                               trust_remote_code=services.settings.registry.trust_remote_code,
                                               scorer_options=options, stop=stop)
            blind = blind_test_records(services, crowd)
            try:
                for batch in batched(scores, scoring.push_batch):
                    label_probability.update(_push_held_out(services, batch, labelled, trained_server_ids, report,
                                                            crowd=crowd, held_out=held_out, blind=blind))
                    if stop is not None and stop.is_set():
                        raise Interrupted("the out-of-fold run stopped on request after a pushed batch")
            except Interrupted as stopped:
                done = completed_folds(models_dir, k)
                kept = f"the {done} of {k} fold models it completed are kept" if done else "no fold model was complete"
                raise Interrupted(f"{stopped}: every pushed batch stands, and {kept} — the next `argilla-worker score "
                                  f"--oof {k}` on the same records trains only the others") from None
        shutil.rmtree(work_dir)
    shutil.rmtree(models_dir)
    report.label_issues = _push_label_issues(services, trained_server_ids, label_probability, margins.means())
    report.seconds = time.perf_counter() - started
    logger.info(report.summary())
    if held_out.records and not_learned(held_out.accuracy, held_out.majority):
        logger.warning("the fold models predict the held-out labels no better than always answering the most common "
                       "label (%.1f%% vs %.1f%%): they have not learned the task, and their losses say little about "
                       "which labels are wrong. Train longer (training.epochs) or on more labelled records.",
                       100 * held_out.accuracy, 100 * held_out.majority)
    return report


def _until_stopped(records: Iterable[PulledRecord], stop: threading.Event | None,
                   stopped: str) -> Iterator[PulledRecord]:
    """``records`` until ``stop`` is set (checked at each record: a pull reads a page at a time).

    Raises:
        Interrupted: ``stop`` was set (``stopped`` is its message).
    """
    for record in records:
        if stop is not None and stop.is_set():
            raise Interrupted(stopped)
        yield record


def _push_held_out(services: Services, batch: list[RecordScore], labelled: LabelledRecords,
                   trained_on: Mapping[str, str], report: ScoreReport, *, crowd: CrowdModel,
                   held_out: HeldOutAgreement, blind: Callable[[PulledRecord], bool]) -> dict[str, float]:
    """Push one batch of an out-of-fold run's scores (its records re-read by id), tell the plugins, remove an
    earlier run's label_issue / area_under_margin from the records no fold model ``trained_on``; returns the
    held-out probability of the label (:func:`held_out_probability`) of the batch's records that were trained on.
    The records ``blind`` names (unreviewed test records) get nothing, and count in ``report.blind``."""
    server_ids = labelled.server_ids(score.record_id for score in batch)
    records = {r.record_id: r for r in services.gateway.read(server_ids[s.record_id] for s in batch)}
    held = {record_id for record_id, record in records.items() if blind(record)}
    report.blind += len(held)
    records = {record_id: record for record_id, record in records.items() if record_id not in held}
    _push_scores(services, [s for s in batch if s.record_id in records], records, report.model_version, report,
                 crowd=crowd)
    call_each(services.plugins, "on_records_scored", model_version=report.model_version,
              scores=[s for s in batch if s.record_id not in held])
    services.gateway.drop_metadata(TRAINED_ON_METADATA, current={
        record_id: record for record_id, record in records.items() if record_id not in trained_on})
    for score in batch:
        held_out.add(score)
    return {s.record_id: held_out_probability(s) for s in batch
            if not s.skipped and s.record_id in trained_on and s.record_id not in held}


def labelled_sample(records: Iterable[PulledRecord], labels: Sequence[str], labelled: LabelledRecords,
                    settings: TrainingSettings, *, crowd: CrowdModel | None = None, report: ScoreReport | None = None,
                    fields: Sequence[str] = ("text",)) -> tuple[list[Example], dict[str, str]]:
    """One pass over ``records``: every labelled record with a text into ``labelled``; returns the examples the fold
    models train on — every annotated one and a seeded sample of the others (``settings.max_original``, a
    :class:`~worker.iterables.KeyedSample` by record id) — and their server ids. A record without a text (in
    ``fields``) is logged by id and counted in ``report.skipped``. Memory O(annotated + max_original).

    Raises:
        DataError: a record's label is not one of ``labels`` (names the record and the value; before any training,
            whether or not the record is in the sample).
    """
    report = report if report is not None else ScoreReport("")
    size = None if settings.max_original == "all" else settings.max_original
    original: KeyedSample[tuple[Example, str]] = KeyedSample(size or sys.maxsize, seed=settings.seed,
                                                             floor=RARE_LABEL_FLOOR if size else 0)
    annotated: list[tuple[Example, str]] = []
    allowed = set(labels)
    for record in records:
        report.considered += 1
        decided = verdict(record, crowd)
        label = decided.label if decided is not None and decided.label is not None else record.reference
        if label is None:
            report.unlabelled += 1
            continue
        if not record.has_text:
            report.skipped += 1
            logger.warning("record %s not scored: no text in %s", record.record_id, " / ".join(fields))
            continue
        checked_label(record.record_id, label, allowed)
        example = Example(record.record_id, str(record.text), label, text_pair=record.text_pair)
        labelled.add(example, record.server_id)
        if decided is not None and decided.label is not None:
            annotated.append((example, record.server_id))
        else:
            original.add(record.record_id, (example, record.server_id),
                         strata=label if isinstance(label, tuple) else (label,))
    sampled = original.items()
    if len(sampled) < original.seen:
        logger.info("the fold models train on the %d annotated records and a seeded sample of %d of the other %d "
                    "labelled records (training.max_original = %d, and up to %d of each label); every labelled "
                    "record is still scored by a model that never trained on it, and label_issue / "
                    "area_under_margin go to the records the models trained on (sort the others by loss)",
                    len(annotated), len(sampled), original.seen, size, RARE_LABEL_FLOOR)
    chosen = annotated + sampled
    return [example for example, _ in chosen], {example.id: server_id for example, server_id in chosen}


def held_out_probability(score: RecordScore) -> float:
    """p̄(y) of :mod:`worker.label_issues`: the MC-mean probability of the record's label, or for a label set
    that its least plausible label decision is right (exp(−loss): min over labels of p or 1 − p)."""
    if isinstance(score.reference_label, tuple):
        return math.exp(-score.loss) if score.loss is not None else 0.0
    return (score.probabilities or {}).get(str(score.reference_label), 0.0)


def _push_label_issues(services: Services, server_ids: dict[str, str], label_probability: dict[str, float],
                       margins: dict[str, float]) -> int:
    """``area_under_margin`` and ``label_issue`` of every record that has both, as metadata, a batch at a time
    (records re-read by id: a response submitted meanwhile is kept)."""
    ids = [record_id for record_id in label_probability if record_id in margins]
    issues = dict(zip(ids, label_issue_scores(np.array([label_probability[i] for i in ids]),
                                              np.array([margins[i] for i in ids])).tolist(), strict=True))
    for batch in batched(ids, services.settings.scoring.push_batch):
        records = {r.record_id: r for r in services.gateway.read(server_ids[i] for i in batch)}
        values = {i: dict(zip(TRAINED_ON_METADATA, (readable(margins[i]), readable(issues[i])), strict=True))
                  for i in batch if i in records}
        services.gateway.push_metadata(values, current=records)
    name = services.gateway.binding.stored_name
    logger.info("%s and %s pushed for %d records: sort by %s, descending", name("label_issue"),
                name("area_under_margin"), len(ids), name("label_issue"))
    return len(ids)


def cold_start_settings(settings: WorkerSettings, *, clusters: int | None = None, max_records: int | None = None,
                        vector: str | None = None) -> ColdStartSettings:
    """The cold start's settings: ``[cold_start]``, where the command line does not override them, on the scoring
    device."""
    config = settings.cold_start
    return ColdStartSettings(clusters=clusters or config.clusters, max_records=max_records or config.max_records,
                             vector=config.vector if vector is None else vector, device=settings.scoring.device,
                             trust_remote_code=settings.registry.trust_remote_code)


def ranks_first_batch_itself(settings: WorkerSettings) -> bool:
    """Whether the running worker ranks a first batch by itself: ``cold_start.auto`` and something to rank by (an
    encoder, ``training.base_model``, or ``cold_start.vector``)."""
    return settings.cold_start.auto and bool(settings.cold_start.vector or settings.training.base_model)


def cold_start_job(services: Services, settings: ColdStartSettings | None = None, *,
                   stop: threading.Event | None = None) -> PushReport:
    """Rank the records for a representative first batch (see :mod:`worker.coldstart`) and push the
    ranks as metadata ``cold_start_rank``. O(N) time (one streamed pull); memory O(min(N, max_records))
    records: a larger dataset is sampled while it is read (seeded reservoir), the rest get no rank.
    With ``settings.vector`` the records' own vectors are ranked (no encoder): a record without that vector
    (or with a non-finite value in it) is logged by id and gets no rank. The test set's records (and copies of their
    texts) get none either: no model trains on them, so a first batch of them would teach it nothing.

    The ranks are pushed in rank order, so a run stopped part way (``stop`` set: checked at each record read, each
    batch embedded, each page pushed) leaves the top of the ranking — what annotators start from.

    Raises:
        ConfigError: ``training.base_model`` (the encoder that embeds the records) is not set, or the dataset has
            no vector named ``settings.vector``.
        Interrupted: ``stop`` was set (the message says what was pushed).
    """
    trusted = services.settings.registry.trust_remote_code
    settings = settings or cold_start_settings(services.settings)
    encoder = services.settings.training.base_model
    if settings.vector:
        _check_vector(services.gateway, settings.vector)
    elif not encoder:
        raise ConfigError("training.base_model is not set: the cold start embeds the records with it (or rank by "
                          "a vector the dataset already holds: argilla-worker cold-start --vector NAME)")
    else:
        check_model_source(encoder, trust_remote_code=trusted)
    services.prepare_for_push()  # binds, adds the worker's metadata properties
    test_records = TestSetFilter(services.test_sets.get(services.gateway.dataset_key))
    pulled = _until_stopped(services.gateway.pull(vector=settings.vector or None), stop,
                            "the cold start stopped on request while reading the records: nothing ranked")
    pool = (_with_vector(pulled, settings.vector) if settings.vector else (r for r in pulled if r.has_text))
    records, count = reservoir_sample(test_records.without(pool), settings.max_records, random.Random(settings.seed))
    if not records:
        raise DataError(f"no record of {services.gateway.dataset_name!r} to rank for a first batch" +
                        (f" (records without the vector {settings.vector!r} are not ranked)" if settings.vector
                         else " (records without a text, the test set's and copies of its texts are not ranked)"))
    if test_records.held or test_records.copies_dropped:
        logger.info("cold start: %d test records and %d copies of their texts not ranked (no model trains on them)",
                    test_records.held, test_records.copies_dropped)
    if count > len(records):
        logger.info("cold start: ranking a seeded sample of %d of %d records", len(records), count)
    ids = [r.record_id for r in records]
    if settings.vector:
        held = [r.vector for r in records if r.vector is not None]  # every one of them: see _with_vector
        ranks = vector_ranks(ids, np.stack(held), settings) if held else {}  # np.stack(held): [N, D]
    else:
        pairs = [r.text_pair or "" for r in records] if records and records[0].text_pair is not None else None
        ranks = cold_start_ranks(ids, [str(r.text) for r in records], encoder, settings, pairs, stop=stop)
    report = _push_ranks(services, ranks, {r.record_id: r for r in records}, stop)
    logger.info("cold start: %d records ranked in %d clusters (%s); sort by %s ascending to annotate the first "
                "batch, by %s descending to see the records least like the rest", len(ranks),
                min(settings.clusters, len(ranks)), f"vector {settings.vector!r}" if settings.vector else encoder,
                *map(services.gateway.binding.stored_name, (RANK_PROPERTY, OUTLIER_PROPERTY)))
    return report


def _push_ranks(services: Services, ranks: Mapping[str, Mapping[str, float]], current: Mapping[str, PulledRecord],
                stop: threading.Event | None) -> PushReport:
    """Push the cold start's values a page at a time, in rank order (``ranks`` is: rank 1 first).

    Raises:
        Interrupted: ``stop`` was set with pages left (the ranks pushed so far are the top ones).
    """
    report, pushed = PushReport(), 0
    for page in batched(ranks.items(), PAGE_SIZE):
        if stop is not None and stop.is_set():
            raise Interrupted(f"the cold start stopped on request after pushing ranks 1 to {pushed} of {len(ranks)}: "
                              f"annotate from the top; `argilla-worker cold-start` ranks the records again")
        services.gateway.push_metadata({record_id: {name: readable(value) for name, value in values.items()}
                                        for record_id, values in page}, current=current, report=report)
        pushed += len(page)
    return report


def _check_vector(gateway: ArgillaGateway, name: str) -> None:
    """Whether the dataset has a vector ``name``.

    Raises:
        ConfigError: the dataset has no vector called ``name`` (the message names those it has).
    """
    dimensions = gateway.vector_dimensions()
    if name not in dimensions:
        held = ", ".join(f"{vector} ({size} dimensions)" for vector, size in dimensions.items()) or "none"
        raise ConfigError(f"dataset {gateway.dataset_name!r} has no vector {name!r}: its vectors: {held}")


def _with_vector(records: Iterable[PulledRecord], name: str) -> Iterator[PulledRecord]:
    """The records that hold a finite vector ``name``; the others are counted and logged by id (not ranked)."""
    missing: list[str] = []
    broken: list[str] = []
    for record in records:
        if record.vector is None:
            missing.append(record.record_id)
        elif not np.isfinite(record.vector).all():
            broken.append(record.record_id)
        else:
            yield record
    if missing:
        logger.warning("cold start: %d records have no vector %r and get no rank, e.g. %s", len(missing), name,
                       ", ".join(missing[:5]))
    if broken:
        logger.warning("cold start: %d records' vector %r holds NaN or infinity: no rank, e.g. %s", len(broken),
                       name, ", ".join(broken[:5]))


def copies_job(services: Services, *, stop: threading.Event | None = None) -> tuple[CopyCounts, PushReport]:
    """Find the records that carry the same text, or nearly (``copies.similarity``; see :mod:`worker.duplicates`),
    and push ``copies``, ``copy_group`` and ``copies_disagree`` to them (and 0s to a record whose copies are gone).
    Two streamed passes: every record's text key (and MinHash signature for near copies) and label under review
    (consensus, else its original label) into an SQLite file under ``state_dir``, then the records with copies read
    back by id a page at a time and pushed. Time O(N log N); memory O(page) whatever N.

    Raises:
        Interrupted: ``stop`` was set (checked at each record read and each page pushed); a rerun finishes.
    """
    check_writable(services.settings.state_dir, "state_dir")
    labels = services.prepare_for_push()  # binds, adds the worker's metadata properties
    crowd = estimate_crowd(services, labels)
    report = PushReport()
    similarity = services.settings.copies.similarity
    with Scratch(services.settings.state_dir, "copies-") as work, \
            closing(CopyIndex(work.path / "copies.sqlite", similarity)) as index:
        pulled = _until_stopped(services.gateway.pull(), stop,
                                "the copies run stopped on request while reading the records: nothing pushed")
        for page in batched((record for record in pulled if record.has_text), PAGE_SIZE):
            index.add([_copy_row(record, crowd) for record in page],
                      [(str(record.text), record.text_pair) for record in page] if similarity < EXACT else None)
        counts = index.count()
        for batch in index.values(PAGE_SIZE):
            if stop is not None and stop.is_set():
                raise Interrupted(f"the copies run stopped on request after pushing {report.sent} records' values "
                                  f"({counts.in_copies} records have copies): `argilla-worker copies` again "
                                  "finishes them")
            current = {record.record_id: record for record in services.gateway.read(batch)}
            services.gateway.push_metadata(dict(batch.values()), current=current, report=report)
    return counts, report


def _copy_row(record: PulledRecord, crowd: CrowdModel) -> tuple[str, str, str, str, bool]:
    """The record as :class:`CopyIndex` keeps it, with its label under review (:func:`reference_label`)."""
    label = reference_label(record, crowd)
    named = NO_LABEL if label is None else label if isinstance(label, str) else "|".join(sorted(label))
    return (record.server_id, record.record_id, text_key(str(record.text), record.text_pair), named,
            bool(record.metadata.get(COPIES)))


def train_job(services: Services, *, stop: threading.Event | None = None) -> TrainingOutcome:
    """Pull every record, build the training set from consensus labels, train, gate, register.

    Raises:
        DataError: too few annotations or a class without examples (nothing is trained).
        ConfigError: no base model configured and no current model to start from.
        NothingNewError: the newest version was trained from this very training set and settings while the current
            model was current (a retrain the corrections' count or the schedule asked for, with no review changed
            since): nothing is trained, nothing is registered.
    """
    settings = services.settings.training
    check_writable(services.settings.registry.path, "registry.path")  # before opening it (that creates its dirs)
    previous = services.registry.current()
    start, start_version = start_model(settings, services.registry, previous)
    _check_before_training(services, str(start) if start is not None and start_version is None else None)
    labels = services.labels()
    crowd = estimate_crowd(services, labels)
    first_model = previous is None
    test_set = services.test_sets.get(services.gateway.dataset_key)
    tested = _test_progress(services, test_set) if test_set is not None else None
    configured = settings
    data, why = resolved_training_data(settings.data, previous, own_label_check(tested, crowd))
    if settings.data == "auto" and not first_model:
        logger.info("%s", why)
    settings = settings.model_copy(update={"data": data})
    test_records = TestSetFilter(test_set)
    try:
        training_set = prepare_training_set(test_records.without(_training_records(services, first_model, data)),
                                            labels, settings, first_model=first_model, crowd=crowd,
                                            similarity=services.settings.copies.similarity)
    except DataError as error:
        raise DataError(f"{error}{_test_answers_note(tested, first_model=first_model)}") from None
    _log_test_records_held(test_records)
    logger.info("training set %s: %s", training_set.fingerprint, training_set.counts())
    options = scorer_options(services.settings.scoring)
    try:
        _refuse_a_repeat(services, training_set, settings_digest(settings, options))
    except NothingNewError:  # reviews of test records alone change no training set: the current model's figure
        if tested is not None:
            _measure_on_test_set(services, previous, tested, labels, crowd, again=False)
        raise
    _warn_if_own_labels_dropped(previous, training_set, configured)
    services.registry.avoid(services.gateway.model_versions())
    outcome = retrain(training_set, services.registry, settings, mc_samples=services.settings.scoring.samples,
                      dropout_rate=services.settings.scoring.dropout_rate, stop=stop,
                      trust_remote_code=services.settings.registry.trust_remote_code, scorer_options=options,
                      random_held_out=_untaught_test_examples(tested, labels, crowd, start_version),
                      alignment_texts=functools.partial(_alignment_texts, services,
                                                        (*training_set.train, *training_set.validation),
                                                        settings.align_texts))
    if outcome.promoted:
        logger.info("model %s promoted: %s", outcome.model.version, outcome.decision.reason)
    else:
        logger.info("model %s rejected: %s. %s", outcome.model.version, outcome.decision.reason,
                    rejection_advice(outcome.model.version, outcome.model.metrics["gate"]))
    _warn_if_not_learned(outcome.model)
    if tested is not None:
        measured, _ = _measure_on_test_set(services, outcome.model, tested, labels, crowd,
                                           held_out=outcome.held_out_scores)
        if measured is not None:
            outcome = replace(outcome, model=measured)
    if outcome.promoted:
        outcome = replace(outcome, model=_measure_stability(services, outcome.model, previous))
        call_each(services.plugins, "on_model_promoted", version=outcome.model.version, metrics=outcome.model.metrics)
    return outcome


def _untaught_test_examples(tested: TestProgress | None, labels: Sequence[str], crowd: CrowdModel | None,
                            start_version: ModelVersion | None) -> list[Example]:
    """The test records answered in rank order, as examples, that the next candidate will not have been taught: its
    training set holds none, but one fine-tuned from a registry version (``start_version``: see
    :func:`~worker.training.job.start_model`) inherits what that one was taught (a model trained before the test set
    was drawn). O(test set)."""
    if tested is None or not tested.in_order:
        return []
    inherited = (read_taught_ids(start_version.path) or set()) if start_version is not None else set()
    return _untaught_answers(tested, labels, crowd, inherited)[0]


def _untaught_answers(tested: TestProgress, labels: Sequence[str], crowd: CrowdModel | None,
                      taught: Collection[str]) -> tuple[list[Example], int]:
    """The test records answered in rank order as examples — labelled by the annotators' votes alone (the model's
    view left out) — less those in ``taught``; and how many were left out. O(test set)."""
    examples, _, _ = examples_from_records(tested.in_order, labels, crowd=blind(crowd))
    untaught = [example for example in examples if example.id not in taught]
    return untaught, len(examples) - len(untaught)


def _test_answers_note(tested: TestProgress | None, *, first_model: bool) -> str:
    """What a training that cannot start adds when test records were answered: they were kept out of it (a team that
    reviewed only those reads why its labels are "too few"), and which records to annotate instead: the cold start's
    first batch before any model (no uncertainty to sort by yet), the model's most uncertain after."""
    if tested is None or not tested.answered:
        return ""
    which = ("in cold_start_rank order (`argilla-worker cold-start`)" if first_model
             else "sorted by the model's uncertainty (bald, descending)")
    return (f" (the {tested.answered} answered test-set records are kept out of training: they measure every model "
            f"and train none; annotate records outside the test set too, {which})")


def measure_job(services: Services) -> str:
    """The current model measured again on the test set once more of its records are answered in rank order (what a
    test record's review asks for: it trains no model, so it asks for no retrain). O(test set): its records read by
    id, the newly measurable ones predicted once; nothing when the count answered in rank order did not change."""
    test_set = services.test_sets.get(services.gateway.dataset_key)
    current = services.registry.current()
    if test_set is None or current is None:
        return "nothing to measure: " + ("no test set" if test_set is None else "no model yet")
    labels = services.labels()
    tested = _test_progress(services, test_set)
    _, measured = _measure_on_test_set(services, current, tested, labels, services.crowd(labels), again=False)
    if measured is None:
        return (f"test set: {len(tested.in_order)} of its {len(test_set.ids)} records answered in rank order from 1; "
                f"{current.version}'s figures stand" if tested.in_order else
                f"test set: none of its {len(test_set.ids)} records answered in rank order from 1 yet")
    return f"test set: {measured.describe()}"


def _log_test_records_held(test_records: TestSetFilter) -> None:
    """Say how many test records (and copies of their texts) a training left out."""
    if test_records.held or test_records.copies_dropped:
        copies = (f" and {test_records.copies_dropped} other record(s) carrying one of their texts"
                  if test_records.copies_dropped else "")
        logger.info("training leaves out the %d test-set records it read%s (argilla-worker test-set): the model is "
                    "measured on them, never trained on them", test_records.held, copies)


def _test_progress(services: Services, test_set: TestSet) -> TestProgress:
    """How far ``test_set`` is reviewed, its records read by id (O(test set))."""
    return progress(test_set, services.gateway.read(test_set.server_ids))


def _measure_on_test_set(services: Services, model: ModelVersion | None, state: TestProgress, labels: Sequence[str],
                         crowd: CrowdModel | None, *, again: bool = True, held_out: HeldOutScores | None = None
                         ) -> tuple[ModelVersion | None, TestMeasure | None]:
    """``model`` measured on the test set's records answered in rank order (``state``), leaving out those it was
    taught; the figures go to its metrics (``test``). (the entry, the figures): the entry unchanged and no figures
    when none of those records has a label or the model cannot be measured (logged: a training stands).
    ``again=False``: only when the records in order differ in number from those the stored figures came from.
    ``held_out``: the model's scores on test records its training computed; used when they are the records measured
    (one score run over the test set a training, not two)."""
    stored = (model.metrics.get("test") or {}) if model is not None else {}
    if model is None or (not again and stored.get("answered_in_order") == len(state.in_order)):
        return model, None
    untaught, left_out = _untaught_answers(state, labels, crowd, services.taught(model.version) or set())
    if not untaught:
        if left_out:
            logger.warning("model %s trained on all %d reviewed test-set records: not measured on them",
                           model.version, left_out)
        return model, None
    try:
        classifier, scoring = services.load(model), services.settings.scoring
        result = measure(classifier, model.version, untaught, left_out=left_out,
                         beyond=state.beyond, in_order=len(state.in_order), seed=services.settings.training.seed,
                         scorer_options=scorer_options(scoring),
                         temperature=classifier.temperature if scoring.calibrated else 1.0,
                         crossfit=scoring.calibrated and "test set" in str(
                             model.metrics.get("validation", {}).get("temperature_fitted_on", "")),
                         scored=held_out.for_examples(untaught) if held_out is not None else None)
    except WorkerError as error:
        logger.warning("model %s not measured on the test set: %s", model.version, error)
        return model, None
    logger.info("test set: %s", result.describe())
    return services.registry.update_metrics(model.version, test=result.as_dict()), result


@dataclass
class TestSetReport:
    """What ``argilla-worker test-set`` did: the test set (``drawn``: by this run; ``recovered``: read back from the
    dataset's marks), how far it is reviewed, the marks pushed, and the current model's figures (None: no model,
    or no answered record in rank order)."""

    __test__ = False  # a name pytest would otherwise try to collect

    test_set: TestSet
    drawn: bool
    recovered: bool
    progress: TestProgress
    push: PushReport
    withdrawn: PushReport  # the model's answers taken off the unreviewed test records
    measured: TestMeasure | None = None
    copies_withdrawn: PushReport = field(default_factory=PushReport)  # … and off unreviewed copies of their texts
    taught_to_current: int = 0  # test records the current model was taught (their own labels, before the draw)
    added: int = 0  # records this run added to a test set drawn before (``size`` above its records)


def test_set_job(services: Services, size: int | None = None, *,
                 stop: threading.Event | None = None) -> TestSetReport:
    """Draw the dataset's test set when it has none — a seeded uniform sample of ``size`` records nobody has
    responded to (default :data:`DEFAULT_TEST_SET_SIZE`, and at most :data:`DEFAULT_TEST_SET_SHARE` of those
    records; see :mod:`worker.test_set`; one streamed pass, memory O(size); the dataset's ``test_set_rank`` marks
    instead when records carry them) — or grow the one it has to ``size`` records (:func:`grow_test_set`, one
    streamed pass: the new records take the next ranks), kept in ``state_dir`` before its records are marked; then
    (every run) mark any record still unmarked, take the model's answers (its suggestion, its metadata) off the test
    records nobody has reviewed (see :func:`blind_test_records`: a score run written before the draw), and their
    ``cold_start_rank`` (a first batch of them would train nothing), and measure the current model on the records
    answered in rank order. O(test set) after the draw; until a run has taken the model's answers and ranks off the
    unreviewed copies of the test texts (the first, unless a write failed), one more streamed pass, memory O(page).

    ``stop``: read at each record of the streamed passes; a stopped draw keeps nothing, a stopped growth keeps the
    test set as it was, a stopped pass over the copies leaves it for the next run.

    Raises:
        DataError: no record without a response is left to draw from.
        Interrupted: ``stop`` was set (the message says what stands).
    """
    check_writable(services.settings.state_dir, "state_dir")
    labels = services.prepare_for_push()
    key = services.gateway.dataset_key
    seed = services.settings.training.seed
    test_set, drawn, recovered = services.test_sets.get(key), False, False
    if test_set is None:
        pool = _until_stopped(services.gateway.pull(), stop, "test set: stopped on request while drawing it: "
                              "nothing drawn; run it again to draw")
        test_set, drawn = recovered_or_drawn(pool, size or DEFAULT_TEST_SET_SIZE, seed=seed,
                                             share=1.0 if size else DEFAULT_TEST_SET_SHARE)
        recovered = not drawn
        if not test_set.ids:
            raise DataError(f"no record of {services.gateway.dataset_name!r} is without a response: a test set is "
                            f"drawn from records nobody has reviewed")
        services.test_sets.put(key, test_set)
        logger.info("test set: %d records %s", len(test_set.ids), "read back from the dataset's marks" if recovered
                    else f"drawn at random from the {test_set.drawn_from} nobody had responded to")
        if drawn:
            _warn_if_all_taken(len(test_set.ids), test_set.drawn_from)
    added = 0
    if size is not None and size > len(test_set.ids) and not drawn:
        pool = _until_stopped(services.gateway.pull(), stop,
                              f"test set: stopped on request while drawing the records to add: it stays at its "
                              f"{len(test_set.ids)} records; run it again to grow it")
        grown = grow_test_set(test_set, pool, size, seed=seed)
        added = len(grown.ids) - len(test_set.ids)
        if added:
            test_set = grown
            services.test_sets.put(key, test_set)
            logger.info("test set grown by %d records (ranks %d to %d), drawn at random from the %d nobody had "
                        "responded to", added, len(test_set.ids) - added + 1, len(test_set.ids),
                        test_set.grown[-1].drawn_from)
            _warn_if_all_taken(added, test_set.grown[-1].drawn_from)
    records = list(services.gateway.read(test_set.server_ids))
    ranks = test_set.ranks()
    push = services.gateway.push_metadata(
        {record.record_id: {TEST_SET_PROPERTY: ranks[record.record_id]} for record in records
         if record.record_id in ranks}, current={record.record_id: record for record in records})
    crowd = services.crowd(labels)
    blind = blind_test_records(services, crowd)
    withdrawn = services.gateway.withdraw_model_answers({r.record_id: r for r in records if blind(r)},
                                                        (*MODEL_ANSWER_METADATA, RANK_PROPERTY))
    copies = PushReport()
    if not test_set.copies_cleared:
        copies = _withdraw_from_copies(services, test_set, blind, stop)
        if not copies.failed:
            services.test_sets.put(key, replace(test_set, copies_cleared=True))
    state = progress(test_set, records)
    current = services.registry.current()
    _, measured = _measure_on_test_set(services, current, state, labels, crowd)
    taught = (services.taught(current.version) or set()) if current is not None else set()
    return TestSetReport(test_set, drawn, recovered, state, push, withdrawn, measured, copies,
                         taught_to_current=sum(record_id in taught for record_id in test_set.ids), added=added)


def _warn_if_all_taken(taken: int, unreviewed: int) -> None:
    """A draw that took every record nobody had reviewed (a ``--size`` at least their number) is allowed — a team
    may have labelled its training data elsewhere — but said: none of them gets the model's answers or teaches it."""
    if taken and taken >= unreviewed:
        logger.warning("the test set took all %d records nobody had reviewed: the model suggests on none of them and "
                       "no unreviewed record's own label trains it (a test set is usually a few hundred records: "
                       "--size)", unreviewed)


def _withdraw_from_copies(services: Services, test_set: TestSet, blind: Callable[[PulledRecord], bool],
                          stop: threading.Event | None = None) -> PushReport:
    """Take the model's answers (suggestion, model metadata) and ``cold_start_rank`` off the records carrying a test
    record's text that ``blind`` names (nobody has reviewed them): one streamed pass over the dataset, written a
    page at a time. O(N) time, memory O(page).

    Raises:
        Interrupted: ``stop`` was set (the pages written stand; the next run makes the pass again).
    """
    test_records = TestSetFilter(test_set)
    report = PushReport()
    records = _until_stopped(services.gateway.pull(), stop, f"test set: stopped on request while taking the model's "
                             f"answers off the copies of its texts: its {len(test_set.ids)} records are drawn and "
                             f"marked; run it again to finish")
    copies = (record for record in records if test_records.is_copy(record) and blind(record))
    for page in batched(copies, PAGE_SIZE):
        part = services.gateway.withdraw_model_answers({record.record_id: record for record in page},
                                                       (*MODEL_ANSWER_METADATA, RANK_PROPERTY))
        report.sent_ids.extend(part.sent_ids)
        report.failed.update(part.failed)
    report.sent = len(report.sent_ids)
    return report


def _refuse_a_repeat(services: Services, training_set: TrainingSet, digest: str) -> None:
    """Raises :class:`NothingNewError` when training would repeat the newest version (see :func:`trained_before`)."""
    repeated = trained_before(services.registry, training_set, digest)
    if repeated is None:
        return
    outcome = "the current model" if repeated.status == CURRENT else f"{repeated.status}: " + str(
        repeated.metrics.get("gate", {}).get("reason", ""))
    annotated = training_set.counts()["annotated"]
    raise NothingNewError(
        f"nothing new to train on: {repeated.version} was trained from this very training set "
        f"({training_set.fingerprint}: {annotated} annotated records) and these settings ({outcome}); the next "
        f"training waits for a review that changes a label, or for a change of the [training] settings",
        repeated.version)


def _alignment_texts(services: Services, examples: Sequence[Example], limit: int) -> list[tuple[str, str | None]]:
    """Up to ``limit`` texts (with their second texts) a sentence encoder's first token is aligned on
    (``training.align_first_token``): the training ``examples``', then those of the first records the dataset
    returns. O(limit): the pull stops there."""
    texts = dict.fromkeys((example.text, example.text_pair) for example in examples)
    if len(texts) < limit:
        for record in services.gateway.pull():
            if record.has_text:
                texts.setdefault((str(record.text), record.text_pair), None)
            if len(texts) >= limit:
                break
    return list(texts)[:limit]


def _training_records(services: Services, first_model: bool, data: str) -> Iterator[PulledRecord]:
    """The records a training reads: every record when the unreviewed records' own labels may join (a first model,
    ``data`` — the resolved ``training.data`` — ``annotated+original``), else only those with a response —
    O(annotated), not O(dataset)."""
    if first_model or data == "annotated+original":
        yield from services.gateway.pull()
        return
    read = 0
    for read, record in enumerate(services.gateway.pull_annotated(), start=1):
        yield record
    logger.info("training read the %d records with a response only (annotated records alone)", read)


# fewer training examples per label than this: a model that predicts few of its labels needs more of them first
FEW_EXAMPLES_PER_LABEL = 10
# benchmarks/later_data.py (2 seeds): 120 annotated records vs the same plus 850 records' own labels at weight 0.3
OWN_LABELS_MEASURED = ("0.721 / 0.698 on 120 annotated alone, 0.774 / 0.793 with them; at 30 % wrong 0.721 / 0.698 "
                       "vs 0.706 / 0.684")
# the same benchmark: +0.05 / +0.10 accuracy with 10 % of the own labels wrong, −0.015 with 30 %: even at about a
# quarter. ``training.data = "auto"`` leaves them out once the test set shows more than that wrong (95 % sure).
OWN_LABELS_BREAK_EVEN = 0.25
MIN_OWN_LABEL_CHECKS = 20  # test records answered in rank order that came with a label, before their errors count


@dataclass(frozen=True)
class OwnLabelCheck:
    """The records' own labels as the test set judges them: of ``checked`` test records answered in rank order that
    came with a label (a random sample of them), ``wrong`` got another label from their reviewers."""

    checked: int = 0
    wrong: int = 0

    def interval(self) -> tuple[float, float]:
        """The 95 % Wilson interval of the share of wrong own labels."""
        return wilson_interval(self.wrong, self.checked)

    def describe(self) -> str:
        low, high = self.interval()
        return (f"{self.wrong} of the {self.checked} test records answered in rank order that came with a label were "
                f"relabelled (95 % interval {100 * low:.0f} % to {100 * high:.0f} % of the own labels wrong)")


def own_label_check(tested: TestProgress | None, crowd: CrowdModel | None) -> OwnLabelCheck:
    """How often the reviewers changed the label a test record came with (``record.reference``), over the test records
    answered in rank order (the unbroken run from rank 1: a random sample of the records). O(test set)."""
    annotators_only = blind(crowd)
    verdicts = (verdict(record, annotators_only) for record in (tested.in_order if tested is not None else ()))
    judged = [decided for decided in verdicts
              if decided is not None and decided.label is not None and decided.original_label is not None]
    return OwnLabelCheck(len(judged), sum(decided.is_correction for decided in judged))


def resolved_training_data(configured: str, current: ModelVersion | None, check: OwnLabelCheck) -> tuple[str, str]:
    """(what this training takes — ``annotated`` or ``annotated+original`` —, why). ``training.data = "auto"``: the
    records' own labels join while the current model learnt from them (its metrics' ``training.original``), unless the
    test set (``check``, from ``MIN_OWN_LABEL_CHECKS`` records) shows more than ``OWN_LABELS_BREAK_EVEN`` of them
    wrong, 95 % sure; a first model always takes them (:func:`~worker.training.job.prepare_training_set`)."""
    if configured != "auto":
        return configured, f"training.data = {configured!r}"
    if current is None:
        return "annotated+original", "a first model"
    own = int((current.metrics.get("training") or {}).get("original") or 0)
    if not own:
        return "annotated", (f"training.data = 'auto': annotated records only — the current model {current.version} "
                             f"learnt no label the records came with")
    if check.checked >= MIN_OWN_LABEL_CHECKS and check.interval()[0] > OWN_LABELS_BREAK_EVEN:
        return "annotated", (f"training.data = 'auto': the records' own labels are left out — {check.describe()}; "
                             f"above {100 * OWN_LABELS_BREAK_EVEN:.0f} % wrong they cost a later model accuracy "
                             f"(benchmarks/RESULTS.md, 'What a later model trains on')")
    tested = f"; {check.describe()}" if check.checked else ""
    return "annotated+original", (f"training.data = 'auto': the current model {current.version} learnt from {own} "
                                  f"records' own labels: they stay in at training.original_weight{tested}")


def _warn_if_own_labels_dropped(current: ModelVersion | None, training_set: TrainingSet,
                                settings: TrainingSettings) -> None:
    """A warning when the current model trained on the records' own labels (a first model always does) and this
    training, with ``training.data = "annotated"``, takes the annotated records alone: the candidate learns from far
    fewer examples and the gate may keep rejecting it until the annotations outweigh those labels."""
    if current is None or settings.data != "annotated":
        return
    trained = current.metrics.get("training") or {}
    if not trained.get("original"):
        return
    logger.warning("model %s trained on %d records' own labels beside its annotated ones; this training takes the %d "
                   "annotated records only (training.data = \"annotated\"): set training.data = "
                   "\"annotated+original\" to keep those labels at training.original_weight (movie snippets with "
                   "10 %% of them wrong: held-out accuracy %s; benchmarks/RESULTS.md)", current.version,
                   trained["original"], training_set.counts()["annotated"], OWN_LABELS_MEASURED)


def _few_labels_remedies(model: ModelVersion) -> str:
    """What may make ``model`` predict more of its labels, leaving out what it already had: more annotations first
    when it trained on few examples of each label (a cold start's first model), a larger learning rate for its new
    head unless it trained at one (``"auto"`` gives a head of many labels one), then a longer training."""
    training = model.metrics.get("training") or {}
    labels, examples = len(training.get("per_class") or {}), training.get("train")
    per_label = examples / labels if examples and labels else None
    few = per_label is not None and per_label < FEW_EXAMPLES_PER_LABEL
    remedies = [(f"annotate more records of each label (it trained on {examples} examples of {labels} labels, "
                 f"about {per_label:.0f} each)")] if few else []
    head_rate = trained_head_learning_rate(model.path)
    if head_rate is None or head_rate < AUTO_HEAD_LEARNING_RATE:
        remedies.append("give its new head a larger learning rate (training.head_learning_rate = 1e-2; \"auto\" does "
                        f"so for a new head of {AUTO_HEAD_MIN_LABELS} or more labels)")
    if not few:
        remedies += ["train longer (training.epochs)", "annotate records of the rare labels"]
    text = remedies[0] if len(remedies) == 1 else f"{', '.join(remedies[:-1])}, or {remedies[-1]}"
    return text[0].upper() + text[1:]


def _warn_if_every_label_ticked(version: str, validation: Mapping) -> None:
    """A label-set model's warning when its validation macro-F1 is no better than ticking every label on every record
    — the best macro-F1 a model that tells nothing apart reaches (each label's F1 is 2p / (1 + p) at its rate p) and
    where F1-tuned thresholds take a model whose probabilities still sit near the labels' rates: on a 6-label probe a
    first model read macro-F1 0.62 on the test set, ticking 5.5 labels a record, against 0.62 for ticking all 6."""
    baseline, macro_f1 = validation.get("every_label_macro_f1"), validation.get("macro_f1")
    if baseline is None or macro_f1 is None or not not_learned(macro_f1, baseline):
        return
    logger.warning("model %s does no better on its %s validation records than ticking every label (macro-F1 %.4f vs "
                   "%.4f): it ticks %.1f labels a record where they carry %.1f — it has not learned to tell the labels "
                   "apart yet, and its suggestions would tick nearly all of them. Annotate more, or train longer "
                   "(training.epochs).", version, validation.get("records"), macro_f1, baseline,
                   validation.get("labels_ticked", float("nan")), validation.get("labels_carried", float("nan")))


def _warn_if_not_learned(model: ModelVersion) -> None:
    """A warning when ``model`` does no better on its validation records than always answering their most
    common label (``majority_accuracy`` of its metrics), and one when it predicts fewer than half of the labels
    they carry."""
    validation = model.metrics.get("validation") or {}
    _warn_if_every_label_ticked(model.version, validation)
    majority = validation.get("majority_accuracy")
    predicted, present = validation.get("labels_predicted"), validation.get("labels_present")
    if few_labels_predicted(predicted, present):
        logger.warning("model %s predicts only %d of the %d labels its %s validation records carry (macro-F1 %.4f): "
                       "it has learned to tell only some of them apart. %s.", model.version, predicted, present,
                       validation.get("records"), validation.get("macro_f1", float("nan")), _few_labels_remedies(model))
    if validation.get("accuracy") is None or not not_learned(validation["accuracy"], majority):
        return
    training = model.metrics.get("training") or {}
    own_labels = (", or add the labels the records carry, if they carry any (training.data = \"annotated+original\")"
                  if training.get("data") == "annotated" else "")
    logger.warning("model %s does no better on its %s validation records than always answering their most common "
                   "label (accuracy %.4f vs %.4f): it has not learned the task yet (%s training examples). Annotate "
                   "more, train longer (training.epochs)%s.", model.version, validation.get("records"),
                   validation["accuracy"], majority, training.get("train", "?"), own_labels)


def estimate_crowd(services: Services, labels: Sequence[str], *,
                   stop: threading.Event | None = None) -> CrowdModel:
    """Estimate the annotators' and the model's weights (see :mod:`worker.crowd`) from one pass over the
    records with a response and store it (``state_dir/crowd.json``): score runs weigh votes with it until
    the next estimate. Returns it with ``[consensus]`` applied (see :meth:`Services.crowd`).
    Time O(annotated records); memory O(annotators + labels).

    Raises:
        Interrupted: ``stop`` was set during the pass (nothing stored).
    """
    estimator = CrowdEstimator(labels, services.taught)
    for record in _until_stopped(services.gateway.pull_annotated(), stop,
                                 "stopped on request while weighing the annotators' votes"):
        estimator.add(record)
    crowd = estimator.estimate()
    if crowd.annotators:
        names = services.gateway.usernames()
        crowd = replace(crowd, annotators={user: replace(stats, username=names.get(user))
                                           for user, stats in crowd.annotators.items()})
    services.crowds.put(services.gateway.dataset_key, crowd)
    crowd = services.crowd(labels, crowd)
    if crowd.overlapping_records:
        logger.info("annotator weights from %d records with ≥ 2 votes: %d annotators, mean weight %.3f, model "
                    "weight %.3f", crowd.overlapping_records, len(crowd.annotators), crowd.mean_annotator_weight,
                    crowd.model_weight)
    return crowd


def _measure_stability(services: Services, model: ModelVersion, previous: ModelVersion | None) -> ModelVersion:
    """Predict the stop set with the newly promoted ``model`` and store Cohen's κ against ``previous`` and the
    stopping signal in its metrics (``stability``; see :mod:`worker.stability`); the updated entry. Draws the
    stop set on first use (one streamed pass). A failure here is logged: the promotion stands."""
    settings = services.settings.retrain
    if settings.stop_set_size == 0:
        return model
    try:
        key = services.gateway.dataset_key
        stop_set = services.stop_sets.get(key)
        if stop_set is None:
            stop_set = draw_stop_set(services.gateway.pull(), settings.stop_set_size,
                                     seed=services.settings.training.seed)
            services.stop_sets.put(key, stop_set)
        if not stop_set.ids:
            logger.info("no unreviewed record to measure prediction stability on")
            return model
        current = _stop_set_labels(services, model, stop_set)
        before = _stop_set_labels(services, previous, stop_set) if previous is not None else None
    except WorkerError as error:
        logger.warning("prediction stability of %s not measured: %s", model.version, error)
        return model
    history = list((previous.metrics.get("stability") or {}).get("history", [])) if previous is not None else []
    kappa = agreement(before, current) if before is not None else None
    if kappa is not None:
        history = [*history, kappa][-10:]
    signal = stopping_signal(history, threshold=settings.stop_kappa, window=settings.stop_window)
    updated = services.registry.update_metrics(model.version, stability={
        "kappa": kappa, "versus": previous.version if previous else None, "records": len(stop_set.ids),
        "history": history, "stop_signal": signal})
    if previous is None or before is None:
        logger.info("prediction stability: %s's labels for %d unreviewed records kept; the next model promoted is "
                    "compared with them (Cohen's κ)", model.version, len(stop_set.ids))
    else:
        logger.info("prediction stability of %s vs %s on %d records: κ %s%s", model.version, previous.version,
                    len(stop_set.ids), f"{kappa:.4f}",
                    "; more annotation is unlikely to change the model" if signal else "")
    return updated


def _stop_set_labels(services: Services, model: ModelVersion, stop_set: StopSet) -> list[str]:
    """``model``'s predicted labels [n] on the stop set, stored beside the model (computed once per version)."""
    stored = load_predictions(model.path)
    if stored is not None and all(record_id in stored for record_id in stop_set.ids):
        return [stored[record_id] for record_id in stop_set.ids]
    classifier = services.load(model)
    probabilities = predict_probabilities(classifier, stop_set.texts, pairs=stop_set.pairs, samples=1)
    labels = [classifier.labels[index] for index in probabilities.deterministic.argmax(axis=1).tolist()]
    save_predictions(model.path, stop_set, labels)
    return labels


def _prepare_for_scores(services: Services, extra: dict) -> None:
    """The writes a job makes before its first push: its section of the guidelines; the plugins' scores' metadata
    properties are announced, and added by their first write as the worker's own are."""
    services.gateway.prepare()
    if extra:
        services.gateway.expect_float_metadata(extra)


def _check_before_training(services: Services, start_model: str | None) -> None:
    """What would otherwise fail after minutes of training: the model to start from cannot be loaded, or
    the registry / state directory cannot be written.

    Raises:
        ConfigError: names the setting, the value and the reason.
    """
    if start_model:
        check_model_source(start_model, trust_remote_code=services.settings.registry.trust_remote_code)
    check_writable(services.settings.registry.path, "registry.path")
    check_writable(services.settings.state_dir, "state_dir")


CALIBRATION_SETS = {"validation": "calibration", "test-set": "calibration-test-set"}  # --on → directory, metrics key


def calibrate_job(services: Services, version: str | None = None, *, max_samples: int = 50,
                  on: str = "validation") -> CalibrationReport:
    """(Re)compute a registered version's calibration report on its stored validation records, or (``on =
    "test-set"``) on the test set's records answered in rank order that it was not taught — drawn at random, never
    trained on: the records whose figures stand for those the worker scores. Written beside the model in
    ``calibration/`` (``calibration-test-set/``) and to its metrics under the same key (``calibration_test_set``).
    O(test set) reads for the test set.

    Raises:
        WorkerError: no such records (no validation file, a model trained again on them, no test set, none of its
            records answered in rank order) — names the model and what to do.
    """
    entry = services.registry.get(version) if version else services.current_model()
    examples, measured_on = (_test_set_examples(services, entry) if on == "test-set"
                             else (_validation_examples(entry), VALIDATION_RECORDS))
    classifier = services.load(entry)
    directory = CALIBRATION_SETS[on]
    report = calibration_report(classifier, examples, entry.path / directory, max_samples=max_samples,
                                mc_samples=services.settings.scoring.samples,
                                dropout_rate=services.settings.scoring.dropout_rate, measured_on=measured_on)
    services.registry.update_metrics(entry.version, **{directory.replace("-", "_"): {
        "ece_deterministic": report.ece_deterministic, "ece_mc": report.ece_mc, "mc_samples": report.mc_samples,
        "temperature": report.temperature, "ece_temperature_scaled_crossfit": report.ece_temperature_scaled_crossfit,
        "records": report.records}})
    return report


def _validation_examples(entry: ModelVersion) -> list[Example]:
    """The validation records stored beside ``entry``.

    Raises:
        WorkerError: none stored, or the model was trained again on them (``training.refit``).
    """
    validation_file = entry.path / "validation.jsonl"
    if not validation_file.exists():
        raise WorkerError(f"model {entry.version} has no stored validation records ({validation_file}): "
                          f"`argilla-worker calibrate --on test-set` measures it on the test set's reviewed records")
    refit_on = (entry.metrics.get("training") or {}).get("refit_on")
    if refit_on:
        raise WorkerError(f"model {entry.version} was trained again on its validation records too (all {refit_on} "
                          f"examples: training.refit), so a report on them would measure memory; its "
                          f"report from before that stands ({entry.path / 'calibration'}); `argilla-worker calibrate "
                          f"--on test-set` measures it on the test set's reviewed records, which no model trains on")
    return read_examples(validation_file)


def _test_set_examples(services: Services, entry: ModelVersion) -> tuple[list[Example], str]:
    """The test set's records answered in rank order, labelled by the annotators alone, less those ``entry`` was
    taught (a model trained before the draw), and how the report names them. Reads only.

    Raises:
        WorkerError: no test set, or none of its records answered in rank order and untaught.
    """
    test_set = services.test_sets.get(services.gateway.dataset_key)
    if test_set is None:
        raise WorkerError(f"{services.gateway.dataset_name!r} has no test set: `argilla-worker test-set` draws one; "
                          f"once annotators review its records in rank order, calibrate measures on them")
    labels = services.labels()
    state = progress(test_set, services.gateway.read(test_set.server_ids))
    untaught, left_out = _untaught_answers(state, labels, services.crowd(labels),
                                           services.taught(entry.version) or set())
    if not untaught:
        raise WorkerError(f"no test-set record to measure model {entry.version} on: {len(state.in_order)} of "
                          f"{len(test_set.ids)} answered in rank order from 1, {left_out} of them taught to it — "
                          f"review the test set in the UI sorted by test_set_rank from 1")
    return untaught, "test set records" + (f", {left_out} it was taught left out" if left_out else "")


def _nothing_to_publish(services: Services, stats: PublicationStats) -> str:
    """Why a publication has no row: the dataset is empty, nothing is reviewed (``publish.only_reviewed``), or every
    record lacks a label or is tied."""
    dataset = services.settings.argilla.dataset
    if stats.records_seen == 0:
        why = "has no record"
    elif services.settings.publish.only_reviewed:
        why = f"has {stats.records_seen} records and none is reviewed yet (publish.only_reviewed = true)"
    else:
        why = (f"has {stats.records_seen} records and none carries a label to publish ({stats.unlabelled} without a "
               f"label or review, {stats.tied} tied)")
    return f"nothing to publish: {dataset!r} {why}; the last publication, if any, is left as it is"


def publish_job(services: Services, *, directory: Path | None = None, repo_id: str | None = None,
                stop: threading.Event | None = None) -> list[PublishResult]:
    """Build the cleaned dataset from Argilla and write it to the configured sinks (unchanged → skipped).
    ``stop``: read at each record of the two passes (annotators' weights, then the records) and before the sinks
    write; a sink's write itself (one directory swap, one Hub commit) is not cut short.

    Raises:
        ConfigError: no sink configured, or a sink's ``check()`` refuses (a directory holding files the worker
            did not publish).
        Interrupted: ``stop`` was set: nothing published, the last publication stands.
    """
    try:
        return _publish(services, directory=directory, repo_id=repo_id, stop=stop)
    except Interrupted as stopped:
        raise Interrupted(f"publishing {stopped}: nothing published (the last publication stands); run it again to "
                          f"publish") from None


def _publish(services: Services, *, directory: Path | None, repo_id: str | None,
             stop: threading.Event | None) -> list[PublishResult]:
    """:func:`publish_job`'s work."""
    settings = services.settings.publish
    if directory is not None or repo_id is not None:  # explicit sinks (CLI) replace the configured ones
        sinks = ([LocalDirectorySink(directory)] if directory else []) + (
            [HubSink(repo_id, token=settings.token(), private=settings.private)] if repo_id else [])
    else:
        sinks = services.publishers()
    if not sinks:
        raise ConfigError("nothing to publish to: set publish.directory and/or publish.repo_id")
    for sink in sinks:  # before the pass over the records: a sink that would refuse says so first
        check_sink(sink)
    options = PublishOptions(only_reviewed=settings.only_reviewed, split=settings.split,
                             test_fraction=settings.test_fraction, seed=settings.seed,
                             similarity=services.settings.copies.similarity)
    labels = services.labels()
    metadata = _published_metadata(services)  # checked before the passes over the records
    questions = _published_questions(services)
    binding = services.gateway.binding
    others, chats = _published_fields(services)
    crowd = estimate_crowd(services, labels, stop=stop)
    records = _until_stopped(services.gateway.pull(fields=others, questions=tuple(questions)), stop,
                             "stopped on request while reading the records")
    with build_publication(records, labels, options,
                           fields=(*binding.fields, *others), workdir=services.settings.state_dir / "publishing",
                           crowd=crowd, multi_label=binding.multi_label,
                           metadata=metadata, chat_fields=chats, rating=binding.rating,
                           questions=questions) as publication:
        stats = publication.stats
        if stats.tied:
            logger.warning("%d record(s) not published: annotators are tied (%s)%s", stats.tied,
                           ", ".join(publication.tied[:5]), "" if services.settings.consensus.ties == "resolve"
                           else TIES_HINT)
        from_scratch = labelled_from_scratch(publication)
        if stats.unlabelled:  # expected while a dataset that came without labels is reviewed: no warning then
            logger.log(logging.INFO if from_scratch else logging.WARNING,
                       "%d record(s) not published: no label and no review%s", stats.unlabelled,
                       " yet (the dataset came without labels: each is published once reviewed)" if from_scratch
                       else "")
        if publication.num_rows == 0:  # an empty dataset pushed over the last publication helps no one
            raise DataError(_nothing_to_publish(services, stats))
        state = "labelled" if from_scratch else "cleaned"
        # the card links Argilla itself, not the team's server: an internal address is no reader's business
        card = CardInfo(license=settings.license, pretty_name=f"{services.settings.argilla.dataset} ({state})",
                        model_metrics=_model_metrics(services, publication))
        if stop is not None and stop.is_set():
            raise Interrupted(f"stopped on request after reading the {publication.num_rows} rows, before writing "
                              f"them")
        results = [sink.publish(publication, card) for sink in sinks]
    call_each(services.plugins, "on_published", results=results)
    return results


def publication_problems(services: Services) -> list[str]:
    """What in ``publish.fields`` / ``metadata`` / ``questions`` does not fit the dataset, one line each (what
    `config check` says before a scheduled publication would fail on it)."""
    problems = []
    for check in (_published_fields, _published_metadata, _published_questions):
        try:
            check(services)
        except ConfigError as error:
            problems.append(str(error))
    return problems


def _published_fields(services: Services) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``publish.fields``: the fields published beside the bound ones (those asked for, in the dataset's order), and
    which of all the published fields are conversations (chat fields, published as their messages).

    Raises:
        ConfigError: a name the dataset has no field of (lists those it has).
    """
    binding, wanted = services.gateway.binding, services.settings.publish.fields
    shape = services.gateway.shape()
    kinds = {info.name: info.type for info in shape.fields}
    if isinstance(wanted, list):
        unknown = [name for name in wanted if name not in kinds]
        if unknown:
            raise ConfigError(f"publish.fields: dataset {shape.name!r} has no field {unknown[0]!r}; it has: "
                              f"{', '.join(kinds)}")
    asked = set(kinds) if wanted == "all" else set(wanted) if isinstance(wanted, list) else set()
    others = tuple(name for name in kinds if name in asked and name not in binding.fields)
    return others, tuple(name for name in (*binding.fields, *others) if kinds.get(name) == "chat")


def _published_metadata(services: Services) -> dict[str, str]:
    """``publish.metadata``: each named property with its Argilla kind (integer / float / terms).

    Raises:
        ConfigError: a name the dataset has no metadata property of (lists those it has).
    """
    names = services.settings.publish.metadata
    if not names:
        return {}
    shape = services.gateway.shape()
    kinds = {prop.name: prop.type for prop in shape.metadata}
    unknown = [name for name in names if name not in kinds]
    if unknown:
        raise ConfigError(f"publish.metadata: dataset {shape.name!r} has no metadata property {unknown[0]!r}; it "
                          f"has: {', '.join(sorted(kinds)) or 'none'}")
    return {name: kinds[name] for name in names}


def _published_questions(services: Services) -> dict[str, str]:
    """``publish.questions``: each named question with its kind (text, label_selection, rating …).

    Raises:
        ConfigError: a name the dataset has no question of (lists those it has), or the question the worker serves
            (its answers are the ``label`` column already).
    """
    names = services.settings.publish.questions
    if not names:
        return {}
    shape, bound = services.gateway.shape(), services.gateway.binding.question
    kinds = {question.name: question.type for question in shape.questions}
    unknown = [name for name in names if name not in kinds]
    if unknown:
        raise ConfigError(f"publish.questions: dataset {shape.name!r} has no question {unknown[0]!r}; it has: "
                          f"{', '.join(kinds)}")
    if bound in names:
        raise ConfigError(f"publish.questions: {bound!r} is the question the worker serves: its answers are the "
                          f"`label` column already (the annotators' consensus); name the others only")
    return {name: kinds[name] for name in names}


def _model_metrics(services: Services, publication) -> dict | None:
    version = (publication.model_version or "").split(OOF_MARK)[0]
    try:
        return services.registry.get(version).metrics if version else None
    except WorkerError:
        return None


REGISTERED_COMPARISON_RECORDS = 1000  # reviewed records a registered model is compared with the current one on, at most


def registered_comparison(services: Services, registered: ModelVersion) -> str | None:
    """A model just registered beside the current one, both judged on the dataset's reviewed records (the
    annotators' consensus; the first :data:`REGISTERED_COMPARISON_RECORDS`) that the current model was not taught —
    what `models promote` is decided on. None without another current model; a sentence when there is nothing to
    compare on. The figures are kept with the registered version (``registered_comparison``). Two deterministic
    passes over those records; memory O(records compared)."""
    current = services.registry.current()
    if current is None or current.version == registered.version:
        return None
    labels = services.labels()
    reviewed = itertools.islice(services.gateway.pull(condition=SUBMITTED_FILTER), REGISTERED_COMPARISON_RECORDS)
    try:
        annotated, _, _ = examples_from_records(reviewed, labels)
    except DataError as error:  # a review the question cannot hold: the registration stands, the comparison not
        return f"not compared with the current model {current.version}: {error}"
    if not annotated:
        return f"no reviewed record yet to compare it with the current model {current.version} on"
    device, trusted = services.settings.scoring.device, services.settings.registry.trust_remote_code
    candidate = load_classifier(registered.path, device=device, version=registered.version, trust_remote_code=trusted)
    incumbent = load_classifier(current.path, device=device, version=current.version, trust_remote_code=trusted)
    if set(incumbent.labels) != set(candidate.labels) or incumbent.multi_label != candidate.multi_label:
        return f"the current model {current.version} answers another question's labels: not compared"
    comparison = compare_models(candidate, incumbent, annotated, taught_by(current, annotated),
                                seed=services.settings.training.seed)
    services.registry.update_metrics(registered.version, registered_comparison={  # (`models list` shows it)
        **comparison.as_dict(), "current_version": current.version})
    left_out = f" ({comparison.left_out} it trained on left out)" if comparison.left_out else ""
    interval = (f", 95 % interval {comparison.interval[0]:+.4f} to {comparison.interval[1]:+.4f}"
                if comparison.interval is not None else "")
    return (f"on {comparison.records} reviewed records the current model {current.version} was not taught{left_out}: "
            f"macro-F1 {registered.version} {comparison.candidate_macro_f1:.4f}, {current.version} "
            f"{comparison.current_macro_f1:.4f} "
            f"(difference {comparison.candidate_macro_f1 - comparison.current_macro_f1:+.4f}{interval}; "
            f"{registered.version} may have been trained on some of them: what it learnt from is not known here)")

