"""A test set on a dataset made with the plain Argilla SDK, starting with no label: drawn and marked through the
command line, reviewed by an annotator (the UI's endpoint), left out of the training, and the model measured on it;
drawn after a score run: the model's answers taken off the test records until they are reviewed (real local
Argilla, tiny real BERT)."""

from __future__ import annotations

import json
import os

import argilla as rg
import pytest

from tests.integration.annotator import create_annotator, submit_label
from tests.integration.cli import run_worker
from tests.integration.sdk import stored_records
from tests.stops import SetAfterLooks
from tests.tiny_models import save_tiny_classifier
from tests.training_data import LABELS, sentiment_examples
from worker.coldstart import ColdStartSettings
from worker.config import load_settings
from worker.constants import TEST_SET_PROPERTY
from worker.duplicates import text_key
from worker.errors import Interrupted, NothingNewError
from worker.jobs import Services, cold_start_job, score_job, train_job
from worker.jobs import test_set_job as draw_or_grow_test_set  # not collected as a test

COUNT = 40
TEST_SIZE = 8
QUESTION = "tone"
THEIR_AGENT = "their-llm"


@pytest.fixture
def their_dataset(local_argilla, stack_settings, dataset_name):
    """Their field, question and metadata names; no label anywhere."""
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, client=client, settings=rg.Settings(
        fields=[rg.TextField(name="quote")], questions=[rg.LabelQuestion(name=QUESTION, labels=list(LABELS))],
        metadata=[rg.TermsMetadataProperty(name="source_site")]))
    dataset.create()
    dataset.records.log([rg.Record(id=e.id, fields={"quote": e.text}, metadata={"source_site": "imdb"})
                         for e in sentiment_examples(COUNT)])
    return dataset


def _config(tmp_path, stack_settings, dataset_name):
    """The worker's config file (a tiny BERT trained on the CPU) and the environment carrying the API key."""
    base = save_tiny_classifier(tmp_path / "base")
    config = tmp_path / "worker.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n[argilla]\napi_url = "{stack_settings.api_url}"\n'
        f'dataset = "{dataset_name}"\nworkspace = "{stack_settings.workspace}"\n'
        f'[training]\nbase_model = "{base}"\nepochs = 15\npatience = 15\nbatch_size = 4\nlearning_rate = 3e-3\n'
        f'max_length = 32\ndevice = "cpu"\nmin_annotated = 16\n[scoring]\ndevice = "cpu"\nsamples = 4\n'
        f'[registry]\npath = "{tmp_path / "registry"}"\n')
    return config, {**os.environ, "ARGILLA_WORKER_ARGILLA__API_KEY": stack_settings.api_key.get_secret_value()}


def test_a_test_set_is_marked_reviewed_left_out_of_training_and_measures_the_model(
        their_dataset, stack_settings, dataset_name, tmp_path, monkeypatch):
    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    config, env = _config(tmp_path, stack_settings, dataset_name)

    drawn = run_worker(["test-set", "-c", str(config), "--size", str(TEST_SIZE)], env)

    assert drawn.returncode == 0, drawn.stderr
    assert f"test set: {TEST_SIZE} records drawn at random from the {COUNT} nobody had responded to" in drawn.stdout
    assert "0 of 8 reviewed, 0 of them in rank order from 1; 8 records marked" in drawn.stdout
    assert "filter metadata 'test_set_rank' from 1, sort by it ascending" in drawn.stdout
    stored = stored_records(stack_settings, their_dataset.id)
    ranked = {record_id: record["metadata"]["test_set_rank"] for record_id, record in stored.items()
              if "test_set_rank" in record["metadata"]}
    assert sorted(ranked.values()) == list(range(1, TEST_SIZE + 1))
    assert all(record["metadata"]["source_site"] == "imdb" for record in stored.values())  # theirs kept
    assert all(not record["suggestions"] and not record["responses"] for record in stored.values())
    services = Services(load_settings(config))
    cold_start_job(services, ColdStartSettings(clusters=4, device="cpu"))  # a first batch: none of the test records
    stored = stored_records(stack_settings, their_dataset.id)
    assert {record_id for record_id, record in stored.items() if "cold_start_rank" not in record["metadata"]} == set(
        ranked)

    truth = {e.id: e.label for e in sentiment_examples(COUNT)}
    others = [record_id for record_id in sorted(stored) if record_id not in ranked][:20]
    by_rank = sorted(ranked, key=ranked.__getitem__)
    reviewed_first = [*by_rank[:3], by_rank[5]]  # ranks 1-3, and rank 6 picked out of order
    for record_id in [*reviewed_first, *others]:  # half the test records, and 20 more to train on
        submit_label(stack_settings, stored[record_id]["id"], truth[record_id], question=QUESTION)
    again = run_worker(["test-set", "-c", str(config), "--size", "5"], env)  # no model yet: progress only
    assert again.returncode == 0, again.stderr
    assert "test set of 8 records drawn" in again.stdout and "(a test set never shrinks: --size 5 is below its 8)" \
        in again.stdout
    assert ("4 of 8 reviewed, 3 of them in rank order from 1 (rank 4 is not: the 1 after it count once it is); 0 "
            "records marked, 8 already were") in again.stdout

    outcome = train_job(services)

    training = outcome.model.metrics["training"]
    assert training["annotated"] == 20  # the 4 reviewed test records were not trained on
    taught = _taught(outcome.model.path)
    assert not taught & set(ranked) and set(others) <= taught
    test = outcome.model.metrics["test"]
    assert test["records"] == 3 and test["reviewed_out_of_order"] == 1 and test["left_out_taught"] == 0
    assert test["accuracy_interval"][0] <= test["accuracy"] <= test["accuracy_interval"][1]
    refused = run_worker(["calibrate", "-c", str(config)], env)  # a first model trained again on its validation set
    assert refused.returncode == 1 and "trained again on its validation records too" in refused.stderr, refused.stderr
    assert "`argilla-worker calibrate --on test-set` measures it on the test set's reviewed records" in refused.stderr
    calibrated = run_worker(["calibrate", "-c", str(config), "--on", "test-set", "--max-samples", "2"], env)
    assert calibrated.returncode == 0, calibrated.stderr
    assert "# Calibration of v0001 (3 test set records)" in calibrated.stdout  # the 3 answered in rank order
    report = outcome.model.path / "calibration-test-set" / "report.json"
    assert calibrated.stdout.rstrip().endswith(f"written to {report.parent}")
    assert json.loads(report.read_text())["records"] == 3
    assert services.registry.get("v0001").metrics["calibration_test_set"]["records"] == 3

    for record_id in set(ranked) - set(reviewed_first):  # the rest of the test set: a correction that trains nothing
        submit_label(stack_settings, stored[record_id]["id"], truth[record_id], question=QUESTION)
    with pytest.raises(NothingNewError):
        train_job(services)
    test = services.registry.current().metrics["test"]
    assert test["records"] == TEST_SIZE  # the current model measured again on all of them

    measured = run_worker(["test-set", "-c", str(config)], env)
    assert measured.returncode == 0, measured.stderr
    assert f"test set: accuracy {test['accuracy']:.4f}" in measured.stdout
    assert "on 8 reviewed records drawn at random" in measured.stdout
    status = run_worker(["status", "-c", str(config)], env)  # no worker running: the registered model's line
    assert f"test set: accuracy {test['accuracy']:.4f}" in status.stdout

    more = [record_id for record_id in sorted(stored) if record_id not in ranked and record_id not in others][:6]
    for record_id in more:  # new corrections: the candidate is gated on the test records beside the validation ones
        submit_label(stack_settings, stored[record_id]["id"], truth[record_id], question=QUESTION)
    retrained = train_job(services)
    assert retrained.model.metrics["gate"]["comparison"]["test_records"] == TEST_SIZE
    assert f"{TEST_SIZE} test-set records" in retrained.decision.reason

    (tmp_path / "state" / "test_sets.json").unlink()  # a lost state directory: the dataset's marks still say
    recovered = run_worker(["test-set", "-c", str(config)], env)
    assert recovered.returncode == 0, recovered.stderr
    assert "test set: 8 records carry metadata 'test_set_rank'" in recovered.stdout
    assert "8 of 8 reviewed, 8 of them in rank order from 1; 0 records marked" in recovered.stdout


def test_a_test_set_drawn_after_scoring_carries_no_model_answer_until_reviewed(
        local_argilla, stack_settings, dataset_name, tmp_path, monkeypatch):
    """Records scored before the draw: the test records lose the model's suggestion and metadata (their own
    agent's suggestion and metadata stay), score runs leave them out until they have the two labels the dataset's
    task distribution asks for (the second annotator does not see the model's answer either). So do the other
    records carrying a test record's text (here in capitals): the model's answer there is its answer on it."""
    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, client=client, settings=rg.Settings(
        fields=[rg.TextField(name="quote")], questions=[rg.LabelQuestion(name=QUESTION, labels=list(LABELS))],
        metadata=[rg.TermsMetadataProperty(name="source_site")], distribution=rg.TaskDistribution(min_submitted=2)))
    dataset.create()
    examples = sentiment_examples(30)
    dataset.records.log([rg.Record(  # every third record comes with their labeller's suggestion
        id=e.id, fields={"quote": e.text}, metadata={"source_site": "imdb"},
        suggestions=[rg.Suggestion(question_name=QUESTION, agent=THEIR_AGENT, value=e.label, score=0.7)]
        if index % 3 == 0 else []) for index, e in enumerate(examples)])
    twin = {e.id: f"copy-{e.id}" for e in examples[16:]}  # a copy of each text nobody will have reviewed
    twin.update({copy: record_id for record_id, copy in twin.items()})
    dataset.records.log([rg.Record(id=twin[e.id], fields={"quote": e.text.upper()}, metadata={"source_site": "imdb"})
                         for e in examples[16:]])
    config, env = _config(tmp_path, stack_settings, dataset_name)
    stored = stored_records(stack_settings, dataset.id)
    reviewed = [e.id for e in examples[:16]]
    for e in examples[:16]:
        submit_label(stack_settings, stored[e.id]["id"], e.label, question=QUESTION)
    services = Services(load_settings(config))
    train_job(services)
    assert score_job(services, full=True).scored == 30 + len(examples[16:])
    cold_start_job(services, ColdStartSettings(clusters=4, device="cpu"))  # ranks every record: no test set yet

    drawn = run_worker(["test-set", "-c", str(config), "--size", "6"], env)

    assert drawn.returncode == 0, drawn.stderr
    assert "the model's suggestion and values taken off 6 test records nobody has reviewed" in drawn.stdout
    stored = stored_records(stack_settings, dataset.id)
    test_ids = {record_id for record_id, record in stored.items() if "test_set_rank" in record["metadata"]}
    assert len(test_ids) == 6 and not test_ids & set(reviewed)
    copies = {twin[record_id] for record_id in test_ids} - test_ids
    assert copies and f"… and off {len(copies)} other records carrying a test record's text" in drawn.stdout
    assert services.test_sets.get(services.gateway.dataset_key).copies_cleared  # a later run reads them no more
    blind = len(test_ids) + len(copies)
    for record_id, record in stored.items():
        assert record["metadata"]["source_site"] == "imdb"
        agents = {suggestion["agent"] for suggestion in record["suggestions"]}
        if record_id in test_ids | copies:
            assert not {"model_version", "predicted_label", "cold_start_rank"} & set(record["metadata"])
            assert agents <= {THEIR_AGENT}  # theirs stays; the model's is gone
        else:
            assert record["metadata"]["model_version"] == "v0001" and agents
            assert record["metadata"]["cold_start_rank"] >= 1
    theirs = {record_id for record_id, record in stored.items()
              if any(s["agent"] == THEIR_AGENT for s in record["suggestions"])}
    # (a reviewed record shows the model's answer, theirs kept in metadata: scoring.suggestion = "auto")
    assert theirs == {e.id for index, e in enumerate(examples) if index % 3 == 0 and e.id not in reviewed}

    again = score_job(services, full=True)
    assert again.blind == blind and again.scored == 0  # the others were up to date, the test records left out
    assert f"{blind} test records (or copies of their texts) left without the model's answer until reviewed" in (
        again.summary())
    labelled, truth = sorted(test_ids)[:2], {e.id: e.label for e in examples}
    truth.update({twin[e.id]: e.label for e in examples[16:]})
    for record_id in labelled:
        submit_label(stack_settings, stored[record_id]["id"], truth[record_id], question=QUESTION)
    assert score_job(services, full=True).blind == blind  # one label of the two the dataset asks for
    second = create_annotator(stack_settings, client, f"second-{dataset_name}"[:40])
    for record_id in labelled:
        submit_label(stack_settings, stored[record_id]["id"], truth[record_id], question=QUESTION, headers=second)
    after_review = score_job(services, full=True)
    assert after_review.blind == blind - 2 and after_review.scored == 2
    stored = stored_records(stack_settings, dataset.id)
    for record_id in test_ids | copies:
        assert ("model_version" in stored[record_id]["metadata"]) == (record_id in labelled)

    test_texts = {text_key(stored[record_id]["fields"]["quote"]) for record_id in test_ids}
    candidates = {record_id for record_id, record in stored.items() if not record["responses"]
                  and record_id not in test_ids and text_key(record["fields"]["quote"]) not in test_texts}
    grown = run_worker(["test-set", "-c", str(config), "--size", "9"], env)  # a narrower interval: 3 more

    assert grown.returncode == 0, grown.stderr
    assert (f"test set grown: 3 records drawn at random from the {len(candidates)} nobody had responded to, marked "
            f"with metadata 'test_set_rank' 7 … 9 (ranks 1 … 6 as before)") in grown.stdout
    assert "2 of 9 reviewed" in grown.stdout
    after = stored_records(stack_settings, dataset.id)
    ranks = {record_id: record["metadata"]["test_set_rank"] for record_id, record in after.items()
             if "test_set_rank" in record["metadata"]}
    added = {record_id for record_id, rank in ranks.items() if rank > 6}
    assert {ranks[record_id] for record_id in test_ids} == set(range(1, 7)) and len(added) == 3
    assert added <= candidates  # nobody had responded to them, and none carries an earlier test text
    new_copies = {twin[record_id] for record_id in added if record_id in twin} - added - test_ids
    for record_id in added | new_copies:  # the model's answers taken off them and off copies of their texts
        assert not {"model_version", "predicted_label"} & set(after[record_id]["metadata"])
        assert {suggestion["agent"] for suggestion in after[record_id]["suggestions"]} <= {THEIR_AGENT}
    assert services.test_sets.get(services.gateway.dataset_key).grown[0].added == 3
    assert score_job(services, full=True).blind == blind - 2 + len(added | new_copies)


def test_a_test_set_drawn_after_a_first_model_learnt_every_own_label_says_it_cannot_measure_that_model(
        local_argilla, stack_settings, dataset_name, tmp_path, monkeypatch):
    """Their records all carry their labeller's suggestion and nobody has annotated: the first model trains on those
    labels at full weight (and, its validation too small to pick an epoch, again on all of them): a test set drawn
    after it holds only records it learnt, which the command says, and later models never train on them."""
    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, client=client, settings=rg.Settings(
        fields=[rg.TextField(name="quote")], questions=[rg.LabelQuestion(name=QUESTION, labels=list(LABELS))]))
    dataset.create()
    examples = sentiment_examples(COUNT)
    dataset.records.log([rg.Record(id=e.id, fields={"quote": e.text}, suggestions=[
        rg.Suggestion(question_name=QUESTION, agent=THEIR_AGENT, value=e.label, score=0.8)]) for e in examples])
    config, env = _config(tmp_path, stack_settings, dataset_name)
    services = Services(load_settings(config))
    first = train_job(services)
    assert first.model.metrics["training"]["refit_on"] == COUNT

    drawn = run_worker(["test-set", "-c", str(config), "--size", str(TEST_SIZE)], env)

    assert drawn.returncode == 0, drawn.stderr
    assert ("v0001 learnt every one of these records (from their own labels, before the draw): it cannot be measured "
            "or compared on them") in drawn.stdout
    test_ids = set(services.test_sets.get(services.gateway.dataset_key).ids)
    assert len(test_ids) == TEST_SIZE and test_ids <= _taught(first.model.path)


def _taught(model_dir) -> set[str]:
    from worker.registry import read_taught_ids

    return read_taught_ids(model_dir) or set()


def test_a_test_set_stopped_on_request_keeps_what_stands_and_the_next_run_finishes(
        their_dataset, stack_settings, dataset_name, tmp_path, monkeypatch):
    """Stopped while drawing: nothing drawn or marked; while taking the model's answers off the copies of its texts:
    drawn and marked, the copies pass left for the next run; while drawing the records to add: the test set as it
    was. Each says so; the next run finishes."""
    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    config, _ = _config(tmp_path, stack_settings, dataset_name)
    services = Services(load_settings(config))
    key, rank = services.gateway.dataset_key, services.gateway.binding.stored_name(TEST_SET_PROPERTY)

    def marked() -> dict[str, int]:
        return {record_id: record["metadata"][rank] for record_id, record in
                stored_records(stack_settings, their_dataset.id).items() if rank in (record["metadata"] or {})}

    with pytest.raises(Interrupted, match="^test set: stopped on request while drawing it: nothing drawn; run it "
                                          "again to draw$"):
        draw_or_grow_test_set(services, TEST_SIZE, stop=SetAfterLooks(10))
    assert services.test_sets.get(key) is None and marked() == {}

    # the draw reads each of the COUNT records once, then the copies pass starts over them
    with pytest.raises(Interrupted, match=f"off the copies of its texts: its {TEST_SIZE} records are drawn and "
                                          f"marked; run it again to finish$"):
        draw_or_grow_test_set(services, TEST_SIZE, stop=SetAfterLooks(COUNT + 3))
    drawn = services.test_sets.get(key)
    assert len(drawn.ids) == TEST_SIZE and not drawn.copies_cleared
    assert sorted(marked().values()) == list(range(1, TEST_SIZE + 1))

    with pytest.raises(Interrupted, match=f"while drawing the records to add: it stays at its {TEST_SIZE} records; "
                                          f"run it again to grow it$"):
        draw_or_grow_test_set(services, TEST_SIZE + 4, stop=SetAfterLooks(3))
    assert services.test_sets.get(key).ids == drawn.ids and len(marked()) == TEST_SIZE

    report = draw_or_grow_test_set(services, TEST_SIZE + 4)
    assert report.added == 4 and services.test_sets.get(key).copies_cleared
    assert sorted(marked().values()) == list(range(1, TEST_SIZE + 5))
