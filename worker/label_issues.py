"""One label-issue score from two views no peer combines: how a model that never saw the record judges its
label (out-of-fold, MC dropout) and how hard the models that did see it had to fight the label while
training (area under the margin, Pleiss et al. 2020), both measured during K-fold training at no extra pass.

    label_issue = 1 − √( p̄(y) · σ(AUM(y)) )

* ``p̄(y)`` [N]: the held-out model's MC-dropout mean probability of the record's label y;
* ``AUM(y)`` [N]: the mean over training epochs, and over the K − 1 fold models that trained on the
  record, of (logit of y − the largest other logit); ``σ`` (the logistic function) maps that logit
  margin to (0, 1).

For a label set (a multi-label question) both factors judge the set's weakest label decision: ``p̄(y)`` the
probability that its least plausible label decision is right (min over labels of p̄ or 1 − p̄) and ``AUM(y)``
the margin of its worst-fitted label (the signed logit of the label's decision, lowest over the labels).

Both factors estimate "the label is right"; the geometric mean is high only when both agree, so a
label the held-out model finds plausible but the training models had to memorise still ranks high.
Range [0, 1], higher = more likely a label error. Nothing is fitted (on the evaluation labels or any).
"""

from __future__ import annotations

import numpy as np


def label_issue_scores(label_probability: np.ndarray, area_under_margin: np.ndarray) -> np.ndarray:
    """[N] label-issue scores from ``label_probability`` [N] (p̄(y), in [0, 1]) and ``area_under_margin`` [N].

    Raises:
        ValueError: the arrays differ in shape, or a probability lies outside [0, 1].
    """
    probability = np.asarray(label_probability, dtype=np.float64)
    margin = np.asarray(area_under_margin, dtype=np.float64)
    if probability.shape != margin.shape:
        raise ValueError(f"label_probability {probability.shape} and area_under_margin {margin.shape} differ")
    if np.any((probability < 0) | (probability > 1)):
        raise ValueError("label_probability must lie in [0, 1]")
    training_belief = 1.0 / (1.0 + np.exp(-margin))  # σ(AUM)
    return 1.0 - np.sqrt(probability * training_belief)
