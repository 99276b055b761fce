"""The README's main command on a small sample: real offline data into the real local Argilla,
the offline MiniLM, the scripted review, retraining, gating, publishing."""

from __future__ import annotations

import argilla as rg
import datasets

QUESTION = "label"  # the question a dataset created by the demo has

from worker.demo import run_demo


def test_demo_logs_snippets_with_a_seeded_fraction_of_flipped_labels(local_argilla, stack_settings, dataset_name,
                                                                      tmp_path):
    summary = run_demo(stack_settings, records=60, flip_fraction=0.1, seed=3, dataset_name=dataset_name,
                       score=False, work_dir=tmp_path)

    assert (summary.records, summary.flipped) == (60, 6)
    assert summary.flipped_in_top is None

    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    records = list(client.datasets(name=dataset_name, workspace=stack_settings.workspace).records(
        with_suggestions=True))
    assert len(records) == 60
    assert {record.metadata["original_label"] for record in records} == {"negative", "positive"}
    assert all(record.suggestions[QUESTION].value == record.metadata["original_label"] for record in records)


def test_demo_runs_the_loop_score_review_retrain_gate_publish(local_argilla, stack_settings, dataset_name,
                                                               tmp_path):
    summary = run_demo(stack_settings, records=80, flip_fraction=0.1, seed=4, dataset_name=dataset_name,
                       mc_samples=4, corrections=30, epochs=1, min_steps=6, work_dir=tmp_path)  # 2 epochs, not 34

    assert summary.pushed == 80 and summary.model_version == "v0001"
    assert 0 <= summary.flipped_in_top <= 8
    assert summary.corrections_submitted == 30 and summary.retrained_version == "v0002"
    assert summary.promoted is not None and summary.gate_reason
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    records = list(client.datasets(name=dataset_name, workspace=stack_settings.workspace).records(
        with_suggestions=True, with_responses=True))
    assert len(records) == 80
    current = "v0002" if summary.promoted else "v0001"
    for record in records:
        suggestion, reviewed = record.suggestions[QUESTION], bool(record.responses)
        assert suggestion.agent == (current if reviewed else "original")  # scoring.suggestion = auto
        if not reviewed:
            assert suggestion.value == record.metadata["original_label"]
        assert record.metadata["loss"] >= 0 and record.metadata["model_version"] == current
    assert sum(len(record.responses) for record in records) == 30  # only the scripted annotator's answers
    published = datasets.load_dataset(str(tmp_path / "published"), cache_dir=str(tmp_path / "hf-cache"))
    assert published["train"].num_rows + published["test"].num_rows == 80
    assert sum(published["train"]["reviewed"]) + sum(published["test"]["reviewed"]) == 30
