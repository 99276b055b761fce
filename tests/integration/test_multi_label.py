"""A multi-label question end to end on the real local Argilla: a dataset made with the plain SDK (its own
field and question names, a ``MultiLabelQuestion``, label sets suggested by another agent "tagger", a few of
them wrong), annotators submitting label sets through the UI's endpoint → the first model trains on the
consensus and the tagger's sets → a full score run writes one suggestion per record with a score per label
and the multi-label metadata → a second run finds everything up to date → publishing gives lists of class
labels → in a real headless Chromium, sorted by loss, the suggestion shows its labels with their scores →
``score --oof 2`` writes ``label_issue`` on every record with a set under review. No response changes."""

from __future__ import annotations

import os
import re
import shutil

import datasets
import pytest

from tests.integration.annotator import raw_responses, submit_label
from tests.integration.cli import run_worker
from tests.integration.test_annotator_ui import (  # noqa: F401 (browser_page, chromium_path: fixtures)
    ARTIFACTS,
    _sign_in,
    _sort_descending,
    browser_page,
    chromium_path,
)
from tests.tiny_models import save_tiny_classifier
from tests.training_data import NAMELESS_TAG_ORDER, TAGGED, TAGS, save_nameless_tagging_classifier
from worker.config import load_settings
from worker.errors import ConfigError
from worker.jobs import Services, oof_score_job, publish_job, score_job, train_job

QUESTION = "aspects"
COPIES = 5
WRONG = {"m0-0": ("humour",), "m0-2": ("acting", "praise"), "m0-4": ()}  # the tagger's mistakes (true sets differ)
REVIEWED = {"m1-0": ("acting", "praise"), "m1-3": ("acting",), "m1-6": ("humour", "praise"), "m1-2": ("humour",)}


def _examples() -> list[tuple[str, str, tuple[str, ...]]]:
    """(record id, text, true label set) for COPIES copies of the tiny tokenizer's tagged sentences."""
    return [(f"m{copy}-{index}", f"{text} ({copy})" if copy else text, tags)
            for copy in range(COPIES) for index, (text, tags) in enumerate(TAGGED)]


@pytest.fixture
def tagged_dataset(local_argilla, stack_settings, dataset_name):
    """Made with the SDK only: the tagger's suggestion on every record with a label (none for an empty set:
    Argilla keeps at least one label per answer), and a few records reviewed through the UI's endpoint."""
    import argilla as rg

    from tests.integration.sdk import create_with_sdk

    dataset = create_with_sdk(stack_settings, dataset_name, lambda: rg.Settings(
        fields=[rg.TextField(name="review_text")], questions=[rg.MultiLabelQuestion(name=QUESTION, labels=list(TAGS))],
        metadata=[rg.TermsMetadataProperty(name="source")]))
    records = []
    for record_id, text, tags in _examples():
        tagged = WRONG.get(record_id, tags)
        suggestions = ([rg.Suggestion(question_name=QUESTION, value=list(tagged), agent="tagger",
                                      score=[0.7] * len(tagged))] if tagged else [])
        records.append(rg.Record(id=record_id, fields={"review_text": text}, metadata={"source": "shop"},
                                 suggestions=suggestions))
    dataset.records.log(records)
    server_ids = {r.id: str(r._server_id) for r in dataset.records}
    for record_id, tags in REVIEWED.items():
        submit_label(stack_settings, server_ids[record_id], list(tags), question=QUESTION)
    return server_ids


def test_label_sets_train_score_suggest_with_per_label_scores_and_publish(
        tagged_dataset, stack_settings, dataset_name, tmp_path, monkeypatch, browser_page):  # noqa: F811
    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    settings = load_settings(
        argilla={"api_url": stack_settings.api_url, "dataset": dataset_name, "workspace": stack_settings.workspace},
        training={"base_model": str(save_tiny_classifier(tmp_path / "base", labels=TAGS)), "epochs": 30,
                  "patience": 30, "batch_size": 8, "learning_rate": 5e-3, "max_length": 32, "device": "cpu",
                  "min_annotated": 20},
        scoring={"samples": 4, "device": "cpu", "push_batch": 16},
        # the records are 8 sentences, each 5 times with "(n)" after it: near copies at the default similarity,
        # which would hold some sentences out of training whole; here the tagger's mistakes are found through the
        # copies' labels, so exact copies only (the near-copy split is tested in test_copies / unit tests)
        copies={"similarity": 1.0},
        registry={"path": str(tmp_path / "registry")}, state_dir=str(tmp_path / "state"))
    services = Services(settings)
    binding = services.gateway.binding
    assert (binding.fields, binding.question, binding.multi_label) == (("review_text",), QUESTION, True)
    dataset_id = services.gateway.dataset_id()
    responses_before = raw_responses(stack_settings, dataset_id)

    outcome = train_job(services)
    assert outcome.promoted and outcome.model.metrics["validation"]["macro_f1"] > 0.5
    report = score_job(services, full=True)
    assert report.scored == len(_examples()) and report.failed == 0
    assert score_job(services).pushed == 0  # label sets compare equal to what was stored: nothing to redo

    truth = {record_id: tags for record_id, _, tags in _examples()}
    pulled = {r.record_id: r for r in services.gateway.pull()}
    version = outcome.model.version
    for record_id, record in pulled.items():
        suggestion, metadata = record.suggestion, record.metadata
        assert isinstance(suggestion.value, tuple) and suggestion.value  # never an empty set
        assert isinstance(suggestion.score, tuple) and len(suggestion.score) == len(suggestion.value)
        assert metadata["model_version"] == version and metadata["source"] == "shop"  # theirs kept
        assert 0 <= metadata["needs_another_label"] < 1  # the most doubtful label's, as a two-way question
        assert 0 <= metadata["mc_variance"] <= 0.25  # the built-in label-set plugin score (a variance of p ∈ [0, 1])
        assert 0 < metadata["mc_samples"] <= services.settings.scoring.samples  # adaptive sampling on label sets
        reference = REVIEWED.get(record_id) or WRONG.get(record_id, truth[record_id])
        if reference:  # the tagger's (or the annotators') set is under review
            assert sorted(metadata["reference_label"]) == sorted(reference)
            assert metadata["label_changes"] == len(metadata["labels_to_add"]) + len(metadata["labels_to_remove"])
            assert metadata["loss"] >= 0 and metadata["bald"] >= metadata["bald_mean"] >= 0
    for record_id, tags in REVIEWED.items():  # reviewed: the consensus in metadata, the model's set suggested
        assert pulled[record_id].suggestion.agent == version
    unreviewed = [r for r in pulled.values() if r.record_id not in REVIEWED and r.metadata.get("reference_label")]
    assert {r.suggestion.agent for r in unreviewed} == {"tagger"}  # the set under review, scored label by label
    assert {r.metadata["original_agent"] for r in unreviewed} == {"tagger"}  # preserved before replacing it
    for record in unreviewed:  # and the tagger's score of each of its labels, which the worker's replaced
        assert sorted(record.metadata["original_scores"]) == sorted(
            f"{label}=0.7" for label in record.metadata["original_label"]), record.record_id
    # The in-sample loss of the tagger's mistakes is not asserted to rank high: the first model trains on the tagger's
    # sets, mistakes included, and a tiny BERT memorises them (their median under the clean records' in clean-clone
    # runs on 2026-12-02, 12-04 and 12-07: 0.109 against 0.125) — which is what `score --oof` is for, asserted below
    # on the fold models that did not see them. The loss's ranking is measured in benchmarks/multilabel.py and unit
    # tested on a model that learnt right sets (test_multilabel: a wrong set costs more loss than the right one).

    publish_job(services, directory=tmp_path / "published")
    splits = datasets.load_dataset(str(tmp_path / "published"), cache_dir=str(tmp_path / "hf-cache"))
    table = datasets.concatenate_datasets(list(splits.values()))
    label_feature = table.features["label"]
    names = label_feature.feature.names
    rows = {row["id"]: row for row in table}
    for record_id, tags in REVIEWED.items():
        assert sorted(names[i] for i in rows[record_id]["label"]) == sorted(tags) and rows[record_id]["reviewed"]
        assert 0 < rows[record_id]["label_confidence"] < 1  # the set's posterior (one voter: ≤ L per label)
    assert "m0-4" not in rows  # no label set at all (the tagger suggested none, nobody reviewed): left out

    pending = [r for r in pulled.values() if r.record_id not in REVIEWED and r.metadata.get("loss") is not None]
    worst = max(r.metadata["loss"] for r in pending)
    top = [r for r in pending if r.metadata["loss"] == worst]  # what the UI shows first (any of a tie)

    page = browser_page
    _sign_in(page, stack_settings)
    _sort_descending(page, stack_settings, dataset_id, "loss")
    page.get_by_text(top[0].text, exact=True).or_(page.get_by_text(top[-1].text, exact=True)).first.wait_for()
    shown = next((r for r in top if page.get_by_text(r.text, exact=True).is_visible()), top[0])
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "annotator-multi-label-suggestion.png"))
    for label, score in zip(shown.suggestion.value, shown.suggestion.score, strict=True):
        chip = page.locator("label", has_text=label).first.inner_text().split()  # e.g. ["1", "acting", "0.8"]
        assert label in chip and abs(float(chip[-1]) - score) <= 0.051, chip  # the UI shows one decimal

    oof = oof_score_job(services, 2)  # two fold models with sigmoid heads, each scoring the half it did not see
    assert oof.failed == 0 and oof.scored > 0
    after = {r.record_id: r for r in services.gateway.pull()}
    issues = {i: r.metadata["label_issue"] for i, r in after.items() if r.metadata.get("label_issue") is not None}
    assert set(issues) == {i for i, r in after.items() if r.metadata.get("reference_label")}
    wrong = [issues[i] for i in WRONG if i in issues]  # two fold models of 20 records each: a coarse check
    clean = [v for i, v in issues.items() if i not in WRONG and i not in REVIEWED]
    assert max(wrong) > sorted(clean)[len(clean) // 2], (wrong, clean)  # above the median clean record

    with services.registry.staging() as staged:  # a single-label model with the same label names
        shutil.copytree(tmp_path / "base", staged, dirs_exist_ok=True)
        single = services.registry.add(staged, {}).version
    services.registry.promote(single)
    with pytest.raises(ConfigError, match=f"model {single} is single-label but question 'aspects' is multi-label"):
        score_job(services, full=True)

    assert raw_responses(stack_settings, dataset_id) == responses_before


def test_their_label_set_model_trained_without_label_names_registers_with_its_map_read_from_their_sets(
        tagged_dataset, stack_settings, dataset_name, tmp_path):
    """A multi-label model fine-tuned without label names (LABEL_0 … LABEL_2, its outputs in another order than the
    question's): `models register DIR --label-map auto` reads which output is which label from the label sets their
    records carry (the tagger's, three of them wrong, and the annotators' reviews), prints the map to keep, and the
    registered model then suggests the sets the texts have."""
    env = {**os.environ, "ARGILLA_WORKER_ARGILLA__API_KEY": stack_settings.api_key.get_secret_value(),
           "ARGILLA_WORKER_ARGILLA__API_URL": stack_settings.api_url,
           "ARGILLA_WORKER_ARGILLA__DATASET": dataset_name,
           "ARGILLA_WORKER_ARGILLA__WORKSPACE": stack_settings.workspace,
           "ARGILLA_WORKER_REGISTRY__PATH": str(tmp_path / "registry"),
           "ARGILLA_WORKER_STATE_DIR": str(tmp_path / "state"), "ARGILLA_WORKER_SCORING__DEVICE": "cpu",
           "ARGILLA_WORKER_SCORING__SAMPLES": "3", "ARGILLA_WORKER_TRAINING__MAX_LENGTH": "32"}
    model_dir = save_nameless_tagging_classifier(tmp_path / "nameless")
    refused = run_worker(["models", "register", str(model_dir)], env)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "--label-map auto reads which is which" in refused.stderr, refused.stderr

    registered = run_worker(["models", "register", str(model_dir), "--label-map", "auto"], env)

    assert registered.returncode == 0, registered.stderr[-3000:]
    # the records that carry a set: the reviewed ones and those the tagger suggested one for — none for an empty set,
    # the truth's or its mistake on m0-4
    carrying = sum(1 for record_id, _, tags in _examples() if WRONG.get(record_id, tags) or record_id in REVIEWED)
    assert f"read the model's labels from {carrying} labelled records" in registered.stdout, registered.stdout
    assert re.search(r"the map agrees with their label sets at F1 0\.\d\d \(\d+ labels carried\)", registered.stdout)
    expected = ",".join(f"LABEL_{output}={tag}" for output, tag in enumerate(NAMELESS_TAG_ORDER))
    assert f"to register it so again: --label-map {expected}" in registered.stdout, registered.stdout
    assert "as v0001 (current)" in registered.stdout
    scored = run_worker(["score", "--full"], env)
    assert scored.returncode == 0, scored.stderr[-3000:]
    services = Services(load_settings(argilla={"api_url": stack_settings.api_url, "dataset": dataset_name,
                                               "workspace": stack_settings.workspace,
                                               "api_key": stack_settings.api_key.get_secret_value()},
                                      registry={"path": str(tmp_path / "registry")}, state_dir=str(tmp_path / "s")))
    truth = {record_id: set(tags) for record_id, _, tags in _examples()}
    suggested = {r.record_id: set(r.metadata["predicted_label"]) for r in services.gateway.pull()}
    decisions = [(tag in suggested[record_id]) == (tag in truth[record_id]) for record_id in truth for tag in TAGS]
    assert sum(decisions) >= 0.85 * len(decisions), suggested
