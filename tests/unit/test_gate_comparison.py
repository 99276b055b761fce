"""The promotion gate's comparison: stable validation sides across retrains, the records the current model was
taught left out, and a paired bootstrap interval of the difference (tiny in-process models, real training)."""

from __future__ import annotations

import gzip
import json
import random

import numpy as np
import pytest
from sklearn.metrics import f1_score

from tests.training_data import LABELS, sentiment_examples
from worker.config import load_settings
from worker.errors import ConfigError, WorkerError
from worker.jobs import calibrate_job
from worker.registry import ModelRegistry, read_taught_ids, write_taught_ids
from worker.scoring import load_classifier
from worker.services import Services
from worker.training.compare import (
    MIN_GATE_TEST_RECORDS,
    Comparison,
    _bootstrap_differences,
    _macro_f1,
    clearly_worse,
    compare_models,
    gate_records,
    inferred_taught_ids,
    rejection_advice,
)
from worker.training.data import (
    ANNOTATED,
    ORIGINAL,
    Example,
    TrainingSet,
    build_training_set,
    stratified_split,
    taught_ids,
)
from worker.training.job import retrain
from worker.training.trainer import TrainingSettings


def _examples(count: int, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    return [Example(f"r{index:05d}", f"text number {index}", rng.choice(["a", "b", "c"])) for index in range(count)]


@pytest.mark.parametrize(("first", "second"), [(60, 120), (100, 150), (200, 400)])
def test_a_retrain_on_more_annotations_validates_few_records_the_last_model_trained_on(first, second):
    """With a shuffle of the whole set (the split before) 11–15 of the second validation's 24–30 records (34–36 of
    80) were the first model's training records, and a third or less of the first validation stayed: the gate judged
    the current model partly on what it had memorised. Hashed: 0–4 (the gate leaves those out), 80 % or more stay."""
    examples = _examples(second)
    train_before, validation_before = stratified_split(examples[:first], 0.2, seed=13)
    _, validation_after = stratified_split(examples, 0.2, seed=13)

    trained_before = {example.id for example in train_before}
    assert sum(example.id in trained_before for example in validation_after) <= len(validation_after) // 5
    kept = {example.id for example in validation_before} & {example.id for example in validation_after}
    assert len(kept) >= 0.75 * len(validation_before)


def test_taught_ids_are_annotated_or_full_weight_examples():
    examples = [Example("a1", "x", "a"), Example("o1", "y", "b", weight=0.3, source=ORIGINAL),
                Example("o2", "z", "b", weight=1.0, source=ORIGINAL), Example("a2", "w", "a", source=ANNOTATED)]
    assert taught_ids(examples) == ["a1", "o2", "a2"]


def test_taught_ids_round_trip_and_absence_reads_as_unknown(tmp_path):
    assert read_taught_ids(tmp_path) is None
    write_taught_ids(tmp_path, ["r2", "r1", "r2"])
    assert read_taught_ids(tmp_path) == {"r1", "r2"}


def test_a_damaged_taught_ids_file_reads_as_unknown_with_a_warning_naming_it(tmp_path, caplog):
    """A file cut short or overwritten must not stop a training or a score run with a traceback."""
    write_taught_ids(tmp_path, [f"record-{i}" for i in range(2000)])
    path = tmp_path / "taught_ids.txt.gz"
    whole = path.read_bytes()
    for damaged in (whole[: len(whole) // 2], b"not gzip at all", gzip.compress(b"\xff\xfe\x00bad\n")):
        path.write_bytes(damaged)
        caplog.clear()
        assert read_taught_ids(tmp_path) is None
        assert f"{path} cannot be read" in caplog.text and "unknown" in caplog.text


@pytest.mark.parametrize("multi_label", [False, True])
def test_the_weighted_macro_f1_is_scikit_learns_at_unit_weights(multi_label):
    rng = np.random.default_rng(0)
    records, classes = 40, 4
    if multi_label:
        truth = rng.random((records, classes)) < 0.3
        predicted = rng.random((2, records, classes)) < 0.3
    else:
        targets = rng.integers(0, classes - 1, records)  # class 3 never a target: not averaged over
        truth = np.eye(classes, dtype=bool)[targets]
        predicted = np.eye(classes, dtype=bool)[rng.integers(0, classes, (2, records))]
    parts = np.stack([np.stack([p & truth, p & ~truth, ~p & truth]) for p in predicted]).astype(float)

    ours = _macro_f1(np.ones((1, records)), parts, not multi_label)[0]

    for model in range(2):
        if multi_label:
            expected = f1_score(truth, predicted[model], average="macro", zero_division=0)
        else:
            expected = f1_score(targets, predicted[model].argmax(axis=1), labels=sorted(set(targets)),
                                average="macro", zero_division=0)
        assert ours[model] == pytest.approx(expected)


def _settings(model_dir, **update) -> TrainingSettings:
    values = {"base_model": str(model_dir), "epochs": 6, "patience": 6, "batch_size": 4, "learning_rate": 3e-3,
              "max_length": 32, "device": "cpu"}
    return TrainingSettings(**{**values, **update})


def test_the_gate_leaves_out_the_validation_records_the_current_model_was_taught(tiny_model_dir, tmp_path):
    """The second training set's validation holds 6 records the first model trained on as annotations (forced
    here; a reshuffled split did it by itself): the gate compares on the others and says how many it left out."""
    registry = ModelRegistry(tmp_path / "registry")
    examples = sentiment_examples(48)
    first_set = build_training_set(examples[:32], [], LABELS, min_annotated=10)
    first = retrain(first_set, registry, _settings(tiny_model_dir, refit=False), mc_samples=2)
    taught = read_taught_ids(first.model.path)
    assert taught == {example.id for example in first_set.train}

    memorised = list(first_set.train[:6])
    fresh = examples[32:]
    second_set = TrainingSet(tuple(first_set.train[6:]) + tuple(first_set.validation), tuple(memorised + fresh),
                             LABELS, "forced")
    second = retrain(second_set, registry, _settings(tiny_model_dir, epochs=2), mc_samples=2)

    comparison = second.model.metrics["gate"]["comparison"]
    assert comparison["records"] == len(fresh) and comparison["left_out_taught"] == len(memorised)
    assert f"{len(memorised)} the current model trained on left out" in second.decision.reason
    low, high = comparison["difference_interval"]
    assert low <= comparison["candidate_macro_f1"] - comparison["current_macro_f1"] <= high
    assert read_taught_ids(second.model.path) == {example.id for example in second_set.train}


def test_a_model_started_from_the_current_one_inherits_what_it_was_taught(tiny_model_dir, tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    examples = sentiment_examples(48)
    first_set = build_training_set(examples[:32], [], LABELS, min_annotated=10)
    retrain(first_set, registry, _settings(tiny_model_dir, epochs=1, refit=False), mc_samples=2)
    second_set = build_training_set(examples, [], LABELS, min_annotated=10)

    second = retrain(second_set, registry, _settings(tiny_model_dir, epochs=1, start_from="current"), mc_samples=2)

    assert read_taught_ids(second.model.path) == ({e.id for e in first_set.train} | {e.id for e in second_set.train})


def test_later_models_are_fine_tuned_from_the_model_the_team_registered_not_the_base_encoder(tiny_model_dir,
                                                                                            tmp_path):
    """training.start_from = "auto" (the default): a registered model is the start of the next training, and of every
    one after it while the current model descends from it (the base model's path does not even exist here); pruning
    keeps it; "base" starts from training.base_model."""
    from worker.training.register import register_model

    registry = ModelRegistry(tmp_path / "registry", keep=1)
    brought = register_model(str(tiny_model_dir), registry, LABELS)
    examples = sentiment_examples(48)
    training_set = build_training_set(examples, [], LABELS, min_annotated=10)
    settings = _settings(tmp_path / "no-such-base-model", epochs=1)

    second = retrain(training_set, registry, settings, mc_samples=2)
    registry.promote(second.model.version)
    third = retrain(build_training_set(examples[:40], [], LABELS, min_annotated=10), registry, settings, mc_samples=2)
    registry.promote(third.model.version)
    registry.prune()

    assert read_taught_ids(second.model.path) == {example.id for example in training_set.train}  # the next gate's
    for outcome in (second, third):
        assert outcome.model.metrics["training"]["start_version"] == brought.version == "v0001"
        assert outcome.model.metrics["training"]["start_model"] == str(brought.path)
    assert [version.version for version in registry.versions()] == ["v0001", "v0002", "v0003"]  # current, rollback,
    assert registry.brought_start(registry.current()).version == "v0001"  # and the start of the next training
    with pytest.raises(ConfigError, match="no-such-base-model"):
        retrain(training_set, registry, settings.model_copy(update={"start_from": "base"}), mc_samples=2)


def test_a_first_model_measured_on_a_few_records_is_trained_again_on_all_of_them(tiny_model_dir, tmp_path):
    """training.refit: the first model's 6 validation records (< select_min_validation) measure it, then
    the registered model trains on all 32 — its taught ids name them, so the next gate leaves them out; the next
    model, gated against the current one, is not refit; with the setting off none is."""
    registry = ModelRegistry(tmp_path / "registry")
    examples = sentiment_examples(48)
    first_set = build_training_set(examples[:32], [], LABELS, min_annotated=10)
    every = {example.id for example in (*first_set.train, *first_set.validation)}
    assert 0 < len(first_set.validation) < 50

    first = retrain(first_set, registry, _settings(tiny_model_dir, epochs=1), mc_samples=2)

    assert first.promoted and first.model.metrics["training"]["refit_on"] == len(every) == 32
    assert first.model.metrics["validation"]["records"] == len(first_set.validation)  # the held-out measurement
    assert json.loads((first.model.path / "training.json").read_text())["train_records"] == 32  # the refit weights
    assert read_taught_ids(first.model.path) == every
    assert (first.model.path / "calibration").is_dir() and (first.model.path / "validation.jsonl").is_file()
    assert not (first.model.path / "refit").exists()
    services = Services(load_settings(argilla={"dataset": "unused"}, registry={"path": str(tmp_path / "registry")},
                                      state_dir=str(tmp_path / "state")))
    with pytest.raises(WorkerError, match="v0001 was trained again on its validation records too"):
        calibrate_job(services, "v0001")  # its stored validation records are no longer held out

    second = retrain(build_training_set(examples, [], LABELS, min_annotated=10), registry,
                     _settings(tiny_model_dir, epochs=1), mc_samples=2)
    assert "refit_on" not in second.model.metrics["training"]
    assert second.model.metrics["gate"]["comparison"]["left_out_taught"] >= len(first_set.validation) - 1

    kept = retrain(first_set, ModelRegistry(tmp_path / "other"), _settings(tiny_model_dir, epochs=1,
                                                                           refit=False), mc_samples=2)
    assert "refit_on" not in kept.model.metrics["training"]
    assert json.loads((kept.model.path / "training.json").read_text())["train_records"] == len(first_set.train)


def test_a_model_the_gate_compares_on_the_test_set_is_trained_again_on_its_few_validation_records(tiny_model_dir,
                                                                                                    tmp_path):
    """training.refit past the first model: with 100 test records answered the gate compares on them alone, so the
    second model's 12 validation records (< select_min_validation) only measure it — it is trained again on all 60,
    and that model is the one the gate compares, whose test-set scores are handed on and whose temperature is
    fitted on them. Without the test set the gate compares on the validation records: no refit."""
    from worker.test_set import measure

    examples = sentiment_examples(160)
    test = examples[60:]
    options = {"samples": 3, "mc_layers": "all"}
    first_set = build_training_set(examples[:32], [], LABELS, min_annotated=10)
    second_set = build_training_set(examples[:60], [], LABELS, min_annotated=10)
    every = {example.id for example in (*second_set.train, *second_set.validation)}
    assert 0 < len(second_set.validation) < 50 and len(test) == 100

    registry = ModelRegistry(tmp_path / "registry")
    retrain(first_set, registry, _settings(tiny_model_dir, epochs=1), mc_samples=2)
    second = retrain(second_set, registry, _settings(tiny_model_dir, epochs=1), mc_samples=2, scorer_options=options,
                     random_held_out=test)

    assert second.model.metrics["training"]["refit_on"] == len(every) == 60
    assert json.loads((second.model.path / "training.json").read_text())["train_records"] == 60
    assert every <= set(read_taught_ids(second.model.path))
    comparison = second.model.metrics["gate"]["comparison"]
    assert comparison["records"] == comparison["test_records"] == 100
    assert second.model.metrics["validation"]["records"] == len(second_set.validation)  # the held-out measurement
    handed = second.held_out_scores
    assert handed is not None and handed.ids == tuple(example.id for example in test)
    classifier = load_classifier(second.model.path, device="cpu", version=second.model.version)
    assert (measure(classifier, "v0002", test, scorer_options=options, temperature=classifier.temperature,
                    scored=handed.for_examples(test))
            == measure(classifier, "v0002", test, scorer_options=options, temperature=classifier.temperature))
    if (second.model.path / "temperature.json").exists():
        assert second.model.metrics["validation"]["temperature_fitted_on"] == "test set"

    registry = ModelRegistry(tmp_path / "no-test-set")
    retrain(first_set, registry, _settings(tiny_model_dir, epochs=1), mc_samples=2)
    kept = retrain(second_set, registry, _settings(tiny_model_dir, epochs=1), mc_samples=2, scorer_options=options)
    assert "refit_on" not in kept.model.metrics["training"]
    assert json.loads((kept.model.path / "training.json").read_text())["train_records"] == len(second_set.train)


def test_an_unknown_training_set_compares_on_every_record_and_identical_models_differ_by_nothing(tiny_model_dir):
    classifier = load_classifier(tiny_model_dir, device="cpu", version="tiny")
    validation = sentiment_examples(20)

    comparison = compare_models(classifier, classifier, validation, None)

    assert comparison.records == 20 and comparison.left_out == 0
    assert comparison.candidate_macro_f1 == comparison.current_macro_f1
    assert comparison.interval == (0.0, 0.0)


def test_a_current_model_taught_every_validation_record_is_compared_on_them_anyway(tiny_model_dir, caplog):
    classifier = load_classifier(tiny_model_dir, device="cpu", version="tiny")
    validation = sentiment_examples(8)

    comparison = compare_models(classifier, classifier, validation, {e.id for e in validation})

    assert comparison.records == 8 and comparison.left_out == 0
    assert "trained on all 8 records offered to the gate" in caplog.text


def test_the_gate_compares_on_the_test_set_alone_once_enough_of_it_is_answered():
    """Validation records were picked for review; the test set's answered in rank order are a random sample: below
    MIN_GATE_TEST_RECORDS they join the validation records, from there on they alone are compared."""
    validation = _examples(30)
    test = [Example(f"t{index}", f"test text {index}", "a") for index in range(MIN_GATE_TEST_RECORDS)]

    assert gate_records(validation, []) == (validation, [])
    assert gate_records(validation, test[:-1]) == (validation, test[:-1])
    assert gate_records(validation, test) == ([], test)


def test_test_records_the_current_model_was_taught_do_not_count_towards_comparing_on_the_test_set_alone():
    """A first model trained on every record's own label before the test set was drawn was taught most of it: the
    gate leaves those out, so they cannot count towards dropping the validation records (100 answered, 80 taught:
    20 would be compared on alone)."""
    validation = _examples(30)
    test = [Example(f"t{index}", f"test text {index}", "a") for index in range(MIN_GATE_TEST_RECORDS + 10)]
    taught = {example.id for example in test[:80]}

    assert gate_records(validation, test, taught) == (validation, test)
    assert gate_records(validation, test, {example.id for example in test[:10]}) == ([], test)
    assert gate_records(validation, test, None) == ([], test)


def test_a_comparison_counts_and_names_its_test_set_records(tiny_model_dir):
    classifier = load_classifier(tiny_model_dir, device="cpu", version="tiny")
    examples = sentiment_examples(20)
    taught = {examples[0].id, examples[10].id}  # one validation record, one test record (a model from before the draw)

    both = compare_models(classifier, classifier, examples[:8], taught, test=examples[8:])
    alone = compare_models(classifier, classifier, [], None, test=examples[8:])

    assert (both.records, both.test_records, both.left_out) == (18, 11, 2)
    assert "on 7 validation and 11 test-set records (2 the current model trained on left out): difference" in (
        both.describe())
    assert both.as_dict()["test_records"] == 11
    assert alone.describe().startswith("on 12 test-set records: difference +0.0000")


@pytest.mark.parametrize(("interval", "worse"), [((-0.30, -0.02), True), ((0.00, 0.20), False),
                                                ((-0.33, 0.00), False), ((-0.02, -0.01), False), (None, False)])
def test_a_candidate_is_clearly_worse_only_when_the_whole_interval_lies_below_the_threshold(interval, worse):
    assert clearly_worse(interval, 0.01) is worse


def test_a_rejection_says_whether_the_gate_could_tell_and_how_to_override_it():
    """The play-through's case: 13 records (5 of the test set), 95 % interval -0.33 to 0.00 — a coin toss, so the
    advice says so and what gives the gate more evidence; a candidate worse beyond the noise is told apart."""
    undecided = Comparison(13, 40, 0.60, 0.77, (-0.33, 0.0), test_records=5)
    without_test_set = Comparison(13, 0, 0.60, 0.77, (-0.33, 0.0))
    worse = Comparison(200, 0, 0.60, 0.77, (-0.25, -0.10), test_records=200)

    def advice(comparison: Comparison) -> str:
        return rejection_advice("v0002", {"current_version": "v0001", "tolerance": 0.01,
                                          "comparison": comparison.as_dict()})

    assert advice(undecided).startswith("v0001 stays current, but the gate could not tell the two apart on 13 "
                                        "records, where the difference's 95 % interval reaches +0.0000")
    assert "more of the test set's records answered in rank order" in advice(undecided)
    assert "`argilla-worker test-set`" in advice(without_test_set)
    assert advice(worse) == ("v0001 stays current (v0002 is worse beyond the comparison's noise); to use v0002 "
                             "anyway: `argilla-worker models promote v0002`")
    assert advice(undecided).endswith("`argilla-worker models promote v0002`")


def test_a_retrain_with_test_records_answered_gates_on_them_beside_the_validation_records(tiny_model_dir, tmp_path):
    registry = ModelRegistry(tmp_path / "registry")
    examples = sentiment_examples(64)
    first_set = build_training_set(examples[:32], [], LABELS, min_annotated=10)
    retrain(first_set, registry, _settings(tiny_model_dir, epochs=1, refit=False), mc_samples=2)
    second_set = build_training_set(examples[:48], [], LABELS, min_annotated=10)
    test = examples[48:]

    second = retrain(second_set, registry, _settings(tiny_model_dir, epochs=1), mc_samples=2, random_held_out=test)

    comparison = second.model.metrics["gate"]["comparison"]
    untaught_validation = comparison["records"] - comparison["test_records"]
    assert comparison["test_records"] == len(test) and 0 < untaught_validation <= len(second_set.validation)
    assert f"on {untaught_validation} validation and {len(test)} test-set records" in second.decision.reason


def test_a_training_scores_its_test_records_once_and_the_measure_after_it_reads_those_scores(tiny_model_dir,
                                                                                              tmp_path, monkeypatch):
    """The temperature fit and the test-set measure after registration need the same score run over the test
    records (same model, options and seed): the training hands its scores on; the figures are those of a measure
    that scores them itself. A first model refit on every example hands on its own scores (not the measured
    model's)."""
    import worker.training.calibrate
    from worker.test_set import measure

    registry = ModelRegistry(tmp_path / "registry")
    examples = sentiment_examples(64)
    options = {"samples": 3, "mc_layers": "all"}
    first_set = build_training_set(examples[:32], [], LABELS, min_annotated=10)
    refit = retrain(first_set, registry, _settings(tiny_model_dir, epochs=1, refit=True,
                                                   select_min_validation=50), mc_samples=2,
                    scorer_options=options, random_held_out=examples[48:])
    assert refit.model.metrics["training"].get("refit_on") and refit.held_out_scores is not None
    refit_model = load_classifier(refit.model.path, device="cpu", version="v0001")
    assert (measure(refit_model, "v0001", examples[48:], scorer_options=options, temperature=refit_model.temperature,
                    scored=refit.held_out_scores.for_examples(examples[48:]))
            == measure(refit_model, "v0001", examples[48:], scorer_options=options,
                       temperature=refit_model.temperature))
    second_set = build_training_set(examples[:48], [], LABELS, min_annotated=10)
    test = examples[48:]

    outcome = retrain(second_set, registry, _settings(tiny_model_dir, epochs=1), mc_samples=2,
                      scorer_options=options, random_held_out=test)

    handed = outcome.held_out_scores
    assert handed is not None and handed.ids == tuple(example.id for example in test)
    assert handed.probabilities.shape == (len(test), len(LABELS))
    assert handed.for_examples(test[1:]) is None  # other records: scored anew
    classifier = load_classifier(outcome.model.path, device="cpu", version=outcome.model.version)
    scored_itself = measure(classifier, outcome.model.version, test, scorer_options=options,
                            temperature=classifier.temperature)
    runs = []
    original = worker.training.calibrate.scored_probabilities
    monkeypatch.setattr(worker.training.calibrate, "scored_probabilities",
                        lambda *args, **kwargs: runs.append(args) or original(*args, **kwargs))
    reading = measure(classifier, outcome.model.version, test, scorer_options=options,
                      temperature=classifier.temperature, scored=handed.for_examples(test))
    assert runs == [] and reading == scored_itself


def _parts(records: int, seed: int) -> np.ndarray:
    """[2, 3, N, 2]: a candidate right on about 80 % of N two-class records, the current model on about 70 %."""
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, 2, records)
    truth = np.eye(2, dtype=bool)[targets]
    models = []
    for accuracy in (0.8, 0.7):
        answers = np.where(rng.random(records) < accuracy, targets, 1 - targets)
        predicted = np.eye(2, dtype=bool)[answers]
        models.append(np.stack([predicted & truth, predicted & ~truth, ~predicted & truth]))
    return np.stack(models).astype(float)


def test_the_bootstrap_interval_holds_the_difference_and_narrows_with_more_records():
    """The interval is the noise of the figure the gate reads: four times the records, about half the width."""
    widths = []
    for records in (50, 200):
        parts = _parts(records, seed=records)
        observed = _macro_f1(np.ones((1, records)), parts, True)[0]
        differences = _bootstrap_differences(parts, True, seed=0)
        low, high = np.quantile(differences, [0.025, 0.975])
        assert low <= observed[0] - observed[1] <= high
        widths.append(high - low)
    assert 0.35 < widths[1] / widths[0] < 0.7


def test_a_version_from_before_taught_ids_is_taught_what_was_reviewed_before_it_outside_its_validation(tmp_path):
    """Upgrading: the current model has no taught_ids.txt.gz (it would stay current, its figure inflated, against
    every candidate). What it may have been taught: the records reviewed before it was registered, but its own
    validation records; a record reviewed later, or one of its validation records, is compared."""
    (tmp_path / "validation.jsonl").write_text(json.dumps({"id": "own-validation", "text": "t", "label": "a"}) + "\n")
    validation = [Example("before", "x", "a", reviewed_at="2026-12-01T10:00:00+00:00"),
                  Example("after", "y", "a", reviewed_at="2026-12-03T10:00:00+00:00"),
                  Example("own-validation", "t", "a", reviewed_at="2026-12-01T09:00:00+00:00"),
                  Example("no-time", "z", "b")]

    taught = inferred_taught_ids(tmp_path, "2026-12-02T00:00:00+00:00", validation)

    assert taught == {"before", "no-time"}
    assert inferred_taught_ids(tmp_path, None, validation) is None
    assert inferred_taught_ids(tmp_path / "registered", "2026-12-02T00:00:00+00:00", validation) is None


def test_an_annotated_example_carries_when_it_was_first_reviewed():
    from datetime import UTC, datetime

    from worker.records import PulledRecord, ResponseState
    from worker.training.data import examples_from_records

    early, late = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC)
    responses = (ResponseState("u1", "a", "submitted", late), ResponseState("u2", "a", "submitted", early),
                 ResponseState("u3", "b", "draft", datetime(2026, 11, 1, tzinfo=UTC)))
    record = PulledRecord("s1", "r1", "text", {}, None, responses, late)

    annotated, _, _ = examples_from_records([record], ["a", "b"])

    assert annotated[0].reviewed_at == early.isoformat()
