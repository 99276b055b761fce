"""From what the model says about a record (RecordScore) to what the worker writes to Argilla (Prediction)."""

from __future__ import annotations

from worker.records import Prediction
from worker.scoring.engine import RecordScore


def prediction_from_score(score: RecordScore, model_version: str) -> Prediction:
    """The suggestion (predicted label, its mean probability, agent = model version) and the sortable metadata.

    Raises:
        ValueError: the record was skipped by the scorer (it has nothing to write).
    """
    if score.skipped:
        raise ValueError(f"record {score.record_id!r} was not scored: {score.skipped_reason}")
    metadata: dict[str, float | str] = {
        "bald": score.bald,
        "entropy": score.entropy,
        "margin": score.margin,
        "confidence": score.score,
        "predicted_label": score.predicted_label,
        "model_version": model_version,
    }
    metadata.update(score.extra)
    if score.loss is not None:
        metadata["loss"] = score.loss
        metadata["expected_loss"] = score.expected_loss
        metadata["disagreement"] = "yes" if score.disagreement else "no"
        metadata["reference_label"] = score.reference_label
    return Prediction(score.record_id, score.predicted_label, min(max(score.score, 0.0), 1.0), model_version,
                      metadata)
