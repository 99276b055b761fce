"""The calibration report of one model version: deterministic vs MC-dropout ECE, ECE vs T, plots,
confusion matrix, and temperature scaling before/after."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix

from worker.calibration import (
    MIN_TEMPERATURE_ERRORS,
    MIN_TEMPERATURE_RECORDS,
    TemperatureFit,
    crossfit_temperature_ece,
    ece_by_samples,
    enough_for_temperature,
    expected_calibration_error,
    fit_scores_temperature,
    fit_temperature,
    plot_confusion_matrix,
    plot_ece_by_samples,
    plot_reliability_diagram,
    reliability_bins,
    scaled_log_probs,
    wrong_answers,
)
from worker.constants import PROBABILITY_FLOOR
from worker.records import label_index
from worker.scoring.model import TEMPERATURE_FILE, Classifier
from worker.scoring.multilabel import cross_fitted_decisions
from worker.training.data import Example, single_label, text_pairs
from worker.training.evaluate import (
    classification_metrics,
    label_set_metrics,
    label_set_targets,
    predict_probabilities,
)

logger = logging.getLogger(__name__)


VALIDATION_RECORDS = "validation records"  # what a report measured on a model's own validation records says


@dataclass(frozen=True)
class CalibrationReport:
    model_version: str
    records: int
    accuracy_deterministic: float
    accuracy_mc: float
    macro_f1: float
    ece_deterministic: float
    ece_mc: float
    mc_samples: int
    ece_by_samples: list[tuple[int, float]]
    temperature: float | None = None
    ece_temperature_scaled: float | None = None
    ece_temperature_scaled_crossfit: float | None = None
    multi_label: bool = False  # accuracy is exact-match of the label set; ECE is over every label decision
    mc_as_scored: bool = False  # the MC figures are the worker's scores (its [scoring] options), not drawn here
    labels_predicted: int | None = None  # distinct labels the deterministic model predicts on the records
    labels_present: int | None = None  # distinct labels the records carry (single-label)
    every_label_macro_f1: float | None = None  # label sets: the macro-F1 of ticking every label on these records
    labels_ticked: float | None = None  # label sets: labels the deterministic model ticks per record, on average
    labels_carried: float | None = None  # label sets: labels the records carry, on average
    measured_on: str = VALIDATION_RECORDS  # which records: the validation records, or the test set's
    wrong_deterministic: int | None = None  # records the deterministic model answers wrong (the τ fit's errors)

    def markdown(self) -> str:
        if self.multi_label:
            return self._label_set_markdown()
        rows = [
            f"# Calibration of {self.model_version} ({self.records} {self.measured_on})",
            "",
            "| model | accuracy | ECE |",
            "|---|---:|---:|",
            f"| deterministic | {self.accuracy_deterministic:.4f} | {self.ece_deterministic:.4f} |",
            f"| {self.mc_name()} | {self.accuracy_mc:.4f} | {self.ece_mc:.4f} |",
        ]
        if self.temperature is not None:
            rows.append(f"| deterministic, temperature {self.temperature:.3f} (cross-fitted) | "
                        f"{self.accuracy_deterministic:.4f} | {self.ece_temperature_scaled_crossfit:.4f} |")
        rows += self._temperature_caveat()
        curve = ("ECE vs T: `argilla-worker calibrate` draws the curve." if self.mc_as_scored
                 else "![ECE vs T](ece_vs_T.png)")
        rows += ["", f"Macro-F1 (deterministic): {self.macro_f1:.4f}", "",
                 f"![reliability](reliability.png) ![confusion](confusion_matrix.png) {curve}"]
        return "\n".join(rows) + "\n"

    def _temperature_caveat(self) -> list[str]:
        """A line under a temperature fitted on fewer records or wrong answers than the worker keeps one from."""
        if self.temperature is None or self.wrong_deterministic is None or enough_for_temperature(
                self.records, self.wrong_deterministic):
            return []
        caveat = (f"The temperature above is fitted on {self.records} records, {self.wrong_deterministic} of them "
                  f"answered wrong: the worker reads scores at a temperature only from {MIN_TEMPERATURE_RECORDS} "
                  f"records with {MIN_TEMPERATURE_ERRORS} wrong answers (fewer let a handful decide it).")
        return ["", caveat]

    def mc_name(self) -> str:
        return (f"MC dropout as scored (up to T={self.mc_samples})" if self.mc_as_scored
                else f"MC dropout T={self.mc_samples}")

    def _label_set_markdown(self) -> str:
        rows = [
            f"# Calibration of {self.model_version} ({self.records} {self.measured_on}, multi-label)",
            "",
            "Each (record, label) decision counts as one binary prediction in the ECE; accuracy is the share of",
            "records whose whole label set is right (the model's per-label thresholds).",
            "",
            "| model | exact-match accuracy | ECE over label decisions |",
            "|---|---:|---:|",
            f"| deterministic | {self.accuracy_deterministic:.4f} | {self.ece_deterministic:.4f} |",
            f"| MC dropout T={self.mc_samples} | {self.accuracy_mc:.4f} | {self.ece_mc:.4f} |",
            "", f"Macro-F1 (deterministic): {self.macro_f1:.4f}", "",
            "![reliability](reliability.png) ![ECE vs T](ece_vs_T.png)",
        ]
        return "\n".join(rows) + "\n"


def calibration_report(
    classifier: Classifier,
    examples: Sequence[Example],
    output_dir: Path,
    *,
    max_samples: int = 50,
    mc_samples: int = 20,
    temperature_scaling: bool = True,
    seed: int = 0,
    dropout_rate: float | None = None,
    scored: np.ndarray | None = None,
    measured_on: str = VALIDATION_RECORDS,
) -> CalibrationReport:
    """Measure calibration on labelled ``examples`` and write report.json, report.md and PNGs to ``output_dir``.

    MC dropout runs over every dropout layer (``mc_layers="all"``, at ``dropout_rate``: see MCPredictor) for
    T = max(``max_samples``, ``mc_samples``) samples: the MC figures are the mean of the first ``mc_samples`` (the
    worker's scoring.samples), the ECE-vs-T curve uses the first t for t = 1 … ``max_samples``. Temperature
    scaling is fitted on the examples; its "cross-fitted" ECE fits τ on one half and measures on the other (both
    ways), so it is not in-sample.

    ``scored`` [N, C] (single-label only): the examples' probabilities as the worker scored them (see
    :func:`scored_probabilities`). The MC figures are then theirs — the calibration of what annotators are shown —
    and no MC sample is drawn here: only the deterministic pass runs, and there is no ECE-vs-T curve.
    ``measured_on``: what the ``examples`` are, as the report names them.
    """
    if classifier.multi_label:
        return _label_set_report(classifier, examples, output_dir, max_samples=max_samples, mc_samples=mc_samples,
                                 seed=seed, dropout_rate=dropout_rate, measured_on=measured_on)
    index = label_index(classifier.labels)
    targets = np.asarray([index[single_label(example, "calibration")] for example in examples])  # [N]
    probabilities = predict_probabilities(classifier, [e.text for e in examples], pairs=text_pairs(examples),
                                          samples=1 if scored is not None else max(max_samples, mc_samples),
                                          seed=seed, dropout_rate=dropout_rate)
    mc_mean = scored if scored is not None else probabilities.mc[:, :, :mc_samples].mean(axis=2)  # [N, C]
    accuracy, macro_f1 = classification_metrics(probabilities.deterministic, targets, len(index))
    accuracy_mc, _ = classification_metrics(mc_mean, targets, len(index))
    curve = ece_by_samples(probabilities.mc[:, :, :max_samples], targets) if scored is None else []
    temperature = scaled = crossfit = None
    log_probs = np.log(np.clip(probabilities.deterministic, PROBABILITY_FLOOR, 1.0))
    if temperature_scaling and len(examples) >= 4:
        temperature = fit_temperature(log_probs, targets)
        scaled = expected_calibration_error(np.exp(scaled_log_probs(log_probs, temperature)), targets)
        crossfit = crossfit_temperature_ece(log_probs, targets, seed)
    report = CalibrationReport(
        model_version=classifier.version, records=len(examples), accuracy_deterministic=accuracy,
        accuracy_mc=accuracy_mc, macro_f1=macro_f1,
        ece_deterministic=expected_calibration_error(probabilities.deterministic, targets),
        ece_mc=expected_calibration_error(mc_mean, targets), mc_samples=mc_samples, ece_by_samples=curve,
        temperature=temperature, ece_temperature_scaled=scaled, ece_temperature_scaled_crossfit=crossfit,
        mc_as_scored=scored is not None, labels_predicted=len(set(probabilities.deterministic.argmax(axis=1))),
        labels_present=len(set(targets)), measured_on=measured_on,
        wrong_deterministic=wrong_answers(probabilities.deterministic, targets),
    )
    _write(report, probabilities.deterministic, mc_mean, targets, classifier.labels, output_dir,
           log_probs, temperature)
    logger.info("calibration of %s: ECE deterministic %.4f, %s %.4f", classifier.version,
                report.ece_deterministic, report.mc_name(), report.ece_mc)
    return report


def _decided(probs: np.ndarray, targets: np.ndarray, classifier: Classifier, measured_on: str, seed: int
             ) -> np.ndarray:
    """[N, L] label decisions of ``probs``: on its validation records — the ones its thresholds were tuned on —
    cross-fitted (:func:`~worker.scoring.multilabel.cross_fitted_decisions`), elsewhere at its thresholds."""
    if measured_on == VALIDATION_RECORDS:
        return cross_fitted_decisions(probs, targets, seed=seed)
    return probs >= np.asarray(classifier.thresholds)


def _label_set_report(classifier: Classifier, examples: Sequence[Example], output_dir: Path, *, max_samples: int,
                      mc_samples: int, seed: int, dropout_rate: float | None,
                      measured_on: str = VALIDATION_RECORDS) -> CalibrationReport:
    """:func:`calibration_report` of a multi-label model: label sets scored with its thresholds (cross-fitted on its
    validation records, see :func:`_decided`); every (record, label) decision is one binary prediction for ECE, the
    reliability diagram and ECE vs T (no temperature scaling or confusion matrix)."""
    targets = label_set_targets([e.label if isinstance(e.label, tuple) else (e.label,) for e in examples],
                                classifier.labels)  # [N, L]
    probabilities = predict_probabilities(classifier, [e.text for e in examples], pairs=text_pairs(examples),
                                          samples=max(max_samples, mc_samples), seed=seed, dropout_rate=dropout_rate)
    mc_mean = probabilities.mc[:, :, :mc_samples].mean(axis=2)  # [N, L]
    ticked = _decided(probabilities.deterministic, targets, classifier, measured_on, seed)  # [N, L]
    accuracy, macro_f1, _ = label_set_metrics(ticked, targets)
    accuracy_mc, _, _ = label_set_metrics(_decided(mc_mean, targets, classifier, measured_on, seed), targets)
    decisions = targets.reshape(-1).astype(int)  # [N·L]
    deterministic = _as_decisions(probabilities.deterministic)
    mc_binary = _as_decisions(probabilities.mc[:, :, :max_samples])
    mc_mean_binary = _as_decisions(mc_mean)
    report = CalibrationReport(
        model_version=classifier.version, records=len(examples), accuracy_deterministic=accuracy,
        accuracy_mc=accuracy_mc, macro_f1=macro_f1,
        ece_deterministic=expected_calibration_error(deterministic, decisions),
        ece_mc=expected_calibration_error(mc_mean_binary, decisions), mc_samples=mc_samples,
        ece_by_samples=ece_by_samples(mc_binary, decisions), multi_label=True, measured_on=measured_on,
        every_label_macro_f1=label_set_metrics(np.ones_like(targets), targets)[1],
        labels_ticked=float(ticked.sum(axis=1).mean()), labels_carried=float(targets.sum(axis=1).mean()),
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    plot_reliability_diagram({"deterministic": reliability_bins(deterministic, decisions),
                              f"MC dropout T={mc_samples}": reliability_bins(mc_mean_binary, decisions)},
                             output_dir / "reliability.png",
                             title=f"Reliability (label decisions) — {report.model_version}")
    plot_ece_by_samples(report.ece_by_samples, report.ece_deterministic, output_dir / "ece_vs_T.png")
    (output_dir / "report.json").write_text(json.dumps(asdict(report), indent=2))
    (output_dir / "report.md").write_text(report.markdown())
    logger.info("calibration of %s (label decisions): ECE deterministic %.4f, MC T=%d %.4f", classifier.version,
                report.ece_deterministic, mc_samples, report.ece_mc)
    return report


def _as_decisions(probs: np.ndarray) -> np.ndarray:
    """Per-label probabilities [N, L] or [N, L, T] as binary predictions [N·L, 2] or [N·L, 2, T] (absent, present)."""
    present = probs.reshape(-1, *probs.shape[2:])
    return np.stack([1.0 - present, present], axis=1)


def scored_probabilities(classifier: Classifier, examples: Sequence[Example],
                         scorer_options: Mapping[str, Any], *, seed: int = 0) -> np.ndarray | None:
    """``examples`` scored exactly as the worker scores records — a :class:`Scorer` with ``scorer_options`` (MC
    samples, layers, dropout rate, stopping rule), uncalibrated — as class probabilities [N, C] in the examples'
    order (the MC-dropout mean the worker reports) of a single-label model; None when the scorer skipped an
    example. One score run: O(N) time, O(window) memory besides the [N, C] result."""
    from worker.scoring.batching import ScoringInput
    from worker.scoring.engine import Scorer

    scorer = Scorer(classifier, **{**scorer_options, "calibrated": False, "progress": False, "seed": seed})
    try:
        scores = list(scorer.score(ScoringInput(str(position), example.text, text_pair=example.text_pair)
                                   for position, example in enumerate(examples)))
    finally:
        scorer.close()
    probabilities = np.full((len(examples), len(classifier.labels)), np.nan)
    for score in scores:
        if score.probabilities is not None:
            probabilities[int(score.record_id)] = [score.probabilities[label] for label in classifier.labels]
    return None if np.isnan(probabilities).any() else probabilities


def scores_temperature(classifier: Classifier, examples: Sequence[Example], scored: np.ndarray, *,
                       seed: int = 0, source: str = "validation") -> TemperatureFit | None:
    """The temperature to read ``classifier``'s reported probabilities at (see :func:`fit_scores_temperature`),
    fitted on labelled ``examples`` and their probabilities ``scored`` [N, C] as the worker scores records
    (:func:`scored_probabilities`); ``source`` names those records in the log (``"test set"``…). None where τ would
    not help (or too few records, or too few of them answered wrong)."""
    index = label_index(classifier.labels)
    targets = np.asarray([index[single_label(example, "calibration")] for example in examples])  # [N]
    fit = fit_scores_temperature(scored, targets, seed=seed)
    wrong = wrong_answers(scored, targets)
    if fit is not None:
        logger.info("%s reads its probabilities at temperature %.3f: ECE %.4f → %.4f (cross-fitted, %d %s records, "
                    "%d answered wrong)", classifier.version, fit.temperature, fit.ece_before, fit.ece_after,
                    fit.records, source, wrong)
    elif len(targets) >= MIN_TEMPERATURE_RECORDS and wrong < MIN_TEMPERATURE_ERRORS:
        logger.info("%s: no temperature fitted: %d of its %d %s records answered wrong (< %d): a τ would follow those "
                    "few (with none, it reads every confidence near 1, the wrong answers' too); its probabilities are "
                    "reported as they are", classifier.version, wrong, len(targets), source, MIN_TEMPERATURE_ERRORS)
    return fit


def write_temperature(fit: TemperatureFit, model_dir: Path) -> Path:
    """``temperature.json`` beside the model's weights (read by :func:`~worker.scoring.model.temperature_of`)."""
    path = model_dir / TEMPERATURE_FILE
    path.write_text(json.dumps({"temperature": fit.temperature, "validation_records": fit.records,
                                "ece_before": fit.ece_before, "ece_after_crossfit": fit.ece_after}, indent=2) + "\n")
    return path


def _write(report: CalibrationReport, deterministic: np.ndarray, mc_mean: np.ndarray, targets: np.ndarray,
           labels: Sequence[str], output_dir: Path, log_probs: np.ndarray, temperature: float | None) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    curves = {"deterministic": reliability_bins(deterministic, targets),
              report.mc_name(): reliability_bins(mc_mean, targets)}
    if temperature is not None:
        curves[f"temperature {temperature:.2f}"] = reliability_bins(
            np.exp(scaled_log_probs(log_probs, temperature)), targets)
    plot_reliability_diagram(curves, output_dir / "reliability.png", title=f"Reliability — {report.model_version}")
    if report.ece_by_samples:
        plot_ece_by_samples(report.ece_by_samples, report.ece_deterministic, output_dir / "ece_vs_T.png")
    matrix = confusion_matrix(targets, deterministic.argmax(axis=1), labels=list(range(len(labels))))
    plot_confusion_matrix(matrix, labels, output_dir / "confusion_matrix.png",
                          title=f"Validation confusion matrix — {report.model_version}")
    (output_dir / "report.json").write_text(json.dumps(asdict(report), indent=2))
    (output_dir / "report.md").write_text(report.markdown())
