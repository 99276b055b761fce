from __future__ import annotations

from datetime import datetime

import pytest

from worker.gateway.client import RetryPolicy
from worker.gateway.sync_state import SyncState


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
        failed.update(key, failed={"r1": ("srv-1", "500")}, landed=())
        stop_sets.put(key, StopSet(("r1",), ("a text",)))

    state.forget("gone")
    failed.forget("gone")
    stop_sets.forget("gone")

    assert (state.watermark("gone"), state.reconciled("gone"), state.scored_with("gone")) == (None, (None, None), None)
    assert failed.of("gone") == {} and stop_sets.get("gone") is None
    assert state.watermark("kept") == datetime(2026, 1, 2) and state.reconciled("kept")[0] == datetime(2026, 1, 1)
    assert state.scored_with("kept") == "v0003"
    assert set(failed.of("kept")) == {"r1"} and stop_sets.get("kept").ids == ("r1",)
    before = (tmp_path / "sync.json").stat().st_mtime_ns
    state.forget("never-seen")  # nothing to drop: nothing written
    assert (tmp_path / "sync.json").stat().st_mtime_ns == before
