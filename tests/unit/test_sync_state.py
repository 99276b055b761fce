from __future__ import annotations

from datetime import datetime

import pytest

from worker.gateway.client import RetryPolicy
from worker.gateway.sync_state import ScoredBy, SyncState


def test_watermarks_persist_per_dataset_and_start_empty(tmp_path):
    state = SyncState(tmp_path / "sub" / "sync.json")
    assert state.watermark("a") is None

    state.set_watermark("a", datetime(2026, 1, 2, 3, 4, 5, 678))
    state.set_watermark("b", None)  # nothing seen: keep what is there

    reloaded = SyncState(tmp_path / "sub" / "sync.json")
    assert reloaded.watermark("a") == datetime(2026, 1, 2, 3, 4, 5, 678)
    assert reloaded.watermark("b") is None
    assert not (tmp_path / "sub" / "sync.tmp").exists()


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"initial_wait_s": -1}, {"initial_wait_s": 5, "max_wait_s": 1}])
def test_a_nonsensical_retry_policy_is_refused(kwargs):
    with pytest.raises(ValueError, match="invalid retry policy"):
        RetryPolicy(**kwargs)


def test_forgetting_a_gone_dataset_drops_its_watermark_reconciliation_failures_and_stop_set_only(tmp_path):
    from worker.gateway.sync_state import FailedPushes
    from worker.stability import StopSet, StopSetStore

    state, failed = SyncState(tmp_path / "sync.json"), FailedPushes(tmp_path / "failed.json")
    stop_sets = StopSetStore(tmp_path / "stop_sets.json")
    for key in ("gone", "kept"):
        state.set_watermark(key, datetime(2026, 1, 2))
        state.set_reconciled(key, datetime(2026, 1, 1))
        state.set_scored_with(key, "v0003")
        state.set_scored_by(key, ScoredBy({"samples": 20}, datetime(2026, 1, 3)))
        failed.update(key, failed={"r1": ("srv-1", "500")}, landed=())
        stop_sets.put(key, StopSet(("r1",), ("a text",)))

    state.forget("gone")
    failed.forget("gone")
    stop_sets.forget("gone")

    assert (state.watermark("gone"), state.reconciled("gone"), state.scored_with("gone")) == (None, (None, None), None)
    assert failed.of("gone") == {} and stop_sets.get("gone") is None
    assert state.watermark("kept") == datetime(2026, 1, 2) and state.reconciled("kept")[0] == datetime(2026, 1, 1)
    assert state.scored_with("kept") == "v0003" and state.scored_by("gone") is None
    assert state.scored_by("kept") == ScoredBy({"samples": 20}, datetime(2026, 1, 3))
    assert set(failed.of("kept")) == {"r1"} and stop_sets.get("kept").ids == ("r1",)
    before = (tmp_path / "sync.json").stat().st_mtime_ns
    state.forget("never-seen")  # nothing to drop: nothing written
    assert (tmp_path / "sync.json").stat().st_mtime_ns == before


def test_the_scoring_options_are_kept_per_dataset_and_a_change_is_named_option_by_option(tmp_path):
    from worker.config import ScoringSettings
    from worker.jobs import written_options

    state = SyncState(tmp_path / "sync.json")
    assert state.scored_by("a") is None
    options = written_options(ScoringSettings())
    assert options["samples"] == 20 and options["calibrated"] is True and options["adaptive"]["round_size"] == 4
    state.set_scored_by("a", ScoredBy(options))
    kept = SyncState(tmp_path / "sync.json").scored_by("a")  # read back from JSON: equal values, no change
    assert kept == ScoredBy(options) and kept.changes(options) == []
    changed = written_options(ScoringSettings(samples=40, calibrated=False, power_beta=2))
    assert kept.changes(changed) == ["samples 20 → 40", "calibrated True → False", "power_beta 1.0 → 2.0"]
    assert kept.changes(written_options(ScoringSettings(), ["variation_ratio", "mc_variance"])) == [
        "plugin_scores [] → ['mc_variance', 'variation_ratio']"]  # a score enabled: every record gets it
    assert kept.changes(written_options(ScoringSettings(adaptive=False))) == [
        "adaptive {'bald_rse': 0.25, 'loss_se': 0.05, 'round_size': 4} → None"]


def test_server_timestamps_are_naive_utc_whatever_offset_they_carry():
    """The server writes naive UTC; one with an offset (another deployment's serializer) is converted, so that it
    compares with the server's clock and the state directory's marks instead of raising TypeError."""
    from worker.gateway.client import _parse_time

    assert _parse_time("2026-12-06T19:59:24.839417") == datetime(2026, 12, 6, 19, 59, 24, 839417)
    assert _parse_time("2026-12-06T20:59:24.839417+01:00") == datetime(2026, 12, 6, 19, 59, 24, 839417)
    assert _parse_time("2026-12-06T19:59:24Z") == datetime(2026, 12, 6, 19, 59, 24)
    assert _parse_time(None) is None and _parse_time("") is None
