"""The label-issue score's formula on hand-made inputs with known answers, and what `score --oof` says of it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from worker.label_issues import label_issue_scores


def test_the_score_is_one_minus_the_geometric_mean_of_both_beliefs_in_the_label():
    scores = label_issue_scores(np.array([1.0, 0.0, 0.25, 0.81]), np.array([50.0, 3.0, 0.0, math.log(9.0)]))

    assert scores[0] == pytest.approx(0.0, abs=1e-9)  # both sure the label is right
    assert scores[1] == pytest.approx(1.0)  # the held-out model gives the label no chance
    assert scores[2] == pytest.approx(1 - math.sqrt(0.25 * 0.5))  # AUM 0: σ = 1/2
    assert scores[3] == pytest.approx(1 - math.sqrt(0.81 * 0.9))  # σ(log 9) = 0.9


def test_a_label_the_training_models_had_to_memorise_ranks_above_an_easy_one():
    plausible_but_fought, plausible_and_easy = label_issue_scores(np.array([0.6, 0.6]), np.array([-2.0, 2.0]))
    assert plausible_but_fought > plausible_and_easy


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="differ"):
        label_issue_scores(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        label_issue_scores(np.array([1.5]), np.array([0.0]))


def test_the_hint_after_score_oof_names_the_records_without_label_issue():
    """A sample of a large dataset: label_issue for the records the fold models trained on, loss for the others —
    under the names the dataset holds (a prefix on a dataset with several label questions)."""
    from worker.binding import prefixed
    from worker.cli import _label_issue_hint
    from worker.jobs import ScoreReport

    everything = _label_issue_hint(ScoreReport("v0001-oof5", scored=40, label_issues=40), str)
    sampled = _label_issue_hint(ScoreReport("v0001-oof5", scored=1_000_000, label_issues=100_050),
                                lambda name: prefixed(name, "topic_"))

    assert everything.startswith("label_issue and area_under_margin pushed: in the UI, sort by metadata 'label_issue'")
    assert sampled.startswith("topic_label_issue and topic_area_under_margin pushed for the 100050 records the fold "
                              "models trained on: in the UI, sort by metadata 'topic_label_issue'")
    assert "the other 899950 (outside training.max_original's sample) have the held-out 'topic_loss'" in sampled
