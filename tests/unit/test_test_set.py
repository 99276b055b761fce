"""The test set (worker/test_set.py): the draw, what a training leaves out, the interval and the measure
(a tiny real BERT)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from worker.constants import TEST_SET_PROPERTY
from worker.duplicates import text_key
from worker.errors import DataError
from worker.records import PulledRecord, ResponseState
from worker.test_set import (
    RECOVERED,
    TestSetFilter,
    TestSetStore,
    draw_test_set,
    grow_test_set,
    is_test_record,
    measure,
    progress,
    recovered_or_drawn,
    wilson_interval,
)
from worker.training.data import Example


def _record(record_id: str, text, *, status: str | None = None, metadata: dict | None = None) -> PulledRecord:
    responses = (ResponseState("u1", "positive", status, datetime.now(UTC)),) if status else ()
    return PulledRecord(f"srv-{record_id}", record_id, text, metadata or {}, None, responses, None)


def test_the_draw_is_a_seeded_sample_of_records_nobody_has_responded_to_in_a_random_order(tmp_path):
    records = ([_record(f"r{i:03}", f"text {i}", status="submitted" if i % 5 == 0 else "draft" if i % 7 == 0
                        else None) for i in range(200)] + [_record("empty", "  ")])
    untouched = {f"r{i:03}" for i in range(200) if i % 5 and i % 7}

    drawn = draw_test_set(iter(records), 40, seed=3)

    assert len(drawn.ids) == 40 and set(drawn.ids) <= untouched  # no draft, no submitted, no empty text
    assert drawn.drawn_from == len(untouched)
    assert drawn.server_ids == tuple(f"srv-{record_id}" for record_id in drawn.ids)
    assert drawn.keys[0] == text_key(f"text {int(drawn.ids[0][1:])}")
    assert list(drawn.ids) != sorted(drawn.ids)  # ranks in a random order, not the stream's
    assert drawn.ranks()[drawn.ids[0]] == 1 and sorted(drawn.ranks().values()) == list(range(1, 41))
    assert draw_test_set(iter(records), 40, seed=3).ids == drawn.ids != draw_test_set(iter(records), 40, seed=4).ids
    assert len(draw_test_set(iter(records[:10]), 40).ids) == sum(1 for r in records[:10] if r.record_id in untouched)
    store = TestSetStore(tmp_path / "test_sets.json")
    store.put("ds", drawn)
    assert store.get("ds") == drawn and store.get("other") is None
    store.forget("ds")
    assert store.get("ds") is None
    with pytest.raises(ValueError, match="at least 1"):
        draw_test_set(iter(records), 0)


def test_a_draw_of_at_most_a_share_takes_a_uniform_part_of_the_same_draw_and_never_a_small_datasets_majority():
    """The default test set is 200 records and at most a fifth of those nobody reviewed: a dataset of 200 kept
    none for the model before (every record drawn). The share cuts the same seeded draw: the first ranks of it."""
    records = [_record(f"r{i:03}", f"text {i}") for i in range(200)]

    whole = draw_test_set(iter(records), 200, seed=3)
    fifth = draw_test_set(iter(records), 200, seed=3, share=0.2)

    assert len(whole.ids) == 200 and len(fifth.ids) == 40 and fifth.drawn_from == 200
    assert fifth.ids == whole.ids[:40] and fifth.keys == whole.keys[:40]  # ranks 1 … 40 of the same random order
    assert len(draw_test_set(iter(records), 30, seed=3, share=0.2).ids) == 30  # the size still bounds it
    assert len(draw_test_set(iter(records[:3]), 200, share=0.2).ids) == 1  # rounded up: a dataset of 3 gets 1
    assert recovered_or_drawn(iter(records), 200, seed=3, share=0.2)[0].ids == fifth.ids
    for share in (0, 1.5):
        with pytest.raises(ValueError, match=r"share of the records is in \(0, 1\]"):
            draw_test_set(iter(records), 200, share=share)


def test_a_training_stream_loses_the_test_records_and_copies_of_their_texts_only(tmp_path):
    records = [_record(f"r{i}", f"text {i}") for i in range(10)]
    test_set = draw_test_set(iter(records), 3, seed=0)
    marked_elsewhere = _record("m", "a record another machine's test set marked", metadata={TEST_SET_PROPERTY: 7})
    copy = _record("copy", f"  TEXT {int(test_set.ids[0][1:])} ")  # letter case and spacing aside, a test text
    stream = TestSetFilter(test_set)

    passed = [record.record_id for record in stream.without(iter([*records, marked_elsewhere, copy]))]

    assert passed == [r.record_id for r in records if r.record_id not in test_set.ids]
    assert stream.held == len(test_set.ids) + 1 and stream.copies_dropped == 1
    nothing_drawn = TestSetFilter(None)
    assert [r.record_id for r in nothing_drawn.without(iter(records))] == [r.record_id for r in records]
    assert stream.is_copy(copy) and stream.covers(copy) and stream.covers(marked_elsewhere)
    assert not stream.is_copy(records[int(test_set.ids[0][1:])])  # the test record itself is no copy
    assert not stream.covers(_record("x", "text 12")) and not nothing_drawn.covers(copy)


def test_a_stored_test_set_says_whether_the_copies_of_its_texts_were_cleared(tmp_path):
    """A test set stored before the flag existed reads as not cleared: the next test-set run clears them once."""
    drawn = draw_test_set(iter([_record(f"r{i}", f"text {i}") for i in range(5)]), 2)
    store = TestSetStore(tmp_path / "test_sets.json")
    store.put("ds", drawn)
    assert not store.get("ds").copies_cleared
    store.put("ds", replace(drawn, copies_cleared=True))
    assert store.get("ds").copies_cleared
    older = json.loads((tmp_path / "test_sets.json").read_text())
    del older["ds"]["copies_cleared"]
    (tmp_path / "test_sets.json").write_text(json.dumps(older))
    assert store.get("ds") == drawn


def test_only_the_records_answered_from_rank_1_on_count_a_later_one_waits_for_the_ranks_before_it():
    records = [_record(f"r{i}", f"text {i}") for i in range(10)]
    test_set = draw_test_set(iter(records), 6, seed=0)
    first, second, third, fourth, fifth, _ = test_set.ids
    state = {record.record_id: record for record in records}
    state[first] = _record(first, "t", status="submitted")
    state[second] = _record(second, "t", status="discarded")  # an answer, without a label
    state[third] = _record(third, "t", status="draft")  # not yet
    state[fifth] = _record(fifth, "t", status="submitted")  # picked out of order (a sort on uncertainty)

    before = progress(test_set, state.values())

    assert [r.record_id for r in before.in_order] == [first, second] and before.beyond == 1
    assert before.answered == 3 and before.found == 6
    state[third] = _record(third, "t", status="submitted")
    del state[fourth]  # deleted from the dataset: skipped, not a gap
    after = progress(test_set, state.values())
    assert [r.record_id for r in after.in_order] == [first, second, third, fifth] and after.beyond == 0
    assert after.found == 5


def test_a_lost_state_directory_finds_the_test_set_again_by_its_marks():
    records = [_record(f"r{i}", f"text {i}") for i in range(10)]
    marked = [_record("m2", "marked two", metadata={TEST_SET_PROPERTY: 2}),
              _record("m1", "marked one", status="submitted", metadata={TEST_SET_PROPERTY: 1})]

    found, drawn = recovered_or_drawn(iter([*records[:5], *marked, *records[5:]]), 3)
    fresh, drawn_now = recovered_or_drawn(iter(records), 3, seed=5)

    assert not drawn and found.ids == ("m1", "m2") and found.server_ids == ("srv-m1", "srv-m2")
    assert found.keys == (text_key("marked one"), text_key("marked two")) and found.drawn_at == RECOVERED
    assert drawn_now and fresh.ids == draw_test_set(iter(records), 3, seed=5).ids


def test_a_test_set_grows_at_the_next_ranks_from_records_nobody_has_responded_to_and_keeps_its_own(tmp_path):
    records = [_record(f"r{i:02}", f"text {i}") for i in range(30)]
    first = draw_test_set(iter(records), 5, seed=1)
    first = replace(first, copies_cleared=True)
    copy = _record("copy", f"TEXT {int(first.ids[0][1:])}")  # a test text: neither drawn nor a candidate
    reviewed = _record("seen", "reviewed already", status="submitted")
    stream = [*records, copy, reviewed]

    grown = grow_test_set(first, iter(stream), 12, seed=1)

    assert grown.ids[:5] == first.ids and len(grown.ids) == 12 and len(set(grown.ids)) == 12  # ranks 1-5 as before
    assert grown.ranks()[first.ids[0]] == 1 and grown.ranks()[grown.ids[5]] == 6
    assert {"copy", "seen"}.isdisjoint(grown.ids)
    assert grown.server_ids == tuple(f"srv-{record_id}" for record_id in grown.ids)
    assert grown.keys[5:] == tuple(text_key(f"text {int(record_id[1:])}") for record_id in grown.ids[5:])
    assert grown.grown[0].added == 7 and grown.grown[0].drawn_from == 25  # 30 records, 5 of them in the test set
    assert not grown.copies_cleared  # the new texts' copies are cleared by the next test-set run
    assert grow_test_set(first, iter(stream), 12, seed=1).ids == grown.ids != grow_test_set(first, iter(stream), 12,
                                                                                            seed=2).ids  # seeded
    assert grow_test_set(first, iter(stream), 5) is first and grow_test_set(first, iter(stream), 3) is first
    everything = grow_test_set(grown, iter(stream), 100, seed=1)
    assert len(everything.ids) == 30 and everything.grown[1].added == 18 and len(everything.grown) == 2
    assert grow_test_set(everything, iter(stream), 200) is everything  # nothing left to add
    store = TestSetStore(tmp_path / "test_sets.json")
    store.put("ds", everything)
    assert store.get("ds") == everything


def test_the_wilson_interval_stays_inside_0_and_1_and_narrows_with_more_records():
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(10, 10)[0] == pytest.approx(0.7225, abs=1e-4)
    narrow = wilson_interval(150, 200)
    assert narrow[0] < 0.75 < narrow[1] and narrow[1] - narrow[0] < 0.13
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_the_measure_is_the_models_accuracy_on_the_reviewed_test_records(tiny_classifier):
    texts = ["a wonderful film", "dull and slow", "great acting", "boring plot", "loved it", "awful"]
    first, second = tiny_classifier.labels[:2]
    answers_first = _right_answers(tiny_classifier, texts)  # [6]: the model answers the first label

    all_first = measure(tiny_classifier, "tiny-v1", [Example(f"t{i}", t, first) for i, t in enumerate(texts)],
                        left_out=2)
    all_second = measure(tiny_classifier, "tiny-v1", [Example(f"t{i}", t, second) for i, t in enumerate(texts)])

    assert all_first.records == 6 and all_first.left_out == 2
    assert all_first.accuracy == pytest.approx(sum(answers_first) / 6)
    assert all_second.accuracy == pytest.approx(1 - sum(answers_first) / 6)  # a two-label model: one or the other
    assert all_first.interval == pytest.approx(wilson_interval(sum(answers_first), 6))
    assert "tiny-v1 on 6 reviewed test records, 2 it trained on left out: accuracy" in all_first.describe()
    assert all_first.as_dict()["accuracy_interval"] == list(all_first.interval)
    assert "label_sets" not in all_first.as_dict()
    with pytest.raises(DataError, match="test record 'x': label 'sarcastic' is not one of the model's labels"):
        measure(tiny_classifier, "tiny-v1", [Example("x", "a film", "sarcastic")])


def test_a_label_set_models_accuracy_is_named_the_share_of_whole_sets_it_gets_right(tmp_path):
    """Of label sets, accuracy is exact-set accuracy — with six labels a few percent beside a macro-F1 of 0.4 —
    and says so wherever it is shown (the measure's line, `train`/`status`, the dataset card)."""
    from transformers import AutoConfig

    from tests.tiny_models import save_tiny_classifier
    from tests.training_data import TAGS
    from worker.scoring import load_classifier
    from worker.scoring.model import MULTI_LABEL_PROBLEM

    directory = save_tiny_classifier(tmp_path / "tags", labels=TAGS)
    config = AutoConfig.from_pretrained(directory)
    config.problem_type = MULTI_LABEL_PROBLEM  # one sigmoid per label
    config.save_pretrained(directory)
    classifier = load_classifier(directory, device="cpu")
    examples = [Example(f"t{i}", text, ("acting", "praise")) for i, text in enumerate(["a great cast", "dull"])]

    measured = measure(classifier, "tags-v1", examples)

    assert classifier.multi_label and measured.label_sets and measured.as_dict()["label_sets"]
    assert f"tags-v1 on 2 reviewed test records: exact-set accuracy {measured.accuracy:.4f}" in measured.describe()
    from worker.cli import _test_set_line

    assert _test_set_line(measured.as_dict()).startswith(f"test set: exact-set accuracy {measured.accuracy:.4f}")


def test_the_measure_gives_the_calibration_error_of_the_confidence_scoring_writes(tiny_classifier):
    """Scored as records are (MC dropout, T = 4): the ECE of that mean read at the scoring temperature, beside the
    deterministic model's; the deterministic figure is what the deterministic probabilities give, whatever the
    temperature."""
    from worker.calibration import expected_calibration_error
    from worker.training.evaluate import predict_probabilities

    texts = ["a wonderful film", "dull and slow", "great acting", "boring plot", "loved it", "awful", "fine", "meh"]
    first = tiny_classifier.labels[0]
    examples = [Example(f"t{i}", t, first) for i, t in enumerate(texts)]

    options = {"samples": 4, "mc_layers": "all"}
    plain = measure(tiny_classifier, "tiny-v1", examples, seed=1, scorer_options=options)
    flattened = measure(tiny_classifier, "tiny-v1", examples, seed=1, scorer_options=options, temperature=50.0)

    deterministic = predict_probabilities(tiny_classifier, texts, samples=1).deterministic  # [8, 2]
    assert plain.ece_deterministic == pytest.approx(expected_calibration_error(deterministic, np.zeros(8, int)))
    assert flattened.ece_deterministic == pytest.approx(plain.ece_deterministic)
    # at τ = 50 every confidence is about 0.5: the error is how far the accuracy is from one half
    assert flattened.ece == pytest.approx(abs(plain.accuracy - 0.5), abs=0.02)
    assert 0.0 <= plain.ece <= 1.0
    assert f"calibration error {plain.ece:.4f} (deterministic {plain.ece_deterministic:.4f})" in plain.describe()
    assert plain.as_dict()["ece"] == plain.ece
    deterministic_only = measure(tiny_classifier, "tiny-v1", examples)
    assert deterministic_only.ece is None and "ece" not in deterministic_only.as_dict()


def test_the_temperature_is_fitted_on_the_records_drawn_at_random_once_there_are_enough_of_them(tiny_classifier):
    """100 reviewed test records: they alone (what the scored records look like); fewer: with the validation
    records; none: the validation records, as before a test set."""
    from worker.calibration import MIN_TEMPERATURE_RECORDS
    from worker.training.calibrate import scored_probabilities
    from worker.training.job import temperature_records

    first, second = tiny_classifier.labels[:2]
    validation = [Example(f"v{i}", f"validation text {i}", first if i % 2 else second) for i in range(6)]
    scored = np.full((6, len(tiny_classifier.labels)), 1 / len(tiny_classifier.labels))  # [6, C]
    drawn = [Example(f"t{i}", f"test text number {i}", first if i % 3 else second)
             for i in range(MIN_TEMPERATURE_RECORDS)]
    drawn_scored = scored_probabilities(tiny_classifier, drawn, {"samples": 2, "mc_layers": "all"})  # [100, C]

    alone, alone_scored, source = temperature_records(validation, scored, drawn, drawn_scored)
    assert source == "test set" and [e.id for e in alone] == [e.id for e in drawn]
    assert alone_scored is drawn_scored and np.allclose(alone_scored.sum(axis=1), 1.0)
    both, both_scored, source = temperature_records(validation, scored, drawn[:10], drawn_scored[:10])
    assert source == "validation + test set" and [e.id for e in both] == [*(e.id for e in validation),
                                                                            *(e.id for e in drawn[:10])]
    assert np.array_equal(both_scored[:6], scored) and np.array_equal(both_scored[6:], drawn_scored[:10])
    none, none_scored, source = temperature_records(validation, scored, [], None)
    assert source == "validation" and none == validation and none_scored is scored
    skipped, skipped_scored, source = temperature_records(validation, scored, drawn, None)  # the scorer skipped one
    assert source == "validation" and skipped == validation and skipped_scored is scored


def test_a_temperature_fitted_on_the_test_set_is_measured_cross_fitted_there(tiny_classifier):
    from worker.calibration import crossfit_temperature_ece
    from worker.training.calibrate import scored_probabilities

    first = tiny_classifier.labels[0]
    examples = [Example(f"t{i}", f"a review, number {i}", first) for i in range(12)]
    options = {"samples": 3, "mc_layers": "all"}

    crossfitted = measure(tiny_classifier, "tiny-v1", examples, scorer_options=options, seed=2, crossfit=True)

    scored = scored_probabilities(tiny_classifier, examples, options, seed=2)
    assert crossfitted.ece == pytest.approx(crossfit_temperature_ece(np.log(scored), np.zeros(12, int), 2))
    assert crossfitted.ece != pytest.approx(measure(tiny_classifier, "tiny-v1", examples, scorer_options=options,
                                                    seed=2, temperature=0.05).ece)


def _right_answers(classifier, texts: list[str]) -> list[bool]:
    """Whether the classifier's deterministic answer to each text is its first label."""
    from worker.training.evaluate import predict_probabilities

    probabilities = predict_probabilities(classifier, texts, samples=1).deterministic
    return [bool(row.argmax() == 0) for row in probabilities]


def test_a_score_run_passes_over_the_test_records_nobody_has_reviewed_and_counts_them():
    from worker.jobs import ScoreReport, _reviewed, _todo

    stored_test = _record("t1", "in the stored test set")
    marked = _record("t2", "marked by another machine's draw", metadata={TEST_SET_PROPERTY: 3})
    reviewed_test = _record("t3", "a test record an annotator labelled", status="submitted")
    discarded_test = _record("t4", "a test record discarded", status="discarded")
    other = _record("r1", "not a test record")
    ids = frozenset({"t1", "t3", "t4"})
    report = ScoreReport("v0001")

    todo = list(_todo([stored_test, marked, reviewed_test, discarded_test, other], "v0001", "model", report,
                      since=None, forced={"t1"}, watermark=None,
                      blind=lambda record: is_test_record(record, ids) and not _reviewed(record)))

    assert [record.record_id for record in todo] == ["t3", "r1"]  # a forced (failed) push is passed over too
    assert report.blind == 3 and report.considered == 5
    assert "3 test records (or copies of their texts) left without the model's answer until reviewed" in (
        report.summary())
    assert is_test_record(marked, frozenset()) and not is_test_record(other, ids)


def test_a_draw_that_takes_every_unreviewed_record_is_said_in_the_log(caplog):
    """`test-set --size 100000` on 15 unreviewed records marks all 15: allowed, said."""
    from worker.jobs import _warn_if_all_taken

    with caplog.at_level(logging.WARNING, logger="worker.jobs"):
        _warn_if_all_taken(14, 15)
        assert not caplog.records
        _warn_if_all_taken(15, 15)

    said = ("the test set took all 15 records nobody had reviewed: the model suggests on none of them and no "
            "unreviewed record's own label trains it (a test set is usually a few hundred records: --size)")
    assert [record.getMessage() for record in caplog.records] == [said]


def test_a_training_refused_for_too_few_labels_says_the_test_answers_train_nothing_and_what_to_annotate():
    """Before any model there is no uncertainty to sort by: the cold start's order is the advice; after, the model's."""
    from worker.jobs import _test_answers_note
    from worker.test_set import TestProgress

    answered = TestProgress(tuple(_record(f"t{i}", f"text {i}", status="submitted") for i in range(3)), 1, 5)
    first = _test_answers_note(answered, first_model=True)
    assert first.startswith(" (the 4 answered test-set records are kept out of training")
    assert "in cold_start_rank order (`argilla-worker cold-start`)" in first and "uncertainty" not in first
    assert "sorted by the model's uncertainty (bald, descending)" in _test_answers_note(answered, first_model=False)
    assert _test_answers_note(TestProgress((), 0, 5), first_model=True) == ""
    assert _test_answers_note(None, first_model=False) == ""
