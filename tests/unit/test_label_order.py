"""`models register DIR --label-map auto`: a model trained without label names (LABEL_0, LABEL_1) gets its map read
from the records that carry a label — with a real (tiny, trained here) classifier."""

from __future__ import annotations

import random

import pytest

from tests.tiny_models import save_tiny_classifier
from tests.training_data import LABELS, save_nameless_sentiment_classifier, sentiment_examples
from worker.errors import DataError
from worker.registry import ModelRegistry
from worker.training.label_order import LabelledInput, has_default_names, labelled_sample, read_label_map
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

    def reader(model, tokenizer, model_labels):
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
