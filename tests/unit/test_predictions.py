from __future__ import annotations

import pytest

from worker.predictions import prediction_from_score, readable
from worker.scoring.acquisition import power_key
from worker.scoring.engine import RecordScore


def _score(**overrides) -> RecordScore:
    values = {"record_id": "r1", "predicted_label": "negative", "score": 0.8,
              "probabilities": {"negative": 0.8, "positive": 0.2}, "deterministic_label": "negative", "bald": 0.05,
              "entropy": 0.5, "margin": 0.6, "variance": 0.01, "variation_ratio": 0.1, "reference_label": "positive",
              "loss": 1.6, "expected_loss": 1.7, "disagreement": True}
    return RecordScore(**{**values, **overrides})


def test_a_labelled_record_gets_its_loss_and_disagreement():
    prediction = prediction_from_score(_score(), "model-v3")

    assert (prediction.label, prediction.score, prediction.agent) == ("negative", 0.8, "model-v3")
    assert prediction.metadata == {"bald": 0.05, "entropy": 0.5, "margin": 0.6, "confidence": 0.8,
                                   "predicted_label": "negative", "model_version": "model-v3", "loss": 1.6,
                                   "expected_loss": 1.7, "disagreement": "yes", "reference_label": "positive",
                                   "bald_power": readable(power_key(0.05, "r1", "model-v3"))}


def test_an_unlabelled_record_has_no_loss_keys():
    prediction = prediction_from_score(_score(reference_label=None, loss=None, expected_loss=None,
                                              disagreement=None), "v1")
    assert {"loss", "expected_loss", "disagreement", "reference_label"}.isdisjoint(prediction.metadata)


def test_a_skipped_record_cannot_become_a_prediction():
    with pytest.raises(ValueError, match="record 'r9' was not scored: text is empty"):
        prediction_from_score(RecordScore(record_id="r9", skipped_reason="text is empty"), "v1")


def test_the_suggestion_policy_picks_the_label_under_review_or_the_models():
    doubtful = _score(probabilities={"negative": 0.9612345, "positive": 0.0387655}, score=0.9612345)

    auto = prediction_from_score(doubtful, "v3", policy="auto", reference_agent="original")
    assert (auto.label, auto.score, auto.agent) == ("positive", 0.03877, "original")  # the chip reads ✦0.03877
    assert auto.metadata["predicted_label"] == "negative" and auto.metadata["confidence"] == 0.9612

    reviewed = prediction_from_score(doubtful, "v3", policy="auto", reviewed=True, reference_agent="original")
    assert (reviewed.label, reviewed.agent) == ("negative", "v3")  # reviewed: the model's opinion
    pinned = prediction_from_score(doubtful, "v3", policy="reference", reviewed=True)
    assert (pinned.label, pinned.agent) == ("positive", "argilla-worker:consensus")
    model = prediction_from_score(doubtful, "v3", policy="model", reference_agent="original")
    assert (model.label, model.score, model.agent) == ("negative", 0.9612, "v3")
    unlabelled = _score(reference_label=None, loss=None, expected_loss=None, disagreement=None)
    for policy in ("auto", "reference"):
        assert prediction_from_score(unlabelled, "v3", policy=policy).agent == "v3"


def _label_set_score(**overrides) -> RecordScore:
    values = {"record_id": "r2", "predicted_label": ("acting", "praise"), "score": 0.6,
              "probabilities": {"acting": 0.812345, "humour": 0.1, "praise": 0.9}, "deterministic_label": ("acting",),
              "bald": 0.2, "bald_mean": 0.1, "entropy": 0.6, "margin": 0.05, "reference_label": ("humour",),
              "loss": 4.1, "expected_loss": 4.3, "disagreement": True, "to_add": ("acting", "praise"),
              "to_remove": ("humour",), "label_changes": 3, "mc_samples": 8}
    return RecordScore(**{**values, **overrides})


def test_a_label_set_is_suggested_with_one_score_per_label_and_its_changes_are_terms():
    """Multi-label: the suggestion is a label set scored label by label (what Argilla shows as chips); the
    labels to add / remove are lists of terms the UI filters by; an empty set under review (a consensus of "no
    label", which Argilla cannot hold as an answer) leaves the model's set suggested."""
    model = prediction_from_score(_label_set_score(), "v4")
    assert (model.label, model.score, model.agent) == (("acting", "praise"), (0.8123, 0.9), "v4")
    assert model.metadata["labels_to_add"] == ["acting", "praise"] and model.metadata["labels_to_remove"] == ["humour"]
    assert model.metadata["predicted_label"] == ["acting", "praise"] and model.metadata["reference_label"] == ["humour"]
    assert (model.metadata["label_changes"], model.metadata["bald_mean"], model.metadata["loss"]) == (3, 0.1, 4.1)

    under_review = prediction_from_score(_label_set_score(), "v4", policy="auto", reference_agent="tagger")
    assert (under_review.label, under_review.score, under_review.agent) == (("humour",), (0.1,), "tagger")
    nothing = prediction_from_score(_label_set_score(reference_label=()), "v4", policy="reference")
    assert (nothing.label, nothing.agent) == (("acting", "praise"), "v4")
    assert nothing.metadata["reference_label"] == []


def test_metadata_floats_are_rounded_to_four_significant_digits():
    prediction = prediction_from_score(_score(bald=0.0004886381463056755, loss=12.3456789, margin=0.6), "v1")
    assert prediction.metadata["bald"] == 0.0004886 and prediction.metadata["loss"] == 12.35
    assert prediction.metadata["margin"] == 0.6


def test_a_rating_gets_its_expected_value_and_how_far_off_it_is_so_an_off_by_four_ranks_above_an_off_by_one():
    """Σ p(r)·|r − y| in rating points: the cross-entropy ``loss`` ranks a confident 5 against a rating of 4 like
    a confident 5 against a rating of 1; ``rating_error`` puts the 1 first."""
    def rated(reference: str) -> RecordScore:
        return _score(predicted_label="5", score=0.9, reference_label=reference,
                      probabilities={"1": 0.025, "2": 0.025, "3": 0.025, "4": 0.025, "5": 0.9})

    off_by_one = prediction_from_score(rated("4"), "v1", rating=True).metadata
    off_by_four = prediction_from_score(rated("1"), "v1", rating=True).metadata
    assert off_by_four["expected_rating"] == off_by_one["expected_rating"] == readable(
        0.025 * (1 + 2 + 3 + 4) + 0.9 * 5)
    assert off_by_one["rating_error"] == readable(0.025 * (3 + 2 + 1) + 0.9 * 1)
    assert off_by_four["rating_error"] == readable(0.025 * (1 + 2 + 3) + 0.9 * 4)
    assert off_by_four["rating_error"] > 3 * off_by_one["rating_error"]
    unrated = prediction_from_score(_score(predicted_label="5", reference_label=None, loss=None, expected_loss=None,
                                           probabilities={"1": 0.5, "5": 0.5}), "v1", rating=True).metadata
    assert unrated["expected_rating"] == 3.0 and "rating_error" not in unrated
    assert "expected_rating" not in prediction_from_score(_score(), "v1").metadata  # labels are not ratings


def test_the_workers_guidelines_are_appended_once_and_updated_between_markers():
    from worker.gateway.schema import GUIDELINES_END, GUIDELINES_START, guidelines_section, merged_guidelines

    theirs = "Our own guidelines: judge the review's sentiment."
    once = merged_guidelines(theirs)
    assert once.startswith(theirs) and once.count(GUIDELINES_START) == 1
    assert merged_guidelines(once) == once
    stale = once.replace("Submit", "Press submit") + "\n\nA note of theirs after the section."
    updated = merged_guidelines(stale)
    assert updated == once + "\n\nA note of theirs after the section."
    assert merged_guidelines(None) == guidelines_section() and GUIDELINES_END in guidelines_section()


def test_each_question_of_a_dataset_keeps_its_own_guidelines_section_naming_its_metadata():
    from worker.gateway.schema import GuidelinesScope, guidelines_section, merged_guidelines

    theirs = "Our own guidelines."
    sentiment, topics = GuidelinesScope("sentiment", "sentiment_"), GuidelinesScope("topics", "topics_")
    both = merged_guidelines(merged_guidelines(theirs, False, sentiment), True, topics)
    assert both == f"{theirs}\n\n{guidelines_section(False, sentiment)}\n\n{guidelines_section(True, topics)}"
    assert merged_guidelines(both, False, sentiment) == both and merged_guidelines(both, True, topics) == both
    stale = both.replace("Sort by", "Order by", 1)  # the sentiment section is out of date: only it is rewritten
    assert merged_guidelines(stale, False, sentiment) == both
    text = guidelines_section(True, topics)
    assert "question `topics`" in text and "`topics_loss`, **descending**" in text
    assert "`topics_labels_to_add`" in text and "- `split`:" in text and "- `loss`:" not in text


def test_the_guidelines_open_with_where_to_start_on_records_with_and_without_a_label():
    """A cold start's records have no loss to sort by: before the steps, the guidelines name the sort key for
    records that came with a label and the keys for those that came without, under the names the dataset holds."""
    from worker.gateway.schema import GuidelinesScope, guidelines

    for multi_label, rating in ((False, False), (True, False), (False, True)):
        text = guidelines(multi_label, GuidelinesScope("topic", "topic_"), rating)
        start, _, steps = text.partition("Then, record by record:")
        assert steps.lstrip().startswith("1. The pre-selected") and "Where to start:" in start
        with_label, _, without = start.partition("- **Records that came without")
        assert "sort by the metadata property `topic_loss`, **descending**" in with_label
        assert "sort by `topic_bald_power`, **descending**" in without
        assert "by\n  `topic_cold_start_rank`, **ascending**" in without
        assert "topic_rating_error" in with_label if rating else "rating_error" not in start


def test_a_changed_suggestion_policy_makes_records_stale_and_a_matching_one_up_to_date():
    from worker.jobs import is_up_to_date
    from worker.records import PulledRecord, ResponseState, SuggestionState

    def record(suggestion: SuggestionState, responses: tuple = ()) -> PulledRecord:
        return PulledRecord("s1", "r1", "text", {"original_label": "positive", "model_version": "v1",
                                                  "reference_label": "positive", "predicted_label": "negative",
                                                  "submitted_responses": 0},
                            suggestion, responses, None)

    under_review = record(SuggestionState("positive", "original", 0.04))
    models = record(SuggestionState("negative", "v1", 0.96))
    assert is_up_to_date(under_review, "v1", "auto") and not is_up_to_date(under_review, "v1", "model")
    assert is_up_to_date(models, "v1", "model") and not is_up_to_date(models, "v1", "auto")
    assert not is_up_to_date(under_review, "v2", "auto")  # another model: rescore
    drafted = record(SuggestionState("positive", "original", 0.04), (ResponseState("u1", "negative", "draft"),))
    reviewed = record(SuggestionState("negative", "v1", 0.96), (ResponseState("u1", "negative", "submitted"),))
    assert is_up_to_date(drafted, "v1", "auto")  # a draft changes nothing the worker computes
    assert not is_up_to_date(reviewed, "v1", "model")  # computed with no submitted response: rescore


def test_one_declaration_names_what_is_pushed_published_and_explained():
    """WORKER_METADATA is the only list of the worker's metadata: the push payload, the dataset's
    properties, the published score columns and the card all come from it."""
    from worker.gateway.schema import (
        GUIDELINES,
        WORKER_METADATA,
        WORKER_METADATA_TYPES,
        guidelines,
        published_scores,
    )
    from worker.publish.build import REVIEW_COLUMNS, features
    from worker.publish.card import render_card

    metadata = prediction_from_score(_score(mc_samples=12), "v3").metadata
    assert set(metadata) <= set(WORKER_METADATA_TYPES)
    assert all((f"- `{spec.name}`: {spec.meaning}" in GUIDELINES) == (spec.task == "any") for spec in WORKER_METADATA)
    assert all((f"- `{spec.name}`: {spec.meaning}" in guidelines(multi_label=True)) == (spec.task != "rating")
               for spec in WORKER_METADATA)
    assert all((f"- `{spec.name}`: {spec.meaning}" in guidelines(rating=True)) == (spec.task != "multi")
               for spec in WORKER_METADATA)
    for rating in (False, True):
        published = [name for name, feature in features(["1", "2"], rating=rating).items()
                     if getattr(feature, "dtype", None) == "float32" and name not in REVIEW_COLUMNS]
        assert published == [spec.name for spec in published_scores(rating=rating)]
        assert ("rating_error" in published) == rating == ("expected_rating" in published)

    from tests.unit.test_publish import LABELS, _records
    from worker.publish import build_publication

    with build_publication(_records(), LABELS) as publication:
        card = render_card(publication, license="mit", pretty_name="Reviews", source="https://argilla.io")
    assert all((f"`{spec.name}`: {spec.meaning}" in card) == (spec.task == "any")
               for spec in WORKER_METADATA if spec.published)
