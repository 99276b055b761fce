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
