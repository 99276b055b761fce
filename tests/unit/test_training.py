"""Training on a tiny real BERT: data preparation, early stopping with the best checkpoint, seeds, K-fold."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from tests.training_data import LABELS, TAGGED, TAGS, sentiment_examples
from worker.constants import AUTO_HEAD_LEARNING_RATE
from worker.errors import ConfigError, DataError
from worker.records import PulledRecord, ResponseState
from worker.training.data import (
    Example,
    build_training_set,
    examples_from_records,
    stratified_folds,
    stratified_split,
)
from worker.training.kfold import (
    MARGINS_FILE,
    LabelledRecords,
    completed_folds,
    fold_models_dir,
    hashed_fold,
    out_of_fold_scores,
    stream_out_of_fold_scores,
)
from worker.training.trainer import TrainingSettings, train_classifier, trained_head_learning_rate

# the configured epochs exactly, the best epoch picked on any validation split (the schedule's own tests below)
FAST = {"batch_size": 8, "learning_rate": 1e-3, "max_length": 32, "device": "cpu", "min_steps": 0,
        "select_min_validation": 0}
SAMPLES = 4  # scoring.samples: T of the out-of-fold scores


def _record(record_id, original, votes=(), text=None):
    text = f"the text of {record_id}" if text is None else text  # distinct texts: copies of one would share a side
    responses = tuple(ResponseState(f"user{i}", value, "submitted", datetime.now(UTC)) for i, value in enumerate(votes))
    return PulledRecord(f"srv-{record_id}", record_id, text, {"original_label": original}, None, responses, None)


def test_examples_come_from_consensus_and_optionally_from_original_labels_with_a_lower_weight():
    records = [_record("a", "positive", ["negative"]), _record("b", "negative"),
               _record("c", "positive", ["positive", "negative"]), _record("d", "positive", [], text="  ")]

    annotated, original, tied = examples_from_records(records, LABELS, data="annotated+original", original_weight=0.25)

    assert [(e.id, e.label, e.weight) for e in annotated] == [("a", "negative", 1.0)]
    assert [(e.id, e.label, e.weight, e.source) for e in original] == [("b", "negative", 0.25, "original")]
    assert tied == ["c"]
    assert examples_from_records(records, LABELS, data="annotated")[1] == []


def test_a_label_outside_the_question_is_named_with_its_record():
    with pytest.raises(DataError, match=r"record 'x'.*'neutral'"):
        examples_from_records([_record("x", "positive", ["neutral"])], LABELS)


def test_the_validation_split_is_stratified_and_disjoint_from_training():
    examples = sentiment_examples(40)

    train, validation = stratified_split(examples, 0.25, seed=3)

    assert {e.id for e in train}.isdisjoint({e.id for e in validation})
    assert len(train) + len(validation) == 40
    assert sorted(e.label for e in validation).count("positive") == 5 == [e.label for e in validation].count("negative")
    assert stratified_split(examples, 0.25, seed=3) == (train, validation)


def test_too_few_annotations_or_a_class_without_examples_stops_before_training():
    with pytest.raises(DataError, match="only 5 records have a consensus label; training needs at least 20"):
        build_training_set(sentiment_examples(5), [], LABELS, min_annotated=20)
    only_positive = [e for e in sentiment_examples(40) if e.label == "positive"]
    with pytest.raises(DataError, match=r"no training examples for class\(es\) \['negative'\]"):
        build_training_set(only_positive, [], LABELS, min_annotated=4)


def test_a_question_with_labels_nobody_annotated_yet_trains_on_the_others_and_says_which(tiny_model_dir, tmp_path,
                                                                                          caplog):
    """A question with many labels (intents) rarely has every one annotated early: the first models learn the
    classes that have examples, keep every label of the question (scoring needs them all) and say which are
    unlearned; one class alone is still refused."""
    from worker.scoring import load_classifier

    labels = ("negative", "positive", "refund", "outage", "praise")
    with caplog.at_level("WARNING", logger="worker.training.data"):
        training_set = build_training_set(sentiment_examples(40), [], labels, min_annotated=4)
    assert training_set.counts()["without_examples"] == ["refund", "outage", "praise"]
    assert "no training examples yet for 3 of 5 classes ['refund', 'outage', 'praise']" in caplog.text
    assert "without_examples" not in build_training_set(sentiment_examples(40), [], LABELS, min_annotated=4).counts()

    train_classifier(tiny_model_dir, training_set.train, training_set.validation, labels, tmp_path / "model",
                     TrainingSettings(epochs=1, **FAST))
    assert load_classifier(tmp_path / "model", device="cpu").labels == labels
    one_class = [e for e in sentiment_examples(40) if e.label == "positive"]
    with pytest.raises(DataError, match=r"a model needs examples of at least two classes"):
        build_training_set(one_class, [], labels, min_annotated=4)

    tags = (*TAGS, "spoilers")  # a tag nobody ticked yet: the label sets still train
    tagged = [Example(f"m{i}", text, tags_) for i, (text, tags_) in enumerate(TAGGED * 3)]
    assert build_training_set(tagged, [], tags, min_annotated=4).counts()["without_examples"] == ["spoilers"]
    untagged = [Example(f"n{i}", text, ()) for i, (text, _) in enumerate(TAGGED * 3)]
    with pytest.raises(DataError, match="no label occurs"):
        build_training_set(untagged, [], tags, min_annotated=4)


def test_macro_f1_averages_over_the_classes_the_validation_holds():
    """Three of five labels annotated: the two nobody has annotated do not pull macro-F1 down as zeros."""
    from worker.training.evaluate import classification_metrics

    targets = np.array([0, 0, 1, 1, 2, 2])
    perfect = np.eye(5)[targets]  # [6, 5]
    assert classification_metrics(perfect, targets, 5) == (1.0, 1.0)
    wrong_once = np.eye(5)[[0, 0, 1, 1, 2, 0]]
    accuracy, macro_f1 = classification_metrics(wrong_once, targets, 5)
    assert accuracy == pytest.approx(5 / 6) and macro_f1 == pytest.approx((0.8 + 1.0 + 2 / 3) / 3)


def test_the_fingerprint_changes_with_any_label():
    examples = sentiment_examples(24)
    first = build_training_set(examples, [], LABELS, min_annotated=4)
    flipped = [Example(e.id, e.text, "negative" if e.id == "e0" else e.label) for e in examples]
    assert build_training_set(examples, [], LABELS, min_annotated=4).fingerprint == first.fingerprint
    assert build_training_set(flipped, [], LABELS, min_annotated=4).fingerprint != first.fingerprint


def test_training_keeps_the_best_epoch_and_stops_early(tiny_model_dir, tmp_path):
    examples = sentiment_examples(48)
    train, validation = stratified_split(examples, 0.25, seed=0)
    settings = TrainingSettings(epochs=12, patience=2, monitor="loss", **FAST)

    result = train_classifier(tiny_model_dir, train, validation, LABELS, tmp_path / "model", settings)

    losses = [epoch.validation_loss for epoch in result.history]
    assert result.best_epoch == 1 + losses.index(min(losses))
    if result.stopped_early:
        assert len(result.history) == result.best_epoch + settings.patience
    from worker.scoring import load_classifier
    from worker.training.evaluate import evaluate_classifier

    saved = load_classifier(tmp_path / "model", device="cpu")
    saved_loss = _validation_loss(saved, validation)
    assert saved_loss == pytest.approx(min(losses), abs=1e-4), "the saved weights are not the best epoch's"
    assert (tmp_path / "model" / "model.safetensors").exists()
    log = json.loads((tmp_path / "model" / "training.json").read_text())
    assert log["best_epoch"] == result.best_epoch and len(log["history"]) == len(result.history)
    assert evaluate_classifier(saved, [e.text for e in validation], [e.label for e in validation],
                               samples=2).records == len(validation)


def test_a_stop_ends_a_training_within_a_step_not_after_its_epoch(tiny_model_dir, tmp_path):
    """A SIGTERM mid-epoch (an epoch of 10^5 examples takes an hour on a CPU): the training ends after the step under
    way — the request is read after each optimizer step —, saves nothing, and says where it stopped."""
    from tests.stops import SetAfterLooks
    from worker.errors import Interrupted

    stop = SetAfterLooks(2)  # the trainer looks once a step
    with pytest.raises(Interrupted, match="training stopped on request at step 3 of 6 of epoch 1 of 3"):
        train_classifier(tiny_model_dir, sentiment_examples(48), [], LABELS, tmp_path / "model",
                         TrainingSettings(epochs=3, **FAST), stop=stop)
    assert stop.looked == 3 and not (tmp_path / "model").exists()


def _validation_loss(classifier, examples):
    import numpy as np
    import torch

    inputs = classifier.tokenizer([e.text for e in examples], padding=True, truncation=True, max_length=32,
                                  return_tensors="pt")
    with torch.inference_mode():
        log_probs = torch.log_softmax(classifier.model(**inputs).logits, dim=-1).numpy()
    targets = [LABELS.index(e.label) for e in examples]
    return float(-np.mean(log_probs[np.arange(len(targets)), targets]))


def test_the_same_seed_gives_the_same_weights_and_another_seed_does_not(tiny_model_dir, tmp_path):
    examples = sentiment_examples(24)
    weights = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        settings = TrainingSettings(epochs=2, seed=seed, **FAST)
        train_classifier(tiny_model_dir, examples, [], LABELS, tmp_path / name, settings)
        weights[name] = load_file(tmp_path / name / "model.safetensors")
    assert all((weights["a"][k] == weights["b"][k]).all() for k in weights["a"])
    assert any((weights["a"][k] != weights["c"][k]).any() for k in weights["a"])


def test_the_head_learns_at_its_own_rate_and_the_rest_at_the_models(tiny_model_dir, tmp_path):
    """training.head_learning_rate moves the classification head; the encoder, at a learning rate too small to move
    it, stays where it started. Unset, the head gets the same tiny rate and stays too."""
    start = load_file(tiny_model_dir / "model.safetensors")

    def moved(name: str, **rates) -> tuple[float, float]:
        settings = TrainingSettings(**{**FAST, "learning_rate": 1e-9, "warmup_fraction": 0.0, **rates}, epochs=2)
        train_classifier(tiny_model_dir, sentiment_examples(24), [], LABELS, tmp_path / name, settings)
        trained = load_file(tmp_path / name / "model.safetensors")
        change = {key: float((trained[key] - start[key]).abs().max()) for key in start}
        head = max(value for key, value in change.items() if key.startswith("classifier."))
        rest = max(value for key, value in change.items() if not key.startswith("classifier."))
        return head, rest

    head, rest = moved("own-rate", head_learning_rate=1e-2)
    assert head > 1e-3 and rest < 1e-6
    head, rest = moved("one-rate")
    assert head < 1e-6 and rest < 1e-6


def test_auto_gives_a_new_head_of_many_labels_its_own_rate_and_leaves_other_heads_at_the_models(
        tiny_model_dir, tmp_path, caplog):
    """training.head_learning_rate = "auto" (the default): a head of 8 labels on a 2-label start model starts from
    random weights and trains at 1e-2 while the encoder, at a rate too small to move it, stays; a new head of 7
    labels, and the 8-label head once trained (kept when training starts from that model), train at the model's."""
    def head_and_rest(start: Path, labels: list[str], name: str, **rates) -> tuple[float | None, float]:
        before = load_file(start / "model.safetensors")
        examples = [replace(example, label=labels[index % len(labels)])
                    for index, example in enumerate(sentiment_examples(32))]
        settings = TrainingSettings(**{**FAST, "learning_rate": 1e-9, "warmup_fraction": 0.0, **rates}, epochs=2)
        train_classifier(start, examples, [], labels, tmp_path / name, settings)
        after = load_file(tmp_path / name / "model.safetensors")
        change = {key: float((after[key] - before[key]).abs().max()) for key in before
                  if after[key].shape == before[key].shape}
        head = max((value for key, value in change.items() if key.startswith("classifier.")), default=None)
        return head, max(value for key, value in change.items() if not key.startswith("classifier."))

    eight = [f"topic{index}" for index in range(8)]
    with caplog.at_level("INFO", logger="worker.training.trainer"):
        assert head_and_rest(tiny_model_dir, eight, "eight")[1] < 1e-6  # the encoder stays
    assert "a new head of 8 labels trains at 0.01" in caplog.text
    head_and_rest(tiny_model_dir, eight, "eight-same", head_learning_rate="same")  # the same random start, unmoved
    trained, unmoved = (load_file(tmp_path / name / "model.safetensors")["classifier.weight"]
                        for name in ("eight", "eight-same"))
    assert trained.shape == (8, unmoved.shape[1]) and float((trained - unmoved).abs().max()) > 1e-3
    head, rest = head_and_rest(tmp_path / "eight", eight, "eight-again")  # its head kept: the model's rate
    assert head < 1e-6 and rest < 1e-6
    # what each model trained its head at, as its training record keeps it ("same": the encoder's rate)
    rates = {name: trained_head_learning_rate(tmp_path / name) for name in ("eight", "eight-same", "eight-again")}
    assert rates == {"eight": AUTO_HEAD_LEARNING_RATE, "eight-same": 1e-9, "eight-again": 1e-9}
    assert trained_head_learning_rate(tiny_model_dir) is None  # not trained by the worker: unknown
    caplog.clear()
    with caplog.at_level("INFO", logger="worker.training.trainer"):
        head_and_rest(tiny_model_dir, eight[:7], "seven")
    assert "a new head" not in caplog.text


def test_auto_gives_a_new_label_set_head_its_own_rate_whatever_its_labels(tiny_model_dir, tmp_path, caplog):
    """A new label-set head (one sigmoid per label) of 3 labels trains at 1e-2 under "auto": at the encoder's rate a
    first label-set model ticked about two of 3 labels a record where they carry 1.1, its test macro-F1 0.01-0.05 lower
    (benchmarks/label_set_head.py); its training record keeps the rate, and a model trained from it keeps the
    model's."""
    from tests.training_data import TAGS, tagging_examples

    settings = TrainingSettings(**{**FAST, "learning_rate": 1e-9, "warmup_fraction": 0.0}, epochs=1)
    with caplog.at_level("INFO", logger="worker.training.trainer"):
        train_classifier(tiny_model_dir, tagging_examples(2), [], list(TAGS), tmp_path / "tagger", settings)
    assert "a new head of 3 labels (label sets) trains at 0.01" in caplog.text
    assert trained_head_learning_rate(tmp_path / "tagger") == AUTO_HEAD_LEARNING_RATE
    train_classifier(tmp_path / "tagger", tagging_examples(2), [], list(TAGS), tmp_path / "again", settings)
    assert trained_head_learning_rate(tmp_path / "again") == 1e-9


def test_has_new_head_reads_transformers_loading_report():
    from worker.training.trainer import has_new_head, head_learning_rate

    assert has_new_head({"missing_keys": {"classifier.weight", "classifier.bias"}, "mismatched_keys": set()})
    assert has_new_head({"missing_keys": [], "mismatched_keys": [("classifier.weight", (2, 32), (8, 32))]})
    assert not has_new_head({"missing_keys": {"bert.pooler.dense.weight"}, "mismatched_keys": set()})
    auto = TrainingSettings()
    assert head_learning_rate(auto, new_head=True, labels=8, multi_label=False) == 1e-2
    assert head_learning_rate(auto, new_head=True, labels=3, multi_label=True) == 1e-2
    assert head_learning_rate(auto, new_head=False, labels=3, multi_label=True) == "same"
    assert head_learning_rate(auto, new_head=False, labels=52, multi_label=False) == "same"
    assert head_learning_rate(TrainingSettings(head_learning_rate=3e-3), new_head=False, labels=2,
                              multi_label=False) == 3e-3


def test_a_new_head_of_six_skewed_labels_trains_at_the_head_rate_and_balanced_or_fewer_labels_do_not(caplog):
    from worker.training.trainer import head_learning_rate, rarest_label

    counts = {"earn": 106, "acq": 60, "crude": 10, "trade": 8, "money-fx": 8, "interest": 8}
    skewed = [Example(f"s{i}", "text", label) for i, label in enumerate(
        label for label, count in counts.items() for _ in range(count))]
    rarest = rarest_label(skewed)
    assert (rarest.label, rarest.examples, rarest.of_uniform) == ("interest", 8, 0.24)  # 8 × 6 labels / 200
    assert rarest_label([]) is None
    with caplog.at_level("INFO", logger="worker.training.trainer"):
        assert head_learning_rate(TrainingSettings(), new_head=True, labels=4, multi_label=False,
                                  rarest=rarest) == "same"  # 4 labels: measured both ways
        assert "skewed" not in caplog.text
        assert head_learning_rate(TrainingSettings(), new_head=True, labels=6, multi_label=False,
                                  rarest=rarest) == AUTO_HEAD_LEARNING_RATE
    assert "a new head of 6 skewed labels trains at 0.01" in caplog.text
    assert "label 'interest' has 8 training examples, 24% of an even share" in caplog.text
    balanced = rarest_label([Example(f"b{i}", "text", "abcdef"[i % 6]) for i in range(120)])
    assert balanced.of_uniform == 1.0
    assert head_learning_rate(TrainingSettings(), new_head=True, labels=6, multi_label=False, rarest=balanced) == "same"
    assert head_learning_rate(TrainingSettings(), new_head=False, labels=6, multi_label=False, rarest=rarest) == "same"
    assert head_learning_rate(TrainingSettings(), new_head=True, labels=6, multi_label=True, rarest=None) == 1e-2
    assert head_learning_rate(TrainingSettings(head_learning_rate="same"), new_head=True, labels=6,
                              multi_label=False, rarest=rarest) == "same"


def test_micro_batches_and_gradient_checkpointing_take_the_same_steps_in_less_memory(tmp_path, caplog):
    """A batch of 8 as micro-batches of 3, 3 and 2 (each cut to its own longest text), or with the activations
    recomputed in the backward pass: the same optimizer steps, so the same weights and margins (dropout 0:
    nothing random), with records of unequal weights (each micro-batch counts by its share of the batch's)."""
    from tests.tiny_models import save_tiny_classifier

    base = save_tiny_classifier(tmp_path / "base", hidden_dropout=0.0, attention_dropout=0.0)
    examples = [replace(e, weight=0.3 if index % 3 == 0 else 1.0, text=e.text + " and more" * (index % 4))
                for index, e in enumerate(sentiment_examples(24))]
    import torch

    runs, rows = {}, {}
    for name, options in (("whole", {}), ("micro", {"micro_batch_size": 3}),
                          ("checkpointed", {"gradient_checkpointing": True})):
        settings = TrainingSettings(epochs=2, seed=1, **{**FAST, "batch_size": 8}, **options)
        shapes: list[tuple[int, ...]] = []  # [rows, tokens] of every token-id tensor an embedding layer was given

        def record(module, args, shapes=shapes):
            if isinstance(module, torch.nn.Embedding) and module.training and args[0].dim() == 2:
                shapes.append(tuple(args[0].shape))

        hook = torch.nn.modules.module.register_module_forward_pre_hook(record)
        try:
            with caplog.at_level("INFO", logger="worker.training.trainer"):
                result = train_classifier(base, examples, [], LABELS, tmp_path / name, settings)
        finally:
            hook.remove()
        runs[name] = (load_file(tmp_path / name / "model.safetensors"), result.margins)
        rows[name] = max(shape[0] for shape in shapes)
    assert rows == {"whole": 8, "micro": 3, "checkpointed": 8}  # each forward pass held at most 3 rows
    assert "recomputes its layers' activations" in caplog.text
    whole, margins = runs["whole"]
    for name in ("micro", "checkpointed"):
        weights, its_margins = runs[name]
        for key in whole:
            np.testing.assert_allclose(weights[key].numpy(), whole[key].numpy(), atol=2e-5, err_msg=(name, key))
        np.testing.assert_allclose(its_margins, margins, atol=1e-4)
    config = json.loads((tmp_path / "checkpointed" / "config.json").read_text())
    assert not config.get("gradient_checkpointing")  # the saved model scores like any other


def test_batches_padded_to_a_multiple_take_the_same_steps(tmp_path, monkeypatch):
    """CUDA-graph training (``compile = "reduce-overhead"``, CUDA only) pads each batch to a multiple of 16 tokens;
    forced here on the CPU: every forward pass (whole batches and micro-batches cut to their own longest text) is
    a multiple of 16 long, and the masked padding changes no step (dropout 0: the same weights and margins)."""
    import torch

    from tests.tiny_models import save_tiny_classifier
    from worker.training.trainer import _Loop

    base = save_tiny_classifier(tmp_path / "base", hidden_dropout=0.0, attention_dropout=0.0)
    examples = [replace(e, text=e.text + " and more" * (index % 4)) for index, e in enumerate(sentiment_examples(24))]
    unpadded = train_classifier(base, examples, [], LABELS, tmp_path / "plain",
                                TrainingSettings(epochs=2, seed=1, **{**FAST, "batch_size": 8}))
    plain_weights = load_file(tmp_path / "plain" / "model.safetensors")

    set_up = _Loop.__init__

    def padded_to_16(self, *args, **kwargs):
        set_up(self, *args, **kwargs)
        self.pad_multiple = 16

    monkeypatch.setattr(_Loop, "__init__", padded_to_16)
    for name, options in (("padded", {}), ("padded-micro", {"micro_batch_size": 3})):
        lengths: set[int] = set()

        def record(module, args, lengths=lengths):
            if isinstance(module, torch.nn.Embedding) and args[0].dim() == 2:
                lengths.add(args[0].shape[1])

        hook = torch.nn.modules.module.register_module_forward_pre_hook(record)
        try:
            result = train_classifier(base, examples, [], LABELS, tmp_path / name,
                                      TrainingSettings(epochs=2, seed=1, **{**FAST, "batch_size": 8}, **options))
        finally:
            hook.remove()
        assert lengths and all(length % 16 == 0 for length in lengths), (name, lengths)
        weights = load_file(tmp_path / name / "model.safetensors")
        for key in plain_weights:
            np.testing.assert_allclose(weights[key].numpy(), plain_weights[key].numpy(), atol=2e-5,
                                       err_msg=(name, key))
        np.testing.assert_allclose(result.margins, unpadded.margins, atol=1e-4)


def test_original_label_examples_pull_the_gradient_in_proportion_to_their_weight():
    import torch

    from worker.training.trainer import weighted_cross_entropy

    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]], requires_grad=True)  # [B=2, C=2]
    targets = torch.tensor([1, 1])
    loss, per_example = weighted_cross_entropy(logits, targets, torch.tensor([1.0, 0.3]))
    loss.backward()

    per_example = per_example.detach()
    assert loss.item() == pytest.approx((per_example[0].item() + 0.3 * per_example[1].item()) / 1.3)
    unweighted = torch.tensor([[2.0, 0.0], [0.0, 2.0]], requires_grad=True)
    torch.nn.functional.cross_entropy(unweighted, targets, reduction="sum").backward()
    ratio = logits.grad.abs().sum(dim=1) / unweighted.grad.abs().sum(dim=1)
    assert float(ratio[1] / ratio[0]) == pytest.approx(0.3)


def test_k_folds_are_balanced_per_label():
    examples = sentiment_examples(40)
    folds = stratified_folds(examples, 4, seed=0)
    for fold in range(4):
        members = [e for e, f in zip(examples, folds, strict=True) if f == fold]
        assert len(members) == 10
        assert [e.label for e in members].count("positive") == 5
    with pytest.raises(DataError, match="k >= 2"):
        stratified_folds(examples, 1, seed=0)


def _with_copies(examples: list[Example]) -> list[Example]:
    """``examples`` and, for every third one, two copies of its text under other ids — one in capitals with its
    spaces doubled, one with another label (a conflicting copy: one of them is a label error)."""
    copies = []
    for example in examples[::3]:
        copies.append(replace(example, id=f"{example.id}-loud", text=f"  {example.text.upper().replace(' ', '  ')}"))
        copies.append(replace(example, id=f"{example.id}-other",
                              label=LABELS[1 - LABELS.index(example.label)]))
    return [*examples, *copies]


def test_copies_of_one_text_stay_on_one_side_of_the_validation_split():
    """A validation example whose text the model trains on (differing in case or spaces only) measures memory:
    the split and the original-label examples beside it keep every text on one side (the K folds do not: see
    stratified_folds)."""
    from worker.duplicates import text_key

    examples = _with_copies(sentiment_examples(60))
    key = {e.id: text_key(e.text) for e in examples}
    assert key["e0"] == key["e0-loud"] == key["e0-other"] and key["e0"] != key["e1"]

    train, validation = stratified_split(examples, 0.25, seed=0)
    assert {key[e.id] for e in train}.isdisjoint(key[e.id] for e in validation)
    assert len(train) + len(validation) == len(examples) and 0.15 <= len(validation) / len(examples) <= 0.35
    assert {e.label for e in validation} == set(LABELS)

    annotated = [e for e in examples if not e.id.endswith("-loud")]
    original = [replace(e, id=f"{e.id}-loud", source="original", weight=0.3) for e in annotated]
    training_set = build_training_set(annotated, original, LABELS, min_annotated=10)
    held = {key[e.id] for e in training_set.validation}
    assert held and not any(key[e.id.removesuffix("-loud")] in held for e in training_set.train)
    assert sum(e.source == "original" for e in training_set.train) == len(original) - len(training_set.validation)


def test_annotated_records_that_are_all_copies_say_why_nothing_is_validated():
    examples = [Example(f"p{i}", "Great film" if i % 2 else "great  FILM", "positive") for i in range(6)] + [
        Example(f"n{i}", "Dull film", "negative") for i in range(6)]
    with pytest.raises(DataError, match="fewer than 2 annotated records with different texts"):
        build_training_set(examples, [], LABELS, min_annotated=10)


def test_out_of_fold_scores_come_from_models_that_never_saw_the_record(tiny_model_dir, tmp_path):
    examples = sentiment_examples(24)
    settings = TrainingSettings(epochs=1, **FAST)

    result = out_of_fold_scores(examples, LABELS, tiny_model_dir, settings, tmp_path, k=3, samples=SAMPLES)

    assert set(result.scores) == {e.id for e in examples} == set(result.margins)  # each seen by K − 1 models
    for example in examples:
        fold = result.fold_of[example.id]
        assert example.id not in result.trained_on[fold]
        assert all(example.id in trained for f, trained in enumerate(result.trained_on) if f != fold)
        score = result.scores[example.id]
        assert score.reference_label == example.label and score.loss is not None and score.loss >= 0


def test_out_of_fold_scores_stream_fold_by_fold(tiny_model_dir, tmp_path):
    """A fold's scores come out before the next model trains, so the job pushes them while K grows."""
    examples = sentiment_examples(12)
    trained: list[int] = []
    scores = stream_out_of_fold_scores(examples, LABELS, tiny_model_dir, TrainingSettings(epochs=1, **FAST), tmp_path,
                                       k=3, samples=SAMPLES,
                                       on_trained=lambda train, result: trained.append(len(train)))

    first = next(scores)
    assert trained == [8], "the first score waited for more than the first model"
    rest = list(scores)
    assert trained == [8, 8, 8] and len(rest) == 11
    assert sorted([first.record_id, *(s.record_id for s in rest)]) == sorted(e.id for e in examples)


def test_labelled_records_keep_each_example_and_read_it_back_by_fold(tmp_path):
    """The out-of-fold run's records on disk: texts, second texts and label sets come back as they went in; a
    record keeps its hashed fold until the sample's own fold is assigned."""
    examples = [*sentiment_examples(30), Example("pair", "Great film", "positive", text_pair="a second text"),
                Example("set", "Dull film", ("negative", "positive"))]
    store = LabelledRecords(tmp_path / "labelled.sqlite", k=3, seed=7, batch_size=4)
    for example in examples:
        store.add(example, f"server-{example.id}")
    sampled = {"e0": 2, "e1": 2, "pair": 0}
    store.assign(sampled)

    folds = {f: list(store.fold(f)) for f in range(3)}
    assert sum(len(store.fold(f)) for f in range(3)) == len(examples)
    for f, held_out in folds.items():
        assert len(held_out) == len(store.fold(f))
        for example in held_out:
            assert f == sampled.get(example.id, hashed_fold(example.id, 3, 7))
    read = {example.id: example for held_out in folds.values() for example in held_out}
    assert read == {example.id: replace(example, weight=1.0, source="annotated") for example in examples}
    assert read["set"].label == ("negative", "positive") and read["pair"].text_pair == "a second text"
    assert [e.id for e in folds[2]][:2] == ["e0", "e1"]  # in the order they were added
    assert store.server_ids(["e5", "set", "unknown"]) == {"e5": "server-e5", "set": "server-set"}
    assert {hashed_fold(f"r{i}", 3, 7) for i in range(60)} == {0, 1, 2}
    assert hashed_fold("e5", 3, 7) == hashed_fold("e5", 3, 7) and hashed_fold("e5", 3, 7) in range(3)
    store.close()


def test_out_of_fold_scores_of_records_outside_the_trained_sample(tiny_model_dir, tmp_path):
    """The fold models train on a sample; every record, sampled or not, is scored once, by a model that never
    trained on it."""
    examples = sentiment_examples(20)
    sample = examples[:12]
    store = LabelledRecords(tmp_path / "labelled.sqlite", k=3, seed=0)
    for example in examples:
        store.add(example, f"server-{example.id}")
    folds = [index % 3 for index in range(len(sample))]
    store.assign({example.id: fold for example, fold in zip(sample, folds, strict=True)})
    trained: list[set[str]] = []
    scored_by: dict[str, int] = {}

    for score in stream_out_of_fold_scores(sample, LABELS, tiny_model_dir, TrainingSettings(epochs=1, **FAST),
                                           tmp_path, k=3, samples=SAMPLES, folds=folds, held_out=store.fold,
                                           on_trained=lambda train, result: trained.append({e.id for e in train})):
        assert score.record_id not in scored_by
        scored_by[score.record_id] = len(trained) - 1
        assert score.loss is not None
    store.close()

    assert set(scored_by) == {example.id for example in examples}
    assert all(trained_on <= {example.id for example in sample} and len(trained_on) == 8 for trained_on in trained)
    for record_id, fold in scored_by.items():
        assert record_id not in trained[fold]
    outside = [example.id for example in examples[12:]]
    assert all(scored_by[record_id] == hashed_fold(record_id, 3, 0) for record_id in outside)


def test_the_out_of_fold_pull_trains_on_every_annotated_record_and_a_sample_of_the_others(tmp_path):
    """``labelled_sample``: every labelled record with a text goes to disk; the fold models' examples are every
    annotated record and at most max_original (+ 50 a label) of the others; a record with a tie keeps its own
    label; one without a text is counted as skipped."""
    from worker.config import TrainingSettings as Settings
    from worker.jobs import ScoreReport, labelled_sample

    records = [_record(f"o{i}", LABELS[i % 2]) for i in range(300)]
    records += [_record("a1", "positive", ["negative"]), _record("a2", "negative", ["negative", "negative"]),
                _record("tie", "positive", ["positive", "negative"]), _record("empty", "positive", text=" "),
                _record("unlabelled", None)]
    store = LabelledRecords(tmp_path / "labelled.sqlite", k=3, seed=0)
    report = ScoreReport("base-oof3")

    sample, server_ids = labelled_sample(records, LABELS, store, Settings(max_original=20), report=report)

    store.assign({})
    assert sum(len(store.fold(f)) for f in range(3)) == 300 + 3  # on disk: everything labelled with a text
    chosen = {example.id: example for example in sample}
    assert {"a1", "a2"} <= set(chosen) and chosen["a1"].label == "negative"
    assert len(chosen) <= 2 + 20 + 50 * len(LABELS) and len(chosen) < 303
    assert chosen.get("tie") is None or chosen["tie"].label == "positive"
    assert server_ids == {record_id: f"srv-{record_id}" for record_id in chosen}
    assert (report.considered, report.skipped, report.unlabelled) == (len(records), 1, 1)
    assert ", 1 without a label (left to the current model's score run)" in report.summary()
    again, _ = labelled_sample(records[::-1], LABELS, LabelledRecords(tmp_path / "again.sqlite", k=3, seed=0),
                               Settings(max_original=20))
    assert {example.id for example in again} == set(chosen)  # the same records give the same sample, in any order


def test_the_out_of_fold_pull_refuses_a_label_outside_the_question_before_any_training(tmp_path):
    from worker.config import TrainingSettings as Settings
    from worker.jobs import labelled_sample

    records = [*(_record(f"o{i}", LABELS[i % 2]) for i in range(200)), _record("odd", "neutral")]
    with pytest.raises(DataError, match=r"record 'odd': label 'neutral' is not one of \['negative', 'positive'\]"):
        labelled_sample(records, LABELS, LabelledRecords(tmp_path / "labelled.sqlite", k=3, seed=0),
                        Settings(max_original=10))


def test_a_rerun_uses_the_fold_models_a_stopped_run_completed_and_trains_the_others(tiny_model_dir, tmp_path):
    """The first run stops after its first fold model scored a record; the rerun in the same directory trains
    only folds 2 and 3 (and a half-written fold directory again), and gives the same scores."""
    examples = sentiment_examples(12)
    settings = TrainingSettings(epochs=1, **FAST)

    def run(on_trained):
        return stream_out_of_fold_scores(examples, LABELS, tiny_model_dir, settings, tmp_path, k=3, samples=SAMPLES,
                                         on_trained=on_trained)

    first = run(lambda train, result: None)
    stopped = [next(first) for _ in range(4)]  # fold 0's four records
    first.close()
    (tmp_path / "fold-1").mkdir()  # a fold a run died while training: no margins file
    (tmp_path / "fold-1" / "config.json").write_text("{}")
    trained: list[tuple[int, list[float]]] = []
    again = list(run(lambda train, result: trained.append((len(result.history), result.margins.tolist()))))

    assert (tmp_path / "fold-0" / MARGINS_FILE).exists() and len(again) == 12
    assert [epochs for epochs, _ in trained] == [0, 1, 1]  # fold 0 kept (no epoch run), folds 1 and 2 trained
    assert trained[0][1] == pytest.approx(np.load(tmp_path / "fold-0" / MARGINS_FILE).tolist())
    for before, after in zip(stopped, again[:4], strict=True):
        assert after.record_id == before.record_id and after.loss == pytest.approx(before.loss, abs=1e-6)


def test_a_stop_during_a_fold_models_training_ends_the_run_keeping_the_completed_ones(tiny_model_dir, tmp_path):
    """A stop (the first SIGTERM of ``score --oof``) while fold 1's model trains ends the run after its first step:
    fold 0's model stays complete for the rerun, fold 1's directory is not counted as complete."""
    import threading

    from worker.errors import Interrupted

    stop = threading.Event()
    scores = stream_out_of_fold_scores(sentiment_examples(12), LABELS, tiny_model_dir,
                                       TrainingSettings(epochs=1, **FAST), tmp_path, k=3, samples=SAMPLES,
                                       on_trained=lambda train, result: stop.set(), stop=stop)
    with pytest.raises(Interrupted, match="at step 1 of .* of epoch 1 of 1"):
        list(scores)
    assert completed_folds(tmp_path, 3) == 1
    assert (tmp_path / "fold-0" / MARGINS_FILE).exists() and not (tmp_path / "fold-1" / MARGINS_FILE).exists()


def test_fold_models_have_one_directory_per_sample_and_settings_and_others_are_removed(tmp_path):
    examples = sentiment_examples(9)
    folds = [index % 3 for index in range(9)]
    settings = TrainingSettings(epochs=1, **FAST)

    first = fold_models_dir(tmp_path, "v0002-oof3", examples, folds, settings, "base")
    (first / "fold-0").mkdir()
    assert fold_models_dir(tmp_path, "v0002-oof3", examples, folds, settings, "base") == first
    assert (first / "fold-0").is_dir()  # the same records and settings: kept for the rerun
    others = [fold_models_dir(tmp_path, "v0002-oof3", examples[:8], folds[:8], settings, "base"),
              fold_models_dir(tmp_path, "v0002-oof3", examples, folds[::-1], settings, "base"),
              fold_models_dir(tmp_path, "v0002-oof3", examples, folds, settings.model_copy(update={"epochs": 2}),
                              "base"),
              fold_models_dir(tmp_path, "v0002-oof3", examples, folds, settings, "another")]
    assert len({first, *others}) == 5
    assert [path.name for path in tmp_path.iterdir()] == [others[-1].name]  # one run's models on disk at most


def test_label_margins_are_the_labels_logit_minus_the_best_other():
    import torch

    from worker.training.trainer import label_margins

    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0], [1.0, 1.0, 0.0]])  # [B=3, C=3]
    assert label_margins(logits, torch.tensor([0, 0, 2])).tolist() == [1.5, -3.0, -1.0]


def test_flipped_labels_have_a_lower_area_under_the_margin(tiny_model_dir, tmp_path):
    """Pleiss et al.'s signal, measured during training at no extra pass: the model fights the wrong labels."""
    examples = sentiment_examples(32)  # each of 8 sentences 4 times; one copy of five of them flipped
    flipped = {"e0", "e9", "e18", "e27", "e12"}
    noisy = [replace(e, label=LABELS[1 - LABELS.index(e.label)]) if e.id in flipped else e for e in examples]
    settings = TrainingSettings(epochs=8, batch_size=4, learning_rate=3e-3, max_length=32, device="cpu")

    result = train_classifier(tiny_model_dir, noisy, [], LABELS, tmp_path / "model", settings)

    assert result.margins.shape == (len(noisy),) and np.isfinite(result.margins).all()
    margin = dict(zip([e.id for e in noisy], result.margins.tolist(), strict=True))
    wrong, right = [margin[i] for i in flipped], [m for i, m in margin.items() if i not in flipped]
    pairs_ranked_right = sum(w < r for w in wrong for r in right) / (len(wrong) * len(right))  # the AUROC
    assert pairs_ranked_right >= 0.8, margin  # 0.5 would be chance (locally 1.0; training order varies by host)


def test_a_small_training_set_gets_at_least_min_steps_optimizer_steps():
    from worker.training.trainer import planned_epochs

    settings = TrainingSettings(epochs=5, batch_size=16, min_steps=100)
    assert planned_epochs(20, settings) == 50  # 2 batches an epoch
    assert planned_epochs(16, settings) == 100 and planned_epochs(1, settings) == 100
    assert planned_epochs(1000, settings) == 5  # 63 batches an epoch: the configured epochs already do it
    assert planned_epochs(20, settings.model_copy(update={"min_steps": 0})) == 5


def test_a_handful_of_validation_records_picks_no_epoch_every_epoch_runs_and_the_last_is_kept(tiny_model_dir,
                                                                                              tmp_path, caplog):
    """With the same data, 12 validation records pick an epoch and stop early where select_min_validation
    allows it; below it every epoch runs and the saved weights are the last epoch's."""
    examples = sentiment_examples(48)
    train, validation = stratified_split(examples, 0.25, seed=0)
    picking = TrainingSettings(epochs=12, patience=1, monitor="loss", **FAST)
    picked = train_classifier(tiny_model_dir, train, validation, LABELS, tmp_path / "picked", picking)
    assert picked.stopped_early and len(picked.history) < 12  # the rule below is what changes it
    small = picking.model_copy(update={"select_min_validation": 50})
    with caplog.at_level("INFO", logger="worker.training.trainer"):
        kept = train_classifier(tiny_model_dir, train, validation, LABELS, tmp_path / "kept", small)
    assert len(kept.history) == 12 and kept.best_epoch == 12 and not kept.stopped_early
    assert "12 validation records (< training.select_min_validation = 50): all 12 epochs run" in caplog.text
    from worker.scoring import load_classifier

    saved_loss = _validation_loss(load_classifier(tmp_path / "kept", device="cpu"), validation)
    assert saved_loss == pytest.approx(kept.history[-1].validation_loss, abs=1e-4)


def test_training_without_a_validation_split_says_so_instead_of_logging_nan(tiny_model_dir, tmp_path, caplog):
    settings = TrainingSettings(epochs=2, **FAST)
    with caplog.at_level("INFO", logger="worker.training.trainer"):
        result = train_classifier(tiny_model_dir, sentiment_examples(16), [], LABELS, tmp_path / "model", settings)

    assert len(result.history) == 2
    epoch_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(epoch_lines) == 2 and all("no validation split" in line for line in epoch_lines)
    assert not any("nan" in line for line in epoch_lines), epoch_lines


def test_with_annotator_weights_a_reliable_vote_outweighs_two_unreliable_ones_and_sets_the_weight():
    from worker.crowd import CrowdModel

    crowd = CrowdModel(LABELS, annotator_weights={"user0": 0.9, "user1": 0.1, "user2": 0.1})
    records = [_record("a", "positive", ["negative", "positive", "positive"]),  # the reliable user0 says negative
               _record("b", "positive", ["positive", "positive", "positive"]),
               _record("c", "positive", ["negative", "positive"])]  # a tie stays a tie

    annotated, _, tied = examples_from_records(records, LABELS, crowd=crowd)

    assert [(e.id, e.label) for e in annotated] == [("a", "negative"), ("b", "positive")]
    assert annotated[0].weight == pytest.approx(0.9 / 1.1) and annotated[1].weight == pytest.approx(1.0)
    assert tied == ["c"]


def test_label_sets_train_a_multi_label_head_with_tuned_thresholds(tmp_path):
    from tests.tiny_models import save_tiny_classifier

    base = save_tiny_classifier(tmp_path / "base", labels=TAGS)
    examples = [Example(f"m{copy}-{i}", text, tags) for copy in range(6) for i, (text, tags) in enumerate(TAGGED)]
    train, validation = examples[:40], examples[40:]
    settings = TrainingSettings(epochs=40, patience=40, **{**FAST, "learning_rate": 5e-3})

    result = train_classifier(base, train, validation, TAGS, tmp_path / "model", settings)

    first, best = result.history[0], result.history[result.best_epoch - 1]
    assert min(epoch.train_loss for epoch in result.history) < first.train_loss / 2
    # 8 validation records × 3 labels; seeds and thread counts vary the tiny model's path (0.89–1.0 seen)
    assert best.macro_f1 >= 0.8 and best.micro_f1 >= 0.8 and best.accuracy >= 0.6, best
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    thresholds = json.loads((tmp_path / "model" / "thresholds.json").read_text())
    assert set(thresholds) == set(TAGS) and all(0.05 <= t <= 0.95 for t in thresholds.values())
    assert result.thresholds == thresholds
    assert len(result.margins) == len(train)  # worst-fitted label's signed logit, averaged over epochs


def test_single_labels_and_label_sets_do_not_mix_and_unknown_tags_are_named():
    from worker.training.trainer import is_multi_label

    with pytest.raises(DataError, match=r"mix label sets \(record 'b'\) and single labels \(record 'a'\)"):
        is_multi_label([Example("a", "t", "praise"), Example("b", "t", ("praise",))])
    with pytest.raises(DataError, match=r"record 'x': label 'gore' is not one of"):
        train_classifier("unused", [Example("x", "t", ("praise", "gore"))], [], TAGS, Path("unused"),
                         TrainingSettings(**FAST))


def test_a_decoder_base_model_without_a_padding_token_fine_tunes_and_scores(tmp_path):
    """training.base_model = a GPT-2-style classifier (no padding token): it trains in padded batches and the
    saved model loads for scoring with the same padding."""
    from tests.tiny_models import save_tiny_decoder_classifier
    from worker.scoring import load_classifier

    base = save_tiny_decoder_classifier(tmp_path / "gpt-base", labels=("a", "b"))
    examples = sentiment_examples(24)
    train, validation = stratified_split(examples, 0.25, seed=0)
    result = train_classifier(base, train, validation, LABELS, tmp_path / "model", TrainingSettings(epochs=2, **FAST))

    assert len(result.history) == 2 and all(np.isfinite(epoch.train_loss) for epoch in result.history)
    trained = load_classifier(tmp_path / "model", device="cpu")
    assert trained.labels == tuple(LABELS)
    assert trained.tokenizer.pad_token == "<|endoftext|>"


def test_a_first_model_keeps_the_records_own_labels_once_enough_are_annotated():
    """training.data = "annotated": at min_annotated - 1 annotations a first model trains on every label the records
    carry; at min_annotated it used to fall to the annotated records alone. It keeps the others at
    original_weight (validated on annotated records); a later model trains on annotations only."""
    from worker.config import TrainingSettings as TrainingConfig
    from worker.training.job import prepare_training_set

    settings = TrainingConfig(min_annotated=8, data="annotated", original_weight=0.3)
    labels = [LABELS[i % 2] for i in range(40)]
    annotated = [_record(f"a{i}", labels[i], [labels[i]]) for i in range(8)]
    unreviewed = [_record(f"o{i}", labels[i]) for i in range(32)]

    first = prepare_training_set([*annotated, *unreviewed], LABELS, settings, first_model=True)
    assert len(first.train) + len(first.validation) == 40
    assert {e.id[0] for e in first.validation} == {"a"}
    assert {e.weight for e in first.train if e.id.startswith("o")} == {0.3}
    later = prepare_training_set([*annotated, *unreviewed], LABELS, settings, first_model=False)
    assert len(later.train) + len(later.validation) == 8


def test_a_keyed_sample_is_bounded_the_same_in_any_order_and_keeps_a_rare_stratum():
    """The sample behind training.max_original: at most size + floor × strata items; the same keys give the same
    sample whatever their order; one key more changes it by at most one item; a rare stratum keeps its floor."""
    import random

    from worker.iterables import KeyedSample

    def sample_of(keys):
        sample = KeyedSample(100, seed=7, floor=5)
        for key in keys:
            sample.add(key, key, strata=("rare" if key.startswith("r") else "common",))
        return sample

    keys = [f"c{i}" for i in range(9_990)] + [f"r{i}" for i in range(10)]
    sample = sample_of(keys)
    shuffled = keys[:]
    random.Random(0).shuffle(shuffled)

    assert sample.seen == 10_000
    assert 100 <= len(sample.items()) <= 110 and sample.items() == sorted(sample.items())
    assert sample_of(shuffled).items() == sample.items()
    assert sum(key.startswith("r") for key in sample.items()) >= 5
    assert len(set(sample_of([*keys, "c-new"]).items()) ^ set(sample.items())) <= 2
    other_seed = KeyedSample(100, seed=8, floor=5)
    for key in keys:
        other_seed.add(key, key)
    assert set(other_seed.items()) != set(sample.items())


def test_a_training_takes_every_annotation_and_a_sample_of_max_original_unreviewed_labels(caplog):
    """training.max_original: 1,000 unreviewed records (10 of them negative) and 30 annotated ones, max 100: every
    annotation, about 100 of the records' own labels (every negative one: the label floor), the same sample for the
    records in another order, and the log says how many of how many."""
    import logging
    import random

    from worker.config import TrainingSettings as TrainingConfig
    from worker.training.job import prepare_training_set

    annotated = [_record(f"a{i:02d}", LABELS[i % 2], [LABELS[i % 2]]) for i in range(30)]
    unreviewed = [_record(f"o{i:04d}", "negative" if i < 10 else "positive") for i in range(1_000)]
    settings = TrainingConfig(min_annotated=8, data="annotated+original", max_original=100)

    with caplog.at_level(logging.INFO, logger="worker.training.data"):
        training = prepare_training_set([*annotated, *unreviewed], LABELS, settings)
    shuffled = [*annotated, *unreviewed]
    random.Random(1).shuffle(shuffled)
    again = prepare_training_set(shuffled, LABELS, settings)

    used = [*training.train, *training.validation]
    assert sum(e.source == "annotated" for e in used) == 30
    originals = [e for e in used if e.source == "original"]
    assert 100 <= len(originals) <= 110
    assert sum(e.label == "negative" for e in originals) == 10
    assert again.fingerprint == training.fingerprint
    assert "sample of" in caplog.text and "of the 1000 unreviewed records' own labels" in caplog.text
    everything = prepare_training_set(unreviewed + annotated, LABELS,
                                      settings.model_copy(update={"max_original": "all"}))
    assert sum(e.source == "original" for e in everything.train) == 1_000


def test_a_start_model_that_fails_on_the_training_texts_is_one_config_error(tmp_path):
    """A tokenizer saved beside a model from another checkpoint: its ids run past the embeddings, torch raises
    inside the forward pass; training says which model, in one line."""
    import transformers

    from tests.tiny_models import build_tokenizer

    config = transformers.BertConfig(vocab_size=5, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64, num_labels=2)
    transformers.BertForSequenceClassification(config).save_pretrained(tmp_path / "mismatched")
    build_tokenizer().save_pretrained(tmp_path / "mismatched")
    examples = [Example(f"e{i}", text, LABELS[i % 2]) for i, text in enumerate(["a wonderful film", "dull"] * 4)]

    with pytest.raises(ConfigError, match=r"the model training starts from \(.*mismatched, "
                                          r"BertForSequenceClassification\) fails on the training texts: IndexError"):
        train_classifier(tmp_path / "mismatched", examples, [], LABELS, tmp_path / "out",
                         TrainingSettings(epochs=1, **FAST))


def test_truncation_side_left_keeps_a_long_texts_end_in_training_and_in_the_saved_models_scoring(tiny_model_dir,
                                                                                                 tmp_path):
    """A conversation judged on its last turns: training.truncation_side = "left" cuts the start; the trained
    model's tokenizer keeps the setting, so scoring sees the same end; unset, the start model's side stays."""
    from worker.scoring import load_classifier
    from worker.scoring.batching import tokenize_texts

    examples = sentiment_examples(16)
    long_text = " ".join(example.text for example in examples)  # far longer than 12 tokens
    settings = TrainingSettings(epochs=1, **{**FAST, "max_length": 12})
    train_classifier(tiny_model_dir, examples, [], LABELS, tmp_path / "left",
                     settings.model_copy(update={"truncation_side": "left"}))
    train_classifier(tiny_model_dir, examples, [], LABELS, tmp_path / "default", settings)

    def kept_end(model_dir: Path) -> str:
        """Which end of the long text the saved model's scoring keeps: "start" or "end"."""
        classifier = load_classifier(model_dir, device="cpu")
        whole = classifier.tokenizer(long_text, add_special_tokens=False)["input_ids"]
        (encoding,), truncated = tokenize_texts(classifier.tokenizer, [long_text], classifier.max_length)
        kept = encoding["input_ids"][1:-1]  # without [CLS] / [SEP]
        assert truncated == 1 and len(kept) == 10
        return {tuple(whole[:10]): "start", tuple(whole[-10:]): "end"}[tuple(kept)]

    assert kept_end(tmp_path / "left") == "end" and kept_end(tmp_path / "default") == "start"
    train_classifier(tmp_path / "left", examples, [], LABELS, tmp_path / "from-left", settings)  # side unset
    assert kept_end(tmp_path / "from-left") == "end"  # the start model's own side is kept


def test_near_copies_stay_on_one_side_of_the_validation_split_at_the_configured_similarity():
    """A template's near copies (another order number, a word changed) are one text to the split at
    ``copies.similarity`` < 1; at 1 only exact copies are, and near copies straddle it."""
    reviews = [f"{opening} film about {topic}, and {verdict}" for opening, topic, verdict in zip(
        ["An honest", "A noisy", "A gentle", "A bitter", "A clever", "A tired", "A warm", "A cold", "A brave",
         "A lazy", "A loving", "A hollow"],
        ["fathers and sons", "a bank robbery", "two sisters at sea", "the last days of a war", "a chess prodigy",
         "a haunted hotel", "a village baker", "an office feud", "a mountain rescue", "a school reunion",
         "a wedding in the rain", "a space station"],
        ["every scene lands", "nothing in it works", "I would watch it again", "it drags on and on",
         "the ending is perfect", "the jokes fall flat", "it glows", "it never comes alive", "it soars",
         "it is a chore", "it is a joy", "it is empty"], strict=True)]
    annotated = [Example(f"a{i}", text, LABELS[0] if i % 2 == 0 else LABELS[1]) for i, text in enumerate(reviews)]
    annotated += [Example(f"b{i}", f"{e.text} (Sent from my phone)", e.label) for i, e in enumerate(annotated)]
    original = [Example(f"c{i}", e.text.replace(" and ", " & "), e.label, 0.3, "original")
                for i, e in enumerate(annotated[:12])]

    def origin(example: Example) -> str:
        return example.id[1:]

    near = build_training_set(annotated, original, LABELS, min_annotated=10, similarity=0.6)
    held = {origin(e) for e in near.validation}
    assert held and not any(origin(e) in held for e in near.train)
    assert len(near.validation) == 2 * len(held) and len(near.train) + len(held) * 3 == 36

    exact = build_training_set(annotated, original, LABELS, min_annotated=10)
    assert any(origin(e) in {origin(v) for v in exact.validation} for e in exact.train)


def test_a_start_model_that_already_classifies_the_labels_keeps_what_its_head_means_in_another_order(tmp_path):
    """The team's classifier says {0: negative, 1: positive}; the question lists positive first. Its head rows
    are kept, so they must keep their labels: read the other way round, every prediction was inverted."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from tests.tiny_models import save_tiny_classifier
    from worker.scoring import load_classifier
    from worker.training.evaluate import predict_probabilities

    start = save_tiny_classifier(tmp_path / "theirs")
    model = BertForSequenceClassification.from_pretrained(start)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([4.0, -4.0]))  # sure of 'negative', whatever the text
    model.save_pretrained(start)
    examples = sentiment_examples(8)
    settings = TrainingSettings(**{**FAST, "learning_rate": 1e-9, "epochs": 1})

    train_classifier(str(start), examples, [], ["positive", "negative"], tmp_path / "out", settings)

    trained = load_classifier(tmp_path / "out", device="cpu", version="t")
    probabilities = predict_probabilities(trained, [e.text for e in examples], samples=1).deterministic
    negative = trained.labels.index("negative")
    assert set(trained.labels) == {"negative", "positive"}
    assert probabilities[:, negative].min() > 0.99

    shouting = tmp_path / "shouting"  # the same model, its labels as distilbert-sst2 writes them
    model.config.id2label, model.config.label2id = {0: "NEGATIVE", 1: "POSITIVE"}, {"NEGATIVE": 0, "POSITIVE": 1}
    model.save_pretrained(shouting)
    AutoTokenizer.from_pretrained(start).save_pretrained(shouting)
    train_classifier(str(shouting), examples, [], ["positive", "negative"], tmp_path / "out2", settings)
    trained = load_classifier(tmp_path / "out2", device="cpu", version="t2")
    probabilities = predict_probabilities(trained, [e.text for e in examples], samples=1).deterministic
    assert probabilities[:, trained.labels.index("negative")].min() > 0.99


def test_a_max_length_beyond_the_models_positions_trains_at_the_models_limit_and_says_so(tmp_path, caplog):
    """The tiny BERT has 64 positions; training.max_length = 128 failed on the first long text inside the model."""
    import logging

    from tests.tiny_models import save_tiny_classifier
    from worker.scoring import load_classifier

    long_examples = [Example(f"e{i}", " ".join(["a wonderful , moving film"] * 30), LABELS[i % 2]) for i in range(8)]
    settings = TrainingSettings(**{**FAST, "max_length": 128, "epochs": 1})
    base = save_tiny_classifier(tmp_path / "base")
    config = json.loads((base / "tokenizer_config.json").read_text())
    config["model_max_length"] = int(1e30)  # as a tokenizer that names no limit: the 64 positions are the limit
    (base / "tokenizer_config.json").write_text(json.dumps(config))

    with caplog.at_level(logging.WARNING, logger="worker.training.trainer"):
        train_classifier(str(base), long_examples, [], LABELS, tmp_path / "out", settings)

    assert "training.max_length = 128, but" in caplog.text and "reads at most 64 tokens" in caplog.text
    assert load_classifier(tmp_path / "out", device="cpu", version="t").max_length == 64


def test_the_context_limit_reads_roberta_style_positions_past_their_padding_offset():
    from transformers import BertConfig, DebertaV2Config, ModernBertConfig, RobertaConfig

    from worker.scoring.model import context_limit, position_limit

    class Tokenizer:
        model_max_length = int(1e30)  # transformers' placeholder when a tokenizer names no limit

    class Model:
        def __init__(self, config):
            self.config = config

    assert context_limit(Tokenizer(), Model(RobertaConfig(max_position_embeddings=514, pad_token_id=1))) == 512
    assert context_limit(Tokenizer(), Model(BertConfig(max_position_embeddings=512))) == 512
    assert position_limit(ModernBertConfig()) is None  # rotary: no table of positions to run past
    assert position_limit(DebertaV2Config(position_biased_input=False)) is None  # DeBERTa-v3: relative only
    Tokenizer.model_max_length = 128
    assert context_limit(Tokenizer(), Model(BertConfig(max_position_embeddings=512))) == 128


def test_training_says_how_many_texts_max_length_cuts_and_what_the_model_could_read(tiny_model_dir, tmp_path,
                                                                                     caplog):
    """A third of the training texts run past training.max_length: a warning naming the count, the kept end and
    the model's own limit; a training where nothing is cut says nothing of it."""
    examples = sentiment_examples(24)
    long = [replace(example, text=" ".join([example.text] * 12) if index % 3 == 0 else
                    " ".join(example.text.split()[:4])) for index, example in enumerate(examples)]
    settings = TrainingSettings(**{**FAST, "max_length": 16}, epochs=1)
    with caplog.at_level("INFO", logger="worker.training.trainer"):
        train_classifier(tiny_model_dir, long, [], list(LABELS), tmp_path / "cut", settings)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "max_length" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("8 of 24 training texts are longer than training.max_length"
                                                           " = 16 tokens: the model learns from their first 16")
    assert "the model reads up to" in warnings[0]
    caplog.clear()
    with caplog.at_level("INFO", logger="worker.training.trainer"):
        train_classifier(tiny_model_dir, examples, [], list(LABELS), tmp_path / "whole",
                         TrainingSettings(**{**FAST, "max_length": 64}, epochs=1))
    assert "training texts are longer" not in caplog.text


def test_a_tie_the_models_view_decided_is_trained_on_and_never_validated_on():
    """consensus.ties = "resolve": a tie the annotators' weights decide is an ordinary example; one only the model's
    stored view decides is trained on but kept out of validation (the epoch choice, the temperature and the gate
    would read the current model's own answer as the truth)."""
    from worker.crowd import CrowdModel

    def voted(record_id, votes, predicted):
        record = _record(record_id, "positive", [])
        responses = tuple(ResponseState(user, value, "submitted", datetime.now(UTC)) for user, value in votes.items())
        return replace(record, responses=responses,
                       metadata={"predicted_label": predicted, "confidence": 0.95})

    crowd = CrowdModel(LABELS, {"a": 0.6, "b": 0.6, "c": 0.01}, model_weight=1.0, resolve_ties=True)
    agreed = [voted(f"g{i}", {"a": label, "b": label}, label) for i, label in enumerate(LABELS * 20)]
    by_weights = voted("w", {"a": "negative", "c": "positive"}, "negative")
    by_model = [voted(f"m{i}", {"a": "negative", "b": "positive"}, "positive") for i in range(8)]

    annotated, _, tied = examples_from_records([*agreed, by_weights, *by_model], LABELS, crowd=crowd)
    tipped = {e.id for e in annotated if e.model_tipped}
    assert tied == [] and tipped == {f"m{i}" for i in range(8)}
    assert examples_from_records(by_model, LABELS, crowd=replace(crowd, resolve_ties=False))[2] == \
        [f"m{i}" for i in range(8)]  # ties = "keep": no label

    training_set = build_training_set(annotated, [], LABELS, validation_fraction=0.5, min_annotated=10)
    assert tipped <= {e.id for e in training_set.train}
    assert not tipped & {e.id for e in training_set.validation} and len(training_set.validation) >= 15
