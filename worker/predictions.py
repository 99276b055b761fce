"""From what the model says about a record (RecordScore) to what the worker writes to Argilla (Prediction).

The suggestion policy (``scoring.suggestion``) decides which label the annotator finds pre-selected:

``model``
    the model's prediction, scored with its mean probability, agent = model version;
``reference``
    the label under review — the annotators' consensus once it exists, else the record's reference
    label — scored with the model's probability **of that label** (so a doubtful label shows a low
    score), agent = where the label came from; the model's prediction where there is no such label;
``auto`` (default)
    ``reference`` for records nobody has reviewed yet, ``model`` for the others.

Either way the model's prediction and confidence stay in metadata (``predicted_label``,
``confidence``), so switching policy loses neither. Metadata floats and scores are rounded to
``SIGNIFICANT_DIGITS`` significant digits: readable in the UI, and a value that moved in its 10th
digit is not a change worth a push.
"""

from __future__ import annotations

import math
from typing import Literal

from worker.binding import CONSENSUS_AGENT
from worker.gateway.schema import SCORED_METADATA
from worker.records import MetadataValue, Prediction
from worker.scoring.acquisition import power_key
from worker.scoring.engine import RecordScore

SuggestionPolicy = Literal["auto", "model", "reference"]
SIGNIFICANT_DIGITS = 4


def readable(value: float) -> float:
    """``value`` rounded to SIGNIFICANT_DIGITS significant digits (non-finite values unchanged)."""
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}") if math.isfinite(value) else value


def score_metadata(score: RecordScore) -> dict[str, MetadataValue]:
    """The metadata a score carries (see ``SCORED_METADATA``): each declared property whose value the score
    has (loss, expected loss, disagreement and the reference label only when it was scored against one);
    a yes/no value is written as ``"yes"`` / ``"no"`` (a terms property)."""
    values: dict[str, MetadataValue] = {}
    for spec in SCORED_METADATA:
        value = getattr(score, str(spec.from_score))
        if value is None:
            continue
        if isinstance(value, bool):
            value = "yes" if value else "no"
        values[spec.name] = list(value) if isinstance(value, tuple) else value  # a label set: a list of terms
    return values


def suggests_reference(policy: SuggestionPolicy, *, has_reference: bool, reviewed: bool) -> bool:
    """Whether the pre-selected label is the label under review rather than the model's prediction."""
    if not has_reference:
        return False
    return policy == "reference" or (policy == "auto" and not reviewed)


def rating_metadata(score: RecordScore) -> dict[str, MetadataValue]:
    """A rating question's ordinal view of one score (its labels are the ratings as text, "1" … "5"):
    ``expected_rating`` = Σ_r p(r)·r and, against the rating under review y, ``rating_error`` = Σ_r p(r)·|r − y|
    (in rating points), p the MC-mean distribution; nothing when the score has no distribution."""
    if not score.probabilities:
        return {}
    ratings = {int(label): probability for label, probability in score.probabilities.items()}
    total = sum(ratings.values()) or 1.0
    values: dict[str, MetadataValue] = {
        "expected_rating": sum(rating * probability for rating, probability in ratings.items()) / total}
    if isinstance(score.reference_label, str):
        reviewed = int(score.reference_label)
        values["rating_error"] = sum(abs(rating - reviewed) * probability
                                     for rating, probability in ratings.items()) / total
    return values


def prediction_from_score(score: RecordScore, model_version: str, *, policy: SuggestionPolicy = "model",
                          reviewed: bool = False, reference_agent: str = "reference",
                          power_beta: float = 1.0, rating: bool = False) -> Prediction:
    """The suggestion (see the module docstring) and the sortable metadata of one scored record.

    ``reviewed``: the record has the annotators' consensus (then ``score.reference_label`` is it);
    ``reference_agent``: where an unreviewed record's reference label came from (the suggestion's agent);
    ``rating``: the question is a rating question (adds :func:`rating_metadata`).

    Raises:
        ValueError: the record was skipped by the scorer (it has nothing to write).
    """
    if score.skipped or score.predicted_label is None or score.score is None:
        raise ValueError(f"record {score.record_id!r} was not scored: {score.skipped_reason or 'no prediction'}")
    metadata: dict[str, MetadataValue] = {"model_version": model_version, **score_metadata(score), **score.extra,
                                          **(rating_metadata(score) if rating else {})}
    if score.bald is not None and math.isfinite(score.bald):
        metadata["bald_power"] = power_key(max(score.bald, 0.0), score.record_id, model_version, beta=power_beta)
    metadata = {key: readable(value) if isinstance(value, float) else value for key, value in metadata.items()}
    label, probability, agent = score.predicted_label, score.score, model_version
    # (an empty label set cannot be an Argilla answer: the model's set is suggested instead)
    if score.reference_label and suggests_reference(policy, has_reference=True, reviewed=reviewed):
        label = score.reference_label
        agent = CONSENSUS_AGENT if reviewed else reference_agent
        probability = (score.probabilities or {}).get(label, 0.0) if isinstance(label, str) else probability
    if isinstance(label, tuple):  # a label set: each label's probability, in the set's order
        probabilities = score.probabilities or {}
        return Prediction(score.record_id, label, tuple(_probability(probabilities.get(name, 0.0)) for name in label),
                          agent, metadata)
    return Prediction(score.record_id, label, _probability(probability), agent, metadata)


def _probability(value: float) -> float:
    return readable(min(max(value, 0.0), 1.0))
