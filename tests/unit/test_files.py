"""The state-file helpers every component uses (status, counters, sync state, registry metrics, quantiles)."""

from __future__ import annotations

import random

import pytest

from tests.scratch import scratch_in_another_process
from worker.files import Scratch, read_json, write_json_atomic
from worker.iterables import shuffled_label_groups


def test_an_atomic_write_that_fails_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "state" / "status.json"
    write_json_atomic(path, {"mode": "polling"})

    with pytest.raises(TypeError):
        write_json_atomic(path, {"mode": object()})  # not JSON: fails half-way through the dump

    assert read_json(path) == {"mode": "polling"}
    assert [p.name for p in path.parent.iterdir()] == ["status.json"]
    assert read_json(tmp_path / "missing.json", {}) == {}


def test_a_state_file_that_is_not_json_is_one_line_naming_it_for_the_jobs_and_for_status(tmp_path, monkeypatch):
    """A state file cut short (a full disk) or edited by hand raised json's JSONDecodeError from every job that read
    it, and a traceback from ``status``."""
    from click.testing import CliRunner

    from worker.cli import cli
    from worker.crowd import CrowdStore
    from worker.errors import DataError

    crowd = tmp_path / "state" / "crowd.json"
    write_json_atomic(crowd, {"d1": {"labels": ["a", "b"]}})
    crowd.write_text(crowd.read_text()[:-3])
    with pytest.raises(DataError, match=rf"^{crowd} is not valid JSON \(Expecting .* line \d+ column \d+ .*\): it is "
                                        r"the worker's own state — restore it from a backup, or move it aside"):
        CrowdStore(crowd).get("d1", ["a", "b"])
    (tmp_path / "state" / "status.json").write_bytes(b"\xff\xfe{")
    monkeypatch.setenv("ARGILLA_WORKER_STATE_DIR", str(tmp_path / "state"))
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{tmp_path / 'state' / 'status.json'} is not valid JSON" in result.output


def test_a_state_file_of_json_that_is_not_the_workers_shape_is_one_line_for_the_jobs_and_for_status(tmp_path,
                                                                                                    monkeypatch):
    """Valid JSON of another kind (an array where the worker keeps an object; a status without its keys) was an
    AttributeError / KeyError traceback."""
    from click.testing import CliRunner

    from worker.cli import cli
    from worker.errors import DataError
    from worker.files import KeyedJsonFile

    state = tmp_path / "state"
    state.mkdir()
    (state / "sync.json").write_text("[1, 2]")
    with pytest.raises(DataError, match=r"sync.json holds a JSON array where the worker keeps a JSON object: it is "
                                        r"the worker's own state"):
        KeyedJsonFile(state / "sync.json").get("d1")
    (state / "null.json").write_text("null")
    assert read_json(state / "null.json", {}) == {} and read_json(state / "sync.json") == [1, 2]

    monkeypatch.setenv("ARGILLA_WORKER_STATE_DIR", str(state))
    for written, expected in (('"running"', "holds a JSON string where the worker keeps a JSON object"),
                              ('{"pid": 1}', "is not a status a worker wrote (no started_at, mode, argilla): move")):
        (state / "status.json").write_text(written)
        result = CliRunner().invoke(cli, ["status"])
        assert result.exit_code == 1 and "Traceback" not in result.output and expected in result.output, result.output


def test_label_groups_are_stratified_seeded_and_cover_every_position():
    labels = ["b", "a", "b", "c", "a", "b"]
    groups = shuffled_label_groups(labels, random.Random(3))

    assert [sorted(group) for group in groups] == [[1, 4], [0, 2, 5], [3]]  # sorted by label: a, b, c
    assert groups == shuffled_label_groups(labels, random.Random(3))
    assert any(shuffled_label_groups(labels, random.Random(seed))[1] != groups[1] for seed in range(10))


def test_a_scratch_directory_whose_process_was_killed_is_removed_by_the_next_of_its_kind_and_no_other(tmp_path,
                                                                                                   caplog):
    """A job killed mid-way (kill -9: nothing of its own runs) leaves its scratch; the next Scratch of the same kind
    under the same parent removes it and says so — not one a live process holds (another process's, or this
    process's own), not another kind's, not a directory that is no Scratch."""
    killed, abandoned = scratch_in_another_process(tmp_path, "copies-")
    alive, held = scratch_in_another_process(tmp_path, "copies-")
    other_kind, _ = scratch_in_another_process(tmp_path, "publication-")
    try:
        killed.kill()
        killed.wait()
        other_kind.kill()
        other_kind.wait()
        mine = Scratch(tmp_path, "copies-")
        not_ours = tmp_path / "copies-by-hand"
        not_ours.mkdir()
        with caplog.at_level("WARNING", logger="worker.files"), Scratch(tmp_path, "copies-") as second:
            assert not abandoned.exists()
            assert held.is_dir() and mine.path.is_dir() and not_ours.is_dir() and second.path.is_dir()
            assert len(list(tmp_path.glob("publication-*"))) == 1  # its kind's next Scratch removes it
        assert [r.getMessage() for r in caplog.records] == [
            f"removed {abandoned} (0.1 MB): what a job left when its process ended before it finished"]
        assert not second.path.exists() and mine.path.is_dir()
        mine.remove()
        assert not mine.path.exists()
    finally:
        alive.kill()
        alive.wait()
    with Scratch(tmp_path, "copies-"):
        assert not held.exists()  # its process is gone now


def test_a_scratch_directory_being_made_is_never_taken_for_an_abandoned_one(tmp_path, monkeypatch):
    """Another job sweeping at the instant a Scratch is made — after its directory exists, before its lock is held —
    must not remove it: the directory gets its name only once it is locked. (The sweep here runs in this process on
    its own open file, which flock treats as another holder's.)"""
    import fcntl

    from worker.files import remove_abandoned

    real_flock, swept = fcntl.flock, []

    def sweep_then_lock(descriptor, operation):
        if operation == fcntl.LOCK_EX and not swept:
            swept.extend(remove_abandoned(tmp_path, "copies-"))
        return real_flock(descriptor, operation)

    monkeypatch.setattr(fcntl, "flock", sweep_then_lock)
    with Scratch(tmp_path, "copies-") as scratch:
        assert swept == [] and scratch.path.is_dir() and scratch.path.name.startswith("copies-")
        assert (scratch.path / Scratch.IN_USE).exists()
        assert remove_abandoned(tmp_path, "copies-") == []  # held
    assert not any(tmp_path.iterdir())
