"""A full score run that stops part way goes on from where it stopped (worker.full_pass), against the real local
Argilla, on a dataset made with the plain SDK (field ``review``, question ``sentiment``) whose every fifth record a
reviewer answered: the run reads the records nobody reviewed, then the reviewed ones."""

from __future__ import annotations

import json
import logging

import pytest

from tests.integration.annotator import submit_label
from tests.integration.sdk import create_with_sdk, stored_records
from tests.tiny_models import save_tiny_classifier
from tests.training_data import LABELS, sentiment_examples
from worker.config import load_settings
from worker.full_pass import REVIEWED, UNREVIEWED
from worker.jobs import Services, score_job
from worker.plugins import hookimpl
from worker.runner import Runner
from worker.training.register import register_model
from worker.work_queue import JobKind

COUNT = 90
BATCH = 8
REVIEWED_COUNT = COUNT // 5  # the unreviewed records come first: 72 of them, 9 batches


@pytest.fixture
def services(local_argilla, stack_settings, dataset_name, tmp_path, monkeypatch) -> Services:
    import argilla as rg

    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    dataset = create_with_sdk(stack_settings, dataset_name, lambda: rg.Settings(
        fields=[rg.TextField(name="review")], questions=[rg.LabelQuestion(name="sentiment", labels=list(LABELS))]))
    examples = sentiment_examples(COUNT)
    dataset.records.log([rg.Record(id=e.id, fields={"review": e.text}) for e in examples])
    settings = load_settings(
        argilla={"api_url": stack_settings.api_url, "dataset": dataset_name, "workspace": stack_settings.workspace},
        scoring={"samples": 2, "device": "cpu", "push_batch": BATCH},
        registry={"path": str(tmp_path / "registry")}, state_dir=str(tmp_path / "state"),
        webhooks={"enabled": False}, http={"port": 0})
    services = Services(settings)
    server_ids = {record.record_id: record.server_id for record in services.gateway.pull()}
    for example in examples[::5]:
        submit_label(stack_settings, server_ids[example.id], example.label, question="sentiment")
    register_model(str(save_tiny_classifier(tmp_path / "model")), services.registry, services.labels())
    return services


def _versions(services: Services, stack_settings) -> dict[str, str | None]:
    """external id → the model version the server holds in the record's metadata (read past the worker's code)."""
    stored = stored_records(stack_settings, services.gateway.dataset_id())
    return {record_id: (item.get("metadata") or {}).get("model_version") for record_id, item in stored.items()}


def _pause_at(batch: int):
    asked = 0

    def pause() -> bool:
        nonlocal asked
        asked += 1
        return asked == batch

    return pause


@pytest.mark.parametrize(("paused_at", "phase"), [(3, UNREVIEWED), (10, REVIEWED)])
def test_a_paused_full_run_goes_on_after_the_last_record_it_pushed_and_every_record_is_scored_once(
        services, stack_settings, paused_at, phase):
    key = services.gateway.dataset_key
    first = score_job(services, full=True, pause=_pause_at(paused_at))
    done = paused_at * BATCH
    assert first.paused and first.stopped and first.scored == first.pushed == done, first.summary()
    assert "paused for more urgent work" in first.summary()
    checkpoint = services.full_passes.get(key)
    assert checkpoint is not None and (checkpoint.version, checkpoint.phase, checkpoint.runs) == ("v0001", phase, 1)
    assert checkpoint.read == first.considered >= done  # (the scorer reads ahead of what is pushed)
    assert sum(v == "v0001" for v in _versions(services, stack_settings).values()) == done
    assert services.sync_state.scored_with(key) is None  # not complete: no incremental run may take it as done

    second = score_job(services)  # the next scheduled run: the records are not all scored with v0001 yet
    assert not second.stopped and second.resumed_after == first.considered
    assert second.considered == second.scored == COUNT - done  # only the records after the checkpoint were read
    assert f"a full run going on after the {first.considered} records its earlier runs read" in second.summary()
    assert set(_versions(services, stack_settings).values()) == {"v0001"}
    assert services.full_passes.get(key) is None and services.sync_state.scored_with(key) == "v0001"
    assert services.view_quantiles.get(key).count == COUNT  # the values of both runs, each record once

    third = score_job(services, full=True)  # complete: the next full run starts at the first record again
    assert (third.resumed_after, third.considered, third.up_to_date, third.scored) == (0, COUNT, COUNT, 0)

    first_unreviewed = next(r for r in services.gateway.pull() if not r.responses)
    submit_label(stack_settings, first_unreviewed.server_id, "positive", question="sentiment")
    incremental = score_job(services, pause=lambda: True)  # not paused: its next run would read it all again
    assert not incremental.paused and (incremental.considered, incremental.scored) == (1, 1), incremental.summary()


def test_a_checkpoint_of_another_model_is_dropped_and_every_record_is_read(services, stack_settings, tmp_path,
                                                                           caplog):
    assert score_job(services, full=True, pause=_pause_at(2)).paused
    other = register_model(str(save_tiny_classifier(tmp_path / "other", seed=1)), services.registry,
                           services.labels())
    services.registry.promote(other.version)

    with caplog.at_level(logging.INFO, logger="worker.jobs"):
        report = score_job(services, full=True)
    assert "a full score run with v0001 stopped part way; the records are now scored with v0002: every record is " \
           "read again" in caplog.text
    assert (report.resumed_after, report.considered, report.scored) == (0, COUNT, COUNT)
    assert set(_versions(services, stack_settings).values()) == {"v0002"}


def test_the_runner_pauses_a_full_run_for_answered_records_and_then_finishes_it(services, stack_settings,
                                                                                 monkeypatch, caplog):
    """The records a webhook names (two the full run has not reached: the last ones in its order) are rescored
    while it is part way — not after it, hours later at 10^6 records; it then goes on, finds them up to date, and
    every record is scored once."""
    monkeypatch.setattr("worker.runner.PAUSE_AFTER_S", 0.0)
    monkeypatch.setattr("worker.runner.PROGRESS_SAVE_S", 0.0)
    runner = Runner(services.settings, services)
    unreviewed = [r for r in services.gateway.pull() if not r.responses]
    answered_meanwhile = [r.server_id for r in unreviewed[-2:]]
    scored: list[str] = []
    status_file = services.settings.state_dir / "status.json"
    shown: list[dict] = []  # what `status` showed of the job under way, batch after batch

    class Webhook:  # an annotator's answers arrive as the first batch is pushed
        @hookimpl
        def on_records_scored(self, model_version, scores):
            if not scored:
                runner.queue.put(JobKind.RESCORE, answered_meanwhile)
            scored.extend(score.record_id for score in scores)
            shown.append(json.loads(status_file.read_text())["running"])

    services.plugins.register(Webhook(), name="webhook-stand-in")
    with caplog.at_level(logging.INFO):
        assert runner.work(burst=True) == 0

    assert sorted(scored) == sorted({r.record_id for r in services.gateway.pull()})  # each record once
    rescored = {r.record_id for r in unreviewed[-2:]}
    assert max(scored.index(record_id) for record_id in rescored) < COUNT - REVIEWED_COUNT - 2  # before the run
    # reached them
    assert "more urgent work is waiting: this score run stops after the current batch; the next full run goes on " \
           "from there" in caplog.text
    full_summary = runner.status.jobs["score"]["summary"]  # the first run on the dataset: it reads every record
    assert "complete (a full run going on after the " in full_summary, full_summary
    assert runner.status.jobs["rescore"]["summary"].startswith("scoring with v0001 complete: 2 records considered")
    assert set(_versions(services, stack_settings).values()) == {"v0001"}
    assert {entry["job"] for entry in shown} == {"score", "rescore"}
    assert "8 scored, 8 pushed" in shown[1]["progress"], shown  # the first batch, saved once it was pushed
    assert any("a full run going on after the " in entry["progress"] for entry in shown if entry["job"] == "score")
    assert json.loads(status_file.read_text())["running"] == {}  # nothing under way once the loop returned
