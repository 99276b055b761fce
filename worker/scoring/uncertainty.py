"""Uncertainty heuristics (BaaL's) and the per-example loss against the current label."""

from __future__ import annotations

import warnings

import numpy as np
from baal.active.heuristics import BALD, Entropy, Margin, Variance

from worker.constants import LOG_FLOOR

# The names uncertainty_scores returns (one [N] array each).
UNCERTAINTY_NAMES = ("bald", "entropy", "margin", "variance", "variation_ratio")


def uncertainty_scores(mc_probs: np.ndarray) -> dict[str, np.ndarray]:
    """Per-record uncertainty from MC-dropout probabilities.

    Args:
        mc_probs: [N, C, T] probabilities of T MC-dropout samples.

    Returns:
        arrays [N] keyed by name — ``bald`` (mutual information, high = uncertain),
        ``entropy`` (of the mean distribution, high = uncertain), ``margin`` (top-1 minus top-2
        of the mean distribution, low = uncertain), ``variance`` (variance over samples, mean
        over classes), ``variation_ratio`` (1 − share of samples voting for the modal class).
    """
    if mc_probs.ndim != 3:
        raise ValueError(f"mc_probs must be [N, C, T], got shape {mc_probs.shape}")
    probs = mc_probs.astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # BaaL warns when it repairs non-finite scores
        scores = {
            "bald": BALD().get_uncertainties(probs),
            "entropy": Entropy().get_uncertainties(probs),
            "margin": Margin().get_uncertainties(probs),
            "variance": Variance(reduction="mean").get_uncertainties(probs),
        }
    scores["variation_ratio"] = variation_ratio(probs)
    # BALD can come out a hair below zero by rounding; it is a mutual information (≥ 0).
    scores["bald"] = np.clip(scores["bald"], 0.0, None)
    return {name: np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
            for name, values in scores.items()}


def variation_ratio(mc_probs: np.ndarray) -> np.ndarray:
    """1 − (votes for the modal class) / T, from [N, C, T] probabilities → [N]."""
    votes = mc_probs.argmax(axis=1)  # [N, T]
    num_classes = mc_probs.shape[1]
    counts = np.stack([(votes == label).sum(axis=1) for label in range(num_classes)], axis=1)  # [N, C]
    return 1.0 - counts.max(axis=1) / mc_probs.shape[2]


def label_losses(
    deterministic_log_probs: np.ndarray, mc_log_probs: np.ndarray, reference: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Loss of each record's current label.

    Args:
        deterministic_log_probs: [N, C] log-probabilities with dropout off.
        mc_log_probs: [N, C, T] log-probabilities of the MC samples.
        reference: [N] class index of the current label, −1 where there is none.

    Returns:
        ``loss`` [N] = −log p(y) under the deterministic model and ``expected_loss`` [N] =
        mean over samples of −log p_t(y); NaN where ``reference`` is −1, finite elsewhere.
    """
    has_label = reference >= 0
    safe_reference = np.where(has_label, reference, 0)
    rows = np.arange(len(reference))
    deterministic = -np.maximum(deterministic_log_probs[rows, safe_reference], LOG_FLOOR)
    per_sample = -np.maximum(mc_log_probs[rows, safe_reference, :], LOG_FLOOR)  # [N, T]
    expected = per_sample.mean(axis=1)
    return np.where(has_label, deterministic, np.nan), np.where(has_label, expected, np.nan)
