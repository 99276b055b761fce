"""Heuristics and loss math on hand-made probability tensors with known answers, and the heuristics against BaaL's
own (the definitions the worker computes in one pass)."""

from __future__ import annotations

import math
import warnings
from collections import Counter

import numpy as np
import pytest
from baal.active.heuristics import BALD, Entropy, Margin, Variance

from worker.scoring.multilabel import bernoulli_uncertainty
from worker.scoring.uncertainty import label_losses, mc_statistics, uncertainty_scores, variation_ratio


def _mc(*samples: list[float]) -> np.ndarray:
    """One record's T samples → [1, C, T]."""
    return np.asarray(samples, dtype=np.float64).T[None, :, :]


def test_identical_samples_have_no_model_uncertainty():
    scores = uncertainty_scores(_mc([0.8, 0.2], [0.8, 0.2], [0.8, 0.2]))

    assert scores["bald"][0] == pytest.approx(0.0, abs=1e-12)
    assert scores["variance"][0] == pytest.approx(0.0)
    assert scores["variation_ratio"][0] == 0.0
    assert scores["entropy"][0] == pytest.approx(-(0.8 * math.log(0.8) + 0.2 * math.log(0.2)))
    assert scores["margin"][0] == pytest.approx(0.6)


def test_confident_samples_that_disagree_have_maximal_bald():
    scores = uncertainty_scores(_mc([1.0, 0.0], [0.0, 1.0]))

    assert scores["bald"][0] == pytest.approx(math.log(2))
    assert scores["entropy"][0] == pytest.approx(math.log(2))
    assert scores["margin"][0] == pytest.approx(0.0)
    assert scores["variation_ratio"][0] == pytest.approx(0.5)
    assert scores["variance"][0] == pytest.approx(0.25)


def test_margin_uses_the_mean_distribution_over_three_classes():
    scores = uncertainty_scores(_mc([0.6, 0.3, 0.1], [0.8, 0.1, 0.1]))

    assert scores["margin"][0] == pytest.approx(0.7 - 0.2)


def test_variation_ratio_counts_votes_for_the_modal_class():
    probs = _mc([0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2])
    assert variation_ratio(probs)[0] == pytest.approx(1 - 3 / 4)


def test_scores_are_per_record_and_reject_a_wrong_shape():
    batch = np.concatenate([_mc([1.0, 0.0], [0.0, 1.0]), _mc([0.5, 0.5], [0.5, 0.5])])
    scores = uncertainty_scores(batch)
    assert scores["bald"].shape == (2,)
    assert scores["bald"][0] > scores["bald"][1]

    with pytest.raises(ValueError, match=r"\[N, C, T\]"):
        uncertainty_scores(np.ones((3, 2)))


def _random_probs(records: int, classes: int, samples: int, seed: int) -> np.ndarray:
    """[records, classes, samples] distributions over the classes, spread from near-certain to flat, with some
    exact zeros and ones (a saturated softmax)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(records, classes, samples)) * rng.uniform(0.1, 8.0, size=(records, 1, 1))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    probs[:3] = 0.0
    probs[:3, 0, :] = 1.0  # three records certain of class 0 in every sample
    probs[3, :, 0] = 0.0
    probs[3, 1, 0] = 1.0  # one sample of record 3 certain of class 1
    return probs


def _baal_scores(probs: np.ndarray) -> dict[str, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return {"bald": BALD().get_uncertainties(probs), "entropy": Entropy().get_uncertainties(probs),
                "margin": Margin().get_uncertainties(probs),
                "variance": Variance(reduction="mean").get_uncertainties(probs)}


@pytest.mark.parametrize(("classes", "samples"), [(2, 20), (3, 1), (20, 20), (7, 5)])
def test_the_heuristics_equal_baals(classes, samples):
    probs = _random_probs(200, classes, samples, seed=classes * 100 + samples)

    ours = uncertainty_scores(probs)
    theirs = _baal_scores(probs)

    for name, expected in theirs.items():
        np.testing.assert_allclose(ours[name], np.clip(expected, 0.0, None) if name == "bald" else expected,
                                   rtol=1e-9, atol=1e-12, err_msg=name)
    assert ours["bald"].min() >= 0.0 and ours["entropy"][:3] == pytest.approx([0.0] * 3)


@pytest.mark.parametrize(("classes", "samples"), [(2, 20), (3, 1), (20, 20), (50, 7)])
def test_the_heuristics_from_log_probabilities_equal_those_of_the_probabilities(classes, samples):
    """What the scorer calls: the model's log-probabilities (−inf where a sample is certain), no second log; the
    same values as ``uncertainty_scores`` (checked equal to BaaL's above) of their ``exp``."""
    with np.errstate(divide="ignore"):
        log_probs = np.log(_random_probs(200, classes, samples, seed=classes * 10 + samples)).astype(np.float32)
    probs = np.exp(log_probs.astype(np.float64))

    mean, ours = mc_statistics(log_probs)
    expected = uncertainty_scores(probs)

    np.testing.assert_allclose(mean, probs.mean(axis=2), rtol=1e-12)
    for name, values in expected.items():
        np.testing.assert_allclose(ours[name], values, rtol=1e-12, atol=1e-15, err_msg=name)
    assert np.isneginf(log_probs).any() and all(np.isfinite(values).all() for values in ours.values())
    assert ours["entropy"].max() > 0.1 and ours["entropy"][:3] == pytest.approx([0.0] * 3)


def test_variation_ratio_counts_each_records_own_votes():
    probs = _random_probs(300, 50, 20, seed=5)
    probs[10:20] = np.repeat(probs[10:20, :, :1], 20, axis=2)  # records whose every sample votes alike

    ratios = variation_ratio(probs)

    votes = probs.argmax(axis=1)  # [N, T]
    expected = [1 - Counter(row.tolist()).most_common(1)[0][1] / 20 for row in votes]
    np.testing.assert_array_equal(ratios, expected)
    assert (ratios[10:20] == 0.0).all() and ratios.max() > 0.5


def test_the_bernoulli_heuristics_equal_baals_on_each_label():
    present = _random_probs(120, 2, 10, seed=3)[:, 0, :].reshape(40, 3, 10)  # [N=40, L=3, T=10]

    ours = bernoulli_uncertainty(present)
    two_class = np.stack([present, 1.0 - present], axis=2).reshape(120, 2, 10)
    theirs = _baal_scores(two_class)

    np.testing.assert_allclose(ours["bald"], np.clip(theirs["bald"], 0.0, None).reshape(40, 3), atol=1e-12)
    np.testing.assert_allclose(ours["entropy"], theirs["entropy"].reshape(40, 3), rtol=1e-9, atol=1e-12)


def test_a_record_with_non_finite_probabilities_gets_zeros_and_leaves_the_others_alone():
    probs = _random_probs(5, 3, 4, seed=9)
    clean = uncertainty_scores(probs)
    probs[2, 1, 3] = np.nan

    scores = uncertainty_scores(probs)

    for name, values in scores.items():
        assert values[2] == 0.0 or name == "variation_ratio", name  # a vote count stays defined
        np.testing.assert_array_equal(np.delete(values, 2), np.delete(clean[name], 2), err_msg=name)


def test_losses_of_the_reference_label():
    deterministic = np.log(np.array([[0.9, 0.1], [0.25, 0.75]]))
    mc = np.log(np.stack([np.array([[0.5, 0.5], [0.1, 0.9]]).T, np.array([[0.2, 0.8], [0.4, 0.6]]).T]))  # [2, 2, 2]
    reference = np.array([1, 0])

    loss, expected_loss = label_losses(deterministic, mc, reference)

    assert loss == pytest.approx([-math.log(0.1), -math.log(0.25)])
    assert expected_loss[0] == pytest.approx((-math.log(0.5) - math.log(0.9)) / 2)
    assert expected_loss[1] == pytest.approx((-math.log(0.2) - math.log(0.4)) / 2)


def test_no_reference_gives_nan_and_a_zero_probability_stays_finite():
    with np.errstate(divide="ignore"):
        deterministic = np.log(np.array([[1.0, 0.0], [0.5, 0.5]]))  # log(0) = -inf
    mc = np.repeat(deterministic[:, :, None], 3, axis=2)

    with np.errstate(divide="ignore"):
        loss, expected_loss = label_losses(deterministic, mc, np.array([1, -1]))

    assert np.isfinite(loss[0]) and loss[0] == pytest.approx(-math.log(1e-12))
    assert np.isfinite(expected_loss[0])
    assert np.isnan(loss[1]) and np.isnan(expected_loss[1])
