"""Every annotator's vote (worker.crowd): weights, weighted consensus, confidence and needs_another_label on
crafted votes with answers worked out by hand."""

from __future__ import annotations

import math
import random

import pytest

from worker.crowd import (
    WEIGHT_FLOOR,
    CrowdEstimator,
    CrowdModel,
    CrowdStore,
    model_distribution,
    needs_another_label,
    weighted_consensus,
)
from worker.records import PulledRecord, ResponseState, consensus

LABELS = ("neg", "pos")


def _record(record_id: str, votes: dict[str, str], *, drafts: dict[str, str] | None = None,
            predicted: str | None = None, confidence: float | None = None) -> PulledRecord:
    responses = [ResponseState(user, label, "submitted") for user, label in votes.items()]
    responses += [ResponseState(user, label, "draft") for user, label in (drafts or {}).items()]
    metadata: dict = {"original_label": "pos"}
    if predicted is not None:
        metadata.update(predicted_label=predicted, confidence=confidence)
    return PulledRecord(server_id=record_id, record_id=record_id, text="t", metadata=metadata, suggestion=None,
                        responses=tuple(responses), updated_at=None)


# a and b agree with each other on every record; c agrees with them on half
HAND_MADE = [
    _record("r1", {"a": "pos", "b": "pos", "c": "neg"}),
    _record("r2", {"a": "neg", "b": "neg", "c": "neg"}),
    _record("r3", {"a": "pos", "b": "pos", "c": "pos"}),
    _record("r4", {"a": "neg", "b": "neg", "c": "pos"}),
]


def _estimate(records) -> CrowdModel:
    estimator = CrowdEstimator(LABELS)
    for record in records:
        estimator.add(record)
    return estimator.estimate()


def test_weights_follow_agreement_relative_to_the_no_skill_error():
    crowd = _estimate(HAND_MADE)

    # agreement: a and b 6 of 8 pairs, c 4 of 8; majority labels 2 pos / 2 neg → no-skill error 0.5
    assert crowd.annotators["a"].agreement_with_annotators == pytest.approx(0.75)
    assert crowd.annotators["c"].agreement_with_annotators == pytest.approx(0.5)
    assert crowd.weight("a") == pytest.approx(1 - 0.25 / 0.5)
    assert crowd.weight("c") == pytest.approx(WEIGHT_FLOOR)  # no better than answering the common label
    assert crowd.likelihood == pytest.approx((2 / 3 + 1 + 1 + 2 / 3) / 4)
    assert crowd.default_weight == pytest.approx((0.5 + 0.5 + WEIGHT_FLOOR) / 3)
    assert crowd.model_weight == 1.0  # no record carried the model's prediction
    assert crowd.overlapping_records == 4


def test_an_unreliable_pair_is_outvoted_by_one_reliable_annotator_and_the_confidence_says_how_sure():
    crowd = _estimate(HAND_MADE)
    record = _record("r5", {"a": "pos", "c": "neg", "newcomer": "neg"})

    verdict = weighted_consensus(record, crowd)

    assert consensus(record).label == "neg"  # plain majority
    assert verdict.label == "pos"
    pos_weight, neg_weight = crowd.weight("a"), crowd.weight("c") + crowd.default_weight
    assert verdict.agreement == pytest.approx(pos_weight / (pos_weight + neg_weight))
    likelihood = crowd.likelihood
    pos_mass = pos_weight * likelihood + neg_weight * (1 - likelihood)
    assert verdict.confidence == pytest.approx(pos_mass / (pos_weight + neg_weight))


def test_ties_stay_ties_and_single_votes_are_the_label_whatever_the_weights():
    crowd = _estimate(HAND_MADE)

    tie = weighted_consensus(_record("t", {"a": "pos", "c": "neg"}), crowd)
    single = weighted_consensus(_record("s", {"c": "neg"}, drafts={"a": "pos"}), crowd)

    assert tie.label is None and tie.tied_labels == ("neg", "pos")
    assert single.label == "neg" and single.agreement == 1.0 and single.num_annotators == 1
    assert weighted_consensus(_record("none", {}, drafts={"a": "pos"}), crowd) is None


def test_uniform_weights_reproduce_the_majority_vote():
    rng = random.Random(0)
    crowd = CrowdModel.uniform(LABELS)
    for index in range(200):
        votes = {f"u{j}": rng.choice(LABELS) for j in range(rng.randint(1, 5))}
        record = _record(f"r{index}", votes)
        plain, weighted = consensus(record), weighted_consensus(record, crowd)
        assert (weighted.label, weighted.tied_labels, weighted.agreement) == (
            plain.label, plain.tied_labels, pytest.approx(plain.agreement))


def test_the_model_weight_comes_from_its_error_against_the_majority():
    records = [_record(f"r{i}", {"a": "pos", "b": "pos", "c": "neg"}, predicted="pos", confidence=0.8)
               for i in range(3)]
    records.append(_record("r3", {"a": "neg", "b": "neg", "c": "neg"}, predicted="pos", confidence=0.7))

    crowd = _estimate(records)

    # majority labels: pos ×3, neg ×1 → no-skill error 0.25; the model misses 1 of 4 → skill 0 → floor
    assert crowd.model_weight == pytest.approx(WEIGHT_FLOOR * math.sqrt(3))
    assert crowd.annotators["a"].agreement_with_model == pytest.approx(0.75)
    assert crowd.annotators["c"].agreement_with_model == pytest.approx(0.0)


def test_annotator_quality_mixes_agreement_with_the_others_and_with_the_model():
    records = [_record(f"r{i}", {"a": label, "b": label, "c": "neg"}, predicted=label, confidence=0.9)
               for i, label in enumerate(["pos", "neg", "pos", "neg", "pos", "pos"])]

    crowd = _estimate(records)

    share = crowd.model_weight / (crowd.model_weight + crowd.default_weight)
    stats = crowd.annotators["c"]
    assert stats.quality == pytest.approx((1 - share) * stats.agreement_with_annotators
                                          + share * stats.agreement_with_model)
    assert crowd.annotators["a"].quality > stats.quality
    assert crowd.model_weight > crowd.weight("c")  # the model agrees with the majority every time


def test_needs_another_label_ranks_ties_before_splits_before_unanimous_records():
    crowd = _estimate(HAND_MADE)
    tie = _record("tie", {"a": "pos", "b": "neg"})
    split = _record("split", {"a": "pos", "b": "pos", "c": "neg"})
    unanimous = _record("unanimous", {"a": "pos", "b": "pos", "c": "pos"})

    values = [needs_another_label(r, crowd, None) for r in (tie, split, unanimous)]

    assert values[0] > values[1] > values[2] >= 0
    assert all(v <= 1 - 1 / len(LABELS) + 1e-12 for v in values)


def test_a_kept_tie_needs_another_label_even_when_the_model_is_sure():
    """With consensus.ties = "keep" a tie has no label (left out of training and publishing) however sure the
    model is — it may not decide it — so it still ranks before records whose votes agree; "resolve" lets the
    model settle it, and then its confidence counts."""
    from dataclasses import replace

    crowd = _estimate(HAND_MADE)
    tie = _record("tie", {"a": "pos", "c": "neg"})
    split = _record("split", {"a": "pos", "b": "pos", "c": "neg"})
    unanimous = _record("unanimous", {"a": "pos", "b": "pos"})
    sure = [0.02, 0.98]

    tie_need, split_need, unanimous_need = (needs_another_label(r, crowd, sure) for r in (tie, split, unanimous))
    assert tie_need > split_need and tie_need > unanimous_need
    assert tie_need == pytest.approx(1 - 1 / len(LABELS))  # as undecided as a record can be: the weights (a is
    assert crowd.weight("a") > 100 * crowd.weight("c")     # far more reliable than c) do not settle it either
    resolving = replace(crowd, resolve_ties=True)
    assert needs_another_label(tie, resolving, sure) < tie_need


def test_a_lone_unreliable_vote_against_a_sure_model_needs_another_label_most():
    """The weighted vote decides the label (the model never overrules it), so the decided label's posterior can
    fall below 1/K when the model is sure of another: the score then exceeds 1 − 1/K — above a kept tie."""
    crowd = _estimate(HAND_MADE)
    lone = _record("lone", {"c": "pos"})  # c: the floor weight
    against, agreeing = needs_another_label(lone, crowd, [0.99, 0.01]), needs_another_label(lone, crowd, [0.01, 0.99])
    tie = needs_another_label(_record("tie", {"a": "pos", "b": "neg"}), crowd, [0.99, 0.01])

    assert 1 - 1 / len(LABELS) < against < 1 and against > tie > agreeing


def test_needs_another_label_for_unlabelled_records_follows_the_models_confidence():
    crowd = _estimate(HAND_MADE)
    unlabelled = _record("u", {})

    unsure = needs_another_label(unlabelled, crowd, [0.5, 0.5])
    sure = needs_another_label(unlabelled, crowd, [0.02, 0.98])

    assert unsure == pytest.approx(0.5)  # max p = 1/K: nothing is known
    weights = crowd.model_weight + crowd.mean_annotator_weight
    assert sure == pytest.approx(1 - (crowd.model_weight * 0.98 + crowd.mean_annotator_weight / 2) / weights)
    assert needs_another_label(unlabelled, crowd, None) == pytest.approx(0.5)


def test_the_model_distribution_is_read_from_the_workers_metadata_only_when_valid():
    assert model_distribution(_record("m", {}, predicted="pos", confidence=0.8), LABELS) == pytest.approx([0.2, 0.8])
    assert model_distribution(_record("m", {}, predicted="other", confidence=0.8), LABELS) is None
    assert model_distribution(_record("m", {}, predicted="pos", confidence=1.5), LABELS) is None
    assert model_distribution(_record("m", {}), LABELS) is None


def test_the_store_round_trips_and_falls_back_to_uniform_weights_for_other_labels(tmp_path):
    store = CrowdStore(tmp_path / "crowd.json")
    crowd = _estimate(HAND_MADE)

    store.put("ws/dataset", crowd)

    assert store.get("ws/dataset", LABELS) == crowd
    assert store.get("ws/dataset", ("a", "b", "c")) == CrowdModel.uniform(("a", "b", "c"))
    assert store.get("ws/other", LABELS) == CrowdModel.uniform(LABELS)


def test_the_team_lead_sees_each_annotators_quality_in_status_metrics_and_the_cli(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from worker.cli import cli
    from worker.status import StatusBook

    crowd = _estimate(HAND_MADE)
    book = StatusBook(tmp_path / "state" / "status.json", "http://argilla")
    book.set_annotators(crowd)
    book.save([])

    assert book.status.annotators["annotators"]["c"]["weight"] == pytest.approx(WEIGHT_FLOOR)
    assert book.metrics.registry.get_sample_value("argilla_worker_annotator_quality", {"annotator": "a"}) == \
        pytest.approx(0.75)
    monkeypatch.setenv("ARGILLA_WORKER_STATE_DIR", str(tmp_path / "state"))
    result = CliRunner().invoke(cli, ["status"])
    lines = result.output.splitlines()
    assert any(line.startswith("annotators (from 4 records with ≥ 2 votes; model weight 1.0000 — not measured yet")
               for line in lines), result.output
    rows = [line.split() for line in lines if line.strip().split(" ")[0] in ("a", "b", "c")]
    assert [row[0] for row in rows] == ["a", "b", "c"]  # best quality first
    assert rows[2][1:] == ["4", "0.5000", "-", "0.0010", "0.5000"]

    measured = _estimate([_record(f"r{i}", {"a": "pos", "b": "pos"}, predicted="pos", confidence=0.9)
                          for i in range(3)])
    book.set_annotators(measured)
    book.save([])
    assert "model weight 1.4142 from 3 records it was not taught, read at temperature 1.0000" in \
        CliRunner().invoke(cli, ["status"]).output

    book.set_annotators(None)
    assert book.status.annotators == {}
    assert book.metrics.registry.get_sample_value("argilla_worker_annotator_weight", {"annotator": "a"}) is None


def test_with_ties_resolve_the_weights_and_the_model_break_a_tie_and_an_exact_one_stays():
    from dataclasses import replace

    from worker.crowd import verdict

    crowd = replace(_estimate(HAND_MADE), resolve_ties=True)
    reliable_vs_unreliable = _record("t1", {"a": "neg", "c": "pos"})
    same_weights = _record("t2", {"a": "neg", "b": "pos"})
    model_decides = _record("t3", {"a": "neg", "b": "pos"}, predicted="pos", confidence=0.9)

    resolved = weighted_consensus(reliable_vs_unreliable, crowd)
    assert resolved.label == "neg" and resolved.tied_labels == ()
    assert resolved.agreement == pytest.approx(crowd.weight("a") / (crowd.weight("a") + crowd.weight("c")))
    assert weighted_consensus(same_weights, crowd).label is None  # equal posteriors: still a tie
    assert verdict(model_decides, crowd).label == "pos"  # the stored prediction tips it
    assert verdict(model_decides, replace(crowd, resolve_ties=False)).label is None
    assert verdict(model_decides, None).label is None  # plain majority
    # a test-set record's label is the annotators' alone: the model measured on it may not have decided it
    assert verdict(model_decides, crowd.blind()).label is None
    assert verdict(reliable_vs_unreliable, crowd.blind()).label == "neg"
    assert CrowdModel.from_json(crowd.blind().to_json()).model_blind is False  # applied on use, never stored


def _label_set_tie() -> tuple[CrowdModel, PulledRecord]:
    """Two annotators of equal weight who split on 'pos', and the record where the model's suggested set has it."""
    from dataclasses import replace

    from worker.records import SuggestionState

    sets = _estimate([PulledRecord(f"s{i}", f"s{i}", "t", {}, None, (
        ResponseState("a", ("neg", "pos"), "submitted"), ResponseState("b", ("neg", "pos"), "submitted")), None)
        for i in range(3)])
    crowd = replace(sets, labels=LABELS, resolve_ties=True)
    tied = PulledRecord("m", "m", "t", {"model_version": "v0002"}, SuggestionState(("pos",), "v0002", (0.9,)),
                        (ResponseState("a", ("neg", "pos"), "submitted"), ResponseState("b", ("neg",), "submitted")),
                        None)
    return crowd, tied


def test_a_tied_label_of_a_set_on_a_test_record_is_decided_without_the_models_suggested_set():
    from worker.crowd import verdict

    crowd, tied = _label_set_tie()

    assert verdict(tied, crowd).label == ("neg", "pos")  # the model's set tips 'pos' in
    assert verdict(tied, crowd.blind()).label is None  # the annotators alone: 'pos' stays tied


def test_the_consensus_settings_choose_weights_and_tie_handling(tmp_path):
    from worker.config import load_settings
    from worker.services import Services

    crowd = _estimate(HAND_MADE)
    plain = Services(load_settings(state_dir=tmp_path, consensus={"weighted": False, "ties": "keep"}))
    weighted = Services(load_settings(state_dir=tmp_path))

    assert plain.crowd(LABELS, crowd).annotator_weights == {} and not plain.crowd(LABELS, crowd).resolve_ties
    assert weighted.crowd(LABELS, crowd).weight("c") == pytest.approx(WEIGHT_FLOOR)
    assert weighted.crowd(LABELS, crowd).resolve_ties  # the default decides ties


def test_the_worker_reads_a_views_echoes_from_the_registry_version_that_wrote_it(tmp_path):
    from dataclasses import replace

    from worker.config import load_settings
    from worker.crowd import verdict
    from worker.registry import write_taught_ids
    from worker.services import Services

    services = Services(load_settings(state_dir=tmp_path / "state", registry={"path": str(tmp_path / "registry")}))
    with services.registry.staging() as staged:
        write_taught_ids(staged, ["t1"])
        version = services.registry.add(staged, {}).version
    crowd = services.crowd(LABELS, _estimate(HAND_MADE))
    tie = _viewed(_record("t1", {"a": "neg", "b": "pos"}, predicted="pos", confidence=0.9), version)

    assert crowd.taught(version) == {"t1"}
    assert verdict(tie, crowd).label is None  # v0001 was taught t1: its view there does not tip the tie
    assert verdict(replace(tie, record_id="t2"), crowd).label == "pos"  # a record it never saw: it does


def test_a_vote_outside_the_questions_labels_reaches_the_caller_who_names_it():
    from worker.errors import DataError
    from worker.training.data import examples_from_records

    crowd = _estimate(HAND_MADE)
    record = _record("odd", {"a": "neutral", "b": "neutral", "c": "pos"})

    verdict = weighted_consensus(record, crowd)

    assert verdict.label == "neutral" and verdict.confidence == 0.0
    with pytest.raises(DataError, match=r"record 'odd': label 'neutral' is not one of"):
        examples_from_records([record], LABELS, crowd=crowd)


def test_status_names_a_rating_question_a_conversation_field_and_a_validation_too_small_for_the_ece(
        tmp_path, monkeypatch):
    from click.testing import CliRunner

    from worker.binding import DatasetBinding, Reference
    from worker.cli import cli
    from worker.registry import ModelVersion
    from worker.status import StatusBook

    book = StatusBook(tmp_path / "state" / "status.json", "http://argilla")
    book.set_binding("support", DatasetBinding(fields=("chat", "product"), question="quality", labels=("1", "2"),
                                               reference=Reference.parse("auto"), rating=True, chat_fields=("chat",)))
    book.set_model(ModelVersion("v0002", tmp_path, {"validation": {"records": 7, "macro_f1": 0.5,
                                                                   "ece_deterministic": 0.31, "ece_mc": 0.2}}))
    book.save([])
    monkeypatch.setenv("ARGILLA_WORKER_STATE_DIR", str(tmp_path / "state"))
    output = CliRunner().invoke(cli, ["status"]).output
    assert "dataset support: rating question 'quality', fields chat (conversation), product" in output, output
    assert "7 validation records: too few for the ECE to mean much" in output, output

    book.set_model(ModelVersion("v0003", tmp_path, {"validation": {"records": 400, "ece_mc": 0.05}}))
    book.save([])
    output = CliRunner().invoke(cli, ["status"]).output
    assert "; 400 validation records)" in output and "too few" not in output, output
    assert "test set: none measured — the validation records are ones picked for review" in output, output

    test = {"records": 48, "accuracy": 0.6667, "accuracy_interval": [0.5254, 0.7832], "macro_f1": 0.6012,
            "left_out_taught": 3, "ece": 0.041, "ece_deterministic": 0.0803}
    book.set_model(ModelVersion("v0004", tmp_path, {"validation": {"records": 400}, "test": test}))
    book.save([])
    output = CliRunner().invoke(cli, ["status"]).output
    assert ("test set: accuracy 0.6667 (95 % interval 0.5254 to 0.7832), macro-F1 0.6012, calibration error 0.0410 "
            "(deterministic 0.0803) on 48 reviewed records drawn at random, 3 it trained on left out") in output, output
    from prometheus_client import generate_latest

    assert "argilla_worker_model_test_accuracy 0.6667" in generate_latest(book.metrics.registry).decode()


def test_an_overconfident_models_evidence_is_read_at_the_temperature_that_best_explains_the_votes():
    """The model says 0.99 on every record but the votes agree with it on 3 records in 4: its probabilities are
    softened (T > 1) before they enter the posterior, as ActiveLab does; a model whose 0.75 matches the votes keeps
    T = 1; fewer than MIN_TEMPERATURE_RECORDS voted records with its view fit nothing."""
    from dataclasses import replace

    from worker.crowd import MIN_TEMPERATURE_RECORDS, TEMPERATURES, scaled

    def voted(confidence: float, count: int = 40) -> list[PulledRecord]:
        return [_record(f"r{i}", {"a": "pos" if i % 4 else "neg", "b": "pos" if i % 4 else "neg"},
                        predicted="pos", confidence=confidence) for i in range(count)]

    overconfident = _estimate(voted(0.99))
    assert overconfident.model_temperature > 2
    assert scaled([0.01, 0.99], overconfident.model_temperature)[1] == pytest.approx(0.75, abs=0.08)
    assert _estimate(voted(0.75)).model_temperature == 1.0
    assert _estimate(voted(0.99, MIN_TEMPERATURE_RECORDS - 1)).model_temperature == 1.0
    assert set(TEMPERATURES) >= {1.0, 2.0, 4.0}

    unlabelled = _record("u", {})
    plain = replace(overconfident, model_temperature=1.0)
    assert needs_another_label(unlabelled, overconfident, [0.01, 0.99]) > needs_another_label(unlabelled, plain,
                                                                                                [0.01, 0.99])
    assert CrowdModel.from_json(overconfident.to_json()).model_temperature == overconfident.model_temperature
    stored = overconfident.to_json()
    del stored["model_temperature"]  # an estimate stored before temperatures existed reads as 1
    assert CrowdModel.from_json(stored).model_temperature == 1.0


def _viewed(record: PulledRecord, version: str) -> PulledRecord:
    from dataclasses import replace

    return replace(record, metadata={**record.metadata, "model_version": version})


def test_a_view_the_model_wrote_on_a_record_it_was_taught_is_an_echo_not_evidence():
    """The full rescore writes a new model's view on the records it trained on, where it repeats its training label:
    that view neither tips a tie nor counts toward the model's weight, temperature or agreement with annotators."""
    from dataclasses import replace

    from worker.crowd import echoes_training, verdict

    taught = {"v0002": frozenset({f"e{i}" for i in range(6)} | {"t1"}), "v0001": None}.get
    # on the 6 records v0002 was taught it agrees with the majority; on the 2 others it misses
    echoes = [_viewed(_record(f"e{i}", {"a": label, "b": label, "c": "neg"}, predicted=label, confidence=0.99),
                      "v0002") for i, label in enumerate(["pos", "neg"] * 3)]
    fresh = [_viewed(_record(f"f{i}", {"a": "neg", "b": "neg", "c": "pos"}, predicted="pos", confidence=0.99),
                     "v0002") for i in range(2)]

    blind_to_echoes = CrowdEstimator(LABELS, taught)
    for record in [*echoes, *fresh]:
        blind_to_echoes.add(record)
    honest, fooled = blind_to_echoes.estimate(), _estimate([*echoes, *fresh])

    # majority labels: pos ×3, neg ×5 → no-skill error 3/8
    assert honest.model_weight == pytest.approx(WEIGHT_FLOOR * math.sqrt(3))  # wrong on each record it did not learn
    assert fooled.model_weight == pytest.approx((1 - (2 / 8) / (3 / 8)) * math.sqrt(3))  # its echoes counted right
    assert honest.annotators["a"].agreement_with_model == pytest.approx(0.0)
    assert fooled.annotators["a"].agreement_with_model == pytest.approx(6 / 8)

    crowd = replace(_estimate(HAND_MADE), resolve_ties=True)
    tie = _record("t1", {"a": "neg", "b": "pos"}, predicted="pos", confidence=0.9)  # a and b weigh the same
    assert verdict(_viewed(tie, "v0002"), crowd).label == "pos"  # no lookup: every view counts (as before)
    assert verdict(_viewed(tie, "v0002"), replace(crowd, taught=taught)).label is None  # taught there: an echo
    assert verdict(_viewed(tie, "v0003"), replace(crowd, taught={"v0003": frozenset()}.get)).label == "pos"
    assert verdict(_viewed(tie, "v0001"), replace(crowd, taught=taught)).label == "pos"  # unknown: not an echo
    assert not echoes_training(tie, "v0002-oof3", taught)  # an out-of-fold view never is
    assert "taught" not in replace(crowd, taught=taught).to_json()  # applied on use, never stored


def test_a_label_set_the_model_was_taught_does_not_tip_a_tied_label():
    from dataclasses import replace

    from worker.crowd import verdict

    crowd, tied = _label_set_tie()

    assert verdict(tied, replace(crowd, taught={"v0002": frozenset({"x"})}.get)).label == ("neg", "pos")
    assert verdict(tied, replace(crowd, taught={"v0002": frozenset({"m"})}.get)).label is None


def test_a_model_whose_weight_was_never_measured_breaks_only_ties_the_weights_leave_exactly_equal():
    """Before the first estimate, and right after the first training (every view an echo), the model weight is
    unmeasured (1). Counted at 1 it decided every tie, whatever the annotators' weights said: a model of unknown
    skill — the first one, from a few reviews — against measured annotators. It weighs at the floor there; once
    measured, as measured. Unlabelled records still rank by the model's confidence at weight 1."""
    from dataclasses import replace

    from worker.crowd import verdict

    unmeasured = replace(_estimate(HAND_MADE), resolve_ties=True)  # no record carried a view: nothing measured
    measured = replace(unmeasured, model_records=12)  # the same weight (1), measured on 12 records
    assert not unmeasured.model_measured and measured.model_measured and unmeasured.model_weight == 1.0
    reliable_vs_unreliable = _record("t1", {"a": "neg", "c": "pos"}, predicted="pos", confidence=0.99)
    equal_weights = _record("t2", {"a": "neg", "b": "pos"}, predicted="pos", confidence=0.99)

    assert verdict(reliable_vs_unreliable, unmeasured).label == "neg"  # a (weight 0.5) over c (the floor)
    assert verdict(reliable_vs_unreliable, measured).label == "pos"  # a measured weight of 1 tips it
    assert verdict(equal_weights, unmeasured).label == "pos"  # nothing else to go by
    decided = verdict(reliable_vs_unreliable, unmeasured)
    assert decided.confidence == pytest.approx(weighted_consensus(
        reliable_vs_unreliable, replace(unmeasured, model_weight=WEIGHT_FLOOR), [0.01, 0.99]).confidence)
    agreed = _record("agreed", {"a": "neg", "b": "neg"}, predicted="pos", confidence=0.99)  # no tie: the weight
    assert verdict(agreed, unmeasured).confidence == pytest.approx(verdict(agreed, measured).confidence)  # as is
    unlabelled = _record("u", {})
    assert needs_another_label(unlabelled, unmeasured, [0.02, 0.98]) == pytest.approx(
        needs_another_label(unlabelled, measured, [0.02, 0.98]))
    assert CrowdModel.uniform(LABELS).model_measured is False


def test_an_unmeasured_models_suggested_set_breaks_only_an_exactly_tied_label():
    from dataclasses import replace

    from worker.crowd import verdict
    from worker.records import SuggestionState

    def sets(record_id: str, **chosen) -> PulledRecord:
        return PulledRecord(record_id, record_id, "t", {}, None, tuple(
            ResponseState(user, labels, "submitted") for user, labels in chosen.items()), None)

    # c and d tick what a ticks; b the other label each time: a outweighs b
    estimate = _estimate([sets(f"s{i}", a=("pos",), b=("neg",), c=("pos",), d=("pos",)) for i in range(3)]
                         + [sets(f"n{i}", a=("neg",), b=("pos",), c=("neg",), d=("neg",)) for i in range(3)])
    unmeasured = replace(estimate, resolve_ties=True)
    assert not unmeasured.model_measured and unmeasured.weight("a") > unmeasured.weight("b")
    tied = PulledRecord("m", "m", "t", {"model_version": "v0002"}, SuggestionState(("neg",), "v0002", (0.9,)),
                        (ResponseState("a", ("neg", "pos"), "submitted"), ResponseState("b", ("neg",), "submitted")),
                        None)

    assert verdict(tied, unmeasured).label == ("neg", "pos")  # a's side of 'pos'
    assert verdict(tied, replace(unmeasured, model_records=6)).label == ("neg",)  # a measured model's set tips it
