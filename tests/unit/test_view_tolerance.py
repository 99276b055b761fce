"""Which new values are worth a push (worker.view): rank percentiles from a reservoir sketch, exact tops."""

from __future__ import annotations

import random

import numpy as np
import pytest

from worker.records import Prediction, PulledRecord, SuggestionState
from worker.view import RESERVOIR, QuantileSketch, QuantileStore, ValueQuantiles, ViewTolerance

KEYS = ("loss", "expected_loss", "bald", "entropy", "margin", "confidence")


def _uniform_quantiles(records: int = 100_000, seed: int = 0) -> ValueQuantiles:
    rng = random.Random(seed)
    sketch = QuantileSketch(seed=seed)
    for _ in range(records):
        sketch.add({**{key: rng.random() for key in KEYS}, "suggestion_score": rng.random()})
    return sketch.quantiles()


QUANTILES = _uniform_quantiles()


def _record(value: float, *, label: str = "positive", **metadata) -> PulledRecord:
    stored = {**{key: value for key in KEYS}, "predicted_label": label, "disagreement": "no",
              "reference_label": label, "submitted_responses": 0, "model_version": "v1", "mc_samples": 8,
              **metadata}
    return PulledRecord("s1", "r1", "a text", stored, SuggestionState(label, "v1", value), (), None)


def _prediction(value: float, *, label: str = "positive", **metadata) -> Prediction:
    new = {**{key: value for key in KEYS}, "predicted_label": label, "disagreement": "no", "reference_label": label,
           "submitted_responses": 0, "model_version": "v2", "mc_samples": 20, **metadata}
    return Prediction("r1", label, value, "v2", new)


def test_the_sketch_reads_percentiles_of_a_large_run_in_bounded_memory():
    sketch = QuantileSketch()
    for value in np.linspace(0.0, 1.0, 3 * RESERVOIR):
        sketch.add({"loss": float(value), "bald": float("nan"), "margin": "not a number"})
    assert len(sketch.samples["loss"]) == RESERVOIR and "bald" not in sketch.samples and "margin" not in sketch.samples
    quantiles = sketch.quantiles()
    assert quantiles.count == 3 * RESERVOIR
    for value in (0.1, 0.5, 0.9):
        assert quantiles.percentile("loss", value) == pytest.approx(value, abs=0.01)
    assert quantiles.percentile("loss", -5.0) == 0.0 and quantiles.percentile("loss", 7.0) == 1.0


def test_a_small_move_in_the_middle_of_every_order_keeps_the_stored_values():
    tolerance = ViewTolerance(rank_tolerance=0.01, exact_top=500)
    assert tolerance.keeps_view(_record(0.500), _prediction(0.505), QUANTILES)  # model_version, mc_samples differ


@pytest.mark.parametrize("old, new", [(0.50, 0.52), (0.30, 0.50)])
def test_a_move_beyond_the_rank_tolerance_is_pushed(old, new):
    assert not ViewTolerance(0.01, 500).keeps_view(_record(old), _prediction(new), QUANTILES)


@pytest.mark.parametrize("old, new", [(0.9990, 0.9991), (0.0010, 0.0011), (0.500, 0.9999)])
def test_the_top_and_bottom_of_every_order_are_always_exact(old, new):
    """500 of 100,000 records: the 0.5 % at either end, by old or new value."""
    assert not ViewTolerance(0.01, 500).keeps_view(_record(old), _prediction(new), QUANTILES)
    assert ViewTolerance(0.01, 0).keeps_view(_record(old), _prediction(old + 0.00001), QUANTILES)


def test_any_change_of_a_label_or_a_count_is_pushed():
    tolerance = ViewTolerance(0.01, 500)
    assert not tolerance.keeps_view(_record(0.5), _prediction(0.5, label="negative"), QUANTILES)
    assert not tolerance.keeps_view(_record(0.5), _prediction(0.5, predicted_label="negative"), QUANTILES)
    assert not tolerance.keeps_view(_record(0.5), _prediction(0.5, disagreement="yes"), QUANTILES)
    assert not tolerance.keeps_view(_record(0.5), _prediction(0.5, submitted_responses=1), QUANTILES)


def test_values_a_prediction_does_not_write_do_not_force_a_push():
    """label_issue (score --oof), original_score (another agent's) …: a push would keep them as they are."""
    kept = _record(0.5, label_issue=0.93, original_score=0.61, cold_start_rank=12.0)
    assert ViewTolerance(0.01, 500).keeps_view(kept, _prediction(0.505), QUANTILES)


def test_without_quantiles_or_stored_values_everything_is_pushed():
    tolerance = ViewTolerance(0.01, 500)
    assert not tolerance.keeps_view(_record(0.5), _prediction(0.5), None)
    never_scored = PulledRecord("s1", "r1", "a text", {}, None, (), None)
    assert not tolerance.keeps_view(never_scored, _prediction(0.5), QUANTILES)
    no_loss_before = _record(0.5)
    del no_loss_before.metadata["loss"]
    assert not tolerance.keeps_view(no_loss_before, _prediction(0.5), QUANTILES)


def test_the_quantiles_of_the_last_full_run_are_kept_per_dataset(tmp_path):
    store = QuantileStore(tmp_path / "view_quantiles.json")
    assert store.get("a") is None
    store.put("a", QUANTILES)
    store.put("b", _uniform_quantiles(records=10, seed=1))
    again = store.get("a")
    assert again.count == QUANTILES.count
    assert again.percentile("loss", 0.25) == pytest.approx(QUANTILES.percentile("loss", 0.25))
    assert store.get("b").count == 10
