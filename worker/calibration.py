"""Calibration: expected calibration error, reliability diagrams, ECE as a function of T."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from worker.constants import PROBABILITY_FLOOR

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# BaaL clips confidences just below 1 so that 1.0 lands in the last bin; we do the same to agree.
_MAX_CONFIDENCE = 0.9999


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin statistics of top-label confidence; arrays [n_bins]."""

    edges: np.ndarray  # [n_bins + 1]
    counts: np.ndarray
    accuracy: np.ndarray
    confidence: np.ndarray

    @property
    def ece(self) -> float:
        total = self.counts.sum()
        if total == 0:
            return 0.0
        return float(np.sum(self.counts / total * np.abs(self.accuracy - self.confidence)))


def reliability_bins(probs: np.ndarray, labels: np.ndarray, *, n_bins: int = 10) -> ReliabilityBins:
    """Equal-width bins of top-label confidence.

    Args:
        probs: [N, C] predicted probabilities.
        labels: [N] true class indices.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim != 2 or labels.shape != (probs.shape[0],):
        raise ValueError(f"probs must be [N, C] and labels [N]; got {probs.shape} and {labels.shape}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    confidence = np.clip(probs.max(axis=1), 0.0, _MAX_CONFIDENCE)
    correct = probs.argmax(axis=1) == labels
    bin_ids = np.floor(confidence * n_bins).astype(int)
    counts = np.bincount(bin_ids, minlength=n_bins)
    safe_counts = np.maximum(counts, 1)
    return ReliabilityBins(
        edges=np.linspace(0.0, 1.0, n_bins + 1),
        counts=counts,
        accuracy=np.bincount(bin_ids, weights=correct, minlength=n_bins) / safe_counts,
        confidence=np.bincount(bin_ids, weights=confidence, minlength=n_bins) / safe_counts,
    )


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, *, n_bins: int = 10) -> float:
    """Top-label ECE with equal-width bins: Σ_b (n_b / N) |accuracy_b − confidence_b|.

    Args:
        probs: [N, C] predicted probabilities.
        labels: [N] true class indices.
    """
    return reliability_bins(probs, labels, n_bins=n_bins).ece


def label_decision_ece(probs: np.ndarray, targets: np.ndarray, *, n_bins: int = 10) -> float:
    """Multi-label ECE: every (record, label) decision as a binary prediction, top-label ECE over all of them.

    Args:
        probs: [N, L] per-label probabilities.
        targets: [N, L] bool, the true label sets.
    """
    present = np.asarray(probs, dtype=np.float64).reshape(-1)
    return expected_calibration_error(np.stack([1.0 - present, present], axis=1),
                                      np.asarray(targets).reshape(-1).astype(int), n_bins=n_bins)


def ece_by_samples(
    mc_probs: np.ndarray, labels: np.ndarray, *, sample_counts: Sequence[int] | None = None, n_bins: int = 10
) -> list[tuple[int, float]]:
    """ECE of the mean of the first t MC samples, for each t.

    Args:
        mc_probs: [N, C, T] probabilities of T MC-dropout samples.
        labels: [N] true class indices.
        sample_counts: the values of t (default 1..T).

    Returns:
        [(t, ECE)] in the order of ``sample_counts``.
    """
    total = mc_probs.shape[2]
    counts = list(sample_counts) if sample_counts is not None else list(range(1, total + 1))
    if any(not 1 <= t <= total for t in counts):
        raise ValueError(f"sample counts must lie in 1..{total}, got {counts}")
    cumulative = np.cumsum(mc_probs, axis=2)  # [N, C, T]
    return [(t, expected_calibration_error(cumulative[:, :, t - 1] / t, labels, n_bins=n_bins)) for t in counts]


@contextmanager
def png_figure(path: Path, size: tuple[float, float]) -> Iterator[Axes]:
    """One matplotlib axis on the headless Agg backend; on exit it is saved as a PNG at ``path`` (folders created)
    and the figure is closed, whether or not drawing failed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=size)
    try:
        yield axis
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=120, bbox_inches="tight")
    finally:
        plt.close(figure)


def plot_reliability_diagram(curves: dict[str, ReliabilityBins], path: Path, *, title: str = "Reliability") -> Path:
    """Accuracy vs confidence per bin for one or more models (e.g. deterministic vs MC), as PNG."""
    with png_figure(path, (5, 5)) as axis:
        axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
        for name, bins in curves.items():
            filled = bins.counts > 0
            centres = (bins.edges[:-1] + bins.edges[1:]) / 2
            axis.plot(centres[filled], bins.accuracy[filled], marker="o", label=f"{name} (ECE {bins.ece:.3f})")
        axis.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title=title)
        axis.legend(loc="upper left")
    return path


def plot_ece_by_samples(curve: list[tuple[int, float]], deterministic_ece: float, path: Path) -> Path:
    """ECE of MC dropout as T grows, against the deterministic model's ECE, as PNG."""
    with png_figure(path, (6, 4)) as axis:
        axis.plot([t for t, _ in curve], [ece for _, ece in curve], marker=".", label="MC dropout")
        axis.axhline(deterministic_ece, color="grey", linestyle="--", label="deterministic")
        axis.set(xlabel="MC samples T", ylabel="ECE", title="ECE vs number of MC-dropout samples")
        axis.legend()
    return path


TEMPERATURE_BOUNDS = (0.05, 20.0)  # the search's; a fit that ends on one had nothing to stop it (no wrong answer)


def fit_temperature(log_probs: np.ndarray, labels: np.ndarray) -> float:
    """The temperature τ > 0 minimising the NLL of softmax(log_probs / τ) (Guo et al. 2017).

    Args:
        log_probs: [N, C] log-probabilities (or logits: softmax is shift-invariant).
        labels: [N] true class indices.
    """
    from scipy.optimize import minimize_scalar

    log_probs = np.asarray(log_probs, dtype=np.float64)
    labels = np.asarray(labels)

    def nll(log_temperature: float) -> float:
        return float(-scaled_log_probs(log_probs, np.exp(log_temperature))[np.arange(len(labels)), labels].mean())

    result = minimize_scalar(nll, bounds=tuple(np.log(TEMPERATURE_BOUNDS)), method="bounded")
    return float(np.exp(result.x))


def scaled_log_probs(log_probs: np.ndarray, temperature: float) -> np.ndarray:
    """log softmax(log_probs / τ); [N, C] → [N, C]."""
    scaled = np.asarray(log_probs, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    return scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))


def tempered(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / τ) [N, C] of class distributions ``probabilities`` [N, C]: the same distributions read at
    temperature τ (τ > 1 flattens them, τ < 1 sharpens them; each row's most probable class stays so). τ = 1
    returns the input unchanged."""
    if temperature == 1.0:
        return probabilities
    return np.exp(scaled_log_probs(np.log(np.clip(probabilities, PROBABILITY_FLOOR, 1.0)), temperature))


def crossfit_temperature_ece(log_probs: np.ndarray, targets: np.ndarray, seed: int) -> float:
    """ECE after temperature scaling where each half's τ is fitted on the other half (not in-sample).
    log_probs: [N, C]; targets: [N] class indices."""
    order = np.random.default_rng(seed).permutation(len(targets))
    halves = np.array_split(order, 2)
    scaled = np.empty_like(log_probs, dtype=np.float64)
    for fit_on, apply_to in ((halves[0], halves[1]), (halves[1], halves[0])):
        temperature = fit_temperature(log_probs[fit_on], targets[fit_on])
        scaled[apply_to] = scaled_log_probs(log_probs[apply_to], temperature)
    return expected_calibration_error(np.exp(scaled), targets)


MIN_TEMPERATURE_RECORDS = 100  # below, a fitted τ follows a handful of records more than the model
# Wrong answers (argmax) a fit needs among its records: with none the sharpest τ fits them best, and a few decide τ
# alone — the worker would then write a confidence near 1 on every record, the wrong ones too
# (benchmarks/temperature_errors.py; RESULTS.md, "A temperature fitted on few wrong answers").
MIN_TEMPERATURE_ERRORS = 10


@dataclass(frozen=True)
class TemperatureFit:
    """The temperature the worker reads a model's probabilities at, and what it measured on the validation
    records: the ECE without it and with it (cross-fitted: each half scaled by the τ of the other half)."""

    temperature: float
    records: int
    ece_before: float
    ece_after: float


def wrong_answers(probabilities: np.ndarray, targets: np.ndarray) -> int:
    """How many rows of ``probabilities`` [N, C] put their highest probability on another class than ``targets``
    [N]."""
    return int((np.asarray(probabilities).argmax(axis=1) != np.asarray(targets)).sum())


def enough_for_temperature(records: int, wrong: int) -> bool:
    """Whether ``records`` labelled records, ``wrong`` of them answered wrong, can fit a temperature the worker keeps
    (:data:`MIN_TEMPERATURE_RECORDS`, :data:`MIN_TEMPERATURE_ERRORS`)."""
    return records >= MIN_TEMPERATURE_RECORDS and wrong >= MIN_TEMPERATURE_ERRORS


def fit_scores_temperature(probabilities: np.ndarray, targets: np.ndarray, *, seed: int = 0) -> TemperatureFit | None:
    """τ for class distributions ``probabilities`` [N, C] (as the worker reports them: the MC-dropout mean) with
    true classes ``targets`` [N], or None where reading them at τ would not help: fewer than
    :data:`MIN_TEMPERATURE_RECORDS` records, fewer than :data:`MIN_TEMPERATURE_ERRORS` of them answered wrong
    (:func:`wrong_answers`), or a cross-fitted ECE no lower than the ECE without τ."""
    if not enough_for_temperature(len(targets), wrong_answers(probabilities, targets)):
        return None
    log_probs = np.log(np.clip(probabilities, PROBABILITY_FLOOR, 1.0))
    before = expected_calibration_error(probabilities, targets)
    after = crossfit_temperature_ece(log_probs, targets, seed)
    if after >= before:
        return None
    return TemperatureFit(fit_temperature(log_probs, targets), len(targets), before, after)


def plot_confusion_matrix(matrix: np.ndarray, labels: Sequence[str], path: Path, *, title: str = "Confusion matrix",
                          xlabel: str = "predicted", ylabel: str = "true") -> Path:
    """A [C, C] count matrix as an annotated heat map (rows: ``ylabel``, columns: ``xlabel``), as PNG."""
    size = max(4.0, 0.45 * len(labels) + 2)
    with png_figure(path, (size, size)) as axis:
        axis.imshow(matrix, cmap="Blues")
        axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        axis.set_yticks(range(len(labels)), labels)
        if len(labels) <= 20:
            threshold = matrix.max() / 2 if matrix.size else 0
            for row in range(matrix.shape[0]):
                for column in range(matrix.shape[1]):
                    axis.text(column, row, str(int(matrix[row, column])), ha="center", va="center", fontsize=8,
                              color="white" if matrix[row, column] > threshold else "black")
        axis.set(xlabel=xlabel, ylabel=ylabel, title=title)
    return path
