from __future__ import annotations

import json

import datasets
import pandas as pd
import pytest

from worker.errors import DataError
from worker.ingest import IngestReport, content_id, labelled_rows, load_table

ROWS = [
    {"id": "a", "review": "a moving film", "sentiment": "positive"},
    {"id": "b", "review": "   ", "sentiment": "negative"},
    {"id": "c", "review": "dull", "sentiment": "meh"},
    {"id": "d", "review": "funny and smart", "sentiment": "positive"},
    {"id": "a", "review": "another text, same id", "sentiment": "negative"},
]


@pytest.fixture(params=["csv", "jsonl", "parquet"])
def data_file(request, tmp_path):
    path = tmp_path / f"reviews.{request.param}"
    frame = pd.DataFrame(ROWS)
    if request.param == "csv":
        frame.to_csv(path, index=False)
    elif request.param == "jsonl":
        path.write_text("\n".join(json.dumps(row) for row in ROWS))
    else:
        frame.to_parquet(path)
    return path


def test_good_rows_are_read_and_bad_rows_reported_with_their_numbers(data_file):
    report = IngestReport()
    rows = list(labelled_rows(load_table(data_file), text_column="review", label_column="sentiment",
                              id_column="id", labels=["negative", "positive"], report=report))

    assert [(row.id, row.label) for row in rows] == [("a", "positive"), ("d", "positive")]
    assert [number for number, _ in report.bad_rows] == [2, 3, 5]
    reasons = dict(report.bad_rows)
    assert "text column 'review' is empty" in reasons[2]
    assert "label 'meh' is not one of ['negative', 'positive']" in reasons[3]
    assert "duplicate id 'a' (first seen in row 1)" in reasons[5]
    assert (report.read, report.good) == (5, 2)


def test_ids_default_to_a_content_hash_so_reingesting_is_idempotent():
    table = datasets.Dataset.from_dict({"text": ["same text", "other"]})
    first = [row.id for row in labelled_rows(table, report=IngestReport())]
    second = [row.id for row in labelled_rows(table, report=IngestReport())]
    assert first == second == [content_id("same text"), content_id("other")]
    assert all(row.label is None for row in labelled_rows(table, report=IngestReport()))


def test_class_label_integers_become_names():
    table = datasets.Dataset.from_dict(
        {"text": ["x", "y"], "label": [0, 1]},
        features=datasets.Features({"text": datasets.Value("string"),
                                    "label": datasets.ClassLabel(names=["neg", "pos"])}))
    rows = list(labelled_rows(table, label_column="label", labels=["neg", "pos"], report=IngestReport()))
    assert [row.label for row in rows] == ["neg", "pos"]


def test_a_missing_column_lists_the_available_ones(tmp_path):
    table = datasets.Dataset.from_dict({"body": ["x"]})
    with pytest.raises(DataError, match=r"column\(s\) \['text'\] not in the input; its columns are \['body'\]"):
        list(labelled_rows(table, report=IngestReport()))


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_table(tmp_path / "nope.csv")
