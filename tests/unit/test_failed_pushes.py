"""The persisted list of records whose push failed (pushed again until one push lands)."""

from __future__ import annotations

import json

from worker.gateway.sync_state import FailedPushes


def test_failures_accumulate_attempts_survive_a_restart_and_are_forgotten_once_landed(tmp_path):
    path = tmp_path / "state" / "failed_pushes.json"
    FailedPushes(path).update("ds", failed={"r1": ("srv-1", "HTTP 500"), "r2": ("srv-2", "HTTP 422")}, landed=[])
    reopened = FailedPushes(path)  # a new process reads the same file
    reopened.update("ds", failed={"r1": ("srv-1", "HTTP 500 again")}, landed=["r2"])

    entry = reopened.of("ds")
    assert list(entry) == ["r1"] and entry["r1"]["attempts"] == 2 and entry["r1"]["reason"] == "HTTP 500 again"
    assert entry["r1"]["server_id"] == "srv-1" and reopened.of("other") == {}
    reopened.update("ds", failed={}, landed=["r1"])
    assert json.loads(path.read_text()) == {} and FailedPushes(tmp_path / "absent.json").of("ds") == {}
