"""`argilla-worker ingest` from a real file into the real local Argilla, twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import argilla as rg
import httpx


def test_ingest_reports_bad_rows_and_a_second_run_updates_instead_of_duplicating(
        local_argilla, stack_settings, dataset_name, tmp_path):
    data = tmp_path / "reviews.jsonl"
    rows = [{"text": "a moving film", "label": "positive"}, {"text": "", "label": "negative"},
            {"text": "dull", "label": "negative"}, {"text": "odd", "label": "neutral"},
            {"text": "not labelled yet", "label": None}]  # a record to annotate, not a bad row
    data.write_text("\n".join(json.dumps(row) for row in rows))
    env = {**os.environ, "ARGILLA_API_KEY": stack_settings.api_key.get_secret_value()}
    command = [sys.executable, "-m", "worker", "ingest", str(data), "--dataset", dataset_name, "--label-column",
               "label", "--labels", "negative,positive", "--api-url", stack_settings.api_url]

    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)

    assert first.returncode == 2, first.stderr  # bad rows were skipped
    assert "3 of 5 rows ingested (1 without a label, ingested to be annotated), 2 skipped" in first.stdout
    assert "row 2: text column 'text' is empty" in first.stdout
    assert "row 4: label 'neutral' is not one of ['negative', 'positive']" in first.stdout
    assert "Argilla: 3 records created, 0 updated, 0 unchanged, 0 not written" in first.stdout
    assert second.stdout == first.stdout.replace("3 records created, 0 updated, 0 unchanged",
                                                 "0 records created, 0 updated, 3 unchanged")
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    records = list(client.datasets(name=dataset_name, workspace=stack_settings.workspace).records(
        with_responses=True, with_suggestions=True))
    assert sorted(record.fields["text"] for record in records) == ["a moving film", "dull", "not labelled yet"]
    assert all(len(record.responses) == 0 for record in records)
    unlabelled = next(record for record in records if record.fields["text"] == "not labelled yet")
    assert len(unlabelled.suggestions) == 0 and "original_label" not in (unlabelled.metadata or {})


def test_bad_files_are_one_line_errors_and_undecodable_lines_are_skipped(local_argilla, stack_settings, dataset_name,
                                                                        tmp_path):
    env = {**os.environ, "ARGILLA_API_KEY": stack_settings.api_key.get_secret_value()}

    def ingest(path):
        return subprocess.run([sys.executable, "-m", "worker", "ingest", str(path), "--dataset", dataset_name,
                               "--label-column", "label", "--labels", "negative,positive", "--api-url",
                               stack_settings.api_url], capture_output=True, text=True, env=env, timeout=300,
                              check=False)

    for name, content in (("empty.csv", b""), ("header.csv", b"text,label\n"), ("binary.csv", bytes(range(256)) * 4)):
        (tmp_path / name).write_bytes(content)
        result = ingest(tmp_path / name)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith(f"error: input file {tmp_path / name}")

    mixed = tmp_path / "mixed.csv"
    mixed.write_bytes(b"text,label\ngood one,positive\nbad \xff\xfe row,negative\nanother good,negative\n")
    result = ingest(mixed)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "2 of 2 rows ingested, 0 skipped; 1 line(s) of the file skipped" in result.stdout
    assert "line 3: not valid UTF-8" in result.stdout
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    records = list(client.datasets(name=dataset_name, workspace=stack_settings.workspace).records())
    assert sorted(record.fields["text"] for record in records) == ["another good", "good one"]


def test_a_label_set_argilla_would_refuse_is_one_line_and_creates_nothing(local_argilla, stack_settings, dataset_name,
                                                                          tmp_path):
    """One label in the data (no --labels), or one given twice: the SDK raised its SettingsError as a traceback after
    starting to create the dataset; now one line naming the labels, and no dataset on the server. A text column
    that is not in the input (a typo) was found only after the dataset had been created, empty."""
    env = {**os.environ, "ARGILLA_API_KEY": stack_settings.api_key.get_secret_value()}
    data = tmp_path / "one-label.tsv"
    data.write_text("text\tlabel\nonly positives here\tpositive\nanother one\tpositive\n")
    for extra, said in (([], "labels ['positive'] for a new dataset's question: a label question needs at least 2"),
                        (["--labels", "positive,positive"], "'positive' repeated"),
                        (["--labels", "positive,negative", "--text-column", "review"],
                         "--text-column 'review': not a column of the input; its columns are ['text', 'label']"),
                        (["--labels", "positive,negative", "--id-column", "ticket", "--split-column", "fold"],
                         ("--id-column 'ticket', --split-column 'fold': not a column of the input; its columns "
                          "are ['text', 'label']"))):
        result = subprocess.run([sys.executable, "-m", "worker", "ingest", str(data), "--dataset", dataset_name,
                                 "--label-column", "label", *extra, "--api-url", stack_settings.api_url],
                                capture_output=True, text=True, env=env, timeout=300, check=False)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and said in last, last
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    assert client.datasets(name=dataset_name, workspace=stack_settings.workspace) is None


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
                               *options], capture_output=True, text=True, env=env, timeout=300, check=False)

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


def test_metadata_columns_become_properties_annotators_can_filter_on(local_argilla, stack_settings, dataset_name,
                                                                     tmp_path):
    """A csv's extra columns as the team's own metadata: created as integer / float / terms properties, filterable
    through the search endpoint the UI uses; a worker name is refused in one line, and a later file that adds a
    value merges it into the record without losing the others."""
    data = tmp_path / "reviews.csv"
    data.write_text("id,text,label,stars,price,source\n"
                    "r1,a moving film,positive,5,9.5,imdb\n"
                    "r2,dull,negative,1,,rotten\n"
                    "r3,fine enough,positive,3,4.0,\n")
    env = {**os.environ, "ARGILLA_API_KEY": stack_settings.api_key.get_secret_value()}
    base = [sys.executable, "-m", "worker", "ingest", str(data), "--dataset", dataset_name, "--id-column", "id",
            "--label-column", "label", "--labels", "negative,positive", "--api-url", stack_settings.api_url]

    refused = subprocess.run([*base, "--metadata-column", "stars=loss"], capture_output=True, text=True, env=env,
                             timeout=300, check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "metadata ['loss'] would be the worker's own property" in refused.stderr.strip().splitlines()[-1]

    result = subprocess.run([*base, "--metadata-column", "stars", "--metadata-column", "price=unit_price",
                             "--metadata-column", "source"], capture_output=True, text=True, env=env, timeout=300,
                            check=False)
    assert result.returncode == 0 and "Argilla: 3 records created" in result.stdout, result.stderr
    assert "not ingested" not in result.stdout  # every column was named

    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    dataset = client.datasets(name=dataset_name, workspace=stack_settings.workspace)
    kinds = {prop.name: type(prop).__name__ for prop in dataset.settings.metadata}
    assert {name: kinds[name] for name in ("stars", "unit_price", "source")} == {
        "stars": "IntegerMetadataProperty", "unit_price": "FloatMetadataProperty", "source": "TermsMetadataProperty"}
    records = {record.id: record for record in dataset.records()}
    assert records["r2"].metadata == {"stars": 1, "source": "rotten", "original_label": "negative",
                                      "original_agent": "original"}  # no price: the cell was empty
    assert records["r3"].metadata["unit_price"] == 4.0 and "source" not in records["r3"].metadata

    found = httpx.post(f"{stack_settings.api_url}/api/v1/datasets/{dataset.id}/records/search",
                       headers={"X-Argilla-Api-Key": stack_settings.api_key.get_secret_value()},
                       json={"filters": {"and": [{"type": "range", "scope": {"entity": "metadata",
                                                                            "metadata_property": "stars"},
                                                  "ge": 3}]}})
    found.raise_for_status()
    assert sorted(item["record"]["external_id"] for item in found.json()["items"]) == ["r1", "r3"]

    later = tmp_path / "later.csv"
    later.write_text("id,text,source\nr3,fine enough,letterboxd\n")
    added = subprocess.run([sys.executable, "-m", "worker", "ingest", str(later), "--dataset", dataset_name,
                            "--id-column", "id", "--metadata-column", "source", "--api-url", stack_settings.api_url],
                           capture_output=True, text=True, env=env, timeout=300, check=False)
    assert added.returncode == 0 and "0 records created, 1 updated" in added.stdout, added.stderr
    (r3,) = [record for record in dataset.records() if record.id == "r3"]
    assert r3.metadata == {"stars": 3, "unit_price": 4.0, "source": "letterboxd", "original_label": "positive",
                           "original_agent": "original"}

    relabelled = tmp_path / "relabelled.csv"  # a label column the command does not name: said, not applied
    relabelled.write_text("id,text,label\nr3,fine enough,negative\n")
    unnamed = subprocess.run([sys.executable, "-m", "worker", "ingest", str(relabelled), "--dataset", dataset_name,
                              "--id-column", "id", "--api-url", stack_settings.api_url],
                             capture_output=True, text=True, env=env, timeout=300, check=False)
    assert unnamed.returncode == 0 and "column(s) not ingested: label" in unnamed.stdout, unnamed.stderr
    assert "add --label-column label" in unnamed.stdout
    (r3,) = [record for record in dataset.records() if record.id == "r3"]
    assert r3.metadata["original_label"] == "positive"


def test_a_value_the_users_property_does_not_allow_is_listed_by_record_and_the_rest_land(
        local_argilla, stack_settings, dataset_name, tmp_path):
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, client=client, settings=rg.Settings(
        fields=[rg.TextField(name="text")], questions=[rg.LabelQuestion(name="label", labels={"a": "Apple 🍎",
                                                                                             "b": "b"})],
        metadata=[rg.TermsMetadataProperty(name="team", options=["north", "south"])])).create()
    data = tmp_path / "teams.csv"  # r3's label as annotators see it in the UI: its title
    data.write_text("id,text,label,team\nr1,one,a,north\nr2,two,b,east\nr3,three,Apple 🍎,south\n")
    env = {**os.environ, "ARGILLA_API_KEY": stack_settings.api_key.get_secret_value()}

    result = subprocess.run([sys.executable, "-m", "worker", "ingest", str(data), "--dataset", dataset_name,
                             "--workspace", stack_settings.workspace, "--id-column", "id", "--label-column", "label",
                             "--metadata-column", "team", "--api-url", stack_settings.api_url],
                            capture_output=True, text=True, env=env, timeout=300, check=False)

    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "Argilla: 2 records created, 0 updated, 0 unchanged, 1 not written" in result.stdout
    assert ("record r2: Argilla refused it (422): metadata is not valid: 'team' metadata property validation failed "
            "because 'east' is not an allowed term.") in result.stdout
    records = client.datasets(name=dataset_name, workspace=stack_settings.workspace).records()
    assert sorted((record.id, record.metadata["team"], record.metadata["original_label"]) for record in records) == [
        ("r1", "north", "a"), ("r3", "south", "a")]


def test_a_file_of_label_numbers_into_their_dataset_is_read_through_the_label_map_the_summary_writes(
        local_argilla, stack_settings, dataset_name, tmp_path):
    """Their question says negative / positive, their export says 0 / 1: the first ingest skips every row and writes
    the `--label-map` to fill in; with it, every record lands with its label; a map to a label the question does not
    have is one line, before anything is written."""
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, client=client, settings=rg.Settings(
        fields=[rg.TextField(name="text")],
        questions=[rg.LabelQuestion(name="label", labels=["negative", "positive"])])).create()
    data = tmp_path / "export.csv"
    data.write_text("text,label\na moving film,1\ndull and long,0\nsuperb,1\n")
    env = {**os.environ, "ARGILLA_API_KEY": stack_settings.api_key.get_secret_value()}

    def ingest(*extra):
        return subprocess.run([sys.executable, "-m", "worker", "ingest", str(data), "--dataset", dataset_name,
                               "--label-column", "label", "--api-url", stack_settings.api_url, *extra],
                              capture_output=True, text=True, env=env, timeout=300, check=False)

    unread = ingest()
    assert unread.returncode == 2 and "0 of 3 rows ingested, 3 skipped" in unread.stdout, unread.stdout + unread.stderr
    assert ("labels that are none of the question's ['negative', 'positive']: '1' (2), '0' (1) — where they stand "
            "for its labels, `--label-map 1=LABEL,0=LABEL` reads them as those") in unread.stdout
    wrong = ingest("--label-map", "0=negative,1=neutral")
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert "--label-map': maps to ['neutral'], which are not the question's labels ['negative', 'positive']" \
        in wrong.stderr, wrong.stderr
    mapped = ingest("--label-map", "0=negative,1=positive")
    assert mapped.returncode == 0, mapped.stdout + mapped.stderr
    assert "3 of 3 rows ingested, 0 skipped" in mapped.stdout
    records = list(client.datasets(name=dataset_name, workspace=stack_settings.workspace).records())
    assert sorted((record.fields["text"], record.metadata["original_label"]) for record in records) == [
        ("a moving film", "positive"), ("dull and long", "negative"), ("superb", "positive")]


def test_ingesting_again_with_the_other_keying_is_refused_before_anything_is_written(
        local_argilla, stack_settings, dataset_name, tmp_path):
    """A file with an id column ingested with --id-column, then without (or the other way round into another
    dataset): every record would be written again under a new id. Refused in one line naming a row and its
    record, nothing written; the same keying as before updates as ever."""
    data = tmp_path / "tickets.csv"
    data.write_text("id,text,label\nt1,my invoice is wrong,billing\nt2,login fails,access\nt3,refund please,"
                    "billing\n")
    env = {**os.environ, "ARGILLA_API_KEY": stack_settings.api_key.get_secret_value()}
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())

    def ingest(name, *options):
        return subprocess.run([sys.executable, "-m", "worker", "ingest", str(data), "--dataset", name,
                               "--label-column", "label", "--api-url", stack_settings.api_url, *options],
                              capture_output=True, text=True, env=env, timeout=300, check=False)

    def ids(name):
        return sorted(str(r.id) for r in client.datasets(name=name, workspace=stack_settings.workspace).records())

    by_column, by_text = dataset_name, f"{dataset_name}-b"
    assert ingest(by_column, "--id-column", "id").returncode == 0
    assert ingest(by_text).returncode == 0
    keyed_by_text = ids(by_text)
    assert ids(by_column) == ["t1", "t2", "t3"] and all(key.startswith("sha1-") for key in keyed_by_text)

    without = ingest(by_column)
    with_column = ingest(by_text, "--id-column", "id")

    assert without.returncode == 1 and "Traceback" not in without.stderr, without.stderr
    assert without.stderr.strip().splitlines()[-1] == (
        f"error: these rows are in dataset {by_column!r} already under column 'id''s values (ingested with "
        f"--id-column id: row 1 is record 't1' there), and none under a hash of their text: without --id-column "
        f"each would be written again as another record. Nothing was written: add --id-column id")
    assert with_column.returncode == 1 and "Traceback" not in with_column.stderr, with_column.stderr
    assert (f"error: these rows are in dataset {by_text!r} already, keyed by a hash of their text (ingested without "
            f"--id-column: row 1 is record 'sha1-") in with_column.stderr
    assert ids(by_column) == ["t1", "t2", "t3"] and ids(by_text) == keyed_by_text
    again = ingest(by_column, "--id-column", "id")
    assert again.returncode == 0 and "0 records created, 0 updated, 3 unchanged" in again.stdout, again.stderr
    data.write_text("id,text,label\nt1,a parcel never came,billing\nt2,the app crashes,access\n")  # other texts
    other_texts = ingest(by_column)  # the same ids name other records: these are new ones, not refused
    assert other_texts.returncode == 0 and "2 records created" in other_texts.stdout, other_texts.stderr
