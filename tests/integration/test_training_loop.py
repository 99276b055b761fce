"""Retraining from corrections read from the real local Argilla, registering and gating, then scoring
with the registered model (tiny real BERT; the data is small so this runs in seconds)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from tests.integration.annotator import raw_responses, submit_label
from tests.tiny_models import CORPUS, save_tiny_classifier
from tests.training_data import LABELS, sentiment_examples
from worker.config import load_settings
from worker.demo_data import LabelledText
from worker.errors import DataError, NothingNewError
from worker.jobs import Services, score_job, train_job

FLIPPED = {"e1", "e2", "e5"}  # ingested with the wrong label; annotators fix them


@pytest.fixture
def services(local_argilla, stack_settings, dataset_name, tmp_path, monkeypatch):
    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    base = save_tiny_classifier(tmp_path / "base")
    settings = load_settings(
        argilla={"api_url": stack_settings.api_url, "dataset": dataset_name, "workspace": stack_settings.workspace},
        training={"base_model": str(base), "epochs": 15, "patience": 15, "batch_size": 4, "learning_rate": 3e-3,
                  "max_length": 32, "device": "cpu", "min_annotated": 16},
        scoring={"samples": 4, "device": "cpu", "push_batch": 10},
        registry={"path": str(tmp_path / "registry")},
        state_dir=str(tmp_path / "state"),
        plugin_modules=["tests.worker_plugins.recorder"],
        plugins={"tests.worker_plugins.recorder": {"events_file": str(tmp_path / "events.jsonl")}},
    )
    services = Services(settings)
    services.gateway.ensure_dataset(LABELS)
    examples = sentiment_examples(40)
    services.gateway.log_labelled_texts(
        LabelledText(e.id, e.text, _flip(e.label) if e.id in FLIPPED else e.label) for e in examples)
    return services


def _flip(label: str) -> str:
    return LABELS[1 - LABELS.index(label)]


def test_without_labels_nothing_is_trained(services):
    argilla = services.settings.argilla.model_copy(update={"reference": "none"})  # their labels are not used
    unlabelled = Services(services.settings.model_copy(update={"argilla": argilla}))
    with pytest.raises(DataError,
                       match="only 0 records carry a label.*`argilla-worker cold-start` ranks a first batch"):
        train_job(unlabelled)
    assert unlabelled.registry.versions() == []


def test_a_first_model_trains_on_the_labels_the_records_carry(services):
    """No annotation at all: the ingested (noisy) labels train v0001; validation is a split of them."""
    outcome = train_job(services)

    assert outcome.promoted and outcome.model.version == "v0001"
    counts = outcome.model.metrics["training"]
    assert counts["annotated"] == 0 and counts["train"] + counts["validation"] == 40
    assert counts["validation_reviewed"] == 0  # validated on the records' own labels: agreement (the card says so)


def test_once_a_model_exists_too_few_corrections_train_nothing(services):
    train_job(services)  # the first model, from the ingested labels
    with pytest.raises(DataError, match="only 0 records have a consensus label"):
        train_job(services)
    assert [v.version for v in services.registry.versions()] == ["v0001"]


def _sentence(record_id: str) -> int:
    """Which of the corpus sentences the record ``e<index>`` of :func:`sentiment_examples` carries."""
    return int(record_id.removeprefix("e")) % len(CORPUS)


def test_corrections_from_argilla_train_a_registered_model_that_then_scores(services, stack_settings, caplog,
                                                                            monkeypatch):
    # the stability check below retrains on the first model's own split and expects the same predictions: the first
    # model is not trained again on its validation records here (that is tests/unit/test_gate_comparison.py's)
    monkeypatch.setattr(services.settings.training, "refit", False)
    caplog.set_level(logging.INFO, logger="worker.jobs")
    pulled = {r.record_id: r for r in services.gateway.pull()}
    truth = {e.id: e.label for e in sentiment_examples(40)}
    annotated = sorted(pulled)[:24]
    for record_id in annotated:
        submit_label(stack_settings, pulled[record_id].server_id, truth[record_id])
    responses_before = raw_responses(stack_settings, services.gateway.dataset_id())

    outcome = train_job(services)

    assert outcome.promoted and services.registry.current().version == outcome.model.version == "v0001"
    validation_lines = (outcome.model.path / "validation.jsonl").read_text().splitlines()
    validation_ids = {json.loads(line)["id"] for line in validation_lines}
    assert validation_ids and validation_ids <= set(annotated)  # validated on annotated records only
    # a first model: the 24 annotations and the 16 others' own labels, less those whose text is a near copy of a
    # validated one (the examples are 8 sentences with other endings: copies.similarity 0.6 finds them)
    validated = {_sentence(record_id) for record_id in validation_ids}
    kept = [record_id for record_id in set(pulled) - set(annotated) if _sentence(record_id) not in validated]
    training = outcome.model.metrics["training"]
    assert 0 < len(kept) < 16 and (training["annotated"], training["original"]) == (24, len(kept))
    assert training["validation_reviewed"] == training["validation"] == len(validation_ids)
    assert (outcome.model.path / "model.safetensors").exists()
    event_lines = (services.settings.state_dir.parent / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in event_lines]
    assert events == [["promoted", "v0001", outcome.model.metrics["validation"]["macro_f1"]]]  # on_model_promoted

    report = score_job(services, full=True)

    assert report.scored == 40 and report.pushed == 40 and report.failed == 0
    shares = report.time_shares()  # where the run waited: reading + tokenizing records, the model, pushes
    assert set(shares) == {"setup", "records", "model", "push"} and shares["model"] > 0 and shares["records"] > 0
    assert sum(shares.values()) <= 1 and f"for the model {shares['model']:.0%}" in report.summary()
    after = {r.record_id: r for r in services.gateway.pull()}
    assert all(r.metadata["model_version"] == "v0001" for r in after.values())
    # it learned what it trained on (its validation figure is no test: those are sentences it never saw)
    trained = set(annotated) - validation_ids
    right = sum(after[record_id].metadata["predicted_label"] == truth[record_id] for record_id in trained)
    assert right >= 0.8 * len(trained), (right, len(trained))
    for record_id, record in after.items():  # scoring.suggestion = auto: the label under review until reviewed
        if record_id in annotated:
            assert record.suggestion.agent == "v0001" and record.suggestion.value == record.metadata["predicted_label"]
        else:
            assert (record.suggestion.agent, record.suggestion.value) == ("original", record.metadata["original_label"])
    for record_id in FLIPPED & set(annotated):  # loss is measured against the correction, not the original
        assert after[record_id].metadata["reference_label"] == truth[record_id]
        assert after[record_id].metadata["original_label"] == _flip(truth[record_id])
    assert raw_responses(stack_settings, services.gateway.dataset_id()) == responses_before

    again = score_job(services, full=True)
    assert again.scored == 0 and again.up_to_date == 40, "an up-to-date record was scored twice"

    listing = subprocess.run([sys.executable, "-m", "worker", "models", "list"], capture_output=True, text=True,
                             check=False, timeout=120,
                             env={**_env(), "ARGILLA_WORKER_REGISTRY__PATH": str(services.registry.root)})
    assert listing.returncode == 0, listing.stderr
    assert "v0001" in listing.stdout and "current" in listing.stdout

    stability = outcome.model.metrics["stability"]  # the first model: its stop-set predictions, nothing to compare
    assert (stability["kappa"], stability["records"], stability["stop_signal"]) == (None, 16, False)
    assert ("prediction stability: v0001's labels for 16 unreviewed records kept; the next model promoted is compared "
            "with them") in caplog.text
    # the same labels as the first model had (annotations + the records' own; training.data = "auto" keeps them)
    # and another gate tolerance (which the model does not depend on: not a repeat): the same model, its
    # predictions do not move
    services.settings.training.gate_tolerance += 0.01
    second = train_job(services)
    assert second.model.metrics["training"]["data"] == "annotated+original"
    assert second.promoted, second.decision.reason
    stability = second.model.metrics["stability"]
    assert (stability["versus"], stability["records"], stability["kappa"]) == ("v0001", 16, 1.0)
    assert stability["history"] == [1.0] and stability["stop_signal"] is False  # one promotion < the window of 3
    assert "prediction stability of v0002 vs v0001 on 16 records: κ 1.0000" in caplog.text

    # annotations only: the training reads the 24 records with a response, not the dataset
    services.settings.training.data = "annotated"
    with caplog.at_level(logging.INFO, logger="worker.jobs"):
        third = train_job(services)
    training = third.model.metrics["training"]
    assert (training["annotated"], training["original"]) == (24, 0)
    assert "training read the 24 records with a response only" in caplog.text

    # no review since, the same settings: another training would repeat the third; nothing is trained
    versions = [v.version for v in services.registry.versions()]
    with pytest.raises(NothingNewError, match=f"nothing new to train on: {third.model.version} was trained from "
                                              f"this very training set \\({training['fingerprint']}: 24 annotated"):
        train_job(services)
    assert [v.version for v in services.registry.versions()] == versions


def _env():
    import os

    return dict(os.environ)
