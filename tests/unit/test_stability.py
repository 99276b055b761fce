"""The stopping signal's arithmetic and the stop set (Bloodgood & Vijay-Shanker 2009)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from worker.records import PulledRecord, ResponseState
from worker.stability import StopSet, StopSetStore, agreement, draw_stop_set, stopping_signal


def test_kappa_is_one_for_identical_predictions_and_corrects_for_chance():
    assert agreement(["a", "b", "a", "b"], ["a", "b", "a", "b"]) == 1.0
    assert agreement(["a", "a"], ["a", "a"]) == 1.0  # constant and equal: κ undefined, no change at all
    # 3 of 4 agree; chance agreement 0.5 → κ = (0.75 − 0.5) / (1 − 0.5)
    assert agreement(["a", "b", "a", "b"], ["a", "b", "a", "a"]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="4 and 3"):
        agreement(["a"] * 4, ["a"] * 3)


def test_the_signal_needs_a_full_window_whose_mean_reaches_the_threshold():
    assert not stopping_signal([0.995, 0.999], window=3)  # too few promotions yet
    assert stopping_signal([0.5, 0.99, 0.995, 0.999], window=3)  # the last three: mean 0.9947
    assert not stopping_signal([0.999, 0.999, 0.97], window=3)  # the last round still moved the model
    assert stopping_signal([0.97], threshold=0.95, window=1)
    with pytest.raises(ValueError, match="window"):
        stopping_signal([1.0], window=0)


def _record(record_id: str, text, reviewed: bool = False) -> PulledRecord:
    responses = (ResponseState("u1", "positive", "submitted", datetime.now(UTC)),) if reviewed else ()
    return PulledRecord(f"srv-{record_id}", record_id, text, {}, None, responses, None)


def test_the_stop_set_is_a_bounded_seeded_sample_of_unreviewed_records_with_text(tmp_path):
    records = [_record(f"r{i}", f"text {i}", reviewed=i % 5 == 0) for i in range(100)] + [_record("empty", " ")]

    stop_set = draw_stop_set(iter(records), 30, seed=1)

    assert len(stop_set.ids) == 30 and len(set(stop_set.ids)) == 30
    assert not {"empty", *(f"r{i}" for i in range(0, 100, 5))} & set(stop_set.ids)
    assert stop_set == draw_stop_set(iter(records), 30, seed=1) != draw_stop_set(iter(records), 30, seed=2)
    store = StopSetStore(tmp_path / "stop_sets.json")
    store.put("ds", stop_set)
    assert store.get("ds") == stop_set and store.get("other") is None
    assert StopSet(("a",), ("t",), ("p",)) == (store.put("p", StopSet(("a",), ("t",), ("p",))) or store.get("p"))
