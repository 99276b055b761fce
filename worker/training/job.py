"""One retraining run: corrections in, a registered (and, if it passes the gate, promoted) model out."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from worker.calibration import MIN_TEMPERATURE_RECORDS, TemperatureFit
from worker.constants import ALIGN_EPOCHS, ALIGN_LEARNING_RATE
from worker.crowd import TIES_HINT, CrowdModel
from worker.duplicates import EXACT
from worker.errors import ConfigError, DataError, Interrupted
from worker.records import PulledRecord
from worker.registry import (
    GateDecision,
    ModelRegistry,
    ModelVersion,
    gate,
    is_brought,
    read_taught_ids,
    write_taught_ids,
)
from worker.scoring import load_classifier
from worker.scoring.model import TEMPERATURE_FILE, THRESHOLDS_FILE, Classifier
from worker.training.calibrate import (
    calibration_report,
    scored_probabilities,
    scores_temperature,
    write_temperature,
)
from worker.training.compare import (
    MIN_GATE_TEST_RECORDS,
    Comparison,
    compare_models,
    gate_records,
    inferred_taught_ids,
)
from worker.training.data import (
    Example,
    TrainingData,
    TrainingSet,
    build_first_training_set,
    build_training_set,
    examples_from_records,
    taught_ids,
)
from worker.training.evaluate import majority_share
from worker.training.pooling import Text, aligned_encoder, mean_pooled
from worker.training.trainer import TrainingSettings, train_classifier

logger = logging.getLogger(__name__)

ALIGNED_ENCODERS = "aligned"  # under the registry's root: base encoders with their first token aligned (pooling.py)


@dataclass(frozen=True)
class HeldOutScores:
    """A model's probabilities on held-out examples as the worker scores records: ``ids`` [N] in the order of
    ``probabilities`` [N, C] (the MC-dropout mean, uncalibrated)."""

    ids: tuple[str, ...]
    probabilities: np.ndarray

    def for_examples(self, examples: Sequence[Example]) -> np.ndarray | None:
        """The probabilities [N, C] when ``examples`` are these, in this order; else None (to be scored anew)."""
        return self.probabilities if tuple(example.id for example in examples) == self.ids else None


@dataclass(frozen=True)
class TrainingOutcome:
    model: ModelVersion
    decision: GateDecision
    held_out_scores: HeldOutScores | None = None  # the registered model's, on ``random_held_out`` (the test set's)

    @property
    def promoted(self) -> bool:
        return self.decision.passed


def prepare_training_set(records: Iterable[PulledRecord], labels: Sequence[str],
                         settings: TrainingSettings, *, first_model: bool = False,
                         crowd: CrowdModel | None = None, similarity: float = EXACT) -> TrainingSet:
    """Consensus labels (weighted by ``crowd``, see :mod:`worker.crowd`; and original labels if configured)
    → stratified train/validation split.

    With ``first_model`` (no current model yet) and fewer than ``training.min_annotated`` annotations,
    the first model trains on the labels the records carry (see :func:`build_first_training_set`); with
    more, on the annotations plus those labels at ``training.original_weight`` (whatever ``training.data``
    says: one more annotation never shrinks a first model's training set to the annotated records alone); a later
    model takes them unless ``training.data`` is ``"annotated"`` (``"auto"`` is resolved by the caller:
    :func:`worker.jobs.resolved_training_data`),
    validated on annotated records. Copies of one text (and near copies at ``similarity`` < 1:
    ``copies.similarity``) are never on both sides of the validation split.

    Raises:
        DataError: too few labels, a class without examples, or a label outside ``labels``.
    """
    data: TrainingData = "annotated" if settings.data == "annotated" and not first_model else "annotated+original"
    sample = None if settings.max_original == "all" else settings.max_original
    annotated, original, tied = examples_from_records(records, labels, data=data,
                                                      original_weight=settings.original_weight, crowd=crowd,
                                                      max_original=sample, seed=settings.seed)
    if tied:
        logger.warning("%d record(s) left out of training: annotators are tied (%s%s)%s", len(tied),
                       ", ".join(tied[:5]), "…" if len(tied) > 5 else "", TIES_HINT if crowd is None or
                       not crowd.resolve_ties else " and neither their weights nor the model's view decides")
    tipped = sum(example.model_tipped for example in annotated)
    if tipped:
        logger.info("%d tie(s) of the votes decided by the model's view as well as the annotators' weights "
                    "(consensus.ties = 'resolve'): trained on, never validated on", tipped)
    if first_model and len(annotated) < settings.min_annotated:
        if len(annotated) + len(original) >= settings.min_annotated:  # else the error below says what is missing
            logger.info("first model: %d annotated records (< training.min_annotated = %d), so it trains on the %d "
                        "labels the records carry; its validation measures agreement with possibly noisy labels",
                        len(annotated), settings.min_annotated, len(annotated) + len(original))
        return build_first_training_set(annotated, original, labels,
                                        validation_fraction=settings.validation_fraction,
                                        min_examples=settings.min_annotated, seed=settings.seed,
                                        similarity=similarity)
    if settings.data == "annotated" and not first_model:
        original = []
    elif first_model and original:  # no cliff at min_annotated: the records' own labels stay in, at a lower weight
        logger.info("first model: %d annotated records and %d records' own labels (weight %.2f); later models "
                    "train on %s", len(annotated), len(original), settings.original_weight,
                    "annotated records only (training.data)" if settings.data == "annotated" else "both")
    return build_training_set(annotated, original, labels, validation_fraction=settings.validation_fraction,
                              min_annotated=settings.min_annotated, seed=settings.seed, similarity=similarity)


def _majority_baseline(validation: Sequence[Example]) -> dict:
    """{"majority_accuracy": the accuracy of always answering the validation records' most common label}; empty
    for label sets (no single answer to compare with)."""
    labels = [example.label for example in validation]
    if not labels or any(isinstance(label, tuple) for label in labels):
        return {}
    return {"majority_accuracy": majority_share(labels)}


# settings that change how a training runs, not the model it gives (where it runs, how memory is saved)
_HOW_IT_RUNS = frozenset({"device", "micro_batch_size", "gradient_checkpointing", "compile"})
_WHICH_EXAMPLES = frozenset({"data"})  # decides the training set, whose fingerprint holds what it decided


def settings_digest(settings: TrainingSettings, scorer_options: Mapping[str, Any] | None) -> str:
    """A digest of what besides its data decides a training's model and its gate: the ``[training]`` settings
    (less those of :data:`_HOW_IT_RUNS` and :data:`_WHICH_EXAMPLES`) and the scoring options its validation records
    are scored with."""
    chosen = {key: value for key, value in settings.model_dump(mode="json").items()
              if key not in _HOW_IT_RUNS | _WHICH_EXAMPLES}
    text = json.dumps({"training": chosen, "scoring": dict(scorer_options or {})}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def trained_before(registry: ModelRegistry, training_set: TrainingSet, digest: str) -> ModelVersion | None:
    """The newest registered version when training again would repeat it: trained from this very training set
    (``training_set.fingerprint``) with these settings (``digest``, :func:`settings_digest`) while the model that is
    current now was current (or it is the current one) — a retrain with nothing new to learn; else None.
    Reads the registry's versions' metrics (``registry.keep`` files)."""
    versions = registry.versions()
    if not versions:
        return None
    newest = versions[-1]
    training = newest.metrics.get("training", {})
    current = registry.current_version()
    same_start = newest.version == current or newest.metrics.get("parent") == current
    if same_start and training.get("fingerprint") == training_set.fingerprint \
            and training.get("settings_digest") == digest:
        return newest
    return None


TemperatureSource = Literal["validation", "test set", "validation + test set"]


def temperature_records(validation: Sequence[Example], scored: np.ndarray, random_held_out: Sequence[Example],
                        held_out_scored: np.ndarray | None) -> tuple[list[Example], np.ndarray, TemperatureSource]:
    """The records the candidate's temperature is fitted on, their probabilities as the worker scores records
    ([N, C]) and their name: the records drawn at random (``random_held_out``, their probabilities
    ``held_out_scored`` [H, C]) when there are ``MIN_TEMPERATURE_RECORDS`` of them; else those and the validation
    records (``scored`` [V, C]); the validation records alone when there are none (or the scorer skipped one of
    them: ``held_out_scored`` None).

    ``benchmarks/test_set_calibration.py`` (BBC News, 20 Newsgroups; a loop's first and second models, whose 6–43
    validation records fit none): a temperature fitted on a test set of 200 brought the confidence's calibration
    error on the other unreviewed records from 0.179 to 0.074 on average (0.328 → 0.057 at best)."""
    if not random_held_out or held_out_scored is None:
        return list(validation), scored, "validation"
    held = list(random_held_out)
    if len(held) >= MIN_TEMPERATURE_RECORDS:
        return held, held_out_scored, "test set"
    return [*validation, *held], np.concatenate([scored, held_out_scored]), "validation + test set"


def _held_out_scores(candidate: Classifier, random_held_out: Sequence[Example], scorer_options: Mapping[str, Any],
                     seed: int) -> HeldOutScores | None:
    """The candidate's probabilities on ``random_held_out`` as the worker scores records (one score run over them;
    None when there are none or the scorer skipped one). Computed once a training: the temperature is fitted on
    them and the test-set measure after registration reads its calibration error from them."""
    if not random_held_out:
        return None
    probabilities = scored_probabilities(candidate, random_held_out, scorer_options, seed=seed)
    if probabilities is None:
        return None
    return HeldOutScores(tuple(example.id for example in random_held_out), probabilities)


def retrain(training_set: TrainingSet, registry: ModelRegistry, settings: TrainingSettings, *,
            mc_samples: int = 20, dropout_rate: float | None = None,
            stop: threading.Event | None = None, trust_remote_code: bool = False,
            scorer_options: Mapping[str, Any] | None = None,
            random_held_out: Sequence[Example] = (),
            alignment_texts: Callable[[], Sequence[Text]] | None = None) -> TrainingOutcome:
    """Train, evaluate against the current model on the same records (validation records, or the test set's:
    :func:`~worker.training.compare.gate_records`), register, gate, promote.
    Models that ship code run it with ``trust_remote_code`` (``registry.trust_remote_code``).

    With ``scorer_options`` (the ``[scoring]`` options that decide a record's numbers) the validation records are
    scored that way once: the calibration report's MC figures are those scores (what annotators will be shown;
    only a deterministic pass is added), and where reading the candidate's probabilities at a temperature lowers
    their calibration error, ``temperature.json`` is saved with it (see
    :func:`~worker.training.calibrate.scores_temperature`). ``random_held_out``: labelled records drawn at random
    that the candidate does not train on (the test set's, answered in rank order): the temperature is fitted on
    them — they are what the records it scores look like, unlike the validation records picked for review — when
    there are ``MIN_TEMPERATURE_RECORDS`` of them, else on them and the validation records together (see
    :func:`temperature_records`); the gate compares the two models on them too. Without them, and for label
    sets, the report draws ``mc_samples`` MC-dropout samples over every layer at ``dropout_rate``
    (``scoring.dropout_rate``); ``argilla-worker calibrate`` draws the ECE-vs-T curve to 50.

    ``alignment_texts``: the dataset's texts a sentence encoder's first token is aligned on before the first
    training from it (:func:`aligned_start`); None: the base model is trained from as it is.

    A crash anywhere before registration leaves the registry as it was (training runs in staging).

    Raises:
        ConfigError: no start model (``training.base_model`` unset and no current model).
    """
    current = registry.current()
    start, start_version = start_model(settings, registry, current)
    if not start:
        raise ConfigError("training.base_model is not set (a Hub model id or a local directory to fine-tune)")
    version = registry.next_version()
    if start_version is not None:
        logger.info("%s is fine-tuned from %s", version, start_description(start_version, settings.start_from))
    base = start
    if start_version is None and alignment_texts is not None:
        start = aligned_start(start, registry, settings, alignment_texts, trust_remote_code, stop)
    validation = list(training_set.validation)
    with registry.staging() as staged, _unchanged_when_stopped():
        result = train_classifier(start, training_set.train, validation, training_set.labels, staged, settings,
                                  stop=stop, trust_remote_code=trust_remote_code)
        _write_examples(staged / "validation.jsonl", validation)
        candidate = load_classifier(staged, device=settings.device, version=version,
                                    trust_remote_code=trust_remote_code)
        scored = None
        if scorer_options is not None and not candidate.multi_label:
            logger.info("%s: scoring the %d validation records as the worker scores records", version,
                        len(validation))
            scored = scored_probabilities(candidate, validation, scorer_options, seed=settings.seed)
        logger.info("%s: measuring calibration on %d validation records (%s)", version, len(validation),
                    "deterministic pass" if scored is not None else f"deterministic, MC dropout T={mc_samples}")
        report = calibration_report(candidate, validation, staged / "calibration", max_samples=mc_samples,
                                    mc_samples=mc_samples, seed=settings.seed, dropout_rate=dropout_rate,
                                    scored=scored)
        taught = taught_by(current, training_set.validation)
        refit = _refits(training_set, settings, current, random_held_out, taught)
        fit, fitted_on, held_out = None, "validation", None
        if scored is not None and not (refit and len(random_held_out) >= MIN_TEMPERATURE_RECORDS):
            held_out = _held_out_scores(candidate, random_held_out, scorer_options or {}, settings.seed)
            fit_examples, fit_scored, fitted_on = temperature_records(
                validation, scored, random_held_out, held_out.probabilities if held_out is not None else None)
            fit = scores_temperature(candidate, fit_examples, fit_scored, seed=settings.seed, source=fitted_on)
        if fit is not None:
            write_temperature(fit, staged)
        if refit:  # (its temperature from its own test-set scores, where there are enough: not fitted above)
            _refit_on_every_example(start, training_set, staged, settings, stop, trust_remote_code,
                                    first=current is None)
            candidate, held_out, fit, fitted_on = _refit_model(staged, version, random_held_out, settings,
                                                               scorer_options if scored is not None else None,
                                                               trust_remote_code, (fit, fitted_on))
        comparison = _comparison(candidate, current, training_set, settings, trust_remote_code, random_held_out,
                                 taught)
        decision = _decision(report.macro_f1, comparison, settings.gate_tolerance)
        _write_taught_ids(staged, training_set, start_version, refit)
        metrics = {
            "validation": {"records": report.records, "accuracy": report.accuracy_deterministic,
                           "macro_f1": report.macro_f1, "ece_deterministic": report.ece_deterministic,
                           "ece_mc": report.ece_mc, "accuracy_mc": report.accuracy_mc,
                           "mc_samples": report.mc_samples, **_majority_baseline(validation),
                           "labels_predicted": report.labels_predicted, "labels_present": report.labels_present,
                           **({"every_label_macro_f1": report.every_label_macro_f1,
                               "labels_ticked": report.labels_ticked, "labels_carried": report.labels_carried}
                              if report.multi_label else {}),
                           **({"temperature": fit.temperature, "ece_scores": fit.ece_before,
                               "ece_scores_at_temperature": fit.ece_after, "temperature_records": fit.records,
                               "temperature_fitted_on": fitted_on} if fit else {})},
            "gate": {"passed": decision.passed, "reason": decision.reason, "tolerance": decision.tolerance,
                     "current_version": current.version if current else None,
                     "current_macro_f1_same_validation": comparison.current_macro_f1 if comparison else None,
                     **({"comparison": comparison.as_dict()} if comparison else {})},
            "training": {"fingerprint": training_set.fingerprint, "data": settings.data,
                         "settings_digest": settings_digest(settings, scorer_options), **training_set.counts(),
                         "start_model": str(base), "best_epoch": result.best_epoch,
                         **({"start_aligned": str(start)} if start != base else {}),
                         **({"start_version": start_version.version} if start_version is not None else {}),
                         "epochs_run": len(result.history), "stopped_early": result.stopped_early,
                         "seconds": round(result.seconds, 1),
                         **({"refit_on": len(training_set.train) + len(validation)} if refit else {})},
            "labels": list(training_set.labels),
            "parent": current.version if current else None,
        }
        entry = registry.add(staged, metrics, version=version)
    if decision.passed:
        entry = registry.promote(entry.version, reason=decision.reason)
    else:
        entry = registry.reject(entry.version, decision.reason)
    return TrainingOutcome(entry, decision, held_out)


def start_model(settings: TrainingSettings, registry: ModelRegistry, current: ModelVersion | None
                ) -> tuple[str | Path | None, ModelVersion | None]:
    """(what the next model is fine-tuned from, the registry version that is — None for ``training.base_model``).
    ``training.start_from``: ``"current"`` the current model; ``"auto"`` the model the team registered that the current
    one is or was trained from (:meth:`~worker.registry.ModelRegistry.brought_start`: their classifier already knows
    the task, a base encoder does not), else the base model; ``"base"`` ``training.base_model``."""
    if current is not None and settings.start_from == "current":
        return current.path, current
    brought = registry.brought_start(current) if settings.start_from == "auto" else None
    if brought is not None:
        return brought.path, brought
    return settings.base_model, None


def aligned_start(base: str | Path, registry: ModelRegistry, settings: TrainingSettings,
                  texts: Callable[[], Sequence[Text]], trust_remote_code: bool = False,
                  stop: threading.Event | None = None) -> str | Path:
    """What a training from ``base`` starts from: ``base``, or — ``training.align_first_token`` on and ``base`` a
    sentence encoder that mean-pools its tokens — ``base`` with its first token aligned on ``texts()``, made once
    and kept under the registry (:func:`~worker.training.pooling.aligned_encoder`). An alignment that fails (a
    text the encoder cannot read, its device's memory) is a warning, and the training starts from ``base``.

    Raises:
        Interrupted: ``stop`` was set while aligning.
    """
    if not settings.align_first_token or not mean_pooled(base):
        return base
    try:
        return aligned_encoder(base, texts, registry.root / ALIGNED_ENCODERS, epochs=ALIGN_EPOCHS,
                               learning_rate=ALIGN_LEARNING_RATE, max_length=settings.max_length, seed=settings.seed,
                               device=settings.device, trust_remote_code=trust_remote_code, stop=stop)
    except (ConfigError, DataError) as error:
        logger.warning("the training starts from %s as it is: aligning its first token failed (%s); "
                       "training.align_first_token = false skips it", base, error)
        return base


def start_description(start_version: ModelVersion, start_from: str) -> str:
    """e.g. ``v0001 (the model you registered; training.start_from = 'auto')``."""
    what = "the model you registered" if is_brought(start_version) else "the current model"
    return f"{start_version.version} ({what}; training.start_from = {start_from!r})"


@contextlib.contextmanager
def _unchanged_when_stopped() -> Iterator[None]:
    """A training a stop abandoned (within a step of the request; staging is discarded) says the current model
    is unchanged."""
    try:
        yield
    except Interrupted as stopped:
        raise Interrupted(f"{stopped}; the current model is unchanged") from None


def _refits(training_set: TrainingSet, settings: TrainingSettings, current: ModelVersion | None,
            random_held_out: Sequence[Example], taught: Collection[str] | None) -> bool:
    """Whether the model is trained again on its validation records too (``training.refit``): when they are too few
    to pick an epoch and no gate compares on them — a first model (no current one), or the gate compares on the
    test set (:func:`~worker.training.compare.gate_records`) — they would only measure it: a quarter to a third of a
    loop's first hundred reviews (one or two a label) spent on a figure nobody decides by."""
    small = 0 < len(training_set.validation) < settings.select_min_validation
    if not (settings.refit and small):
        return False
    return current is None or not gate_records(training_set.validation, random_held_out, taught)[0]


def _refit_on_every_example(start: str | Path, training_set: TrainingSet, staged: Path, settings: TrainingSettings,
                            stop: threading.Event | None, trust_remote_code: bool, *, first: bool) -> None:
    """Train from ``start`` again on train + validation (every planned epoch: there is nothing to select on) and put
    its weights and tokenizer in place of the measured model's in ``staged``. The measured model's calibration
    report and a multi-label model's decision thresholds stay: tuned for the same recipe on records it had not seen
    (the refit has no validation to tune them on; at 0.5 each, a first model whose probabilities still sit near
    the labels' rates predicts few labels — on a 6-label probe, test-set macro-F1 0.34 at 0.5 against 0.44 tuned)."""
    examples = [*training_set.train, *training_set.validation]
    why = "" if first else "; the gate compares on the test set"
    logger.info("its %d validation records only measured the model (< training.select_min_validation = %d%s): "
                "training it again on all %d examples (training.refit)", len(training_set.validation),
                settings.select_min_validation, why, len(examples))
    refit = staged / "refit"
    train_classifier(start, examples, [], training_set.labels, refit, settings, stop=stop,
                     trust_remote_code=trust_remote_code)
    (refit / THRESHOLDS_FILE).unlink(missing_ok=True)  # 0.5 each: it had no validation to tune them on
    for path in refit.iterdir():
        path.replace(staged / path.name)
    refit.rmdir()


def _refit_model(staged: Path, version: str, random_held_out: Sequence[Example], settings: TrainingSettings,
                 scorer_options: Mapping[str, Any] | None, trust_remote_code: bool,
                 measured: tuple[TemperatureFit | None, str]
                 ) -> tuple[Classifier, HeldOutScores | None, TemperatureFit | None, str]:
    """The refit model in ``staged`` (the one the gate compares and the registry keeps), its scores on the test
    records and its temperature: fitted on its own test-set scores when there are ``MIN_TEMPERATURE_RECORDS`` of
    them (None where τ would not help), else the ``measured`` model's fit, kept (its validation records are this
    model's training records now)."""
    (staged / TEMPERATURE_FILE).unlink(missing_ok=True)  # read at τ = 1 while its own scores are taken
    candidate = load_classifier(staged, device=settings.device, version=version, trust_remote_code=trust_remote_code)
    if scorer_options is None:
        return candidate, None, *_written(measured, staged)
    held_out = _held_out_scores(candidate, random_held_out, scorer_options, settings.seed)
    if held_out is None or len(random_held_out) < MIN_TEMPERATURE_RECORDS:
        return candidate, held_out, *_written(measured, staged)
    fit = scores_temperature(candidate, list(random_held_out), held_out.probabilities, seed=settings.seed,
                             source="test set")
    return candidate, held_out, *_written((fit, "test set"), staged)


def _written(fit: tuple[TemperatureFit | None, str], staged: Path) -> tuple[TemperatureFit | None, str]:
    """``fit`` (a temperature and the records it was fitted on), its ``temperature.json`` written to ``staged``."""
    if fit[0] is not None:
        write_temperature(fit[0], staged)
    return fit


def _write_taught_ids(staged: Path, training_set: TrainingSet, parent: ModelVersion | None,
                      refit: bool = False) -> None:
    """Keep the ids the new version is taught (:func:`~worker.training.data.taught_ids`: of its validation
    examples too when it was ``refit`` on them), with its ``parent``'s when it starts from that model's weights;
    nothing when the parent is a version the worker trained that does not say (unknown stays unknown). A model the
    team registered does not say either, but it learnt from none of the dataset's reviews (the gate compares it on
    every record): its descendants keep what they were taught here."""
    ids = taught_ids([*training_set.train, *(training_set.validation if refit else ())])
    if parent is not None and not is_brought(parent):
        inherited = read_taught_ids(parent.path)
        if inherited is None:
            return
        ids.extend(inherited)
    write_taught_ids(staged, ids)


def taught_by(current: ModelVersion | None, validation: Sequence[Example]) -> set[str] | None:
    """The ids of the records the ``current`` model was taught: kept with it, else inferred from when it was
    registered (a model trained before the worker kept them); None: unknown (or no current model)."""
    if current is None:
        return None
    taught = read_taught_ids(current.path)
    if taught is None:
        taught = inferred_taught_ids(current.path, current.metrics.get("created_at"), validation)
        if taught is not None:
            logger.info("the current model %s was trained before the worker kept what each model was taught: the "
                        "gate leaves out the %d validation records reviewed before it was registered (but its own "
                        "validation records)", current.version, len(taught))
    return taught


def _comparison(candidate: Classifier, current: ModelVersion | None, training_set: TrainingSet,
                settings: TrainingSettings, trust_remote_code: bool,
                random_held_out: Sequence[Example] = (), taught: set[str] | None = None) -> Comparison | None:
    """Both models on the records :func:`~worker.training.compare.gate_records` chooses from the candidate's
    validation records and the test set's answered in rank order (``random_held_out``), but those the current model
    was taught (``taught``: :func:`taught_by`; None without a comparable current model)."""
    if current is None:
        return None
    incumbent = load_classifier(current.path, device=settings.device, version=current.version,
                                trust_remote_code=trust_remote_code)
    if set(incumbent.labels) != set(training_set.labels):
        logger.warning("current model %s has labels %s, the dataset %s: the gate cannot compare them",
                       current.version, list(incumbent.labels), list(training_set.labels))
        return None
    if incumbent.multi_label != candidate.multi_label:
        logger.warning("current model %s is %s-label, the dataset's question is not: the gate cannot compare them",
                       current.version, "multi" if incumbent.multi_label else "single")
        return None
    validation, test = gate_records(training_set.validation, random_held_out, taught)
    if not validation and training_set.validation:
        logger.info("the gate compares on the test-set records answered in rank order (>= %d the current model was "
                    "not taught), not on the %d validation records: those were picked for review",
                    MIN_GATE_TEST_RECORDS, len(training_set.validation))
    return compare_models(candidate, incumbent, validation, taught, test=test, seed=settings.seed)


def _decision(candidate_macro_f1: float, comparison: Comparison | None, tolerance: float) -> GateDecision:
    """The gate on the comparison's figures (the candidate's whole validation without a current model)."""
    if comparison is None:
        return gate(candidate_macro_f1, None, tolerance)
    decision = gate(comparison.candidate_macro_f1, comparison.current_macro_f1, tolerance)
    return replace(decision, reason=f"{decision.reason}, {comparison.describe()}")


def _write_examples(path: Path, examples: Sequence[Example]) -> None:
    with path.open("w") as handle:
        for example in examples:
            handle.write(json.dumps(example.__dict__) + "\n")


def read_examples(path: Path) -> list[Example]:
    """The examples :func:`_write_examples` wrote (a label set comes back as a tuple)."""
    examples = []
    for line in path.read_text().splitlines():
        if line.strip():
            values = json.loads(line)
            if isinstance(values["label"], list):
                values["label"] = tuple(values["label"])
            examples.append(Example(**values))
    return examples
