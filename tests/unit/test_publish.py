"""Publishing: rows and counts from Argilla records, the dataset card, the local and Hub sinks."""

from __future__ import annotations

import json
import logging
import re
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import datasets
import pytest
import yaml

from tests.hub_stub import HubStub
from tests.scratch import scratch_in_another_process
from worker.errors import ConfigError, DataError, PublishError
from worker.publish import PublishOptions, build_publication
from worker.publish.card import render_card
from worker.publish.sinks import CardInfo, HubSink, LocalDirectorySink
from worker.records import PulledRecord, ResponseState, SuggestionState

LABELS = ("negative", "positive", "neutral")


@pytest.fixture(autouse=True)
def publication_files_in_pytest_tmp(tmp_path_factory, monkeypatch):
    """Most tests here read a publication's splits without closing it: its Arrow files go under pytest's
    temporary directories (removed by pytest), not the system's, where each run left 38 directories."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path_factory.mktemp("publications")))


@pytest.fixture
def fresh_hub_sessions():
    """huggingface_hub caches its HTTP session (offline or not) per thread: start and end clean."""
    import huggingface_hub.utils

    # huggingface_hub < 1 names it reset_sessions; ≥ 1 (httpx) close_session
    reset = getattr(huggingface_hub.utils, "reset_sessions", None) or huggingface_hub.utils.close_session
    reset()
    yield
    reset()


def _record(record_id, original, votes=(), *, loss=None, split=None, text=None):
    responses = tuple(ResponseState(f"u{i}", value, "submitted", datetime.now(UTC)) for i, value in enumerate(votes))
    metadata = {"original_label": original, "model_version": "v0003"}
    if loss is not None:
        metadata.update(loss=loss, original_loss=loss, bald=0.1, entropy=0.5, margin=0.2, confidence=0.7)
    if split:
        metadata["split"] = split
    text = text or f"text of {record_id}"
    return PulledRecord(f"srv-{record_id}", record_id, text, metadata, SuggestionState("positive", "v0003", 0.7),
                        responses, None, field_values={"text": text})


def _records():
    return [
        _record("a", "positive", ["negative"], loss=3.2),               # corrected
        _record("b", "negative", ["negative", "negative"], loss=0.1),   # confirmed by two
        _record("c", "positive", ["positive", "negative"], loss=1.0),   # tie: left out
        _record("d", "neutral", loss=0.4),                              # not reviewed: original label
        _record("e", "neutral", ["positive", "positive", "neutral"], loss=2.5),  # corrected, 2 of 3 agree
        _record("f", None),                                             # no label at all: left out
    ]


def test_rows_carry_the_correction_beside_the_original_and_nothing_is_guessed():
    publication = build_publication(_records(), LABELS)

    rows = {row["id"]: row for row in publication.rows}
    assert set(rows) == {"a", "b", "d", "e"}
    assert publication.tied == ["c"] and publication.unlabelled == ["f"]
    names = LABELS
    assert (names[rows["a"]["label"]], names[rows["a"]["original_label"]], rows["a"]["was_corrected"]) == (
        "negative", "positive", True)
    assert (rows["b"]["reviewed"], rows["b"]["was_corrected"], rows["b"]["num_annotators"]) == (True, False, 2)
    assert (names[rows["d"]["label"]], rows["d"]["reviewed"], rows["d"]["annotator_agreement"]) == (
        "neutral", False, None)
    assert rows["e"]["annotator_agreement"] == pytest.approx(2 / 3) and rows["e"]["loss"] == pytest.approx(2.5)
    assert publication.changes() == [("neutral", "positive", 1), ("positive", "negative", 1)]
    counts = publication.counts()
    assert (counts["records"], counts["reviewed"], counts["corrected"]) == (4, 3, 2)
    assert build_publication(_records(), LABELS, PublishOptions(only_reviewed=True)).counts()["records"] == 3


def test_a_label_outside_the_question_names_the_record():
    with pytest.raises(DataError, match=r"record 'x': consensus label 'angry'"):
        build_publication([_record("x", "positive", ["angry"])], LABELS)


def test_splits_are_kept_or_stratified():
    records = [_record(f"r{i}", LABELS[i % 2], split="test" if i < 4 else "train") for i in range(20)]
    kept = build_publication(records, LABELS, PublishOptions(split="keep"))
    assert {name: split.num_rows for name, split in kept.splits.items()} == {"test": 4, "train": 16}
    stratified = build_publication(records, LABELS, PublishOptions(split="stratified", test_fraction=0.2))
    assert stratified.splits["test"].num_rows == 4
    assert sorted(stratified.splits["test"]["label"]) == [0, 0, 1, 1]
    with pytest.raises(DataError, match="have no split metadata"):
        build_publication([_record("x", "positive")], LABELS, PublishOptions(split="keep"))


def test_the_next_publication_keeps_the_stratified_test_rows_in_test():
    """A team trains on version 1's `train` and later evaluates on version 2's `test`: with the split reshuffled
    over the whole set, 35 of version 2's 80 test rows were version 1's train rows (hashed: at most a few)."""
    records = [_record(f"r{i:04d}", LABELS[(i * 7) % 3 % 2], text=f"review text {i}") for i in range(400)]
    options = PublishOptions(split="stratified", test_fraction=0.2)
    first = build_publication(records[:200], LABELS, options)
    second = build_publication(records, LABELS, options)

    trained_before = set(first.splits["train"]["id"])
    tested_after = set(second.splits["test"]["id"])
    assert len(tested_after & trained_before) <= len(tested_after) // 10
    assert len(set(first.splits["test"]["id"]) & tested_after) >= 0.8 * first.splits["test"].num_rows


def test_a_stratified_test_split_holds_no_text_of_the_train_split():
    """Copies of one text (case and spaces aside), even with different labels, land in the same split: a Hub user
    who trains on `train` and evaluates on `test` measures generalisation, not memory."""
    texts = [f"review number {i // 3}" if i % 3 == 0 else f"Review  NUMBER {i // 3} " if i % 3 == 1
             else f"another review {i}" for i in range(60)]
    records = [_record(f"r{i:02d}", LABELS[(i // 3) % 2] if i % 3 != 2 else LABELS[i % 2], text=text)
               for i, text in enumerate(texts)]
    publication = build_publication(records, LABELS, PublishOptions(split="stratified", test_fraction=0.25))

    def normalised(split):
        return {" ".join(text.split()).casefold() for text in publication.splits[split]["text"]}

    assert normalised("train").isdisjoint(normalised("test"))
    assert 10 <= publication.splits["test"].num_rows <= 20
    assert not {"__text_key", "__label_key"} & set(publication.splits["test"].column_names)
    counts = publication.counts()  # 20 texts in 2 rows each, each pair with one label
    assert (counts["copied_texts"], counts["copied_rows"], counts["disagreeing_texts"]) == (20, 40, 0)
    card = render_card(publication, license="mit", pretty_name="tickets", source="http://argilla")
    assert "20 texts appear in more than one row (40 rows, letter case and spacing aside); 0 of them carry " \
           "different labels. The `test` split holds none of the `train` split's texts." in card
    distinct = build_publication([_record(f"d{i}", "positive", text=f"text {i}") for i in range(3)], LABELS)
    assert "Every row's text is distinct" in render_card(distinct, license="mit", pretty_name="d", source="x")


def test_copies_labelled_differently_are_counted_for_the_card():
    records = [_record("a", "positive", text="Same text"), _record("b", "negative", text="same  TEXT"),
               _record("c", "negative", ["positive"], text="same text "), _record("d", "neutral", text="other")]
    counts = build_publication(records, LABELS).counts()
    assert (counts["copied_texts"], counts["copied_rows"], counts["disagreeing_texts"]) == (1, 3, 1)


REVIEWS = ["A quiet film about fathers and sons that earns every minute of its running time",
           "The heist goes wrong in the first ten minutes and the film never recovers its nerve",
           "Two sisters sail around the world and the camera falls in love with the sea",
           "A chess prodigy, a patient teacher and a final match that is pure suspense",
           "The haunted hotel has more creaking doors than ideas, and the ghosts look bored",
           "A village baker feeds a town through a hard winter in this warm little drama"]


def test_near_copies_count_as_copies_and_stay_in_one_split_when_the_similarity_is_below_one():
    """A re-posted review with a signature added or a word changed is one text for the test split and the card at
    ``copies.similarity`` < 1 (near copies, worker/duplicates.py); at 1 it is another text."""
    texts = [text for review in REVIEWS * 5 for text in (review, f"{review} (Sent from my phone)")][:60]
    texts = [text if i % 4 != 3 else text.replace(" the ", " this ", 1) for i, text in enumerate(texts)]
    records = [_record(f"r{i:02d}", LABELS[(i // 12) % 2], text=text)  # each review's later copies relabelled
               for i, text in enumerate(texts)]
    options = PublishOptions(split="stratified", test_fraction=0.25, similarity=0.6)

    near = build_publication(records, LABELS, options)

    def reviews(split):
        return {next(n for n, review in enumerate(REVIEWS) if review[:20] in text)
                for text in near.splits[split]["text"]}

    assert reviews("test") and reviews("train").isdisjoint(reviews("test"))
    counts = near.counts()
    assert (counts["copied_texts"], counts["copied_rows"]) == (6, 60) and counts["disagreeing_texts"] == 6
    card = render_card(near, license="mit", pretty_name="reviews", source="http://argilla")
    assert "6 texts appear in more than one row (60 rows, counting near copies: texts whose 5-character pieces " \
           "overlap at least 0.6 (Jaccard)); 6 of them carry different labels. The `test` split holds none of the " \
           "`train` split's texts nor a near copy of one." in card
    exact = build_publication(records, LABELS, replace(options, similarity=1.0)).counts()
    assert exact["copied_texts"] >= 12  # each review, its signed copy and its reworded copy: three texts


def test_each_bound_field_is_published_under_its_own_name_and_the_card_lists_the_columns(tmp_path):
    fields = ("premise", "hypothesis", "label")  # a field named like a worker column is renamed, not dropped
    records = [PulledRecord(f"srv-{i}", f"r{i}", None, {"original_label": "positive"}, None, (), None,
                            field_values={"premise": f"p{i}", "hypothesis": None if i == 1 else f"h{i}",
                                          "label": f"l{i}"})
               for i in range(3)]

    publication = build_publication(records, LABELS, fields=fields)
    LocalDirectorySink(tmp_path / "out").publish(publication, CardInfo())

    loaded = datasets.load_dataset(str(tmp_path / "out"), cache_dir=str(tmp_path / "hf-cache"))["train"]
    assert [loaded.column_names[i] for i in (1, 2, 3)] == ["premise", "hypothesis", "field_label"]
    assert loaded["hypothesis"] == ["h0", None, "h2"] and loaded["field_label"] == ["l0", "l1", "l2"]
    assert loaded["label"] == [LABELS.index("positive")] * 3
    header = yaml.safe_load((tmp_path / "out" / "README.md").read_text().split("---")[1])
    assert [f["name"] for f in header["dataset_info"]["features"]] == list(loaded.features)
    bad = [PulledRecord("srv-x", "x", None, {"original_label": "positive"}, None, (), None,
                        field_values={"premise": ["a", "list"], "hypothesis": "h", "label": "l"})]
    with pytest.raises(DataError, match="record 'x': field 'premise' is list"):
        build_publication(bad, LABELS, fields=fields)


def test_a_conversation_is_published_as_its_messages_and_the_card_describes_them(tmp_path):
    """A chat field keeps its shape: a list of {role, content} per row (the Hub's chat-dataset layout)."""
    conversation = [{"role": "user", "content": "my invoice is wrong"}, {"role": "assistant", "content": "Which?"}]
    records = [PulledRecord(f"srv-{i}", f"r{i}", None, {"original_label": "positive"}, None, (), None,
                            field_values={"conversation": conversation[:i + 1], "subject": f"s{i}"})
               for i in range(2)]

    publication = build_publication(records, LABELS, fields=("subject", "conversation"), chat_fields=("conversation",))
    LocalDirectorySink(tmp_path / "out").publish(publication, CardInfo())

    loaded = datasets.load_dataset(str(tmp_path / "out"), cache_dir=str(tmp_path / "hf-cache"))["train"]
    assert loaded["conversation"] == [conversation[:1], conversation] and loaded["subject"] == ["s0", "s1"]
    header = yaml.safe_load((tmp_path / "out" / "README.md").read_text().split("---")[1])
    described = next(f for f in header["dataset_info"]["features"] if f["name"] == "conversation")
    assert described == {"name": "conversation", "list": [{"name": "role", "dtype": "string"},
                                                          {"name": "content", "dtype": "string"}]}
    assert datasets.Features._from_yaml_list(header["dataset_info"]["features"]) == loaded.features
    bad = [PulledRecord("srv-x", "x", None, {"original_label": "positive"}, None, (), None,
                        field_values={"conversation": "hello", "subject": "s"})]
    with pytest.raises(DataError, match="record 'x': chat field 'conversation' is 'hello', not a list of messages"):
        build_publication(bad, LABELS, fields=("subject", "conversation"), chat_fields=("conversation",))


def test_a_rating_question_is_published_as_its_integer_ratings(tmp_path):
    """A published 5 reads 5 (not class index 4 of a ClassLabel named "1" … "5"), beside the original rating;
    the card says so; the counts and the stratified split still work by rating."""
    ratings = ("1", "2", "3", "4", "5")
    records = [_record("a", "5", ["1"]), _record("b", "4"), _record("c", None, ["2", "2"]),
               *(_record(f"s{i}", ratings[i % 5]) for i in range(10))]
    records[1].metadata.update(expected_rating=3.5, rating_error=0.75)  # the worker's ordinal view, published

    publication = build_publication(records, ratings, rating=True)
    LocalDirectorySink(tmp_path / "out").publish(publication, CardInfo())

    loaded = datasets.load_dataset(str(tmp_path / "out"), cache_dir=str(tmp_path / "hf-cache"))["train"]
    assert loaded.features["label"] == datasets.Value("int32") == loaded.features["original_label"]
    rows = {row["id"]: row for row in loaded}
    assert (rows["a"]["label"], rows["a"]["original_label"], rows["a"]["was_corrected"]) == (1, 5, True)
    assert (rows["b"]["label"], rows["b"]["original_label"]) == (4, 4)
    assert (rows["b"]["expected_rating"], rows["b"]["rating_error"]) == (3.5, 0.75)
    assert rows["a"]["expected_rating"] is None  # not scored
    assert (rows["c"]["label"], rows["c"]["original_label"]) == (2, None)
    assert publication.counts()["per_class"] == {"1": 3, "2": 3, "3": 2, "4": 3, "5": 2}
    assert publication.changes() == [("5", "1", 1)]
    card = (tmp_path / "out" / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert datasets.Features._from_yaml_list(header["dataset_info"]["features"]) == loaded.features
    assert "hold the ratings themselves, integers (1, 2, 3, 4, 5" in card and "| rating | label |" in card
    assert "- `rating_error`: rating question:" in card
    stratified = build_publication(records, ratings, PublishOptions(split="stratified", test_fraction=0.4),
                                   rating=True)
    assert set(stratified.splits["test"]["label"]) <= {1, 2, 3, 4, 5}
    assert len(set(stratified.splits["test"]["label"])) == 5  # every rating in the test split


def test_the_local_sink_round_trips_through_load_dataset_with_a_valid_card(tmp_path):
    publication = build_publication(_records(), LABELS, PublishOptions(split="none"))
    target = tmp_path / "cleaned"

    result = LocalDirectorySink(target).publish(publication, CardInfo(license="cc-by-4.0", pretty_name="Reviews"))

    assert result.published
    loaded = datasets.load_dataset(str(target), cache_dir=str(tmp_path / "hf-cache"))
    assert set(loaded) == {"train"} and loaded["train"].num_rows == 4
    assert loaded["train"].features["label"].names == list(LABELS)
    assert loaded["train"].features["original_label"].names == list(LABELS)
    by_id = {row["id"]: row for row in loaded["train"]}
    assert by_id["a"]["label"] == LABELS.index("negative") and by_id["a"]["original_label"] == LABELS.index("positive")
    card = (target / "README.md").read_text()
    header = yaml.safe_load(card.split("---")[1])
    assert header["license"] == "cc-by-4.0" and header["task_categories"] == ["text-classification"]
    assert header["size_categories"] == ["n<1K"]
    # the split info is whole (datasets ignores it, with a warning, without num_bytes)
    splits = datasets.splits.SplitDict._from_yaml_list(header["dataset_info"]["splits"])
    assert splits["train"].num_examples == 4 and splits["train"].num_bytes > 0
    label_feature = next(f for f in header["dataset_info"]["features"] if f["name"] == "label")
    assert label_feature["dtype"]["class_label"]["names"] == {"0": "negative", "1": "positive", "2": "neutral"}
    assert "| positive → negative | 1 |" in card and "| corrected (label ≠ original) | 2 |" in card
    for image in ("images/correction_confusion.png", "images/loss_corrected_vs_confirmed.png"):
        assert f"]({image})" in card and (target / image).read_bytes()[:4] == b"\x89PNG"


def test_a_dataset_that_came_without_labels_is_published_as_labelled_not_as_corrected(tmp_path):
    """Records with no label of their own, labelled by annotators: the card says so — no "corrected" count, no
    corrections table, no plots of original labels that do not exist — and the rows load as usual."""
    records = [_record(name, None, [label], loss=0.3) for name, label in
               (("a", "negative"), ("b", "positive"), ("c", "positive"))] + [_record("d", None)]
    target = tmp_path / "labelled"

    LocalDirectorySink(target).publish(build_publication(records, LABELS, PublishOptions(split="none")),
                                       CardInfo(pretty_name="Reviews"))

    card = (target / "README.md").read_text()
    assert "The records came without labels: annotators labelled them" in card
    assert "## How it was labelled" in card and "| came with a label | 0 |" in card
    assert "No record came with a label: every label is an annotator's" in card
    assert "corrected" not in card.split("## Counts")[1] and "images/" not in card
    assert not (target / "images").exists()
    loaded = datasets.load_dataset(str(target), cache_dir=str(tmp_path / "hf-cache"))["train"]
    assert sorted(loaded["id"]) == ["a", "b", "c"] and set(loaded["original_label"]) == {-1}


def test_a_republished_directory_loads_its_new_rows_not_the_cached_previous_ones(tmp_path):
    """``datasets.load_dataset(directory)`` caches a local dataset under a key made from its card: a card that
    stayed the same while a value changed (same rows, same counts) loaded the previous rows from that cache."""
    sink, cache = LocalDirectorySink(tmp_path / "cleaned"), str(tmp_path / "hf-cache")
    records = _records()
    sink.publish(build_publication(records, LABELS, PublishOptions(split="none")), CardInfo())
    assert datasets.load_dataset(str(tmp_path / "cleaned"), cache_dir=cache)["train"]["loss"][0] == pytest.approx(3.2)

    records[0] = _record("a", "positive", ["negative"], loss=0.7)  # one value changes, nothing the card counts
    sink.publish(build_publication(records, LABELS, PublishOptions(split="none")), CardInfo())
    assert datasets.load_dataset(str(tmp_path / "cleaned"), cache_dir=cache)["train"]["loss"][0] == pytest.approx(0.7)


def test_publishing_unchanged_content_twice_writes_nothing_new(tmp_path):
    sink = LocalDirectorySink(tmp_path / "cleaned")
    first = sink.publish(build_publication(_records(), LABELS), CardInfo())
    manifest = (tmp_path / "cleaned" / "publication.json").read_text()

    second = sink.publish(build_publication(_records(), LABELS), CardInfo())

    assert first.published and not second.published and first.content_hash == second.content_hash
    assert (tmp_path / "cleaned" / "publication.json").read_text() == manifest
    changed = _records()
    changed[3] = _record("d", "neutral", ["negative"], loss=0.4)
    assert sink.publish(build_publication(changed, LABELS), CardInfo()).published


def test_an_interrupted_write_leaves_the_previous_publication_intact(tmp_path, monkeypatch):
    sink = LocalDirectorySink(tmp_path / "cleaned")
    sink.publish(build_publication(_records(), LABELS), CardInfo())
    before = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "cleaned").rglob("*") if p.is_file()}
    changed = _records()[:3]

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("worker.publish.sinks.write_plots", crash)
    with pytest.raises(PublishError, match=r"publish.directory .*cleaned: the publication could not be written "
                                           r"there \(disk full\); the last publication there, if any, is unchanged"):
        sink.publish(build_publication(changed, LABELS), CardInfo())

    after = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "cleaned").rglob("*") if p.is_file()}
    assert after == before
    assert [p.name for p in tmp_path.iterdir()] == ["cleaned"], "a half-written publication was left behind"
    assert datasets.load_dataset(str(tmp_path / "cleaned"), cache_dir=str(tmp_path / "hf-cache"))["train"].num_rows == 4


def test_a_directory_that_cannot_be_made_is_one_error_naming_the_setting(tmp_path):
    """Under a file: refused by the sink's check (what `config check` asks, and publish first) with the file named.
    Where the OS refuses (/proc, a read-only mount, a full disk): the OS's reason, the setting and the directory,
    not the staging directory's name."""
    (tmp_path / "notes.md").write_text("ours")
    under_a_file = LocalDirectorySink(tmp_path / "notes.md" / "cleaned")

    for action in (under_a_file.check, lambda: under_a_file.publish(build_publication(_records(), LABELS), CardInfo())):
        with pytest.raises(ConfigError, match=rf"^publish.directory {re.escape(str(under_a_file.path))}: "
                                              rf"{re.escape(str(tmp_path / 'notes.md'))} is a file, not a directory"):
            action()
    assert (tmp_path / "notes.md").read_text() == "ours"

    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc here: the OS-refused half needs a place no one can write")
    refused = LocalDirectorySink(Path("/proc/argilla-worker-test"))
    with pytest.raises(PublishError) as raised:
        refused.publish(build_publication(_records(), LABELS), CardInfo())
    assert re.match(r"publish.directory /proc/argilla-worker-test: the publication could not be written there \(\w",
                    str(raised.value)) and ".new-" not in str(raised.value), str(raised.value)


def test_a_directory_holding_the_teams_files_is_refused_before_anything_is_moved(tmp_path):
    """The swap replaces the directory whole: their files in it (a directory of theirs, or a file added beside a
    publication) would be deleted. Refused with their names, nothing touched; a new, empty or previously
    published directory is taken."""
    from worker.errors import ConfigError

    theirs = tmp_path / "datasets"
    (theirs / "raw").mkdir(parents=True)
    (theirs / "raw" / "reviews.csv").write_text("id,text\n1,fine\n")
    (theirs / "notes.md").write_text("our notes")
    publication = build_publication(_records(), LABELS)

    with pytest.raises(ConfigError, match=r"holds files the worker did not publish \(notes.md, raw/reviews.csv\)"):
        LocalDirectorySink(theirs).publish(publication, CardInfo())
    assert sorted(p.name for p in theirs.rglob("*")) == ["notes.md", "raw", "reviews.csv"]
    assert [p.name for p in tmp_path.iterdir()] == ["datasets"]  # no staging or old copy left behind

    (tmp_path / "empty").mkdir()
    LocalDirectorySink(tmp_path / "empty").publish(publication, CardInfo())
    cleaned = tmp_path / "cleaned"
    LocalDirectorySink(cleaned).publish(publication, CardInfo())
    listed = json.loads((cleaned / "publication.json").read_text())["files"]
    assert "README.md" in listed and any(name.startswith("data/") for name in listed)
    LocalDirectorySink(cleaned).check()  # its own publication: taken
    (cleaned / "images" / "our-plot.png").write_bytes(b"png")
    with pytest.raises(ConfigError, match=r"\(images/our-plot.png\)"):
        LocalDirectorySink(cleaned).check()
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        LocalDirectorySink(tmp_path / "a-file").check()


def test_a_publication_from_before_manifests_listed_files_is_still_replaced(tmp_path):
    cleaned = tmp_path / "cleaned"
    LocalDirectorySink(cleaned).publish(build_publication(_records(), LABELS), CardInfo())
    manifest = json.loads((cleaned / "publication.json").read_text())
    del manifest["files"]
    (cleaned / "publication.json").write_text(json.dumps(manifest))

    LocalDirectorySink(cleaned).check()
    (cleaned / "notes.md").write_text("ours")
    with pytest.raises(Exception, match=r"\(notes.md\)"):
        LocalDirectorySink(cleaned).check()


def test_a_crash_between_the_swap_renames_is_repaired_on_the_next_publish(tmp_path):
    sink = LocalDirectorySink(tmp_path / "cleaned")
    sink.publish(build_publication(_records(), LABELS), CardInfo())
    (tmp_path / "cleaned").rename(tmp_path / ".cleaned.old-123")  # as if killed right after the first rename

    assert sink.last_hash() is not None
    assert (tmp_path / "cleaned" / "README.md").exists()


def test_the_hub_sink_makes_one_commit_per_change_and_never_logs_the_token(caplog, monkeypatch, fresh_hub_sessions):
    """The Hub cannot be reached here: HubStub is a local protocol stub of the Hub's HTTP routes,
    reached through HF_ENDPOINT like any private Hub mirror."""
    import huggingface_hub.constants

    token = "hf_secret_token_value"
    caplog.set_level(logging.DEBUG)
    with HubStub(token) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.url)  # read once at import time
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # scripts/test.sh sets it
        sink = HubSink("team/reviews-cleaned", token=token, private=True)
        first = sink.publish(build_publication(_records(), LABELS), CardInfo(pretty_name="Reviews"))
        second = sink.publish(build_publication(_records(), LABELS), CardInfo(pretty_name="Reviews"))
        changed = _records()
        changed[3] = _record("d", "neutral", ["negative"], loss=0.4)
        third = sink.publish(build_publication(changed, LABELS), CardInfo(pretty_name="Reviews"))
        with pytest.raises(Exception, match="401|Invalid credentials"):
            HubSink("team/reviews-cleaned", token="wrong").publish(
                build_publication(changed, LABELS), CardInfo())

    repo = hub.repos["team/reviews-cleaned"]
    assert repo.private
    assert (first.published, second.published, third.published) == (True, False, True)
    assert len(repo.commits) == 3  # initial + two publications
    assert repo.commits[0]["title"] == "Publish 4 records (3 corrected) ranked by model v0003"
    assert "content-hash: " + third.content_hash in repo.commits[0]["message"]
    current = f"data/train-{third.content_hash[:12]}-00000-of-00001.parquet"  # named by its content
    assert {"README.md", "publication.json", current, "images/correction_confusion.png"} <= set(repo.files)
    assert [name for name in repo.files if name.startswith("data/")] == [current]  # the previous one deleted
    assert json.loads(repo.files["publication.json"])["counts"]["corrected"] == 3
    assert token not in caplog.text


def test_a_hub_repo_of_the_teams_is_refused_until_the_worker_has_published_there(monkeypatch, fresh_hub_sessions):
    """A repo the worker never published to that holds their card and data: refused, naming the files, nothing
    committed. A repo with only .gitattributes (as the Hub makes one) is taken, and after that the worker's own
    publications replace each other. HubStub stands in for the Hub (not reachable from here), as above."""
    import huggingface_hub.constants

    from tests.hub_stub import StubRepo
    from worker.errors import ConfigError

    token = "hf_t"
    with HubStub(token) as hub:
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        hub.repos["team/reviews"] = StubRepo(private=True, files={
            ".gitattributes": b"*.parquet filter=lfs", "README.md": b"# Our reviews", "data/train.parquet": b"PAR1"})
        hub.repos["team/empty"] = StubRepo(private=True, files={".gitattributes": b"*.parquet filter=lfs"})
        publication = build_publication(_records(), LABELS)

        with pytest.raises(ConfigError, match=r"Hub dataset team/reviews holds files the worker did not publish "
                                              r"\(README.md, data/train.parquet\)"):
            HubSink("team/reviews", token=token).publish(publication, CardInfo())
        first = HubSink("team/empty", token=token).publish(publication, CardInfo())
        changed = _records()
        changed[3] = _record("d", "neutral", ["negative"], loss=0.4)
        second = HubSink("team/empty", token=token).publish(build_publication(changed, LABELS), CardInfo())

    assert hub.repos["team/reviews"].files["README.md"] == b"# Our reviews" and not hub.repos["team/reviews"].commits
    assert first.published and second.published and "README.md" in hub.repos["team/empty"].files
    data = sorted(name for name in hub.repos["team/empty"].files if name.startswith("data/"))
    assert data == [f"data/train-{second.content_hash[:12]}-00000-of-00001.parquet"]  # the first one's replaced


def test_a_republication_to_the_hub_replaces_its_own_data_files_only(monkeypatch, fresh_hub_sessions):
    """A file the team added under data/ after a publication stays through the next one. HubStub stands in for the
    Hub (not reachable from here)."""
    import huggingface_hub.constants

    with HubStub("hf_t") as hub:
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.url)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        sink = HubSink("team/cleaned", token="hf_t")
        first = sink.publish(build_publication(_records(), LABELS), CardInfo())
        hub.repos["team/cleaned"].files["data/extra/their-notes.csv"] = b"id,note\n"
        changed = _records()
        changed[3] = _record("d", "neutral", ["negative"], loss=0.4)
        second = sink.publish(build_publication(changed, LABELS), CardInfo())

    files = set(hub.repos["team/cleaned"].files)
    assert "data/extra/their-notes.csv" in files
    assert f"data/train-{second.content_hash[:12]}-00000-of-00001.parquet" in files
    assert not any(first.content_hash[:12] in name for name in files)


def test_a_repo_id_the_hub_would_refuse_is_one_line_before_anything_is_asked():
    """``--repo-id`` skips the config's check: the sink refuses it itself (it raised huggingface_hub's validation
    error as a traceback on the command line before)."""
    with pytest.raises(ConfigError, match=r"Hub dataset repo 'team/clean set': not a Hub repo id: .*'team/clean set'"):
        HubSink("team/clean set", token="t")
    assert HubSink("team/clean-set", token="t").repo_id == "team/clean-set"


def test_publishing_to_the_hub_in_offline_mode_is_a_clear_error(monkeypatch, fresh_hub_sessions):
    """No request leaves the machine: huggingface_hub refuses before any HTTP call."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PublishError, match="HF_HUB_OFFLINE is set"):
        HubSink("team/reviews-cleaned", token="t").publish(build_publication(_records(), LABELS), CardInfo())


def _many_records(count: int, text_size: int):
    """A lazy stream of records with long texts, as a pull's pages deliver them (not in id order)."""
    for number in range(count):
        record_id = f"r{(number * 7919) % count:06d}"
        votes = ["negative"] if number % 10 == 0 else ()
        yield _record(record_id, LABELS[number % 3], votes, loss=float(number % 5),
                      split="test" if number % 4 == 0 else "train", text=record_id + " " + "x" * text_size)


def test_publishing_streams_rows_to_disk_in_bounded_memory():
    """20,000 records with 2 kB texts (40 MB of text): the rows are written a batch at a time, so Python's
    peak allocation while building and hashing stays a small fraction of the texts' size."""
    import tracemalloc

    tracemalloc.start()
    with build_publication(_many_records(20_000, 2_000), LABELS, PublishOptions(split="keep")) as publication:
        publication.content_hash()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        test = publication.splits["test"]
        counts = publication.counts()
        assert (test.num_rows, publication.splits["train"].num_rows) == (5_000, 15_000)
        assert test["id"][:3] == ["r000000", "r000004", "r000008"]  # in id order within a split
        assert (counts["records"], counts["reviewed"], counts["corrected"]) == (20_000, 2_000, 1_333)
        assert len(test[0]["text"]) > 2_000 and test.cache_files, "the split is not memory-mapped from disk"
        workdir = publication.workdir
    assert peak < 12_000_000, f"peak Python allocation {peak / 1e6:.1f} MB: rows accumulate in memory"
    assert not workdir.exists(), "the Arrow files outlive the publication"


def test_what_a_killed_publication_left_is_removed_by_the_next_one_there(tmp_path):
    """A publishing process killed mid-way (its shards on disk) leaves them; the next publication under the same
    ``workdir`` removes them, and its own are gone once it is closed."""
    killed, left = scratch_in_another_process(tmp_path, "publication-")
    killed.kill()
    killed.wait()
    assert (left / "rows.arrow").is_file()
    with build_publication(iter(_records()), LABELS, workdir=tmp_path) as publication:
        assert not left.exists() and publication.workdir.parent == tmp_path
    assert list(tmp_path.iterdir()) == []


def test_a_bad_record_midstream_names_it_and_leaves_no_files(tmp_path):
    records = [_record(f"r{i}", "positive") for i in range(5)] + [_record("bad", "angry")]

    with pytest.raises(DataError, match=r"record 'bad': label 'angry'"):
        build_publication(iter(records), LABELS, workdir=tmp_path)

    assert list(tmp_path.iterdir()) == []


def test_a_dataset_with_nothing_publishable_gives_empty_splits():
    with build_publication(iter([_record("f", None)]), LABELS, PublishOptions(split="stratified")) as publication:
        assert {name: split.num_rows for name, split in publication.splits.items()} == {"test": 0, "train": 0}
        assert publication.unlabelled == ["f"] and publication.counts()["unlabelled_left_out"] == 1
        assert publication.content_hash() == publication.content_hash()


def test_with_annotator_weights_the_published_label_and_its_confidence_follow_them():
    from worker.crowd import CrowdModel

    crowd = CrowdModel(LABELS, annotator_weights={"u0": 0.1, "u1": 0.1, "u2": 0.9}, model_weight=0.5,
                       likelihood=0.8)

    records = _records()
    records[4].metadata["predicted_label"] = "positive"  # with its confidence 0.7: the model's view of "e"
    with build_publication(records, LABELS, crowd=crowd) as publication:
        rows = {row["id"]: row for row in publication.rows}
    with build_publication(_records(), LABELS) as majority:
        majority_rows = {row["id"]: row for row in majority.rows}

    names = list(LABELS)
    assert names[rows["e"]["label"]] == "neutral" and names[majority_rows["e"]["label"]] == "positive"
    assert rows["e"]["annotator_agreement"] == pytest.approx(0.9 / 1.1)
    # the model: positive 0.7, the rest 0.15 each; the votes: u0, u1 positive (0.1 each), u2 neutral (0.9)
    neutral_mass = 0.5 * 0.15 + 0.9 * 0.8 + 0.2 * 0.1
    assert rows["e"]["label_confidence"] == pytest.approx(neutral_mass / (0.5 + 1.1), rel=1e-5)
    assert majority_rows["e"]["label_confidence"] is None and rows["d"]["label_confidence"] is None


def test_the_users_metadata_properties_are_published_as_typed_columns(tmp_path):
    """publish.metadata: integer / float / terms properties become int64 / float64 / string columns (a terms list
    as its JSON text, a missing value null); a name a worker column has gets metadata_<name>; a value of the
    wrong kind is an error naming the record, the property and the value."""
    records = _records()
    extra = {"a": {"stars": 4, "team": "north", "weight": 0.5, "reviewed": "by legal"},
             "b": {"stars": 2, "team": ["north", "south"]}, "d": {"team": "east", "weight": 2}}
    for record in records:
        record.metadata.update(extra.get(record.record_id, {}))
    metadata = {"stars": "integer", "team": "terms", "weight": "float", "reviewed": "terms"}
    publication = build_publication(records, LABELS, PublishOptions(split="none"), metadata=metadata)
    LocalDirectorySink(tmp_path / "out").publish(publication, CardInfo(license="mit", pretty_name="Reviews"))

    loaded = datasets.load_dataset(str(tmp_path / "out"), cache_dir=str(tmp_path / "hf-cache"))["train"]
    assert {name: loaded.features[name].dtype for name in ("stars", "team", "weight", "metadata_reviewed")} == {
        "stars": "int64", "team": "string", "weight": "float64", "metadata_reviewed": "string"}
    rows = {row["id"]: row for row in loaded}
    assert (rows["a"]["stars"], rows["a"]["team"], rows["a"]["weight"], rows["a"]["metadata_reviewed"]) == (
        4, "north", 0.5, "by legal")
    assert rows["a"]["reviewed"] is True  # the worker's own column is not replaced by theirs
    assert json.loads(rows["b"]["team"]) == ["north", "south"] and rows["b"]["weight"] is None
    assert (rows["d"]["stars"], rows["d"]["weight"]) == (None, 2.0)
    card = (tmp_path / "out" / "README.md").read_text()
    assert ("From the Argilla dataset's metadata: `stars`, `team`, `weight`, `metadata_reviewed` (property `reviewed`)"
            in card)

    wrong = _records()
    wrong[0].metadata["stars"] = "four"
    with pytest.raises(DataError, match=r"record 'a': metadata 'stars' is 'four', not integer"):
        build_publication(wrong, LABELS, metadata={"stars": "integer"}, workdir=tmp_path / "work")
    assert not any((tmp_path / "work").iterdir())  # nothing left on disk


def test_the_answers_to_their_other_questions_are_published_as_typed_lists(tmp_path):
    """publish.questions: each named question's submitted answers, a list per row (a note's texts, a rating's
    integers, a label set's labels; empty where nobody answered); a name a worker or metadata column has gets
    answers_<name>; an answer of the wrong kind is an error naming the record, the question and the value."""
    records = _records()
    given = {"a": {"note": ("sarcastic?", "yes, sarcasm"), "quality": (4, 5), "topics": (["acting", "plot"],),
                   "loss": ("a second label",)},
             "b": {"note": ("ok",), "ranking": ([{"value": "x", "rank": 1}],)}}
    for record in records:
        record.answers.update(given.get(record.record_id, {}))
    questions = {"note": "text", "quality": "rating", "topics": "multi_label_selection", "loss": "label_selection",
                 "ranking": "ranking"}
    publication = build_publication(records, LABELS, PublishOptions(split="none"), questions=questions,
                                    metadata={"note": "terms"})
    LocalDirectorySink(tmp_path / "out").publish(publication, CardInfo(license="mit", pretty_name="Reviews"))

    loaded = datasets.load_dataset(str(tmp_path / "out"), cache_dir=str(tmp_path / "hf-cache"))["train"]
    assert {name: str(loaded.features[name]) for name in ("answers_note", "quality", "topics", "answers_loss")} == {
        "answers_note": str(datasets.Sequence(datasets.Value("string"))),
        "quality": str(datasets.Sequence(datasets.Value("int64"))),
        "topics": str(datasets.Sequence(datasets.Sequence(datasets.Value("string")))),
        "answers_loss": str(datasets.Sequence(datasets.Value("string")))}
    rows = {row["id"]: row for row in loaded}
    assert (rows["a"]["answers_note"], rows["a"]["quality"], rows["a"]["topics"], rows["a"]["answers_loss"]) == (
        ["sarcastic?", "yes, sarcasm"], [4, 5], [["acting", "plot"]], ["a second label"])
    assert rows["a"]["note"] is None  # their metadata property of that name keeps its own column
    assert (rows["b"]["answers_note"], rows["b"]["quality"], rows["b"]["topics"]) == (["ok"], [], [])
    assert [json.loads(answer) for answer in rows["b"]["ranking"]] == [[{"rank": 1, "value": "x"}]]
    assert isinstance(rows["a"]["loss"], float)  # the worker's score is not replaced by their question
    card = (tmp_path / "out" / "README.md").read_text()
    assert ("The annotators' answers to the dataset's other questions: `answers_note` (question `note`), `quality`, "
            "`topics`, `answers_loss` (question `loss`), `ranking` — a list per row") in card

    wrong = _records()
    wrong[0].answers["quality"] = ("five",)
    with pytest.raises(DataError, match=r"record 'a': an answer to question 'quality' is 'five', not a rating"):
        build_publication(wrong, LABELS, questions={"quality": "rating"}, workdir=tmp_path / "work")
    assert not any((tmp_path / "work").iterdir())  # nothing left on disk


def test_the_card_names_a_validation_on_the_records_own_labels_agreement_not_accuracy():
    publication = build_publication([_record(f"d{i}", "positive", text=f"text {i}") for i in range(3)], LABELS)
    validation = {"records": 240, "accuracy": 0.7292, "macro_f1": 0.7216, "ece_deterministic": 0.0342,
                  "ece_mc": 0.0281}

    def card(training):
        return render_card(publication, license="mit", pretty_name="d", source="x",
                           model_metrics={"validation": validation, "training": training})

    before_any_review = card({"annotated": 0, "validation_reviewed": 0})
    assert "Validated on 240 records' own labels: agreement 0.7292, macro-F1 0.7216" in before_any_review
    assert "not accuracy" in before_any_review and "accuracy 0.7292" not in before_any_review
    assert "240 records' own labels" in card({"annotated": 0})  # a model registered before the count was kept
    assert "Validated on 230 records' own labels and 10 reviewed ones: agreement" in card(
        {"annotated": 12, "validation_reviewed": 10})
    reviewed = card({"annotated": 1200, "validation_reviewed": 240})
    assert "Validated on 240 reviewed records: accuracy 0.7292, macro-F1 0.7216" in reviewed
    assert "not accuracy" not in reviewed
    assert "Validated on 240 reviewed records: accuracy" in card({"annotated": 300})  # before the count was kept


def test_the_card_gives_the_test_sets_figures_beside_the_validations():
    publication = build_publication([_record(f"d{i}", "positive", text=f"text {i}") for i in range(3)], LABELS)
    validation = {"records": 24, "accuracy": 0.3900, "macro_f1": 0.3100, "ece_deterministic": 0.2, "ece_mc": 0.1}
    test = {"records": 48, "accuracy": 0.6667, "accuracy_interval": [0.5254, 0.7832], "macro_f1": 0.6012}

    card = render_card(publication, license="mit", pretty_name="d", source="x",
                       model_metrics={"validation": validation, "training": {"annotated": 120}, "test": test})

    assert ("On 48 reviewed records drawn at random (a test set it never trained on): accuracy 0.6667 (95 % interval "
            "0.5254 to 0.7832), macro-F1 0.6012.") in card
    assert "drawn at random" not in render_card(publication, license="mit", pretty_name="d", source="x",
                                                model_metrics={"validation": validation, "training": {}})
    calibrated = render_card(publication, license="mit", pretty_name="d", source="x", model_metrics={
        "validation": validation, "training": {}, "test": {**test, "ece": 0.041, "ece_deterministic": 0.0803}})
    assert ("macro-F1 0.6012; the confidence it writes has an expected calibration error of 0.0410 there (0.0803 for "
            "the deterministic model).") in calibrated


def test_the_test_set_rows_carry_their_rank_and_a_stratified_split_puts_them_and_their_copies_in_test():
    """The worker's test set is a random sample no model trained on: a Hub user who evaluates on `test` should
    find it there, and its share of each class counts towards the test fraction."""
    records = [_record(f"r{i:03d}", LABELS[i % 2], ["positive"] if i % 4 == 0 else (), text=f"review {i}")
               for i in range(100)]
    ranked = {f"r{i:03d}": rank for rank, i in enumerate(range(0, 100, 9), start=1)}  # 12 test records
    for record in records:
        if record.record_id in ranked:
            record.metadata["test_set_rank"] = ranked[record.record_id]
    copy = _record("z-copy", "negative", text=" REVIEW 9 ")  # a copy of test record r009's text

    publication = build_publication([*records, copy], LABELS, PublishOptions(split="stratified", test_fraction=0.2))

    test_rows = dict(zip(publication.splits["test"]["id"], publication.splits["test"]["test_set_rank"], strict=True))
    assert {record_id: rank for record_id, rank in test_rows.items() if rank is not None} == ranked
    assert "z-copy" in test_rows
    assert set(publication.splits["train"]["test_set_rank"]) == {None}
    # 20 % of each class (15 of the 76 positive rows, 5 of the 25 negative), the test set and its copy among them
    assert publication.splits["test"].num_rows == 20
    counts = publication.counts()
    assert (counts["test_set"], counts["test_set_reviewed"]) == (12, sum(int(i[1:]) % 4 == 0 for i in ranked))
    card = render_card(publication, license="mit", pretty_name="d", source="x")
    assert (f"- Test set: `test_set_rank` is set on 12 of the rows ({counts['test_set_reviewed']} of them reviewed)"
            in card
            and "The `test` split holds every one of them" in card)
    plain = build_publication(records[1:5], LABELS)
    assert "Test set:" not in render_card(plain, license="mit", pretty_name="d", source="x")


def test_the_card_says_which_score_columns_no_row_has_a_value_in_yet():
    publication = build_publication(_records(), LABELS)  # scored (loss, bald …), no `score --oof` run
    card = render_card(publication, license="mit", pretty_name="d", source="x")

    def described(name):
        return next(line for line in card.splitlines() if line.startswith(f"  - `{name}`:"))

    assert described("label_issue").endswith("(No row has a value yet.)")
    assert described("expected_loss").endswith("(No row has a value yet.)")
    assert not described("loss").endswith("(No row has a value yet.)")
    assert not described("bald").endswith("(No row has a value yet.)")


def test_a_publication_without_rows_says_why_instead_of_replacing_the_last_one():
    """`publish.only_reviewed` before any review (or an empty dataset) once wrote an empty dataset over the last
    publication (on the Hub too); publish_job now raises this message instead (checked on the local server by hand:
    `error: nothing to publish: 'reviews' has 15 records and none is reviewed yet …`)."""
    from worker.config import load_settings
    from worker.jobs import Services, _nothing_to_publish
    from worker.publish.build import PublicationStats

    seen = PublicationStats(labels=LABELS, records_seen=15, unlabelled=12, tied=3)
    reviewed_only = Services(load_settings(argilla={"dataset": "reviews"}, publish={"only_reviewed": True}))
    everything = Services(load_settings(argilla={"dataset": "reviews"}))

    assert _nothing_to_publish(reviewed_only, seen) == (
        "nothing to publish: 'reviews' has 15 records and none is reviewed yet (publish.only_reviewed = true); the "
        "last publication, if any, is left as it is")
    assert "none carries a label to publish (12 without a label or review, 3 tied)" in _nothing_to_publish(
        everything, seen)
    assert "'reviews' has no record" in _nothing_to_publish(everything, PublicationStats(labels=LABELS))
