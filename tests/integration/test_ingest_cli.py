"""`argilla-worker ingest` from a real file into the real local Argilla, twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import argilla as rg


def test_ingest_reports_bad_rows_and_a_second_run_updates_instead_of_duplicating(
        local_argilla, stack_settings, dataset_name, tmp_path):
    data = tmp_path / "reviews.jsonl"
    rows = [{"text": "a moving film", "label": "positive"}, {"text": "", "label": "negative"},
            {"text": "dull", "label": "negative"}, {"text": "odd", "label": "neutral"}]
    data.write_text("\n".join(json.dumps(row) for row in rows))
    env = {**os.environ, "ARGILLA_API_KEY": stack_settings.api_key.get_secret_value()}
    command = [sys.executable, "-m", "worker", "ingest", str(data), "--dataset", dataset_name, "--label-column",
               "label", "--labels", "negative,positive", "--api-url", stack_settings.api_url]

    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)

    assert first.returncode == 2, first.stderr  # bad rows were skipped
    assert "2 of 4 rows ingested, 2 skipped" in first.stdout
    assert "row 2: text column 'text' is empty" in first.stdout
    assert "row 4: label 'neutral' is not one of ['negative', 'positive']" in first.stdout
    assert "Argilla: 2 records created, 0 updated, 0 unchanged, 0 not written" in first.stdout
    assert second.stdout == first.stdout.replace("2 records created, 0 updated, 0 unchanged",
                                                 "0 records created, 0 updated, 2 unchanged")
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    records = list(client.datasets(name=dataset_name, workspace=stack_settings.workspace).records(
        with_responses=True))
    assert sorted(record.fields["text"] for record in records) == ["a moving film", "dull"]
    assert all(len(record.responses) == 0 for record in records)


def test_bad_files_are_one_line_errors_and_undecodable_lines_are_skipped(local_argilla, stack_settings, dataset_name,
                                                                        tmp_path):
    env = {**os.environ, "ARGILLA_API_KEY": stack_settings.api_key.get_secret_value()}

    def ingest(path):
        return subprocess.run([sys.executable, "-m", "worker", "ingest", str(path), "--dataset", dataset_name,
                               "--label-column", "label", "--labels", "negative,positive", "--api-url",
                               stack_settings.api_url], capture_output=True, text=True, env=env, timeout=300)

    for name, content in (("empty.csv", b""), ("header.csv", b"text,label\n"), ("binary.csv", bytes(range(256)) * 4)):
        (tmp_path / name).write_bytes(content)
        result = ingest(tmp_path / name)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith(f"error: input file {tmp_path / name}")

    mixed = tmp_path / "mixed.csv"
    mixed.write_bytes(b"text,label\ngood one,positive\nbad \xff\xfe row,negative\nanother good,negative\n")
    result = ingest(mixed)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "2 of 2 rows ingested, 1 skipped" in result.stdout and "line 3: not valid UTF-8" in result.stdout
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    records = list(client.datasets(name=dataset_name, workspace=stack_settings.workspace).records())
    assert sorted(record.fields["text"] for record in records) == ["another good", "good one"]


def test_a_column_of_label_lists_makes_a_multi_label_dataset_the_worker_binds_to(local_argilla, stack_settings,
                                                                                 dataset_name, tmp_path):
    from worker.gateway import ArgillaGateway

    data = tmp_path / "tags.jsonl"
    rows = [{"id": "r1", "text": "funny and moving", "tags": ["praise", "humour"]},
            {"id": "r2", "text": "slow middle", "tags": ["pacing"]},
            {"id": "r3", "text": "nothing ticked", "tags": []},
            {"id": "r4", "text": "a typo", "tags": ["humor", "praise"]}]
    data.write_text("\n".join(json.dumps(row) for row in rows))
    env = {**os.environ, "ARGILLA_API_KEY": stack_settings.api_key.get_secret_value()}

    def ingest(path, *options):
        return subprocess.run([sys.executable, "-m", "worker", "ingest", str(path), "--dataset", dataset_name,
                               "--label-column", "tags", "--id-column", "id", "--api-url", stack_settings.api_url,
                               *options], capture_output=True, text=True, env=env, timeout=300)

    result = ingest(data, "--labels", "humour,pacing,praise")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "2 of 4 rows ingested, 2 skipped" in result.stdout
    assert "row 3: label set [] is empty" in result.stdout
    assert "row 4: label set ['humor', 'praise']: ['humor'] not in ['humour', 'pacing', 'praise']" in result.stdout

    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    dataset = client.datasets(name=dataset_name, workspace=stack_settings.workspace)
    question = dataset.settings.questions[0]
    assert isinstance(question, rg.MultiLabelQuestion) and sorted(question.labels) == ["humour", "pacing", "praise"]
    records = {record.id: record for record in dataset.records(with_suggestions=True, with_responses=True)}
    assert sorted(records) == ["r1", "r2"] and all(len(r.responses) == 0 for r in records.values())
    assert records["r1"].suggestions[question.name].value == ["humour", "praise"]
    assert records["r1"].suggestions[question.name].agent == "original"
    assert records["r1"].metadata["original_label"] == ["humour", "praise"]

    gateway = ArgillaGateway(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value(),
                             dataset_name=dataset_name, workspace=stack_settings.workspace)
    assert gateway.binding.multi_label
    assert {r.record_id: r.reference for r in gateway.pull()} == {"r1": ("humour", "praise"), "r2": ("pacing",)}

    single = tmp_path / "single.csv"
    single.write_text("id,text,tags\nr9,a single label,praise\n")
    refused = ingest(single)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "is a multi-label question (label sets), but the input has one label per record" in refused.stderr
    separated = tmp_path / "separated.csv"
    separated.write_text("id,text,tags\nr5,great fun,humour|praise\n")
    added = ingest(separated, "--label-separator", "|")
    assert added.returncode == 0 and "1 of 1 rows ingested" in added.stdout, added.stderr
    assert {r.record_id: r.reference for r in gateway.pull()}["r5"] == ("humour", "praise")
