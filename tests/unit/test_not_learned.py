"""A model that does no better than always answering the most common label is called out (train and score --oof)."""
from __future__ import annotations

import numpy as np

from worker.jobs import HeldOutAgreement, ScoreReport
from worker.scoring.engine import RecordScore
from worker.training.evaluate import Probabilities, majority_share, not_learned, validation_metrics


def test_the_most_common_labels_share_and_the_not_learned_rule():
    assert majority_share(np.array([2, 2, 0, 2, 1])) == 0.6
    assert majority_share(np.array([], dtype=int)) == 0.0
    assert not_learned(0.40, 0.40) and not_learned(0.405, 0.40)
    assert not not_learned(0.45, 0.40)
    assert not not_learned(0.10, None)  # no baseline (label sets): nothing said


def test_validation_metrics_carry_the_majority_baseline():
    targets = np.array([0, 0, 0, 1])
    always_zero = np.array([[0.9, 0.1]] * 4)
    metrics = validation_metrics(Probabilities(deterministic=always_zero, mc=always_zero[:, :, None]), targets, 2)
    assert metrics.accuracy == metrics.majority_accuracy == 0.75
    assert not_learned(metrics.accuracy, metrics.majority_accuracy)
    assert metrics.as_dict()["majority_accuracy"] == 0.75


def _score(record_id, predicted, label, **extra):
    return RecordScore(record_id=record_id, predicted_label=predicted, reference_label=label, **extra)


def test_held_out_agreement_counts_single_labels_and_ignores_skipped_records_and_label_sets():
    held_out = HeldOutAgreement()
    for score in (_score("a", "pos", "pos"), _score("b", "neg", "pos"), _score("c", "neg", "neg"),
                  _score("d", "neg", "neg"), _score("e", None, "neg", skipped_reason="text is missing (None)"),
                  _score("f", ("x",), ("x",))):
        held_out.add(score)
    assert (held_out.records, held_out.agreed) == (4, 3)
    assert (held_out.accuracy, held_out.majority) == (0.75, 0.5)
    report = ScoreReport("base-oof3", scored=4, held_out=held_out)
    assert report.summary().endswith("the fold models predict 75.0% of the held-out labels (the most common label "
                                     "alone: 50.0%)")
    assert "held-out" not in ScoreReport("v0001", scored=4).summary()


def test_a_registered_models_validation_metrics_carry_the_majority_baseline():
    from worker.training.data import Example
    from worker.training.job import _majority_baseline

    validation = [Example("a", "x", "med"), Example("b", "y", "med"), Example("c", "z", "space")]
    assert _majority_baseline(validation) == {"majority_accuracy": 2 / 3}
    assert _majority_baseline([Example("a", "x", ("med", "space"))]) == {}  # label sets: no single answer
    assert _majority_baseline([]) == {}


def _warnings(tmp_path, caplog, validation: dict, train: int = 24) -> list[str]:
    """What training logs as warnings about a model with these validation metrics."""
    from worker.jobs import _warn_if_not_learned
    from worker.registry import ModelVersion

    caplog.clear()
    with caplog.at_level("WARNING", logger="worker.jobs"):
        _warn_if_not_learned(ModelVersion("v0002", tmp_path, {"validation": validation, "training": {"train": train}}))
    return [record.getMessage() for record in caplog.records]


def test_train_warns_when_the_model_does_no_better_than_the_most_common_label(caplog, tmp_path):
    def validation(accuracy):
        return {"records": 6, "accuracy": accuracy, "majority_accuracy": 0.5}

    assert _warnings(tmp_path, caplog, validation(0.9)) == []
    (message,) = _warnings(tmp_path, caplog, validation(0.5))
    assert "model v0002 does no better on its 6 validation records" in message
    assert "(24 training examples)" in message


def test_train_warns_when_the_model_predicts_few_of_the_labels_its_validation_records_carry(caplog, tmp_path):
    """A long tail (52 topics): accuracy well above the most common label's, yet the model answers three labels."""
    from worker.training.evaluate import few_labels_predicted

    assert few_labels_predicted(3, 45) and few_labels_predicted(1, 3)
    assert not few_labels_predicted(2, 2) and not few_labels_predicted(23, 45) and not few_labels_predicted(None, 45)

    def validation(predicted):
        return {"records": 602, "accuracy": 0.62, "majority_accuracy": 0.39, "macro_f1": 0.03,
                "labels_predicted": predicted, "labels_present": 45}

    assert _warnings(tmp_path, caplog, validation(30), train=2398) == []
    (message,) = _warnings(tmp_path, caplog, validation(3), train=2398)
    assert "model v0002 predicts only 3 of the 45 labels its 602 validation records carry" in message
    assert "training.head_learning_rate = 1e-2" in message  # what to do, measured on R52 (benchmarks/long_tail.py)


def test_the_few_labels_warning_names_only_remedies_the_model_did_not_have(caplog, tmp_path, tiny_model_dir):
    """A cold start's first model (19 labels, about 2 examples each, a new head already at "auto"'s 1e-2: a forum's
    play-through) is told to get more annotations, not to set the rate it trained at; a model trained on plenty per
    label at the encoder's rate still gets the rate, a longer training and the rare labels."""
    from dataclasses import replace

    from tests.training_data import sentiment_examples
    from worker.jobs import _warn_if_not_learned
    from worker.registry import ModelVersion
    from worker.training.trainer import TrainingSettings, train_classifier

    labels = [f"topic{index}" for index in range(8)]
    examples = [replace(e, label=labels[i % 8]) for i, e in enumerate(sentiment_examples(16))]
    fast = {"batch_size": 8, "max_length": 32, "device": "cpu", "min_steps": 0, "epochs": 1}
    for name, rate in (("auto", "auto"), ("same", "same")):
        train_classifier(tiny_model_dir, examples, [], labels, tmp_path / name, TrainingSettings(
            **fast, head_learning_rate=rate))

    def warning(name: str, train: int) -> str:
        metrics = {"validation": {"records": 19, "accuracy": 0.32, "majority_accuracy": 0.05, "macro_f1": 0.21,
                                  "labels_predicted": 3, "labels_present": 8},
                   "training": {"train": train, "per_class": {label: train // 8 for label in labels}}}
        caplog.clear()
        with caplog.at_level("WARNING", logger="worker.jobs"):
            _warn_if_not_learned(ModelVersion("v0001", tmp_path / name, metrics))
        (message,) = [record.getMessage() for record in caplog.records]
        return message

    cold = warning("auto", train=16)
    assert "Annotate more records of each label (it trained on 16 examples of 8 labels, about 2 each)." in cold
    assert "head_learning_rate" not in cold and "training.epochs" not in cold
    plenty = warning("same", train=800)
    assert "Give its new head a larger learning rate (training.head_learning_rate = 1e-2" in plenty
    assert plenty.endswith("train longer (training.epochs), or annotate records of the rare labels.")
    assert "Annotate more records of each label" not in plenty


def test_a_calibration_report_counts_the_labels_predicted_and_present(tiny_classifier, tmp_path):
    from tests.training_data import sentiment_examples
    from worker.training.calibrate import calibration_report
    from worker.training.evaluate import predict_probabilities

    examples = sentiment_examples(24)
    report = calibration_report(tiny_classifier, examples, tmp_path, max_samples=2, mc_samples=2, seed=1)

    predicted = predict_probabilities(tiny_classifier, [e.text for e in examples], samples=1).deterministic
    assert report.labels_present == len({e.label for e in examples}) == 2
    assert report.labels_predicted == len(set(predicted.argmax(axis=1)))
