from __future__ import annotations

import math

import pytest

from worker.records import PulledRecord, ResponseState, consensus, same_value, sanitise_metadata


def _record(*responses: tuple[str, str | None, str], original: str = "positive") -> PulledRecord:
    return PulledRecord(
        server_id="s1", record_id="r1", text="t", metadata={"original_label": original}, suggestion=None,
        responses=tuple(ResponseState(user, value, status) for user, value, status in responses), updated_at=None,
    )


def test_majority_of_submitted_responses_wins_and_drafts_and_discards_are_ignored():
    record = _record(("u1", "negative", "submitted"), ("u2", "negative", "submitted"), ("u3", "positive", "submitted"),
                     ("u4", "positive", "draft"), ("u5", None, "discarded"))

    verdict = consensus(record)

    assert verdict.label == "negative"
    assert verdict.num_annotators == 3
    assert verdict.agreement == pytest.approx(2 / 3)
    assert verdict.original_label == "positive"
    assert verdict.is_correction


def test_a_tie_has_no_consensus_and_names_the_tied_labels():
    verdict = consensus(_record(("u1", "negative", "submitted"), ("u2", "positive", "submitted")))

    assert verdict.label is None
    assert verdict.tied_labels == ("negative", "positive")
    assert not verdict.is_correction


def test_no_submitted_response_means_no_verdict():
    assert consensus(_record(("u1", "negative", "draft"))) is None
    assert consensus(_record()) is None


def test_a_confirmation_is_not_a_correction():
    verdict = consensus(_record(("u1", "positive", "submitted")))
    assert verdict.label == "positive" and verdict.agreement == 1.0 and not verdict.is_correction


def test_non_finite_metadata_is_dropped_and_the_rest_kept(caplog):
    clean = sanitise_metadata("rec-7", {"loss": math.nan, "bald": math.inf, "margin": 0.25, "model_version": "v1",
                                        "entropy": None})

    assert clean == {"margin": 0.25, "model_version": "v1"}
    assert "record rec-7: metadata loss=nan is not finite" in caplog.text


def test_float_comparison_tolerates_json_round_trips_only():
    assert same_value(0.1 + 0.2, 0.3)
    assert not same_value(0.3, 0.3001)
    assert same_value("v1", "v1") and not same_value("v1", "v2")
