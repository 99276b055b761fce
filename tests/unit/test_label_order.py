"""`models register DIR --label-map auto`: a model trained without label names (LABEL_0, LABEL_1) gets its map read
from the records that carry a label — with a real (tiny, trained here) classifier."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.tiny_models import save_tiny_classifier
from tests.training_data import (
    LABELS,
    NAMELESS_TAG_ORDER,
    TAGS,
    save_nameless_sentiment_classifier,
    save_nameless_tagging_classifier,
    sentiment_examples,
    tagging_examples,
)
from worker.errors import DataError
from worker.registry import ModelRegistry
from worker.training.label_order import (
    LabelledInput,
    has_default_names,
    labelled_sample,
    map_from_label_sets,
    read_label_map,
)
from worker.training.register import register_model

EXAMPLES = sentiment_examples(48)


@pytest.fixture(scope="module")
def nameless_model(tmp_path_factory):
    """Trained on the examples, saved with LABEL_0 = `positive`, LABEL_1 = `negative`."""
    return save_nameless_sentiment_classifier(tmp_path_factory.mktemp("nameless"))


def _sample(wrong: float = 0.0, seed: int = 0) -> list[LabelledInput]:
    """The examples with their labels, a share ``wrong`` of them flipped (labels as teams have them: noisy)."""
    rng = random.Random(seed)
    flip = {"negative": "positive", "positive": "negative"}
    return [LabelledInput(e.id, e.text, None, flip[e.label] if rng.random() < wrong else e.label) for e in EXAMPLES]


def test_the_outputs_of_a_model_trained_without_label_names_are_read_from_noisy_labels_and_registered(
        nameless_model, tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    with pytest.raises(DataError, match=r"transformers' defaults \(it was trained without label names\): "
                                        r"--label-map auto reads which is which"):
        register_model(str(nameless_model), registry, list(LABELS))

    readings = []

    def reader(model, tokenizer, model_labels, thresholds):
        assert thresholds is None  # a single-label model's
        readings.append(read_label_map(model, tokenizer, model_labels, list(LABELS), _sample(wrong=0.2),
                                       max_length=128))
        return readings[-1].mapping

    entry = register_model(str(nameless_model), registry, list(LABELS), label_map_reader=reader)

    reading = readings[0]
    assert reading.mapping == {"LABEL_0": "positive", "LABEL_1": "negative"}
    assert reading.records == len(EXAMPLES) and 0.6 <= reading.agreement <= 0.95, reading
    assert reading.as_option() == "LABEL_0=positive,LABEL_1=negative"
    assert entry.metrics["label_map"] == {"LABEL_0": "positive", "LABEL_1": "negative"}
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(entry.path).id2label == {0: "positive", 1: "negative"}
    # a model that names its labels as the question's: its names are its word, nothing is read
    named = register_model(str(save_tiny_classifier(tmp_path / "named", labels=("POSITIVE", "NEGATIVE"))), registry,
                           list(LABELS), label_map_reader=reader)
    assert len(readings) == 1 and AutoConfig.from_pretrained(named.path).id2label == {0: "positive", 1: "negative"}


def test_labels_unrelated_to_the_predictions_or_outputs_the_sample_cannot_tell_apart_read_no_map(nameless_model,
                                                                                                  tmp_path):
    """With two labels the best of the two maps agrees with at least half of any sample: the χ² test refuses labels
    the predictions do not follow (and a model that predicts one output for everything). Two outputs the records do
    not tell apart — read either way round, about as many records agree — are named, with the map read for the rest:
    the wrong maps the benchmark found were such pairs."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from worker.training.label_order import map_from_predictions

    tokenizer = AutoTokenizer.from_pretrained(nameless_model)
    model = AutoModelForSequenceClassification.from_pretrained(nameless_model)
    rng = random.Random(1)
    unrelated = [LabelledInput(e.id, e.text, None, rng.choice(LABELS)) for e in EXAMPLES]
    with pytest.raises(DataError, match=r"no more related to their labels than chance \(χ² test p = "):
        read_label_map(model, tokenizer, ["LABEL_0", "LABEL_1"], list(LABELS), unrelated, max_length=128)
    untrained = save_tiny_classifier(tmp_path / "untrained", labels=("LABEL_0", "LABEL_1", "LABEL_2"))
    with pytest.raises(DataError, match=r"no more related to their labels than chance"):  # one output for everything
        read_label_map(AutoModelForSequenceClassification.from_pretrained(untrained),
                       AutoTokenizer.from_pretrained(untrained), ["LABEL_0", "LABEL_1", "LABEL_2"],
                       ["negative", "neutral", "positive"], _sample(), max_length=128)
    with pytest.raises(DataError, match=r"found 5, fewer than 6 \(3 per label; .*review some records of each label "
                                        r"first \(`argilla-worker cold-start` ranks a varied first batch\)"):
        read_label_map(model, tokenizer, ["LABEL_0", "LABEL_1"], list(LABELS), _sample()[:5], max_length=128)

    # outputs 0 and 1 plain; 2 and 3 confused: 3 + 3 records agree with the map, 2 + 2 with the two swapped
    outputs = [0] * 10 + [1] * 10 + [2] * 5 + [3] * 5
    labels = ["a"] * 10 + ["b"] * 10 + ["c", "c", "c", "d", "d"] + ["d", "d", "d", "c", "c"]
    nameless = ["LABEL_0", "LABEL_1", "LABEL_2", "LABEL_3"]
    with pytest.raises(DataError, match=r"30 labelled records do not tell apart the model's LABEL_2 / LABEL_3 .*"
                                        r"name LABEL_2, LABEL_3 by hand — the map read for the others: "
                                        r"LABEL_0=a,LABEL_1=b$"):
        map_from_predictions(outputs, labels, nameless, ["a", "b", "c", "d"])
    told = map_from_predictions(outputs + [2] * 6 + [3] * 6, labels + ["c"] * 6 + ["d"] * 6, nameless,
                                ["a", "b", "c", "d"])  # six more records of each: told apart
    assert told.mapping == {"LABEL_0": "a", "LABEL_1": "b", "LABEL_2": "c", "LABEL_3": "d"}


def test_the_sample_reads_the_annotators_consensus_first_then_the_label_a_record_came_with():
    from worker.records import PulledRecord, ResponseState

    def record(number, reference, votes=()):
        return PulledRecord(f"s{number}", f"r{number}", f"text {number}", {}, None,
                            tuple(ResponseState(f"u{i}", vote, "submitted") for i, vote in enumerate(votes)), None,
                            reference=reference)

    records = [record(0, "negative", ["positive"]), record(1, None), record(2, "positive"),
               record(3, "negative", ["positive", "negative"]), record(4, "negative")]

    sample = labelled_sample(iter(records), size=3)

    assert [(item.record_id, item.label) for item in sample] == [("r0", "positive"), ("r2", "positive"),
                                                                  ("r4", "negative")]  # r1: none; r3: a tie
    assert len(labelled_sample(iter(records), size=10, look_through=2)) == 1
    assert has_default_names(["LABEL_0", "LABEL_12"]) and not has_default_names(["LABEL_0", "positive"])


def test_a_multi_label_model_trained_without_label_names_has_its_outputs_read_from_label_sets(tmp_path):
    """Label sets: an output is predicted where its sigmoid reaches its threshold (the model's own thresholds.json,
    keyed by its nameless labels, reaches the reader), and each output goes to the label whose records it is
    predicted on most — with noisy sets (a label dropped or added on a share of the records)."""
    import json

    from worker.scoring.model import THRESHOLDS_FILE

    model_dir = save_nameless_tagging_classifier(tmp_path / "nameless-tags")
    (model_dir / THRESHOLDS_FILE).write_text(json.dumps({"LABEL_0": 0.45, "LABEL_1": 0.5, "LABEL_2": 0.55}))
    rng = random.Random(3)
    sample = []
    for example in tagging_examples():
        tags = set(example.label)
        if rng.random() < 0.2:  # a tagger's slip: one label added or dropped
            tags ^= {rng.choice(TAGS)}
        sample.append(LabelledInput(example.id, example.text, None, tuple(sorted(tags))))
    readings, seen = [], []

    def reader(model, tokenizer, model_labels, thresholds):
        seen.append(thresholds)
        readings.append(read_label_map(model, tokenizer, model_labels, list(TAGS), sample, max_length=32,
                                       multi_label=True, thresholds=thresholds))
        return readings[-1].mapping

    registry = ModelRegistry(tmp_path / "registry")
    entry = register_model(str(model_dir), registry, list(TAGS), multi_label=True, label_map_reader=reader)

    expected = {f"LABEL_{output}": tag for output, tag in enumerate(NAMELESS_TAG_ORDER)}
    assert seen == [(0.45, 0.5, 0.55)]
    reading = readings[0]
    assert reading.mapping == expected and reading.label_sets and reading.records == len(sample)
    assert reading.carried == sum(len(item.label) for item in sample)
    assert 0.6 <= reading.agreement < 1.0, reading  # the F1 of the label decisions against the noisy sets
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(entry.path).id2label == dict(enumerate(NAMELESS_TAG_ORDER))
    # the thresholds kept beside the weights, by the question's labels
    assert json.loads((Path(entry.path) / THRESHOLDS_FILE).read_text()) == {"praise": 0.45, "acting": 0.5,
                                                                             "humour": 0.55}


def test_label_sets_that_always_come_together_or_do_not_follow_the_predictions_read_no_map():
    """Two labels that every record carries together (or neither) cannot tell their outputs apart: each map agrees
    with the sets alike; sets shuffled over the records are no more related to the predictions than chance (a
    permutation test: a χ² table does not hold label sets); and a map whose decisions mostly disagree is refused."""
    outputs = ["LABEL_0", "LABEL_1", "LABEL_2"]
    labels = ["x", "y", "z"]
    predicted = [(0, 1)] * 10 + [(2,)] * 10 + [()] * 10
    carried = [("x", "y")] * 10 + [("z",)] * 10 + [()] * 10
    with pytest.raises(DataError, match=r"30 labelled records do not tell apart the model's LABEL_0 / LABEL_1 .*"
                                        r"the map read for the others: LABEL_2=z$"):
        map_from_label_sets(predicted, carried, outputs, labels)
    apart = map_from_label_sets(predicted + [(0,)] * 5 + [(1,)] * 5, carried + [("x",)] * 5 + [("y",)] * 5,
                                outputs, labels)  # ten records carry one of the two alone: told apart
    assert apart.mapping == {"LABEL_0": "x", "LABEL_1": "y", "LABEL_2": "z"} and apart.agreement == 1.0

    rng = random.Random(0)
    sets = [tuple(sorted(rng.sample(labels, rng.randint(0, 2)))) for _ in range(60)]
    shuffled = sets[:]
    rng.shuffle(shuffled)
    as_outputs = [tuple(labels.index(label) for label in labels_of) for labels_of in sets]
    with pytest.raises(DataError, match=r"no more related to their labels than chance \(permutation test p = "):
        map_from_label_sets(as_outputs, shuffled, outputs, labels)
    assert map_from_label_sets(as_outputs, sets, outputs, labels).agreement == 1.0  # the same sets, in place
    every = [(0, 1, 2)] * 40 + [()] * 20  # predicts every label on two records of three, x's among them: related,
    few = [("x",)] * 20 + [()] * 40  # but 20 of its 120 decisions of a label present are right (F1 0.29)
    with pytest.raises(DataError, match=r"agrees with their label sets at only F1 0\.29 \(20 labels carried\)"):
        map_from_label_sets(every, few, outputs, labels)
