from __future__ import annotations

import pytest

from worker.predictions import prediction_from_score
from worker.scoring.engine import RecordScore


def _score(**overrides) -> RecordScore:
    values = dict(record_id="r1", predicted_label="negative", score=0.8,
                  probabilities={"negative": 0.8, "positive": 0.2}, deterministic_label="negative", bald=0.05,
                  entropy=0.5, margin=0.6, variance=0.01, variation_ratio=0.1, reference_label="positive",
                  loss=1.6, expected_loss=1.7, disagreement=True)
    return RecordScore(**{**values, **overrides})


def test_a_labelled_record_gets_its_loss_and_disagreement():
    prediction = prediction_from_score(_score(), "model-v3")

    assert (prediction.label, prediction.score, prediction.agent) == ("negative", 0.8, "model-v3")
    assert prediction.metadata == {"bald": 0.05, "entropy": 0.5, "margin": 0.6, "confidence": 0.8,
                                   "predicted_label": "negative", "model_version": "model-v3", "loss": 1.6,
                                   "expected_loss": 1.7, "disagreement": "yes", "reference_label": "positive"}


def test_an_unlabelled_record_has_no_loss_keys():
    prediction = prediction_from_score(_score(reference_label=None, loss=None, expected_loss=None,
                                              disagreement=None), "v1")
    assert {"loss", "expected_loss", "disagreement", "reference_label"}.isdisjoint(prediction.metadata)


def test_a_skipped_record_cannot_become_a_prediction():
    with pytest.raises(ValueError, match="record 'r9' was not scored: text is empty"):
        prediction_from_score(RecordScore(record_id="r9", skipped_reason="text is empty"), "v1")
