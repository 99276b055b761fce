"""The state-file helpers every component uses (status, counters, sync state, registry metrics, quantiles)."""

from __future__ import annotations

import random

import pytest

from worker.files import read_json, write_json_atomic
from worker.iterables import shuffled_label_groups


def test_an_atomic_write_that_fails_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = tmp_path / "state" / "status.json"
    write_json_atomic(path, {"mode": "polling"})

    with pytest.raises(TypeError):
        write_json_atomic(path, {"mode": object()})  # not JSON: fails half-way through the dump

    assert read_json(path) == {"mode": "polling"}
    assert [p.name for p in path.parent.iterdir()] == ["status.json"]
    assert read_json(tmp_path / "missing.json", {}) == {}


def test_label_groups_are_stratified_seeded_and_cover_every_position():
    labels = ["b", "a", "b", "c", "a", "b"]
    groups = shuffled_label_groups(labels, random.Random(3))

    assert [sorted(group) for group in groups] == [[1, 4], [0, 2, 5], [3]]  # sorted by label: a, b, c
    assert groups == shuffled_label_groups(labels, random.Random(3))
    assert any(shuffled_label_groups(labels, random.Random(seed))[1] != groups[1] for seed in range(10))
