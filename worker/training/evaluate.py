"""Predicting probabilities for a list of texts, and the validation metrics the registry stores."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import f1_score

from worker.calibration import expected_calibration_error
from worker.errors import DataError
from worker.records import label_index
from worker.scoring.batching import ScoringInput, windows
from worker.scoring.engine import CPU_BATCH_TOKENS
from worker.scoring.mc import MCLayers, MCPredictor
from worker.scoring.model import Classifier


@dataclass(frozen=True)
class Probabilities:
    """Deterministic probabilities [N, C] and MC-dropout samples [N, C, T] for N texts (input order)."""

    deterministic: np.ndarray
    mc: np.ndarray

    @property
    def mc_mean(self) -> np.ndarray:
        """[N, C] mean over the T samples."""
        return self.mc.mean(axis=2)


def predict_probabilities(
    classifier: Classifier,
    texts: Sequence[str],
    *,
    pairs: Sequence[str] | None = None,
    samples: int = 20,
    mc_layers: MCLayers = "all",
    batch_size: int = 32,
    batch_tokens: int | None = CPU_BATCH_TOKENS,
    seed: int = 0,
    dropout_rate: float | None = None,
) -> Probabilities:
    """Run the deterministic pass and T MC-dropout passes over ``texts`` (``dropout_rate``: see MCPredictor),
    at most ``batch_size`` texts and ``batch_tokens`` padded tokens a batch (the MC pass holds T times as many).

    Raises:
        DataError: a text is empty or not a string (names its position).
    """
    predictor = MCPredictor(classifier, samples=samples, mc_layers=mc_layers, dropout_rate=dropout_rate)
    inputs = [ScoringInput(str(index), text, text_pair=pairs[index] if pairs is not None else None)
              for index, text in enumerate(texts)]
    deterministic = np.zeros((len(texts), len(classifier.labels)), dtype=np.float64)
    mc = np.zeros((len(texts), len(classifier.labels), samples), dtype=np.float64)
    torch.manual_seed(seed)
    for window in windows(inputs, classifier.tokenizer, batch_size=batch_size, max_length=classifier.max_length,
                          batch_tokens=batch_tokens):
        if window.skipped:
            position, reason = next(iter(window.skipped.items()))
            raise DataError(f"text #{window.records[position].record_id}: {reason}")
        for batch in window.batches:
            rows = [int(record.record_id) for record in batch.records]
            prediction = predictor.predict(batch.inputs)
            deterministic[rows] = np.exp(prediction.deterministic.numpy())
            mc[rows] = np.exp(prediction.mc.numpy())
    return Probabilities(deterministic, mc)


@dataclass(frozen=True)
class ValidationMetrics:
    records: int
    accuracy: float
    macro_f1: float
    ece_deterministic: float
    ece_mc: float | None = None
    accuracy_mc: float | None = None
    majority_accuracy: float | None = None  # always answering the validation records' most common label

    def as_dict(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if value is not None}


# a model whose accuracy is within this of always answering the most common label has not learned the task
NOT_LEARNED_MARGIN = 0.01


def not_learned(accuracy: float, majority_accuracy: float | None) -> bool:
    """Whether ``accuracy`` is no better than always answering the most common label (``majority_accuracy``) — or
    any figure than its baseline's (a label-set model's macro-F1 than ticking every label's)."""
    return majority_accuracy is not None and accuracy <= majority_accuracy + NOT_LEARNED_MARGIN


def few_labels_predicted(predicted: int | None, present: int | None) -> bool:
    """Whether a model predicts fewer than half of the (at least 3) labels its validation records carry: on a long
    tail it answers the common labels for everything, which accuracy alone does not show."""
    return predicted is not None and present is not None and present >= 3 and predicted < present / 2


def majority_share(labels: Sequence[Hashable]) -> float:
    """The share of the most common label in ``labels`` [N] (class indices or names; 0 when empty)."""
    return max(Counter(labels).values()) / len(labels) if len(labels) else 0.0


def classification_metrics(probs: np.ndarray, targets: np.ndarray, num_classes: int) -> tuple[float, float]:
    """(accuracy, macro-F1) of argmax(probs [N, C]) against targets [N]. The macro average runs over the classes
    the targets hold: a class nobody has annotated yet (a question with many labels) is not counted as an F1 of 0
    — the same classes for every model judged on these targets (the promotion gate compares like with like)."""
    predicted = probs.argmax(axis=1)
    accuracy = float((predicted == targets).mean()) if len(targets) else 0.0
    present = sorted({int(target) for target in targets}) or list(range(num_classes))
    macro_f1 = float(f1_score(targets, predicted, labels=present, average="macro", zero_division=0))
    return accuracy, macro_f1


def label_set_metrics(predicted: np.ndarray, targets: np.ndarray) -> tuple[float, float, float]:
    """(exact-match accuracy, macro-F1, micro-F1) of predicted label sets [N, L] (bool) against targets [N, L]."""
    if not len(targets):
        return 0.0, 0.0, 0.0
    accuracy = float((predicted == targets).all(axis=1).mean())
    macro_f1 = float(f1_score(targets, predicted, average="macro", zero_division=0))
    micro_f1 = float(f1_score(targets, predicted, average="micro", zero_division=0))
    return accuracy, macro_f1, micro_f1


def label_set_targets(label_sets: Sequence[Sequence[str]], labels: Sequence[str]) -> np.ndarray:
    """[N, L] bool: which of ``labels`` each of N label sets holds.

    Raises:
        DataError: a set holds a label outside ``labels`` (names the set's position and the label).
    """
    index = label_index(labels)
    targets = np.zeros((len(label_sets), len(labels)), dtype=bool)
    for row, chosen in enumerate(label_sets):
        for label in chosen:
            if label not in index:
                raise DataError(f"label set #{row} holds {label!r}, not among the model's labels {list(labels)}")
            targets[row, index[label]] = True
    return targets


def evaluate_label_sets(classifier: Classifier, texts: Sequence[str], label_sets: Sequence[Sequence[str]], *,
                        seed: int = 0, pairs: Sequence[str] | None = None) -> tuple[float, float, float]:
    """(exact-match accuracy, macro-F1, micro-F1) of a multi-label ``classifier``'s deterministic label sets
    (its own thresholds) on N labelled texts.

    Raises:
        DataError: a label is not one of the classifier's labels.
    """
    targets = label_set_targets(label_sets, classifier.labels)
    probabilities = predict_probabilities(classifier, texts, pairs=pairs, samples=1, seed=seed)
    return label_set_metrics(probabilities.deterministic >= np.asarray(classifier.thresholds), targets)


def validation_metrics(probabilities: Probabilities, targets: np.ndarray, num_classes: int) -> ValidationMetrics:
    """Accuracy, macro-F1 and ECE of the deterministic model, ECE and accuracy of the MC mean."""
    accuracy, macro_f1 = classification_metrics(probabilities.deterministic, targets, num_classes)
    accuracy_mc, _ = classification_metrics(probabilities.mc_mean, targets, num_classes)
    return ValidationMetrics(
        records=len(targets),
        accuracy=accuracy,
        macro_f1=macro_f1,
        ece_deterministic=expected_calibration_error(probabilities.deterministic, targets),
        ece_mc=expected_calibration_error(probabilities.mc_mean, targets),
        accuracy_mc=accuracy_mc,
        majority_accuracy=majority_share(targets.tolist()),
    )


def evaluate_classifier(classifier: Classifier, texts: Sequence[str], labels: Sequence[str], *, samples: int = 20,
                        seed: int = 0, pairs: Sequence[str] | None = None) -> ValidationMetrics:
    """Validation metrics of ``classifier`` on labelled texts (labels by name).

    Raises:
        DataError: a label is not one of the classifier's labels.
    """
    index = label_index(classifier.labels)
    unknown = sorted({label for label in labels if label not in index})
    if unknown:
        raise DataError(f"validation labels {unknown} are not among the model's labels {list(classifier.labels)}")
    targets = np.asarray([index[label] for label in labels])
    probabilities = predict_probabilities(classifier, texts, pairs=pairs, samples=samples, seed=seed)
    return validation_metrics(probabilities, targets, len(classifier.labels))
