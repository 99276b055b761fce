"""Uncertainty heuristics (BaaL's definitions, computed in one vectorized pass) and the per-example loss against the
current label."""

from __future__ import annotations

import numpy as np

from worker.constants import LOG_FLOOR

# The names uncertainty_scores returns (one [N] array each).
UNCERTAINTY_NAMES = ("bald", "entropy", "margin", "variance", "variation_ratio")


def uncertainty_scores(mc_probs: np.ndarray) -> dict[str, np.ndarray]:
    """Per-record uncertainty from MC-dropout probabilities, as BaaL's ``BALD``, ``Entropy``, ``Margin`` and
    ``Variance(reduction="mean")`` define them (tests/unit/test_uncertainty.py checks them equal on random batches).

    BaaL's heuristics are computed here rather than called: each of its calls re-checks that its input is a
    distribution and takes ``x log x`` through scipy's ``xlogy``, 1.8 µs a record at 2 labels and 10 at 20 (batches of
    1,024, T = 20) — the largest share of the per-record host work that bounds a GPU's deterministic path; one pass
    over the shared intermediates costs a fraction of that (benchmarks/RESULTS.md).

    Args:
        mc_probs: [N, C, T] probabilities of T MC-dropout samples (C ≥ 2).

    Returns:
        arrays [N] keyed by name — ``bald`` (mutual information, high = uncertain), ``entropy`` (of the mean
        distribution, high = uncertain), ``margin`` (top-1 minus top-2 of the mean distribution, low = uncertain),
        ``variance`` (variance over samples, mean over classes), ``variation_ratio`` (1 − share of samples voting for
        the modal class). A record with non-finite probabilities gets 0 throughout.
    """
    _check_samples(mc_probs)
    probs = mc_probs.astype(np.float64)
    return _scores(probs, probs.mean(axis=2), _safe_log(probs))


def mc_statistics(mc_log_probs: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The mean distribution and :func:`uncertainty_scores` of MC samples given as log-probabilities (what the
    model hands back), computed once for both.

    The probabilities are ``exp`` of the log-probabilities in float64 and ``x log x`` uses the log-probabilities
    themselves (no second logarithm): the same values as :func:`uncertainty_scores` of those probabilities up to
    float64 rounding, in less work per record (benchmarks/RESULTS.md, "many labels"). Arrays of [N, C, T]: two
    (the log-probabilities in float64, their exp); the sums over samples and classes are ``einsum`` reductions
    that make no third.

    Args:
        mc_log_probs: [N, C, T] log-probabilities of T MC-dropout samples (C ≥ 2); −inf where a probability is 0.

    Returns:
        ``(mean_probs, scores)``: mean_probs [N, C] (float64, mean over the samples), scores as
        :func:`uncertainty_scores` returns them.
    """
    _check_samples(mc_log_probs)
    log_probs = mc_log_probs.astype(np.float64)
    if mc_log_probs.size and np.fmin.reduce(mc_log_probs, axis=None) == -np.inf:  # 0 · log 0 must be 0, not NaN
        np.maximum(log_probs, np.finfo(np.float64).min, out=log_probs)
    probs = np.exp(log_probs)
    mean = probs.mean(axis=2)
    return mean, _scores(probs, mean, log_probs)


def bald_and_entropy(mc_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BALD (mutual information, ≥ 0) and the entropy of the mean distribution, each [N], from [N, C, T]
    probabilities; BaaL's ``BALD`` and ``Entropy``."""
    probs = mc_probs.astype(np.float64)
    return _bald_and_entropy(probs, probs.mean(axis=2), _safe_log(probs))


def _check_samples(values: np.ndarray) -> None:
    if values.ndim != 3:
        raise ValueError(f"MC samples must be [N, C, T], got shape {values.shape}")


def _scores(probs: np.ndarray, mean: np.ndarray, log_probs: np.ndarray) -> dict[str, np.ndarray]:
    """The five heuristics from probs [N, C, T], their mean over the samples [N, C] and their log [N, C, T]
    (finite where a probability is 0); non-finite results become 0."""
    bald, entropy = _bald_and_entropy(probs, mean, log_probs)
    scores = {
        "bald": bald,
        "entropy": entropy,
        "margin": _top_two_gap(mean),
        "variance": _variance(probs, mean),
        "variation_ratio": variation_ratio(probs),
    }
    return {name: np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0) for name, values in scores.items()}


def _bald_and_entropy(probs: np.ndarray, mean: np.ndarray, log_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """probs [N, C, T], their mean over the samples [N, C] and their log [N, C, T] (finite where a probability is
    0) → (bald [N], entropy [N]). BALD can come out a hair below zero by rounding; it is a mutual information, so
    it is clipped at 0."""
    entropy = -(mean * _safe_log(mean)).sum(axis=1)  # [N]
    expected_entropy = -np.einsum("nct,nct->n", probs, log_probs) / probs.shape[2]  # [N]
    return np.maximum(entropy - expected_entropy, 0.0), entropy


def _top_two_gap(mean: np.ndarray) -> np.ndarray:
    """The largest minus the second largest value of each row of [N, C] → [N] (BaaL's margin); a NaN row gives
    NaN."""
    rows = np.arange(len(mean))
    best = mean.argmax(axis=1)
    others = mean.copy()
    others[rows, best] = -np.inf
    return mean[rows, best] - others.max(axis=1)


def _variance(probs: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Variance over the samples, mean over the classes: probs [N, C, T], their mean [N, C] → [N]. E[p²] − E[p]²
    in one pass (probabilities lie in [0, 1], so the difference loses at most ≈ 1e-16); clipped at 0."""
    second_moment = np.einsum("nct,nct->nc", probs, probs) / probs.shape[2]  # [N, C]
    return np.maximum(second_moment - mean * mean, 0.0).mean(axis=1)


def _safe_log(values: np.ndarray) -> np.ndarray:
    """log x elementwise, finite where x is 0 (so that x · log x is 0 there, as scipy's ``xlogy(x, x)``); NaN
    stays NaN."""
    return np.log(np.maximum(values, np.finfo(np.float64).tiny))


def variation_ratio(mc_probs: np.ndarray) -> np.ndarray:
    """1 − (votes for the modal class) / T, from [N, C, T] probabilities → [N]. The votes are counted for all
    records at once (one ``bincount`` over record × class), not one pass per class."""
    records, classes, samples = mc_probs.shape
    votes = mc_probs.argmax(axis=1)  # [N, T]
    cells = (votes + classes * np.arange(records)[:, None]).ravel()  # [N·T] the (record, class) each vote falls in
    counts = np.bincount(cells, minlength=records * classes).reshape(records, classes)  # [N, C]
    return 1.0 - counts.max(axis=1) / samples


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
