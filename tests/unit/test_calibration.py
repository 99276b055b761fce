from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from baal.utils.metrics import ECE

from worker.calibration import (
    ece_by_samples,
    expected_calibration_error,
    plot_ece_by_samples,
    plot_reliability_diagram,
    reliability_bins,
)


def _random_probs(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=2.0, size=(n, classes))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, classes, size=n)
    return probs, labels


@pytest.mark.parametrize(("classes", "n_bins"), [(2, 10), (5, 15), (20, 10)])
def test_ece_agrees_with_baal(classes, n_bins):
    probs, labels = _random_probs(500, classes, seed=classes)
    baal_ece = ECE(n_bins=n_bins)
    baal_ece.update(torch.from_numpy(probs), torch.from_numpy(labels))

    assert expected_calibration_error(probs, labels, n_bins=n_bins) == pytest.approx(baal_ece.value, abs=1e-9)


def test_a_perfectly_calibrated_bin_has_zero_error_and_overconfidence_is_measured():
    probs = np.array([[0.75, 0.25]] * 4)
    assert expected_calibration_error(probs, np.array([0, 0, 0, 1])) == pytest.approx(0.0)
    assert expected_calibration_error(probs, np.array([0, 1, 1, 1])) == pytest.approx(0.5)


def test_confidence_of_one_falls_in_the_last_bin():
    bins = reliability_bins(np.array([[1.0, 0.0]]), np.array([0]), n_bins=10)
    assert bins.counts[-1] == 1


def test_ece_by_samples_uses_the_mean_of_the_first_t_samples():
    probs, labels = _random_probs(200, 3, seed=1)
    rng = np.random.default_rng(2)
    mc = np.stack([probs * 0.9 + 0.1 * rng.dirichlet(np.ones(3), size=200) for _ in range(6)], axis=2)

    curve = ece_by_samples(mc, labels, sample_counts=[1, 3, 6])

    assert [t for t, _ in curve] == [1, 3, 6]
    assert curve[0][1] == pytest.approx(expected_calibration_error(mc[:, :, 0], labels))
    assert curve[2][1] == pytest.approx(expected_calibration_error(mc.mean(axis=2), labels))
    with pytest.raises(ValueError, match="sample counts must lie in 1..6"):
        ece_by_samples(mc, labels, sample_counts=[7])


def test_plots_are_written_as_png(tmp_path):
    probs, labels = _random_probs(100, 2, seed=3)
    bins = reliability_bins(probs, labels)
    diagram = plot_reliability_diagram({"deterministic": bins}, tmp_path / "reliability.png")
    sweep = plot_ece_by_samples([(1, 0.1), (2, 0.08)], 0.12, tmp_path / "ece.png")
    for path in (diagram, sweep):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_temperature_scaling_recovers_the_temperature_that_generated_the_labels():
    from worker.calibration import fit_temperature, scaled_log_probs

    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(20000, 4))  # [N, C]
    true_probs = np.exp(scaled_log_probs(logits, 2.0))
    labels = np.array([rng.choice(4, p=row) for row in true_probs])

    fitted = fit_temperature(logits, labels)

    assert fitted == pytest.approx(2.0, rel=0.05)
    assert np.allclose(np.exp(scaled_log_probs(logits, 1.0)).sum(axis=1), 1.0)
    overconfident = expected_calibration_error(np.exp(scaled_log_probs(logits, 1.0)), labels)
    assert expected_calibration_error(np.exp(scaled_log_probs(logits, fitted)), labels) < overconfident / 3


def test_the_calibration_report_matches_the_metrics_it_is_built_from(tiny_classifier, tmp_path):
    import json

    from tests.training_data import sentiment_examples
    from worker.training.calibrate import calibration_report
    from worker.training.evaluate import predict_probabilities

    examples = sentiment_examples(24)
    report = calibration_report(tiny_classifier, examples, tmp_path, max_samples=6, mc_samples=4, seed=1)

    probabilities = predict_probabilities(tiny_classifier, [e.text for e in examples], samples=6, seed=1)
    targets = np.array([tiny_classifier.labels.index(e.label) for e in examples])
    assert report.ece_deterministic == pytest.approx(expected_calibration_error(probabilities.deterministic, targets))
    assert report.ece_mc == pytest.approx(
        expected_calibration_error(probabilities.mc[:, :, :4].mean(axis=2), targets))
    assert [t for t, _ in report.ece_by_samples] == list(range(1, 7))
    assert report.temperature is not None and report.ece_temperature_scaled_crossfit is not None
    assert report.wrong_deterministic == int((probabilities.deterministic.argmax(axis=1) != targets).sum())
    assert report.markdown().startswith(f"# Calibration of {tiny_classifier.version} (24 validation records)")
    assert "The temperature above is fitted on 24 records" in report.markdown()  # fewer than the worker keeps τ from
    assert "temperature above" not in replace(report, records=100, wrong_deterministic=10).markdown()
    stored = json.loads((tmp_path / "report.json").read_text())
    assert stored["ece_mc"] == pytest.approx(report.ece_mc)
    for name in ("reliability.png", "ece_vs_T.png", "confusion_matrix.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_a_curve_shorter_than_the_workers_samples_still_reports_the_mc_figure_at_its_samples(tiny_classifier,
                                                                                             tmp_path):
    """`calibrate --max-samples 3` with scoring.samples = 5: the MC figures are the mean of 5 samples, as the report
    says (they were the mean of the 3 the curve drew), the curve stops at 3."""
    from tests.training_data import sentiment_examples
    from worker.training.calibrate import calibration_report
    from worker.training.evaluate import predict_probabilities

    examples = sentiment_examples(24)
    report = calibration_report(tiny_classifier, examples, tmp_path, max_samples=3, mc_samples=5, seed=1,
                                dropout_rate=0.5)

    probabilities = predict_probabilities(tiny_classifier, [e.text for e in examples], samples=5, seed=1,
                                          dropout_rate=0.5)
    targets = np.array([tiny_classifier.labels.index(e.label) for e in examples])
    assert report.mc_samples == 5 and [t for t, _ in report.ece_by_samples] == [1, 2, 3]
    assert report.ece_mc == pytest.approx(expected_calibration_error(probabilities.mc.mean(axis=2), targets))
    assert report.ece_mc != pytest.approx(
        expected_calibration_error(probabilities.mc[:, :, :3].mean(axis=2), targets), abs=1e-9)


def test_multi_label_ece_treats_every_label_decision_as_a_binary_prediction():
    from worker.calibration import label_decision_ece

    probs = np.array([[0.9, 0.2], [0.8, 0.1]])  # [N=2, L=2]
    targets = np.array([[True, False], [False, False]])
    # decisions: 0.9 → present (right), 0.2 → absent conf 0.8 (right), 0.8 → present (wrong), 0.1 → absent
    # conf 0.9 (right); bins of width 0.1: [0.8, 0.9): 2 decisions, accuracy 1/2, conf 0.8; [0.9, 1]: 2, 1, 0.9
    expected = 0.5 * abs(0.5 - 0.8) + 0.5 * abs(1.0 - 0.9)
    assert label_decision_ece(probs, targets) == pytest.approx(expected)


def test_tempered_distributions_keep_their_most_probable_class_and_sum_to_one():
    from worker.calibration import tempered

    probs, _ = _random_probs(50, 4, seed=1)
    assert tempered(probs, 1.0) is probs
    flat, sharp = tempered(probs, 2.0), tempered(probs, 0.5)
    assert np.allclose(flat.sum(axis=1), 1.0) and np.allclose(sharp.sum(axis=1), 1.0)
    assert (flat.argmax(axis=1) == probs.argmax(axis=1)).all() and (sharp.argmax(axis=1) == probs.argmax(axis=1)).all()
    assert (flat.max(axis=1) <= probs.max(axis=1) + 1e-12).all()
    assert (sharp.max(axis=1) >= probs.max(axis=1) - 1e-12).all()


def test_a_temperature_is_kept_only_from_enough_records_and_where_it_lowers_the_error():
    from worker.calibration import MIN_TEMPERATURE_RECORDS, fit_scores_temperature, scaled_log_probs

    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(2000, 3))
    labels = np.array([rng.choice(3, p=row) for row in np.exp(scaled_log_probs(logits, 2.5))])
    overconfident = np.exp(scaled_log_probs(logits, 1.0))  # the model reads its logits at 1, the truth at 2.5

    fit = fit_scores_temperature(overconfident, labels, seed=0)

    assert fit is not None and fit.temperature == pytest.approx(2.5, rel=0.1) and fit.records == 2000
    assert fit.ece_after < fit.ece_before / 2
    assert fit_scores_temperature(overconfident[:MIN_TEMPERATURE_RECORDS - 1], labels[:MIN_TEMPERATURE_RECORDS - 1]) \
        is None  # too few records to trust a fitted τ


def test_no_temperature_is_fitted_on_records_the_model_answered_almost_all_right(monkeypatch):
    """A model right on all 200 records, at confidences 0.6-0.95: the sharpest τ lowers their calibration error on
    both halves, and would read every confidence near 1 on the records it scores, the wrong answers' too."""
    from worker import calibration

    rng = np.random.default_rng(1)
    top = rng.uniform(0.6, 0.95, size=200)
    probabilities = np.stack([top, 1 - top], axis=1)  # [200, 2], every answer class 0
    right = np.zeros(200, dtype=int)
    monkeypatch.setattr(calibration, "MIN_TEMPERATURE_ERRORS", 0)  # the rule before: a τ at the search's bound
    hazard = calibration.fit_scores_temperature(probabilities, right)
    assert hazard is not None and hazard.temperature < 0.1 and hazard.ece_after < hazard.ece_before
    monkeypatch.undo()

    assert calibration.fit_scores_temperature(probabilities, right) is None
    wrong = right.copy()
    wrong[:calibration.MIN_TEMPERATURE_ERRORS - 1] = 1
    assert calibration.wrong_answers(probabilities, wrong) == calibration.MIN_TEMPERATURE_ERRORS - 1
    assert calibration.fit_scores_temperature(probabilities, wrong) is None
    wrong[:40] = 1  # 40 wrong answers, read at 0.95-0.99: enough to fit a τ that flattens them
    sure = rng.uniform(0.95, 0.99, size=200)
    fit = calibration.fit_scores_temperature(np.stack([sure, 1 - sure], axis=1), wrong)
    assert fit is not None and fit.temperature > 1


def test_a_models_temperature_file_is_read_back_and_a_broken_one_is_named(tmp_path):
    from worker.calibration import TemperatureFit
    from worker.errors import ScoringError
    from worker.scoring.model import TEMPERATURE_FILE, temperature_of
    from worker.training.calibrate import write_temperature

    assert temperature_of(tmp_path) == 1.0  # no file: the model's own probabilities
    write_temperature(TemperatureFit(1.7, 300, 0.12, 0.04), tmp_path)
    assert temperature_of(tmp_path) == 1.7
    for broken, message in (("{}", "not a JSON object with a number 'temperature'"), ('{"temperature": -1}',
                                                                                        "must be a positive number")):
        (tmp_path / TEMPERATURE_FILE).write_text(broken)
        with pytest.raises(ScoringError, match=message) as raised:
            temperature_of(tmp_path)
        assert TEMPERATURE_FILE in str(raised.value)


def test_a_temperature_an_earlier_training_fitted_at_the_bound_is_read_at_1(tmp_path, caplog):
    """A model an earlier version trained with τ = 0.05 (records with no wrong answer) is read as it is, with a
    warning; a team's own file saying 0.05 is theirs, and a τ inside the bounds is kept."""
    from worker.calibration import TEMPERATURE_BOUNDS, TemperatureFit
    from worker.scoring.model import TEMPERATURE_FILE, temperature_of
    from worker.training.calibrate import write_temperature

    write_temperature(TemperatureFit(TEMPERATURE_BOUNDS[0], 100, 0.0242, 0.0050), tmp_path)
    with caplog.at_level("WARNING"):
        assert temperature_of(tmp_path) == 1.0
    assert "τ = 0.050 is the lower bound of the temperature search" in caplog.text
    write_temperature(TemperatureFit(0.062, 100, 0.0242, 0.0050), tmp_path)
    assert temperature_of(tmp_path) == 0.062
    (tmp_path / TEMPERATURE_FILE).write_text('{"temperature": 0.05}')  # registered with the team's model
    assert temperature_of(tmp_path) == 0.05


def _overconfident_model(tiny_model_dir, directory):
    """The tiny classifier with its head's weights scaled ×200: logits in the tens, probabilities ≈ 0 or 1 on texts
    it knows nothing about."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.classifier.weight.mul_(200.0)
    model.save_pretrained(directory)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(directory)
    return directory


def test_scores_read_at_the_models_temperature_are_flatter_with_the_same_label_and_sort_keys(tiny_model_dir,
                                                                                          tmp_path):
    from dataclasses import replace

    from worker.scoring import Scorer, ScoringInput, load_classifier

    classifier = load_classifier(_overconfident_model(tiny_model_dir, tmp_path / "sure"), device="cpu")
    records = [ScoringInput(f"r{i}", text, reference_label="positive") for i, text in enumerate(
        ["a wonderful film", "dull and slow", "not bad at all", "the plot is thin", "great cast"])]
    as_is = list(Scorer(classifier, samples=4, calibrated=True).score(records))  # τ = 1: no temperature.json
    warm = replace(classifier, temperature=4.0)
    read = list(Scorer(warm, samples=4, calibrated=True).score(records))
    ignored = list(Scorer(warm, samples=4, calibrated=False).score(records))

    for plain, scaled, off in zip(as_is, read, ignored, strict=True):
        assert scaled.predicted_label == plain.predicted_label and scaled.score < plain.score
        assert sum(scaled.probabilities.values()) == pytest.approx(1.0)
        assert (scaled.loss, scaled.bald, scaled.margin) == (plain.loss, plain.bald, plain.margin)
        assert off.score == plain.score


def test_training_keeps_a_temperature_for_a_model_sure_of_what_it_gets_wrong(tiny_model_dir, tmp_path):
    """The start model is the overconfident tiny one and training barely moves it (a 1e-9 learning rate): on its
    validation records it is right about half the time at a confidence near 1, so the worker reads its
    probabilities at a temperature > 1 — and without the scoring options no temperature is fitted."""
    from tests.training_data import LABELS, sentiment_examples
    from worker.config import ScoringSettings
    from worker.jobs import scorer_options
    from worker.registry import ModelRegistry
    from worker.scoring import load_classifier
    from worker.scoring.model import TEMPERATURE_FILE
    from worker.training.data import build_training_set
    from worker.training.job import retrain
    from worker.training.trainer import TrainingSettings

    base = _overconfident_model(tiny_model_dir, tmp_path / "sure")
    training_set = build_training_set(sentiment_examples(700), [], LABELS, min_annotated=10)
    assert len(training_set.validation) >= 100
    settings = TrainingSettings(base_model=str(base), epochs=1, min_steps=1, batch_size=64, learning_rate=1e-9,
                                max_length=16, device="cpu")
    registry = ModelRegistry(tmp_path / "registry")

    outcome = retrain(training_set, registry, settings, mc_samples=2,
                      scorer_options=scorer_options(ScoringSettings(samples=4)))

    kept = outcome.model.metrics["validation"]
    assert kept["temperature"] > 1.5 and kept["ece_scores_at_temperature"] < kept["ece_scores"]
    assert (outcome.model.path / TEMPERATURE_FILE).is_file()
    assert load_classifier(outcome.model.path, device="cpu").temperature == pytest.approx(kept["temperature"])
    # the report's MC figures are the validation records' scores as the worker scored them: no second MC pass
    assert kept["ece_mc"] == pytest.approx(kept["ece_scores"])
    assert "MC dropout as scored" in (outcome.model.path / "calibration" / "report.md").read_text()
    assert not (outcome.model.path / "calibration" / "ece_vs_T.png").exists()
    plain = retrain(training_set, registry, settings, mc_samples=2)
    assert "temperature" not in plain.model.metrics["validation"]
    assert not (plain.model.path / TEMPERATURE_FILE).exists()
    assert (plain.model.path / "calibration" / "ece_vs_T.png").exists()
