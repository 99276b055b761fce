"""Heuristics and loss math on hand-made probability tensors with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worker.scoring.uncertainty import label_losses, uncertainty_scores, variation_ratio


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
