"""The README's main command on a small sample: real offline data into the real local Argilla."""

from __future__ import annotations

import argilla as rg

from worker.demo import run_demo
from worker.gateway.schema import LABEL_QUESTION


def test_demo_logs_snippets_with_a_seeded_fraction_of_flipped_labels(local_argilla, stack_settings, dataset_name):
    summary = run_demo(stack_settings, records=60, flip_fraction=0.1, seed=3, dataset_name=dataset_name,
                       score=False)

    assert (summary.records, summary.flipped) == (60, 6)
    assert summary.flipped_in_top is None

    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    records = list(client.datasets(name=dataset_name, workspace=stack_settings.workspace).records(
        with_suggestions=True))
    assert len(records) == 60
    assert {record.metadata["original_label"] for record in records} == {"negative", "positive"}
    assert all(record.suggestions[LABEL_QUESTION].value == record.metadata["original_label"] for record in records)


def test_demo_scores_with_the_offline_minilm_and_pushes_sortable_metadata(local_argilla, stack_settings, dataset_name):
    summary = run_demo(stack_settings, records=80, flip_fraction=0.1, seed=4, dataset_name=dataset_name,
                       mc_samples=4)

    assert summary.pushed == 80
    assert 0 <= summary.flipped_in_top <= 8
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    records = list(client.datasets(name=dataset_name, workspace=stack_settings.workspace).records(
        with_suggestions=True, with_responses=True))
    assert len(records) == 80
    for record in records:
        assert record.suggestions[LABEL_QUESTION].agent == summary.model_version
        assert record.metadata["loss"] >= 0 and record.metadata["model_version"] == summary.model_version
        assert record.metadata["original_label"] in ("negative", "positive")
        assert len(record.responses) == 0
