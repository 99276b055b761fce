from __future__ import annotations

import json
import re

import datasets
import pandas as pd
import pytest

from worker.errors import DataError
from worker.ingest import (
    IngestReport,
    column_labels,
    content_id,
    id_text,
    is_multi_label,
    labelled_rows,
    load_table,
    unread_columns,
)
from worker.records import LabelledText

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


def test_a_rating_column_read_as_floats_gives_the_ratings_and_a_fraction_is_named(tmp_path):
    """A CSV rating column with an empty cell is read as floats (4.0): it is rating "4", not a bad label; the
    empty cell is a row without a rating."""
    path = tmp_path / "ratings.csv"
    path.write_text("text,quality\ngreat answer,5\nno rating yet,\nhalf right,2.5\nfine,4\n")
    report = IngestReport()
    rows = list(labelled_rows(load_table(path), label_column="quality", labels=["1", "2", "3", "4", "5"],
                              report=report))
    assert [(row.text, row.label) for row in rows] == [("great answer", "5"), ("no rating yet", None),
                                                       ("fine", "4")]
    assert report.bad_rows == [(3, "label 2.5 is not one of ['1', '2', '3', '4', '5']")]
    assert report.unlabelled == 1 and "3 of 4 rows ingested (1 without a label" in report.summary()


def test_rows_with_an_empty_label_cell_are_ingested_without_a_label_to_be_annotated():
    """A file labelled in part (the rest to annotate) keeps every row: no value, blank text or NaN is no label."""
    table = datasets.Dataset.from_dict({"text": ["a", "b", "c", "d"], "label": ["pos", None, "  ", "neg"]})
    report = IngestReport()
    rows = list(labelled_rows(table, label_column="label", labels=["neg", "pos"], report=report))
    assert [row.label for row in rows] == ["pos", None, None, "neg"]
    assert (report.good, report.unlabelled, report.bad_rows) == (4, 2, [])
    tags = datasets.Dataset.from_dict({"text": ["a", "b"], "tags": [["x"], None]})
    assert [row.label for row in labelled_rows(tags, label_column="tags", labels=["x"],
                                                report=IngestReport())] == [("x",), None]


def test_a_missing_column_lists_the_available_ones(tmp_path):
    table = datasets.Dataset.from_dict({"body": ["x"]})
    with pytest.raises(DataError, match=r"column\(s\) \['text'\] not in the input; its columns are \['body'\]"):
        list(labelled_rows(table, report=IngestReport()))


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_table(tmp_path / "nope.csv")


def test_a_file_of_another_format_or_a_missing_path_is_said_as_such_not_as_a_hub_error(tmp_path):
    """Both once fell through to the Hub ("as a Hub dataset: Couldn't find any data file at …")."""
    sheet = tmp_path / "tickets.xlsx"
    sheet.write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError, match=r"^input file .*tickets\.xlsx is a \.xlsx file: ingest reads csv, tsv, "
                                        r"jsonl, json and parquet files \(save it as one of those\)$"):
        load_table(sheet)
    with pytest.raises(DataError, match=r"^input .*exports/ does not exist \(nor is it a Hub dataset id: NAME or "
                                        r"OWNER/NAME\)$"):
        load_table(f"{tmp_path}/exports/")


@pytest.mark.parametrize("name, content, message", [
    ("empty.csv", b"", "is empty"),
    ("empty.jsonl", b"", "is empty"),
    ("header.csv", b"text,label\n", "has no rows (only a header?)"),
    ("binary.csv", bytes(range(256)) * 8, "is not a text file (binary content); expected csv"),
    ("binary.jsonl", b"\x00\x01PK\x03\x04" * 100, "is not a text file (binary content); expected jsonl"),
    ("garbage.parquet", b"not a parquet file at all" * 10, "cannot be read as parquet: ArrowInvalid"),
    ("broken.jsonl", b'{"text": "a", "label": \n', "cannot be read as jsonl"),
])
def test_a_file_that_cannot_be_read_is_one_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")) as error:
        load_table(path)
    assert str(path) in str(error.value)


def test_a_directory_of_shards_is_read_as_one_table_in_name_order(tmp_path):
    """Parts an export wrote (part-0000.csv …, in subdirectories too); its hidden files and non-data files are not
    rows; a line that is not UTF-8 is skipped with its file named."""
    shards = tmp_path / "export"
    (shards / "more").mkdir(parents=True)
    (shards / "part-0001.csv").write_bytes(b"text,label\nsecond shard,negative\nbad \xff line,negative\n")
    (shards / "part-0000.csv").write_text("text,label\nfirst shard,positive\n")
    (shards / "more" / "part-0002.csv").write_text("text,label\nthird shard,positive\n")
    (shards / ".part-0003.csv.crc").write_text("checksum")
    (shards / ".hidden.csv").write_text("text,label\nnot a row,positive\n")
    (shards / "README.md").write_text("our export")
    (shards / "_SUCCESS").write_text("")
    (shards / "_metadata.csv").write_text("not,rows\n")
    (shards / "dataset_infos.json").write_text("{}")  # a Hub repo's, beside its data files
    report = IngestReport()

    rows = list(labelled_rows(load_table(shards, report=report), label_column="label", report=report))

    assert [row.text for row in rows] == ["first shard", "second shard", "third shard"]
    assert report.bad_lines == [(3, "not valid UTF-8 (byte 0xff at column 5) (part-0001.csv)")]


def test_a_directory_datasets_saved_is_read_back_with_its_split(tmp_path):
    table = datasets.Dataset.from_dict({"text": ["one", "two"], "label": ["positive", "negative"]})
    table.save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": table, "test": table.select([1])}).save_to_disk(str(tmp_path / "splits"))

    assert load_table(tmp_path / "saved")["text"] == ["one", "two"]
    assert load_table(tmp_path / "splits", split="test")["text"] == ["two"]
    with pytest.raises(DataError, match=r"splits has no split 'validation' \(its splits: \['train', 'test'\]\): "
                                        r"--split names one of them"):
        load_table(tmp_path / "splits", split="validation")


def test_a_directory_without_one_format_of_data_files_is_one_clear_error(tmp_path, monkeypatch):
    mixed, empty, crowded = tmp_path / "mixed", tmp_path / "empty", tmp_path / "crowded"
    for directory in (mixed, empty, crowded):
        directory.mkdir()
    (mixed / "a.csv").write_text("text\nx\n")
    (mixed / "b.jsonl").write_text('{"text": "y"}\n')
    (mixed / "c.csv").write_text("text\nz\n")
    (empty / "notes.txt").write_text("no data here")
    for number in range(6):
        (crowded / f"{number}.txt").write_text("")
    monkeypatch.setattr("worker.ingest.DIRECTORY_ENTRIES", 5)

    with pytest.raises(DataError, match=r"mixed holds data files of several formats \(2 \.csv, 1 \.jsonl\): one "):
        load_table(mixed)
    with pytest.raises(DataError, match=r"empty holds no csv / tsv / jsonl / json / parquet file$"):
        load_table(empty)
    with pytest.raises(DataError, match=r"crowded has more than 5 entries: give the directory that holds the data"):
        load_table(crowded)


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_lines_that_are_not_utf8_are_skipped_by_line_number_and_the_rest_is_read(tmp_path, suffix):
    path = tmp_path / f"mixed.{suffix}"
    if suffix == "csv":
        path.write_bytes(b"text,label\ngood one,positive\nbad \xff\xfe row,negative\nanother good,negative\n")
    else:
        path.write_bytes(b'{"text": "good one", "label": "positive"}\n{"text": "bad \xff", "label": "negative"}\n'
                         b'{"text": "another good", "label": "negative"}\n')
    report = IngestReport()

    rows = list(labelled_rows(load_table(path, report=report), label_column="label", report=report))

    assert [row.text for row in rows] == ["good one", "another good"]
    bad_line = 3 if suffix == "csv" else 2
    assert [line for line, _ in report.bad_lines] == [bad_line]
    assert "not valid UTF-8 (byte 0xff" in report.bad_lines[0][1]
    assert f"line {bad_line}: not valid UTF-8" in report.summary()
    assert "2 of 2 rows ingested, 0 skipped; 1 line(s) of the file skipped" in report.summary()


def test_columns_no_option_names_are_said_and_an_unnamed_label_column_gets_the_option_to_add(tmp_path):
    path = tmp_path / "tickets.csv"
    path.write_text("text,label,author,ticket\nmy invoice is wrong,billing,ann,t1\nlogin fails,access,bo,t2\n")
    table = load_table(path)
    report = IngestReport(unread_columns=unread_columns(table, ["text", None, "ticket", None]),
                          label_column_given=False)

    assert report.unread_columns == ["label", "author"]
    assert "column(s) not ingested: label, author" in report.summary()
    assert "add --label-column label to ingest column 'label' as the labels" in report.summary()
    assert "--id-column" not in report.summary()  # no id-like column
    named = IngestReport(unread_columns=unread_columns(table, ["text", "label", "ticket", "author"]))
    assert named.unread_columns == [] and "not ingested" not in named.summary()


def test_an_unnamed_id_column_gets_the_option_to_key_records_by_it(tmp_path):
    path = tmp_path / "tickets.csv"
    path.write_text("ID,text,label\nt1,my invoice is wrong,billing\nt2,login fails,access\n")
    table = load_table(path)
    unnamed = IngestReport(unread_columns=unread_columns(table, ["text", "label", None]), id_column_given=False)

    assert "column(s) not ingested: ID" in unnamed.summary()
    assert ("no --id-column was given, so records are keyed by a hash of their text (a text edited in the source "
            "comes back as another record): add --id-column ID to key them by column 'ID'") in unnamed.summary()
    given = IngestReport(unread_columns=unread_columns(table, ["text", "label", "ID"]), id_column_given=True)
    assert "--id-column" not in given.summary()


MULTI_ROWS = [
    {"text": "funny and moving", "tags": ["humour", "praise"]},
    {"text": "praise twice", "tags": ["praise", "praise"]},
    {"text": "no tags", "tags": []},
    {"text": "a typo", "tags": ["humor"]},
    {"text": "no label value", "tags": None},
    {"text": "reversed order", "tags": ["praise", "humour"]},
]


def test_a_column_of_lists_gives_sorted_label_sets_and_names_bad_labels_in_a_set():
    table = datasets.Dataset.from_list(MULTI_ROWS)
    report = IngestReport()

    assert is_multi_label(table, "tags") and not is_multi_label(table, "text") and not is_multi_label(table, None)
    assert column_labels(table, "tags") == ["humor", "humour", "praise"]
    assert column_labels(table.select([0, 1]), "tags") == ["humour", "praise"]  # a view: only its rows count
    rows = list(labelled_rows(table, label_column="tags", labels=["humour", "praise"], report=report))

    assert [(row.text, row.label) for row in rows] == [("funny and moving", ("humour", "praise")),
                                                       ("praise twice", ("praise",)),
                                                       ("no label value", None),  # to annotate
                                                       ("reversed order", ("humour", "praise"))]
    reasons = dict(report.bad_rows)
    assert sorted(reasons) == [3, 4]
    assert "is empty" in reasons[3] and "['humor'] not in ['humour', 'praise']" in reasons[4]
    assert report.unlabelled == 1


def test_a_sequence_of_class_labels_becomes_sets_of_names():
    features = datasets.Features({"text": datasets.Value("string"),
                                  "labels": datasets.Sequence(datasets.ClassLabel(names=["anger", "joy", "love"]))})
    table = datasets.Dataset.from_dict({"text": ["x", "y"], "labels": [[2, 1], [0]]}, features=features)

    assert is_multi_label(table, "labels") and column_labels(table, "labels") == ["anger", "joy", "love"]
    rows = list(labelled_rows(table, label_column="labels", labels=["anger", "joy", "love"], report=IngestReport()))
    assert [row.label for row in rows] == [("joy", "love"), ("anger",)]


def test_text_labels_split_on_a_separator_become_sets(tmp_path):
    path = tmp_path / "tags.csv"
    path.write_text("text,tags\ngreat cast|funny,praise | humour\nslow,pacing\nempty,\" | \"\n")
    table = load_table(path)
    report = IngestReport()

    assert not is_multi_label(table, "tags") and is_multi_label(table, "tags", "|")
    assert column_labels(table, "tags", "|") == ["humour", "pacing", "praise"]
    rows = list(labelled_rows(table, label_column="tags", label_separator="|", report=report))
    assert [(row.text, row.label) for row in rows] == [("great cast|funny", ("humour", "praise")),
                                                       ("slow", ("pacing",))]
    assert [number for number, _ in report.bad_rows] == [3] and "is empty" in report.bad_rows[0][1]


def test_a_separator_for_a_column_of_lists_or_a_missing_label_column_is_a_clear_error():
    table = datasets.Dataset.from_list(MULTI_ROWS[:2])
    with pytest.raises(DataError, match="holds lists already"):
        is_multi_label(table, "tags", "|")
    with pytest.raises(DataError, match=r"\['label'\] not in the input; its columns are \['text', 'tags'\]"):
        is_multi_label(table, "label")


# ---------------------------------------------------------------- writing into records that exist


def _plan(required: list[str] | None = None, questions: int = 1, server: str = "2.8.0"):
    from worker.binding import DatasetShape, FieldInfo, QuestionInfo, bind
    from worker.gateway.client import _IngestPlan

    label_questions = (QuestionInfo("sentiment", "label_selection", ("neg", "pos"), "q-s"),
                       QuestionInfo("topic", "label_selection", ("acting", "plot"), "q-t"))[:questions]
    shape = DatasetShape("d", (FieldInfo("headline", "text", "Headline"), FieldInfo("body", "text", "Body")),
                         label_questions, ())
    from packaging.version import Version

    return _IngestPlan(bind(shape, fields=["body"], question="sentiment"), required or [], Version(server))


def _found(*, body="a plot that drags", metadata=None, suggestions=()):
    return {"id": "srv-1", "fields": {"headline": "Slow", "body": body}, "metadata": metadata or {},
            "suggestions": list(suggestions)}


def test_a_new_record_gets_the_text_the_label_and_an_original_suggestion():
    payload, refusal, _, _ = _plan().payload(LabelledText("r1", "fine", "pos", split="train"), None)
    assert refusal is None
    assert payload == {"external_id": "r1", "fields": {"body": "fine"},
                       "metadata": {"split": "train", "original_label": "pos", "original_agent": "original"},
                       "suggestions": [{"question_id": "q-s", "value": "pos", "agent": "original"}]}


def test_a_new_record_the_dataset_cannot_take_is_refused_by_reason_unless_a_field_column_fills_it():
    plan = _plan(required=["headline", "body"])
    payload, refusal, _, _ = plan.payload(LabelledText("r1", "fine", "pos"), None)
    assert payload is None
    assert refusal == ("not in the dataset, and a new record needs the required field(s) ['headline'], which the "
                       "input does not fill (the text goes to 'body'; others: --field-column FIELD=COLUMN)")
    filled, refusal, _, _ = plan.payload(LabelledText("r1", "fine", "pos", fields={"headline": "Fine"}), None)
    assert refusal is None and filled["fields"] == {"headline": "Fine", "body": "fine"}


def test_a_field_column_updates_that_field_of_an_existing_record_and_nothing_else():
    stored = {"original_label": "pos", "original_agent": "original"}
    original = {"question_id": "q-s", "value": "pos", "agent": "original"}
    found = _found(metadata=stored, suggestions=[original])
    same = LabelledText("r1", "a plot that drags", "pos", fields={"headline": "Slow"})
    renamed = LabelledText("r1", "a plot that drags", "pos", fields={"headline": "Slower"})
    assert _plan().payload(same, found) == (None, None, None, None)
    assert _plan().payload(renamed, found).item == {"id": "srv-1", "fields": {"headline": "Slower",
                                                                               "body": "a plot that drags"}}


def test_a_server_before_2_6_keeps_a_records_fields_so_ingest_says_so_and_writes_the_rest():
    """argilla-server 2.5 answers new field values with 200 and keeps the old ones: the item carries the label
    only, and the record's note names the fields, the release and what to do."""
    stored = {"original_label": "neg", "original_agent": "original"}
    found = _found(metadata=stored, suggestions=[{"question_id": "q-s", "value": "neg", "agent": "original"}])
    relabelled = LabelledText("r1", "a plot that drags on", "pos")

    old = _plan(server="2.5.0").payload(relabelled, found)
    new = _plan(server="2.6.0").payload(relabelled, found)
    same_text = _plan(server="2.5.0").payload(LabelledText("r1", "a plot that drags", "pos"), found)

    assert old.item == {"id": "srv-1", "metadata": {**stored, "original_label": "pos"},
                        "suggestions": [{"question_id": "q-s", "value": "pos", "agent": "original"}]}
    assert old.kept_text == ("field(s) ['body'] differ from the record's, which argilla-server 2.5.0 keeps (it updates "
                             "an existing record's fields from 2.6.0): upgrade the server, or delete the record and "
                             "ingest it again")
    assert new.item["fields"] == {"headline": "Slow", "body": "a plot that drags on"} and new.kept_text is None
    assert same_text.kept_text is None and same_text.item == old.item
    assert _plan(server="2.5.0").payload(LabelledText("r1", "a plot that drags on", "neg"), found) == (
        None, None, None, old.kept_text)  # nothing else to write: unchanged, with the note


def test_field_columns_are_field_equals_column_pairs():
    from worker.ingest import field_columns

    table = datasets.Dataset.from_dict({"text": ["a"], "title": ["A"]})
    assert field_columns(table, ["headline=title"]) == {"headline": "title"}
    with pytest.raises(DataError, match="expected FIELD=COLUMN"):
        field_columns(table, ["title"])
    with pytest.raises(DataError, match=r"^--field-column 'subject': not a column of the input; its columns are "
                                        r"\['text', 'title'\]$"):
        field_columns(table, ["headline=subject"])
    rows = list(labelled_rows(datasets.Dataset.from_dict({"text": ["a", "b"], "title": ["A", " "]}),
                              fields={"headline": "title"}, report=IngestReport()))
    assert [row.fields for row in rows] == [{"headline": "A"}, None]  # an empty cell leaves the field as it is


def test_an_existing_record_is_merged_into_not_replaced():
    """Only what changes is sent: their other field and metadata, the worker's values and another agent's
    suggestion survive (the server replaces a sent ``fields`` / ``metadata`` as a whole)."""
    theirs = {"team": "south", "loss": 1.5, "original_label": "neg", "original_agent": "original"}
    found = _found(metadata=theirs, suggestions=[{"question_id": "q-s", "value": "neg", "agent": "gpt"}])

    payload = _plan().payload(LabelledText("r1", "a plot that drags on", "pos"), found).item

    assert payload == {"id": "srv-1", "fields": {"headline": "Slow", "body": "a plot that drags on"},
                       "metadata": {**theirs, "original_label": "pos"}}  # no suggestion: gpt's stays


def test_nothing_to_change_sends_nothing_and_an_original_suggestion_is_updated_only_when_it_differs():
    stored = {"team": "north", "original_label": "neg", "original_agent": "original"}
    original = {"question_id": "q-s", "value": "neg", "agent": "original"}
    plan = _plan()
    assert plan.payload(LabelledText("r1", "a plot that drags", "neg"),
                        _found(metadata=stored, suggestions=[original])) == (None, None, None, None)
    planned = plan.payload(LabelledText("r1", "a plot that drags", None), _found(metadata=stored))
    assert planned == (None, None, None, None)
    relabelled, _, _, _ = plan.payload(LabelledText("r1", "a plot that drags", "pos"),
                                 _found(metadata=stored, suggestions=[original]))
    assert relabelled == {"id": "srv-1", "metadata": {**stored, "original_label": "pos"},
                          "suggestions": [{**original, "value": "pos"}]}
    other_question = {"question_id": "q-t", "value": "plot", "agent": "topic-model"}
    missing, _, _, _ = plan.payload(LabelledText("r1", "a plot that drags", "neg"),
                              _found(metadata=stored, suggestions=[other_question]))
    assert missing == {"id": "srv-1", "suggestions": [original]}  # sent for this question; the server keeps topic's


def test_on_a_dataset_with_several_label_questions_the_label_goes_under_the_question_s_names():
    payload, _, _, _ = _plan(questions=2).payload(LabelledText("r1", "fine", "pos", split="test"),
                                            _found(body="fine", metadata={"topic_original_label": "plot"}))
    assert payload == {"id": "srv-1", "metadata": {"topic_original_label": "plot", "split": "test",
                                                   "sentiment_original_label": "pos",
                                                   "sentiment_original_agent": "original"},
                       "suggestions": [{"question_id": "q-s", "value": "pos", "agent": "original"}]}


# ---------------------------------------------------------------- metadata columns


def test_metadata_columns_take_their_kind_from_the_column_type_and_may_be_renamed():
    from worker.ingest import metadata_columns

    table = datasets.Dataset.from_dict({
        "text": ["a", "b"], "stars": [4, 5], "price": [9.5, None], "team": ["north", "south"],
        "reviewed": [True, False], "tags": [["x"], ["y"]],
        "genre": datasets.ClassLabel(names=["drama", "comedy"]).str2int(["comedy", "drama"]),
    }).cast_column("genre", datasets.ClassLabel(names=["drama", "comedy"]))

    columns = metadata_columns(table, ["stars", "price=unit_price", "team", "reviewed", "genre"])

    assert [(c.column, c.name, c.kind) for c in columns] == [
        ("stars", "stars", "integer"), ("price", "unit_price", "float"), ("team", "team", "terms"),
        ("reviewed", "reviewed", "terms"), ("genre", "genre", "terms")]
    with pytest.raises(DataError, match=r"metadata column 'tags' holds List\(Value\('string'\)\) values"):
        metadata_columns(table, ["tags"])
    with pytest.raises(DataError, match=r"^--metadata-column 'rating': not a column of the input"):
        metadata_columns(table, ["rating"])
    with pytest.raises(DataError, match="property 'team' is named twice"):
        metadata_columns(table, ["team", "stars=team"])


def test_metadata_values_as_the_properties_hold_them_and_missing_ones_left_out():
    from worker.ingest import metadata_columns

    table = datasets.Dataset.from_dict({
        "text": ["first", "second", "third"], "stars": [4, 5, 3], "price": [9.5, float("nan"), None],
        "team": ["north", " ", None], "reviewed": [True, False, True],
    })
    report = IngestReport()
    columns = metadata_columns(table, ["stars", "price", "team", "reviewed"])

    rows = list(labelled_rows(table, metadata=columns, report=report))

    assert [row.metadata for row in rows] == [
        {"stars": 4, "price": 9.5, "team": "north", "reviewed": "true"},
        {"stars": 5, "reviewed": "false"},
        {"stars": 3, "reviewed": "true"},
    ]
    assert isinstance(rows[0].metadata["stars"], int) and report.good == 3


def test_the_users_metadata_is_written_beside_the_workers_and_merged_into_an_existing_record():
    new, _, _, _ = _plan().payload(LabelledText("r1", "fine", "pos", metadata={"team": "north", "stars": 4}), None)
    assert new["metadata"] == {"team": "north", "stars": 4, "original_label": "pos", "original_agent": "original"}

    stored = {"team": "south", "loss": 0.3, "original_label": "pos", "original_agent": "original"}
    merged, _, _, _ = _plan().payload(LabelledText("r1", "a plot that drags", "pos", metadata={"stars": 2}),
                                _found(metadata=stored))
    assert merged["metadata"] == {**stored, "stars": 2}


def test_a_refused_records_reason_is_the_servers_own_words_without_the_batch_position():
    import httpx

    from worker.gateway.client import _server_detail

    refused = httpx.Response(422, json={"detail": "Record at position 3 is not valid because metadata is not valid: "
                                                  "'team' metadata property validation failed because 'east' is "
                                                  "not an allowed term."})
    assert _server_detail(refused) == ("metadata is not valid: 'team' metadata property validation failed because "
                                       "'east' is not an allowed term.")
    assert _server_detail(httpx.Response(500, text="Internal Server Error")) is None
    assert _server_detail(httpx.Response(422, json=[1, 2])) is None


def test_another_agents_label_the_worker_preserved_is_not_overwritten_but_the_rest_is_written():
    """``original_label`` holding gpt's label (copied there when the worker's suggestion replaced gpt's) is that
    agent's only copy: ingest leaves it and says so, and still writes the text and the team's metadata."""
    stored = {"original_label": "neg", "original_agent": "gpt", "model_version": "v0001"}
    found = _found(metadata=stored, suggestions=[{"question_id": "q-s", "value": "pos", "agent": "v0001"}])

    item, refusal, kept, _ = _plan().payload(LabelledText("r1", "a plot that drags on", "pos", metadata={"stars": 2}),
                                          found)

    assert refusal is None
    assert kept == ("label 'pos' not written: original_label holds agent 'gpt''s label 'neg', kept by the worker "
                    "when its suggestion replaced theirs")
    assert item == {"id": "srv-1", "fields": {"headline": "Slow", "body": "a plot that drags on"},
                    "metadata": {**stored, "stars": 2}}
    same_label = _plan().payload(LabelledText("r1", "a plot that drags", "neg"), found)
    assert same_label == (None, None, None, None)


def test_a_label_written_as_the_question_shows_it_is_read_as_its_value():
    """A team exports what annotators saw (`Cars 🚗`), the question's value is `autos`: the title is the label;
    a title that is another label's value, or shared by two labels, is not an alias."""
    from worker.binding import LabelReading, QuestionInfo

    question = QuestionInfo("topic", "label_selection", ("autos", "space", "misc", "other"), "q",
                            ("Cars 🚗", "Space", "Other", "Other"))
    assert LabelReading(question.labels, question.label_titles()).aliases == {"Cars 🚗": "autos", "Space": "space"}
    # "Other" names two labels: neither it nor its other letter case is one of them
    assert LabelReading(question.labels, question.label_titles()).read("Other") is None
    rows = [{"text": "a fast car", "topic": "Cars 🚗"}, {"text": "the moon", "topic": " Space "},
            {"text": "misc", "topic": "misc"}, {"text": "boats", "topic": "Boats"},
            {"text": "tags", "topics": ["Cars 🚗", "space"]}]
    report = IngestReport()
    read = list(labelled_rows(datasets.Dataset.from_list(rows[:4]), label_column="topic", labels=question.labels,
                              label_titles=question.label_titles(), report=report))
    assert [(row.text, row.label) for row in read] == [("a fast car", "autos"), ("the moon", "space"),
                                                       ("misc", "misc")]
    assert report.bad_rows == [(4, "label 'Boats' is not one of ['autos', 'misc', 'other', 'space']")]
    sets = list(labelled_rows(datasets.Dataset.from_list(rows[4:]), label_column="topics", labels=question.labels,
                              label_titles=question.label_titles(), report=IngestReport()))
    assert [row.label for row in sets] == [("autos", "space")]


def test_a_label_in_another_letter_case_is_read_as_the_questions_and_the_summary_says_how_labels_were_read():
    """A spreadsheet says `POSITIVE` / `Negative`, the question's values are `positive` / `negative`: each row is
    that label (as `models register` reads a model's labels), and the summary lists what was read as what — a
    spelling two labels share (`Pos` beside `pos` and `POS`) stays a bad row."""
    rows = [{"text": "great", "label": "POSITIVE"}, {"text": "dull", "label": "Negative"},
            {"text": "fine", "label": "positive"}, {"text": "awful", "label": "NEGATIVE "},
            {"text": "superb", "label": "POSITIVE"}, {"text": "meh", "label": "so-so"}]
    report = IngestReport()
    read = list(labelled_rows(datasets.Dataset.from_list(rows), label_column="label",
                              labels=["positive", "negative"], report=report))
    assert [row.label for row in read] == ["positive", "negative", "positive", "negative", "positive"]
    assert report.bad_rows == [(6, "label 'so-so' is not one of ['negative', 'positive']")]
    assert "labels read as the question's: 'POSITIVE' → 'positive' (2), 'NEGATIVE ' → 'negative' (1), " \
        "'Negative' → 'negative' (1)" in report.summary()
    shared = IngestReport()
    assert not list(labelled_rows(datasets.Dataset.from_list([{"text": "x", "label": "Pos"}]), label_column="label",
                                  labels=["pos", "POS"], report=shared))
    assert shared.bad_rows == [(1, "label 'Pos' is not one of ['POS', 'pos']")]
    exact = IngestReport()  # labels as they are: nothing to say
    list(labelled_rows(datasets.Dataset.from_list(rows[2:3]), label_column="label", labels=["positive", "negative"],
                       report=exact))
    assert "read as" not in exact.summary()


def test_labels_the_file_writes_otherwise_are_read_through_the_label_map_and_unknown_ones_get_the_map_to_write():
    """A CSV of 0 / 1 (or pos / neg) into a question of negative / positive: every row was bad with nothing said
    about the way out; the summary now names the labels it could not read and the `--label-map` that reads them
    (guessed when each is the start of one label), and with that map every row is read."""
    rows = [{"text": f"review {index}", "label": value} for index, value in enumerate([0, 1, 1, 0, 1])]
    report = IngestReport()
    assert not list(labelled_rows(datasets.Dataset.from_list(rows), label_column="label",
                                  labels=["negative", "positive"], report=report))
    assert report.bad_rows[0] == (1, "label 0 is not one of ['negative', 'positive']")
    assert ("labels that are none of the question's ['negative', 'positive']: '1' (3), '0' (2) — where they stand for "
            "its labels, `--label-map 1=LABEL,0=LABEL` reads them as those") in report.summary()
    mapped = IngestReport()
    read = list(labelled_rows(datasets.Dataset.from_list(rows), label_column="label", labels=["negative", "positive"],
                              label_map={"0": "negative", "1": "positive"}, report=mapped))
    assert [row.label for row in read] == ["negative", "positive", "positive", "negative", "positive"]
    assert not mapped.bad_rows and "none of the question's" not in mapped.summary()
    short = IngestReport()
    list(labelled_rows(datasets.Dataset.from_list([{"text": "a", "label": "pos"}, {"text": "b", "label": "neg"}]),
                       label_column="label", labels=["negative", "positive"], report=short))
    assert "`--label-map neg=negative,pos=positive` reads them as those (guessed from their spelling: check it)" \
        in short.summary()
    tags = IngestReport()  # a label set: each label mapped
    sets = list(labelled_rows(datasets.Dataset.from_list([{"text": "a", "tags": ["sp", "tech"]}]), label_column="tags",
                              labels=["sport", "tech"], label_map={"sp": "sport"}, report=tags))
    assert [row.label for row in sets] == [("sport", "tech")]


def test_rows_repeating_an_earlier_rows_text_are_ingested_and_counted_with_the_first_named(tmp_path):
    """A file with the same text twice (other case and spacing, another label) keeps both rows — which label is
    right is the annotators' call — and the summary says how many repeat a text and where the first one is."""
    path = tmp_path / "tickets.csv"
    path.write_text("text,label\nReset my password,account\nwhere is my invoice,billing\n"
                    "RESET my  password,billing\nreset my password,account\nsomething else,other\n")
    report = IngestReport()
    rows = list(labelled_rows(load_table(path), label_column="label", labels=["account", "billing", "other"],
                              report=report))
    assert len(rows) == 5 and report.repeated == 2 and report.first_repeat == (3, 1)
    assert "2 row(s) repeat the text of an earlier row (first: row 3 = row 1)" in report.summary()
    clean = IngestReport()
    list(labelled_rows(load_table(path), label_column="label", report=clean, id_column=None, fields={"other": "label"}))
    assert clean.repeated == 1  # another field's value differs: row 3 ("billing") is not row 1's copy


@pytest.mark.parametrize(("labels", "said"), [
    (["positive"], "a label question needs at least 2"),
    (["positive", "negative", "positive"], "'positive' repeated"),
    (["positive", " ", "negative"], "one of them is empty"),
])
def test_labels_argilla_would_refuse_for_a_new_question_are_named(labels, said):
    from worker.errors import ConfigError
    from worker.gateway.client import check_new_labels

    with pytest.raises(ConfigError, match=f"labels {re.escape(str(labels))} for a new dataset's question: .*{said}"):
        check_new_labels(labels)
    check_new_labels(["positive", "negative"])


def _raised_from(cause: BaseException) -> BaseException:
    """An SDK-style error raised while handling ``cause`` (the SDK wraps httpx's errors in its own)."""
    try:
        try:
            raise cause
        except Exception as handled:
            raise RuntimeError("Argilla SDK error") from handled
    except RuntimeError as wrapped:
        return wrapped


def test_a_dataset_the_server_did_not_create_is_one_line_refused_or_unavailable_by_its_answer():
    import httpx

    from worker.errors import ArgillaRefusedError, ArgillaUnavailableError
    from worker.gateway.client import creation_failure

    request = httpx.Request("POST", "http://argilla:6900/api/v1/datasets")
    too_long = httpx.Response(422, request=request, json={"detail": {  # argilla-server 2.8's answer
        "code": "argilla.api.errors::ValidationError", "params": {"errors": [
            {"type": "string_too_long", "loc": ["body", "name"],
             "msg": "String should have at most 200 characters"}]}}})
    refused = creation_failure("argilla/x", _raised_from(httpx.HTTPStatusError("422", request=request,
                                                                                response=too_long)))
    assert type(refused) is ArgillaRefusedError and refused.status == 422
    assert str(refused) == ("cannot create dataset argilla/x: Argilla answered 422: name: String should have at most "
                            "200 characters")
    taken = httpx.Response(409, request=request, json={"detail": "Dataset with name `x` already exists"})
    said = str(creation_failure("argilla/x", _raised_from(httpx.HTTPStatusError("409", request=request,
                                                                                 response=taken))))
    assert said == "cannot create dataset argilla/x: Argilla answered 409: Dataset with name `x` already exists"
    busy = httpx.Response(503, request=request, text="busy")
    for cause in (httpx.HTTPStatusError("503", request=request, response=busy),
                  httpx.ConnectError("connection refused", request=request)):
        failure = creation_failure("argilla/x", _raised_from(cause))
        assert isinstance(failure, ArgillaUnavailableError) and "\n" not in str(failure), failure


def test_ids_are_read_as_written_not_as_numbers(tmp_path):
    """A csv's id column of whole numbers with an empty cell was read as floats (ids "1.0", "3.0") and "007" as the
    number 7: the same records ingested from a fixed file, or from a parquet export, got other ids (duplicates).
    Ids are now read as text; an id cell that holds no id skips its row, named."""
    path = tmp_path / "tickets.csv"
    path.write_text("id,text,label\n007,my invoice is wrong,billing\n,login fails,access\n"
                    "1234567890123456789,refund please,billing\n")
    report = IngestReport()

    rows = list(labelled_rows(load_table(path, id_column="id"), label_column="label", id_column="id", report=report))

    assert [row.id for row in rows] == ["007", "1234567890123456789"]
    assert report.bad_rows == [(2, "id column 'id' is empty")]
    floats = tmp_path / "export.parquet"  # a pandas export of whole-number ids with a gap: floats
    pd.DataFrame({"id": [1.0, None, 3.0], "text": ["one", "two", "three"]}).to_parquet(floats)
    assert [row.id for row in labelled_rows(load_table(floats), id_column="id", report=IngestReport())] == ["1", "3"]
    odd = tmp_path / "odd.jsonl"
    odd.write_text(json.dumps({"id": [1, 2], "text": "a list for an id"}) + "\n" +
                   json.dumps({"id": 2.5, "text": "a fractional id"}) + "\n")
    odd_report = IngestReport()
    assert [row.id for row in labelled_rows(load_table(odd), id_column="id", report=odd_report)] == ["2.5"]
    assert odd_report.bad_rows[0] == (1, "id column 'id' holds [1, 2]: an id is a text or a number")


def test_an_id_cell_is_written_as_the_text_it_stands_for():
    assert [id_text(value) for value in ("t-1", 7, 3.0, 2.5, "  ", None, float("nan"), True, [1], {"a": 1})] == [
        "t-1", "7", "3", "2.5", None, None, None, None, None, None]


def test_a_spreadsheets_semicolon_separated_export_is_read_by_its_columns(tmp_path):
    """A spreadsheet in a locale whose decimal mark is the comma exports ``text;label``: once one column named
    'text;label' (and "column(s) ['text'] not in the input")."""
    path = tmp_path / "export.csv"
    path.write_bytes("\ufefftext;label;stars\nrather good, all in all;positive;4,5\ndull;negative;1\n".encode())

    table = load_table(path)

    assert table.column_names == ["text", "label", "stars"]
    assert table["text"] == ["rather good, all in all", "dull"] and table["stars"] == [4.5, 1.0]
    plain = tmp_path / "plain.csv"
    plain.write_text("text,label\nfine; really,positive\n")
    assert load_table(plain)["text"] == ["fine; really"]


def test_a_json_object_holding_the_list_of_rows_is_read_as_those_rows(tmp_path):
    """``{"data": [...], "version": 2}``, as APIs export: once one row of columns 'data' and 'version'."""
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"data": [{"text": "a fine film", "label": "positive"},
                                         {"text": "dull", "label": "negative"}], "version": 2}))

    rows = list(labelled_rows(load_table(path, text_column="text"), label_column="label", report=IngestReport()))

    assert [(row.text, row.label) for row in rows] == [("a fine film", "positive"), ("dull", "negative")]
    listed = tmp_path / "rows.json"  # a list of rows, and one row holding a list of objects, are read as they are
    listed.write_text(json.dumps([{"text": "one", "tags": [{"name": "x"}]}]))
    assert load_table(listed, text_column="text").column_names == ["text", "tags"]
    one_row = tmp_path / "one.json"
    one_row.write_text(json.dumps({"body": "one", "tags": [{"name": "x"}]}))  # no list with the text column in it
    assert load_table(one_row, text_column="text").column_names == ["body", "tags"]


def test_a_utf16_export_is_read_as_text_not_refused_as_binary(tmp_path):
    """A spreadsheet's "Unicode" export is UTF-16 (a byte-order mark, then NUL bytes): once refused as binary."""
    path = tmp_path / "unicode.csv"
    path.write_bytes("text;label\ncafé crème, très bon;positive\nmauvais;negative\n".encode("utf-16"))

    table = load_table(path)

    assert table["text"] == ["café crème, très bon", "mauvais"] and table["label"] == ["positive", "negative"]
    with pytest.raises(DataError, match="not a text file"):  # NUL bytes without the mark: still binary
        (tmp_path / "blob.csv").write_bytes(b"text\x00\x01\x02")
        load_table(tmp_path / "blob.csv")


def test_a_file_in_another_encoding_is_read_with_encoding_and_the_summary_says_so_without(tmp_path):
    """A Windows spreadsheet's csv is cp1252: without --encoding each line with an accent was skipped as not UTF-8,
    and nothing said why; with it the file is read whole. A file that is not text in the encoding named is one
    line naming where."""
    path = tmp_path / "windows.csv"
    path.write_bytes("text,label\ncafé crème,positive\nplain,negative\n".encode("cp1252"))
    report = IngestReport()

    rows = list(labelled_rows(load_table(path, report=report), label_column="label", report=report))

    assert [row.text for row in rows] == ["plain"] and [line for line, _ in report.bad_lines] == [2]
    assert "read with --encoding (a spreadsheet's export on Windows: --encoding cp1252)" in report.summary()
    read = load_table(path, encoding="cp1252")
    assert read["text"] == ["café crème", "plain"]
    undefined = tmp_path / "not-cp1252.csv"
    undefined.write_bytes(b"text\nfine\nbad \x81 byte\n")  # 0x81 is no character in cp1252
    with pytest.raises(DataError, match=r"is not cp1252 text: line 1 or soon after: .*\(byte 0x81\); --encoding "
                                        r"names the file's encoding"):
        load_table(undefined, encoding="cp1252")
