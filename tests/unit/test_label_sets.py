"""Label sets (a multi-label question) through the record types: consensus of submitted sets, training
examples, the loss of another set, the server's JSON as a pulled record, and the published rows and card."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import datasets
import pytest

from worker.binding import DatasetBinding
from worker.crowd import CrowdModel, verdict
from worker.errors import DataError
from worker.records import PulledRecord, ResponseState, consensus

TOPICS = ("politics", "sports", "tech")


def _record(record_id: str, original: tuple[str, ...] | None, votes=(), *, statuses=None, loss=None) -> PulledRecord:
    statuses = statuses or ["submitted"] * len(votes)
    responses = tuple(ResponseState(f"u{i}", value, status, datetime.now(UTC))
                      for i, (value, status) in enumerate(zip(votes, statuses, strict=True)))
    metadata: dict = {"model_version": "v0002"}
    if original is not None:
        metadata["original_label"] = list(original)
    if loss is not None:
        metadata.update(loss=loss, original_loss=loss)
    text = f"text of {record_id}"
    return PulledRecord(f"srv-{record_id}", record_id, text, metadata, None, responses, None,
                        reference=original, field_values={"text": text})


def test_the_consensus_of_label_sets_is_decided_label_by_label_and_drafts_are_ignored():
    record = _record("r", ("tech",), [("sports", "tech"), ("sports",), ("politics", "sports"), ("tech",)],
                     statuses=["submitted", "submitted", "submitted", "draft"])
    decided = consensus(record)
    assert decided.label == ("sports",) and decided.num_annotators == 3  # the draft's "tech" does not count
    assert decided.votes == {"sports": 3, "tech": 1, "politics": 1} and decided.is_correction
    assert decided.label_agreement == pytest.approx({"sports": 1, "tech": 2 / 3, "politics": 2 / 3})
    assert decided.agreement == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)  # per label, the share on the decided side

    tie = consensus(_record("t", None, [("sports", "tech"), ("sports",)]))
    assert tie.label is None and tie.tied_labels == ("tech",)  # reported, not guessed
    single = consensus(_record("s", None, [("tech", "politics")]))
    assert single.label == ("politics", "tech") and single.agreement == 1.0
    assert consensus(_record("n", ("tech",))) is None

    weights = {"u0": 0.9, "u1": 0.1, "u2": 0.1}
    crowd = CrowdModel(TOPICS, weights, 0.5, 1.0, 0.9, {}, 0)
    reliable = _record("w", None, [("tech",), ("sports",), ("sports",)])
    assert consensus(reliable).label == ("sports",) and verdict(reliable, crowd).label == ("tech",)


def test_a_label_set_consensus_has_a_posterior_confidence_and_ties_resolve_label_by_label():
    from dataclasses import replace

    from worker.records import SuggestionState

    crowd = CrowdModel(TOPICS, {"u0": 0.9, "u1": 0.1}, 0.5, 1.0, 0.9, {}, 0)
    agreeing = verdict(_record("a", None, [("tech",), ("tech",)]), crowd)
    # per label: post(present) = Σ w·L / Σ w = 0.9 (no model evidence: the record carries no suggestion)
    assert agreeing.label == ("tech",) and agreeing.confidence == pytest.approx(0.9)

    split = _record("s", None, [("tech",), ("sports", "tech")])  # u1 alone ticked sports: a tie of the votes
    kept = verdict(split, crowd)
    post_sports_absent = (0.9 * 0.9 + 0.1 * 0.1) / 1.0
    assert kept.label is None and kept.tied_labels == ("sports",)
    assert kept.confidence == pytest.approx(0.9 * post_sports_absent)  # tech's posterior × the tie's larger one
    resolving = replace(crowd, resolve_ties=True)
    resolved = verdict(split, resolving)
    assert resolved.label == ("tech",) and resolved.tied_labels == ()  # the reliable annotator's side
    assert resolved.label_agreement["sports"] == pytest.approx(0.9) and resolved.confidence == kept.confidence

    equal = replace(resolving, annotator_weights={"u0": 0.5, "u1": 0.5})
    assert verdict(split, equal).tied_labels == ("sports",)  # equal posteriors: still a tie
    by_model = replace(split, suggestion=SuggestionState(("sports", "tech"), "v0002", (0.8, 0.9)))
    assert verdict(by_model, equal).label == ("sports", "tech")  # the worker's model ticked it: it tips the tie
    by_other = replace(by_model, suggestion=SuggestionState(("sports", "tech"), "tagger", (0.8, 0.9)))
    assert verdict(by_other, equal).tied_labels == ("sports",)  # another agent's suggestion is not evidence
    assert verdict(by_model, None).label is None  # plain majority: ties kept, no confidence


def test_label_set_records_become_weighted_examples_and_a_stratified_split():
    from worker.training.data import build_training_set, examples_from_records, label_counts, strata

    records = [_record(f"r{i}", None, [labels]) for i, labels in enumerate(
        [("politics",), ("sports",), ("sports", "tech"), ("tech",), ("politics", "tech"), ("sports",)] * 4)]
    records.append(_record("tie", None, [("tech",), ()]))
    records.append(_record("orig", ("sports",)))
    annotated, original, tied = examples_from_records(records, TOPICS, data="annotated+original")
    assert tied == ["tie"] and [e.label for e in original] == [("sports",)]
    assert {e.label for e in annotated} == {("politics",), ("sports",), ("sports", "tech"), ("tech",),
                                             ("politics", "tech")}
    assert label_counts(annotated) == {"politics": 8, "sports": 12, "tech": 12}
    assert strata([annotated[2], annotated[4]]) == ["sports", "politics"]  # the rarest label of each set

    training_set = build_training_set(annotated, original, TOPICS, validation_fraction=0.25, min_annotated=10)
    assert len(training_set.validation) >= 3 and training_set.counts()["per_class"]["tech"] == 12
    with pytest.raises(DataError, match=r"record 'bad': label 'weather' is not one of"):
        examples_from_records([_record("bad", None, [("weather", "tech")])], TOPICS)


def test_the_loss_of_another_label_set_is_its_least_plausible_label_decisions():
    from worker.jobs import label_loss

    probabilities = {"politics": 0.2, "sports": 0.9, "tech": 0.4}
    expected = -math.log(0.4)  # politics absent 0.8, sports present 0.9, tech present 0.4: tech is the doubt
    assert label_loss(probabilities, ("sports", "tech")) == pytest.approx(expected)
    assert label_loss(probabilities, "sports") == pytest.approx(-math.log(0.9))
    assert label_loss(probabilities, ("weather",)) is None


def test_a_multi_label_record_from_the_server_carries_sorted_label_sets_with_their_scores():
    from worker.gateway.client import _preserved, _pulled_record

    binding = DatasetBinding(fields=("text",), question="topics", labels=TOPICS, question_id="q1", multi_label=True)
    item = {
        "id": "0b0e4b5a-0000-0000-0000-000000000001", "external_id": "r1", "fields": {"text": "a match report"},
        "metadata": {"source": "feed"},
        "suggestions": [{"question_id": "q1", "value": ["tech", "sports"], "score": [0.4, 0.9], "agent": "tagger"}],
        "responses": [{"user_id": "u1", "status": "submitted", "values": {"topics": {"value": ["sports", "politics"]}}},
                      {"user_id": "u2", "status": "draft", "values": {"topics": {"value": ["tech"]}}}],
    }
    record = _pulled_record(item, binding)
    assert record.suggestion.value == ("sports", "tech") and record.suggestion.score == (0.9, 0.4)
    assert record.reference == ("sports", "tech")  # another agent's set under review
    assert record.responses[0].value == ("politics", "sports")
    assert _preserved(record, binding) == {"original_label": ["sports", "tech"], "original_agent": "tagger",
                                  "original_scores": ["sports=0.9", "tech=0.4"]}  # each label's score, paired


def test_published_label_sets_are_lists_of_class_labels_with_per_label_changes_in_the_card():
    from worker.publish import build_publication
    from worker.publish.card import card_metadata, render_card

    records = [
        _record("a", ("sports",), [("sports", "tech")], loss=2.0),       # tech added
        _record("b", ("politics", "tech"), [("politics",)], loss=1.5),   # tech removed
        _record("c", ("tech",), [("tech",), ("tech",)], loss=0.1),       # confirmed
        _record("d", ("sports",)),                                        # not reviewed
        _record("e", ("sports",), [("sports",), ("tech",)]),             # tied: left out
        _record("f", None, [("politics",)]),                              # no original labels
    ]
    with build_publication(records, TOPICS, multi_label=True) as publication:
        rows = {row["id"]: row for row in publication.rows}
        label = publication.features["label"]
        assert isinstance(label, datasets.Sequence) and label.feature.names == list(TOPICS)
        assert rows["a"]["label"] == [1, 2] and rows["a"]["original_label"] == [1] and rows["a"]["was_corrected"]
        assert rows["c"]["label_agreement"] == [1.0] and rows["d"]["label_agreement"] is None
        assert rows["c"]["label"] == [2] and not rows["c"]["was_corrected"] and rows["c"]["reviewed"]
        assert rows["d"]["label"] == [1] and not rows["d"]["reviewed"]
        assert rows["f"]["original_label"] is None and publication.tied == ["e"]
        assert publication.counts()["per_class"] == {"politics": 2, "sports": 2, "tech": 2}
        assert publication.label_set_changes() == [("tech", 1, 1)]
        card = render_card(publication, license="mit", pretty_name="Topics", source="https://argilla.io")
        assert "| tech | 1 | 1 |" in card and "correction_confusion" not in card
        assert card_metadata(publication, license="mit", pretty_name="T")["task_ids"] == ["multi-label-classification"]
    with pytest.raises(DataError, match=r"record 'a': consensus label 'tech' is not one of \['politics', 'sports'\]"):
        build_publication(records, ("politics", "sports"), multi_label=True)


def test_retraining_on_label_sets_reports_label_decision_calibration_and_gates_on_macro_f1(tmp_path):
    """A tiny real BERT trained on label sets through the registry: the calibration report counts every
    (record, label) decision, the validation examples come back as sets, and a barely trained second model
    is compared with the current one on the same validation sets (macro-F1 with its own thresholds)."""
    import json

    from tests.tiny_models import save_tiny_classifier
    from tests.training_data import TAGGED, TAGS
    from tests.unit.test_training import FAST
    from worker.registry import ModelRegistry
    from worker.training.data import Example, build_training_set
    from worker.training.job import read_examples, retrain
    from worker.training.trainer import TrainingSettings

    base = save_tiny_classifier(tmp_path / "base", labels=TAGS)
    examples = [Example(f"m{copy}-{i}", f"{text} ({copy})", tags)  # copies of one text would share a side
                for copy in range(6) for i, (text, tags) in enumerate(TAGGED)]
    training_set = build_training_set(examples, [], TAGS, min_annotated=10)
    settings = TrainingSettings(base_model=str(base), epochs=30, patience=30,
                                **{**FAST, "learning_rate": 5e-3})
    registry = ModelRegistry(tmp_path / "registry")

    first = retrain(training_set, registry, settings, mc_samples=4)

    assert first.promoted
    report = json.loads((first.model.path / "calibration" / "report.json").read_text())
    assert report["multi_label"] and report["records"] == len(training_set.validation)
    assert 0 <= report["ece_deterministic"] <= 1 and len(report["ece_by_samples"]) == 4  # T = scoring.samples
    assert "ECE over label decisions" in (first.model.path / "calibration" / "report.md").read_text()
    assert (first.model.path / "calibration" / "reliability.png").stat().st_size > 0
    assert (first.model.path / "thresholds.json").exists()
    assert all(isinstance(e.label, tuple) for e in read_examples(first.model.path / "validation.jsonl"))
    validation = first.model.metrics["validation"]  # beside its figure, that of ticking every label
    carried = [len(e.label) for e in training_set.validation]
    rates = [sum(tag in e.label for e in training_set.validation) / len(carried) for tag in TAGS]
    assert validation["every_label_macro_f1"] == pytest.approx(sum(2 * p / (1 + p) for p in rates) / len(TAGS))
    assert validation["labels_carried"] == pytest.approx(sum(carried) / len(carried))
    assert 0 <= validation["labels_ticked"] <= len(TAGS)
    # a first model whose few validation records (< select_min_validation) measure it, then trains on all of them
    # (training.refit): the thresholds tuned on them stay — the measured model's, as the same training without the
    # refit keeps them — not the 0.5 of a training without validation
    few = settings.model_copy(update={"select_min_validation": 50, "epochs": 2})  # probabilities still near the rates
    refit = retrain(training_set, ModelRegistry(tmp_path / "refit"), few, mc_samples=4)
    measured = retrain(training_set, ModelRegistry(tmp_path / "measured"), few.model_copy(update={"refit": False}),
                       mc_samples=4)
    assert refit.model.metrics["training"]["refit_on"] == len(examples)
    tuned = json.loads((measured.model.path / "thresholds.json").read_text())
    assert json.loads((refit.model.path / "thresholds.json").read_text()) == tuned

    strict = settings.model_copy(update={"gate_tolerance": 0.0, "epochs": 1, "learning_rate": 1e-9})
    second = retrain(training_set, registry, strict, mc_samples=4)
    gate = second.model.metrics["gate"]
    assert gate["current_version"] == first.model.version
    assert gate["current_macro_f1_same_validation"] == pytest.approx(first.model.metrics["validation"]["macro_f1"])
    assert not second.promoted and registry.current().version == first.model.version


def test_validation_records_the_thresholds_were_tuned_on_decide_at_thresholds_tuned_on_their_other_half(tmp_path):
    """One model twice — once with the thresholds its training tuned on the validation records, once at 0.5 each —
    compared on those records: decided at the tuned thresholds the first would read better on records that picked
    them (the gate favouring the candidate, the report optimistic); cross-fitted, both read the same, and the
    calibration report's macro-F1 on its validation records is the cross-fitted one."""
    import json
    import shutil

    import numpy as np

    from tests.tiny_models import save_tiny_classifier
    from tests.training_data import TAGGED, TAGS
    from tests.unit.test_training import FAST
    from worker.scoring import load_classifier
    from worker.scoring.multilabel import cross_fitted_decisions
    from worker.training.calibrate import calibration_report
    from worker.training.compare import compare_models
    from worker.training.data import Example, build_training_set
    from worker.training.evaluate import label_set_metrics, label_set_targets, predict_probabilities
    from worker.training.trainer import TrainingSettings, train_classifier

    examples = [Example(f"m{copy}-{i}", f"{text} ({copy})", tags) for copy in range(6)
                for i, (text, tags) in enumerate(TAGGED)]
    training_set = build_training_set(examples, [], TAGS, min_annotated=10)
    settings = TrainingSettings(base_model=str(save_tiny_classifier(tmp_path / "base", labels=TAGS)), epochs=2,
                                patience=2, **{**FAST, "learning_rate": 5e-3})  # probabilities near the rates
    train_classifier(settings.base_model, training_set.train, training_set.validation, TAGS, tmp_path / "tuned",
                     settings)
    tuned = json.loads((tmp_path / "tuned" / "thresholds.json").read_text())
    assert set(tuned.values()) != {0.5}, tuned  # what the test relies on: tuning moved some
    shutil.copytree(tmp_path / "tuned", tmp_path / "plain")
    (tmp_path / "plain" / "thresholds.json").write_text(json.dumps(dict.fromkeys(TAGS, 0.5)))
    candidate = load_classifier(tmp_path / "tuned", device="cpu", version="tuned")
    current = load_classifier(tmp_path / "plain", device="cpu", version="plain")
    validation = training_set.validation
    targets = label_set_targets([e.label for e in validation], TAGS)
    probabilities = predict_probabilities(candidate, [e.text for e in validation], samples=1).deterministic
    in_sample = label_set_metrics(probabilities >= np.asarray(candidate.thresholds), targets)[1]
    at_half = label_set_metrics(probabilities >= 0.5, targets)[1]
    assert in_sample > at_half  # the same model, read better at thresholds its own records picked

    comparison = compare_models(candidate, current, validation, None)

    assert comparison.candidate_macro_f1 == comparison.current_macro_f1
    crossed = label_set_metrics(cross_fitted_decisions(probabilities, targets), targets)[1]
    assert comparison.candidate_macro_f1 == pytest.approx(crossed)
    report = calibration_report(candidate, validation, tmp_path / "calibration", max_samples=2, mc_samples=2)
    assert report.macro_f1 == pytest.approx(crossed)


def test_a_label_set_model_no_better_than_ticking_every_label_is_said_to_have_learnt_nothing(caplog):
    """F1-tuned thresholds take a model whose probabilities sit near the labels' rates to ticking nearly every
    label — the best macro-F1 of a model that tells nothing apart: `train` says so, not only a figure that looks
    fine (0.62 on a 6-label probe whose labels each come on about half the records)."""
    import logging

    from worker.jobs import _warn_if_every_label_ticked

    with caplog.at_level(logging.WARNING, logger="worker.jobs"):
        _warn_if_every_label_ticked("v0002", {"records": 49, "macro_f1": 0.6285, "every_label_macro_f1": 0.6201,
                                              "labels_ticked": 5.47, "labels_carried": 2.68})
        _warn_if_every_label_ticked("v0003", {"records": 49, "macro_f1": 0.71, "every_label_macro_f1": 0.62,
                                              "labels_ticked": 2.9, "labels_carried": 2.68})  # it learnt: silent
        _warn_if_every_label_ticked("v0004", {"records": 49, "macro_f1": 0.5})  # single-label metrics: silent

    assert [record.getMessage() for record in caplog.records] == [(
        "model v0002 does no better on its 49 validation records than ticking every label (macro-F1 0.6285 vs "
        "0.6201): it ticks 5.5 labels a record where they carry 2.7 — it has not learned to tell the labels apart "
        "yet, and its suggestions would tick nearly all of them. Annotate more, or train longer (training.epochs).")]


def test_out_of_fold_scores_of_label_sets_rank_a_corrupted_set_by_label_issue(tmp_path):
    """K = 2 tiny multi-label models, each scoring the half it did not see: every record gets its set's loss,
    and ``label_issue`` (held-out probability of exactly the set × the worst label's training margin) ranks
    the corrupted sets above the clean ones more often than not."""
    import numpy as np

    from tests.tiny_models import save_tiny_classifier
    from tests.training_data import TAGGED, TAGS
    from tests.unit.test_training import FAST
    from worker.jobs import held_out_probability
    from worker.label_issues import label_issue_scores
    from worker.training.data import Example
    from worker.training.kfold import out_of_fold_scores
    from worker.training.trainer import TrainingSettings

    base = save_tiny_classifier(tmp_path / "base", labels=TAGS)
    corrupted = {"m0-0": ("humour",), "m1-2": ("acting",), "m2-4": ("praise",), "m3-6": ("acting", "humour")}
    examples = [Example(f"m{copy}-{i}", text, corrupted.get(f"m{copy}-{i}", tags))
                for copy in range(6) for i, (text, tags) in enumerate(TAGGED)]
    settings = TrainingSettings(epochs=25, **{**FAST, "learning_rate": 5e-3})

    result = out_of_fold_scores(examples, TAGS, base, settings, tmp_path / "oof", k=2, samples=4)

    assert set(result.scores) == {e.id for e in examples} == set(result.margins)
    for example in examples:
        score = result.scores[example.id]
        assert score.reference_label == example.label and isinstance(score.predicted_label, tuple)
        assert held_out_probability(score) == pytest.approx(math.exp(-score.loss))
    ids = [e.id for e in examples]
    issue = dict(zip(ids, label_issue_scores(np.array([held_out_probability(result.scores[i]) for i in ids]),
                                             np.array([result.margins[i] for i in ids])).tolist(), strict=True))
    wrong, right = [issue[i] for i in corrupted], [v for i, v in issue.items() if i not in corrupted]
    auroc = sum(w > r for w in wrong for r in right) / (len(wrong) * len(right))
    assert auroc >= 0.7, issue  # 0.96 here with 1 and 2 threads


def test_annotator_weights_come_from_label_decisions_and_outvote_a_sloppy_pair():
    """Label sets feed the same estimate as single labels, one present/absent decision per ticked label: the
    annotators who agree get the weight, and with it a reliable voter outweighs two sloppy ones on a label."""
    from worker.crowd import CrowdEstimator

    truth = [("sports",), ("politics", "tech"), ("tech",), ("sports", "politics")] * 5
    estimator = CrowdEstimator(TOPICS)
    for index, labels in enumerate(truth):
        wrong = tuple(sorted(set(TOPICS) - set(labels)))  # the sloppy pair ticks the other labels
        votes = [labels, labels, labels if index % 3 else wrong, labels if index % 2 else wrong]
        estimator.add(_record(f"r{index}", None, votes))
    crowd = estimator.estimate()
    assert crowd.weight("u0") == crowd.weight("u1") > 3 * max(crowd.weight("u2"), crowd.weight("u3"))
    assert crowd.annotators["u0"].labels == len(truth)

    disputed = _record("d", None, [("tech",), ("sports",), ("sports",)])  # u0 (reliable) vs u1 and u2
    weights = {"u0": crowd.weight("u0"), "u1": crowd.weight("u2"), "u2": crowd.weight("u3")}
    assert verdict(disputed, CrowdModel(TOPICS, weights)).label == ("tech",)
    assert consensus(disputed).label == ("sports",)  # the plain per-label majority


def test_needs_another_label_set_ranks_ties_and_doubtful_labels_first():
    from worker.crowd import needs_another_label_set

    crowd = CrowdModel.uniform(TOPICS)
    sure = {"politics": 0.02, "sports": 0.97, "tech": 0.03}
    doubtful = {"politics": 0.02, "sports": 0.97, "tech": 0.45}
    unanimous = needs_another_label_set(_record("u", None, [("sports",), ("sports",)]), crowd, sure)
    tied = needs_another_label_set(_record("t", None, [("sports", "tech"), ("sports",)]), crowd, sure)
    unlabelled_sure = needs_another_label_set(_record("n", None), crowd, sure)
    unlabelled_doubt = needs_another_label_set(_record("m", None), crowd, doubtful)
    assert tied > unanimous and unlabelled_doubt > unlabelled_sure
    assert all(0 <= value <= 0.5 for value in (unanimous, tied, unlabelled_sure, unlabelled_doubt))
    # nobody voted: the most doubtful label's ActiveLab score, 1 − (w_M·max(p, 1 − p) + w̄/2) / (w_M + w̄)
    assert unlabelled_doubt == pytest.approx(1 - (0.55 + 0.5) / 2)


def test_scored_label_sets_are_sorted_whatever_the_models_label_order(tmp_path):
    """The model's labels in question order (not alphabetical): predicted sets, labels to add / remove come out
    sorted like the sets pulled from the server, so equal sets compare equal (no false disagreement, no
    re-push of an unchanged suggestion)."""
    from tests.tiny_models import save_tiny_classifier
    from tests.training_data import TAGGED
    from tests.unit.test_training import FAST
    from worker.scoring import Scorer, ScoringInput, load_classifier
    from worker.training.data import Example
    from worker.training.trainer import TrainingSettings, train_classifier

    order = ("praise", "humour", "acting")
    base = save_tiny_classifier(tmp_path / "base", labels=order)
    examples = [Example(f"m{i}", text, tags) for i, (text, tags) in enumerate(TAGGED * 4)]
    train_classifier(base, examples, [], order, tmp_path / "model", TrainingSettings(epochs=1, **FAST))
    classifier = load_classifier(tmp_path / "model", device="cpu")
    assert classifier.labels == order

    everything = ("acting", "humour", "praise")
    [first] = Scorer(classifier, samples=2).score([ScoringInput("x", TAGGED[0][0], everything)])
    assert list(first.predicted_label) == sorted(first.predicted_label)
    assert list(first.to_add) == sorted(first.to_add) and list(first.to_remove) == sorted(first.to_remove)
    [again] = Scorer(classifier, samples=2).score([ScoringInput("x", TAGGED[0][0], first.predicted_label)])
    assert again.disagreement is False and again.label_changes == 0


def test_a_label_set_record_is_up_to_date_once_its_values_are_stored():
    """What a score run stored (lists on the server) matches what the next run computes (sorted tuples), so
    the record is not rescored; an empty consensus set (the model's set is suggested instead) too."""
    from dataclasses import replace

    from worker.jobs import is_up_to_date
    from worker.records import SuggestionState

    stored = {"model_version": "v0002", "reference_label": ["sports", "tech"], "submitted_responses": 0}
    record = replace(_record("r", ("sports", "tech")), metadata={"original_label": ["sports", "tech"], **stored},
                     suggestion=SuggestionState(("sports", "tech"), "tagger", (0.9, 0.3)))
    assert is_up_to_date(record, "v0002", "auto") and not is_up_to_date(record, "v0003", "auto")
    assert not is_up_to_date(replace(record, metadata={**record.metadata, "reference_label": ["tech"]}), "v0002")

    nothing = _record("n", None, [(), ()])  # both annotators: none of the labels apply
    nothing = replace(nothing, metadata={"model_version": "v0002", "reference_label": [], "submitted_responses": 2},
                      suggestion=SuggestionState(("politics",), "v0002", (0.4,)))
    assert is_up_to_date(nothing, "v0002", "reference")


def test_a_record_written_before_the_scoring_options_changed_is_not_up_to_date_unless_out_of_fold():
    """``stale_before`` (server clock): the values a record got up to then came from other ``[scoring]`` options;
    out-of-fold values are their own run's, not a score run's."""
    from dataclasses import replace

    from worker.jobs import is_up_to_date
    from worker.records import SuggestionState

    stored = {"model_version": "v0002", "reference_label": ["sports", "tech"], "submitted_responses": 0,
              "original_label": ["sports", "tech"]}
    written = datetime(2026, 12, 6, 10, 0, 0, 500)
    record = replace(_record("r", ("sports", "tech")), metadata=stored, updated_at=written,
                     suggestion=SuggestionState(("sports", "tech"), "v0002", (0.9, 0.3)))
    assert is_up_to_date(record, "v0002", "model", stale_before=None)
    assert is_up_to_date(record, "v0002", "model", stale_before=datetime(2026, 12, 6, 10, 0, 0, 499))
    assert not is_up_to_date(record, "v0002", "model", stale_before=written)
    out_of_fold = replace(record, metadata={**stored, "model_version": "v0002-oof5"},
                          suggestion=SuggestionState(("sports", "tech"), "v0002-oof5", (0.9, 0.3)))
    assert is_up_to_date(out_of_fold, "v0002", "model", stale_before=written)
    assert is_up_to_date(replace(record, updated_at=None), "v0002", "model", stale_before=written)  # cannot tell
    # the suggestion's time when the server gives it: another writer's change to the record does not make it new
    suggested = replace(record, updated_at=datetime(2026, 12, 6, 11), suggestion=replace(record.suggestion,
                                                                                        updated_at=written))
    assert not is_up_to_date(suggested, "v0002", "model", stale_before=written)
    assert is_up_to_date(suggested, "v0002", "model", stale_before=datetime(2026, 12, 6, 9))


def test_a_stratified_split_of_label_sets_holds_out_each_rarest_label():
    from worker.publish import PublishOptions, build_publication

    records = [_record(f"r{i:02d}", labels) for i, labels in enumerate(
        [("sports",), ("sports", "tech"), ("politics",), ("politics", "sports")] * 5)]
    options = PublishOptions(split="stratified", test_fraction=0.2, seed=1)
    with build_publication(records, TOPICS, options, multi_label=True) as publication:
        test = list(publication.splits["test"])
        assert publication.counts()["per_split"] == {"test": 4, "train": 16}
        # strata = each set's rarest label: tech (its 5 sets), politics (10 sets), sports (the 5 "sports" sets)
        names = publication.features["label"].feature.names
        held = sorted(tuple(names[i] for i in row["label"]) for row in test)
        assert ("sports", "tech") in held and ("sports",) in held


def test_published_label_agreement_follows_the_label_columns_order():
    from worker.publish import build_publication

    record = _record("g", None, [("tech", "sports"), ("sports", "tech"), ("tech",)])
    with build_publication([record], ("tech", "politics", "sports"), multi_label=True) as publication:
        row = next(iter(publication.rows))
    assert row["label"] == [0, 2]  # tech, sports (class index order)
    assert row["label_agreement"] == pytest.approx([1.0, 2 / 3])
