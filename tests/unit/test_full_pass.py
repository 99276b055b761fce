"""The checkpoint a full score run leaves when it stops part way (worker.full_pass), on disk. Runs that stop and go
on against the real Argilla: tests/integration/test_full_pass.py."""

from __future__ import annotations

import logging
from datetime import datetime

import numpy as np

from worker.full_pass import REVIEWED, UNREVIEWED, FullPass, FullPassStore
from worker.view import RESERVOIR, QuantileSketch

OPTIONS = {"samples": 20, "adaptive": {"min_samples": 4, "tolerance": 0.01}, "plugin_scores": ["toxicity"]}


def _pass(sketch: QuantileSketch) -> FullPass:
    return FullPass("v0003", OPTIONS, datetime(2026, 12, 1, 8, 0, 1), ceiling=datetime(2026, 12, 7, 9, 30),
                    watermark=datetime(2026, 12, 7, 9, 29, 59, 250), reconciled_to=datetime(2026, 12, 7, 9, 31),
                    phase=REVIEWED, position=(datetime(2026, 12, 2, 10, 0, 0, 123456), "0b8f…"), read=41_000, runs=2,
                    sketch=sketch)


def test_a_checkpoint_reads_back_as_written_with_its_full_sample(tmp_path):
    sketch = QuantileSketch()
    rng = np.random.default_rng(0)
    for loss, bald in zip(rng.exponential(size=RESERVOIR + 500), rng.random(RESERVOIR + 500), strict=True):
        sketch.add({"loss": float(loss), "bald": float(bald)})
    store = FullPassStore(tmp_path / "full_pass")
    store.put("argilla/movies", _pass(sketch))

    read = store.get("argilla/movies")
    assert read is not None
    assert (read.version, read.options, read.stale_before, read.ceiling, read.watermark, read.reconciled_to) == (
        "v0003", OPTIONS, datetime(2026, 12, 1, 8, 0, 1), datetime(2026, 12, 7, 9, 30),
        datetime(2026, 12, 7, 9, 29, 59, 250), datetime(2026, 12, 7, 9, 31))
    assert (read.phase, read.position, read.read, read.runs) == (
        REVIEWED, (datetime(2026, 12, 2, 10, 0, 0, 123456), "0b8f…"), 41_000, 2)
    assert read.sketch.samples == sketch.samples and read.sketch.seen == sketch.seen == {
        "loss": RESERVOIR + 500, "bald": RESERVOIR + 500}
    assert read.sketch.records == sketch.records
    assert read.fits("v0003", OPTIONS, datetime(2026, 12, 1, 8, 0, 1))
    assert not read.fits("v0004", OPTIONS, datetime(2026, 12, 1, 8, 0, 1))  # another model: every record again
    assert not read.fits("v0003", {**OPTIONS, "samples": 30}, datetime(2026, 12, 1, 8, 0, 1))
    assert not read.fits("v0003", OPTIONS, None)

    assert store.get("argilla/movies#topic") is None  # one checkpoint per dataset (and question)
    store.clear("argilla/movies")
    assert store.get("argilla/movies") is None
    store.clear("argilla/movies")  # none: nothing to do


def test_a_checkpoint_cut_short_is_said_and_the_next_run_reads_every_record(tmp_path, caplog):
    store = FullPassStore(tmp_path / "full_pass")
    store.put("argilla/movies", _pass(QuantileSketch()))
    (path,) = (tmp_path / "full_pass").iterdir()
    path.write_bytes(path.read_bytes()[:100])  # a full disk, a crash of the machine mid-write on another filesystem

    with caplog.at_level(logging.WARNING, logger="worker.full_pass"):
        assert store.get("argilla/movies") is None
    assert f"the checkpoint of a full score run at {path} cannot be read" in caplog.text
    assert "the next full run reads every record" in caplog.text


def test_a_record_read_by_id_leaves_the_place_a_run_goes_on_from_where_it_was():
    full_pass = _pass(QuantileSketch())
    full_pass.phase, full_pass.position = UNREVIEWED, None
    full_pass.reached(UNREVIEWED, None)  # a record without a place in the order (read by id)
    assert full_pass.position is None
    full_pass.reached(UNREVIEWED, (datetime(2026, 1, 1), "a"))
    full_pass.reached(REVIEWED, (datetime(2025, 1, 1), "z"))
    assert (full_pass.phase, full_pass.position) == (REVIEWED, (datetime(2025, 1, 1), "z"))
