"""A dataset the worker did not create, made with the plain Argilla SDK the way another team would:
two text fields and a label question with their own names, a metadata property of theirs, suggestions
from another agent, submitted responses and a vector field. Train → score → push → publish through the
binding; what the team wrote (responses, their metadata, vectors) stays byte-identical, their
suggestion is kept in metadata, and the published labels are right. Misconfigurations are one-line
CLI errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import uuid
import warnings
from pathlib import Path

import argilla as rg
import datasets
import httpx
import numpy as np
import pytest

from tests.integration.annotator import create_annotator, submit_label
from tests.integration.cli import run_worker
from tests.tiny_models import save_tiny_architecture, save_tiny_classifier, save_tiny_sentence_encoder
from tests.training_data import LABELS, save_nameless_sentiment_classifier, sentiment_examples
from worker.check import check_config
from worker.config import load_settings
from worker.errors import ConfigError, Interrupted
from worker.gateway import ArgillaGateway
from worker.gateway.client import FIELD_UPDATES_SINCE, PAGE_SIZE
from worker.gateway.schema import guidelines_section, worker_metadata
from worker.jobs import Services, oof_score_job, publish_job, score_job, train_job
from worker.training.pooling import ALIGNED_FILE

QUESTION = "sentiment_verdict"
AGENT = "gpt-labeller"
COUNT = 40
ANNOTATED = 24
WRONG = {"e3", "e30", "e33"}  # the other team's labeller got these wrong
NO_BODY = {"e4", "e13", "e22", "e31"}  # the optional second field left empty: still read (the headline alone)


def _flip(label: str) -> str:
    return LABELS[1 - LABELS.index(label)]


@pytest.fixture
def their_dataset(local_argilla, stack_settings, dataset_name):
    """Created with the SDK only: nothing of the worker's."""
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    settings = rg.Settings(
        guidelines="Our own guidelines: judge the review's sentiment.",
        fields=[rg.TextField(name="headline", title="Headline"),
                rg.TextField(name="review_body", title="Review", required=False)],
        questions=[rg.LabelQuestion(name=QUESTION, title="Verdict", labels=list(LABELS))],
        metadata=[rg.TermsMetadataProperty(name="source_site", title="Site")],
        vectors=[rg.VectorField(name="embedding", dimensions=3)],
    )
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, settings=settings, client=client)
    dataset.create()
    examples = sentiment_examples(COUNT)
    dataset.records.log([
        rg.Record(
            id=example.id,
            fields={"headline": " ".join(example.text.split()[:2]),
                    **({} if example.id in NO_BODY else {"review_body": example.text})},
            metadata={"source_site": "imdb" if index % 2 else "rotten"},
            vectors={"embedding": [index / 10, 1.0, -0.5]},
            suggestions=[rg.Suggestion(question_name=QUESTION, agent=AGENT, score=round(0.55 + index / 100, 2),
                                       value=_flip(example.label) if example.id in WRONG else example.label)],
        )
        for index, example in enumerate(examples)
    ])
    return dataset


def _settings(stack_settings, dataset_name, tmp_path, **argilla):
    base = save_tiny_classifier(tmp_path / "base")
    return load_settings(
        argilla={"api_url": stack_settings.api_url, "dataset": dataset_name, "workspace": stack_settings.workspace,
                 **argilla},
        training={"base_model": str(base), "epochs": 15, "patience": 15, "batch_size": 4, "learning_rate": 3e-3,
                  "max_length": 32, "device": "cpu", "min_annotated": 16},
        scoring={"samples": 4, "device": "cpu", "push_batch": 10},
        registry={"path": str(tmp_path / "registry")},
        state_dir=str(tmp_path / "state"),
    )


def test_a_first_model_from_their_sentence_encoder_starts_from_it_aligned_on_their_texts(
        their_dataset, stack_settings, dataset_name, tmp_path, monkeypatch):
    """Their base model is a sentence encoder (sentence-transformers files beside it, mean pooling): the first
    training aligns its first token on the training set's texts (headline and body, as the classifier reads them),
    then on the dataset's first records up to ``training.align_texts`` — records nobody labelled among them — and
    the model records where it started from; the dataset itself is not touched."""
    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    their_dataset.records.log([rg.Record(id=f"new-{index}", fields={"headline": f"not labelled yet {index}"})
                               for index in range(12)])
    settings = _settings(stack_settings, dataset_name, tmp_path, fields=["headline", "review_body"])
    encoder = save_tiny_sentence_encoder(tmp_path / "their-sentence-encoder")
    settings = settings.model_copy(update={"training": settings.training.model_copy(
        update={"base_model": str(encoder), "align_texts": COUNT + 5})})
    before = _stored(stack_settings, their_dataset.id)
    assert check_config(Services(settings)).start == (
        f"{encoder}, a sentence encoder: its first token aligned with its mean-pooled vector on up to {COUNT + 5} of "
        "the dataset's texts, once (training.align_first_token)")

    outcome = train_job(Services(settings))

    training = outcome.model.metrics["training"]
    assert training["start_model"] == str(encoder) and training["train"] + training["validation"] == COUNT
    aligned = json.loads((Path(training["start_aligned"]) / ALIGNED_FILE).read_text())
    assert aligned["texts"] == COUNT + 5 and aligned["source"] == str(encoder) and aligned["pooler_identity"]
    assert _stored(stack_settings, their_dataset.id) == before


def _stored(stack_settings, dataset_id) -> dict[str, dict]:
    """Every record as the server stores it, with responses and vectors (external id → JSON)."""
    response = httpx.get(f"{stack_settings.api_url}/api/v1/datasets/{dataset_id}/records",
                         headers={"X-Argilla-Api-Key": stack_settings.api_key.get_secret_value()},
                         params={"include": ["responses", "suggestions", "vectors"], "limit": 1000}, timeout=30)
    response.raise_for_status()
    return {item["external_id"]: item for item in response.json()["items"]}


def test_train_score_push_publish_on_a_dataset_made_with_the_sdk(their_dataset, stack_settings, dataset_name,
                                                                 tmp_path, monkeypatch):
    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    services = Services(_settings(stack_settings, dataset_name, tmp_path, fields=["headline", "review_body"]))
    truth = {e.id: e.label for e in sentiment_examples(COUNT)}
    before = _stored(stack_settings, their_dataset.id)
    annotated = sorted(before)[:ANNOTATED]
    for record_id in annotated:
        submit_label(stack_settings, before[record_id]["id"], truth[record_id], question=QUESTION)
    before = _stored(stack_settings, their_dataset.id)

    binding = services.gateway.binding
    assert (binding.fields, binding.question, list(binding.labels)) == (("headline", "review_body"), QUESTION,
                                                                        list(LABELS))
    pulled = {r.record_id: r for r in services.gateway.pull()}
    assert pulled["e5"].text_pair == before["e5"]["fields"]["review_body"]
    assert (pulled["e4"].text, pulled["e4"].text_pair) == (before["e4"]["fields"]["headline"], "")
    assert pulled["e33"].reference == _flip(truth["e33"])  # the other agent's label, before any review

    untouched = _dataset_settings(stack_settings, their_dataset.id)
    outcome = train_job(services)
    assert outcome.promoted and outcome.model.metrics["training"]["annotated"] == ANNOTATED
    assert _dataset_settings(stack_settings, their_dataset.id) == untouched  # reading jobs write nothing
    report = score_job(services, full=True)
    assert (report.scored, report.pushed, report.failed) == (COUNT, COUNT, 0)

    after = _stored(stack_settings, their_dataset.id)
    for record_id, old in before.items():
        new = after[record_id]
        assert new["responses"] == old["responses"], f"{record_id}: responses changed"
        assert new["vectors"] == old["vectors"], f"{record_id}: vectors changed"
        assert new["fields"] == old["fields"]
        assert new["metadata"]["source_site"] == old["metadata"]["source_site"]
        (suggestion,) = new["suggestions"]
        if record_id in annotated:  # scoring.suggestion = auto: the model's opinion once reviewed
            assert suggestion["agent"] == "v0001" and suggestion["value"] == new["metadata"]["predicted_label"]
        else:  # their label stays pre-selected (their agent), scored with the model's belief in it
            assert (suggestion["agent"], suggestion["value"]) == (AGENT, old["suggestions"][0]["value"])
            doubted = suggestion["score"] < 0.5  # two labels: the model's mean probability of theirs
            assert doubted == (new["metadata"]["disagreement"] == "yes"), record_id
        # their suggestion, with their score, is kept before the worker replaced it
        assert (new["metadata"]["original_label"], new["metadata"]["original_agent"],
                new["metadata"]["original_score"]) == (old["suggestions"][0]["value"], AGENT,
                                                       old["suggestions"][0]["score"])
    unreviewed_wrong = [record_id for record_id in WRONG if record_id not in annotated]
    assert unreviewed_wrong and all(after[r]["metadata"]["reference_label"] == _flip(truth[r])
                                    for r in unreviewed_wrong)
    settings_after = httpx.get(f"{stack_settings.api_url}/api/v1/datasets/{their_dataset.id}",
                               headers={"X-Argilla-Api-Key": stack_settings.api_key.get_secret_value()}).json()
    theirs, ours = settings_after["guidelines"].split("\n\n", 1)  # their text first, untouched; ours appended once
    assert theirs == "Our own guidelines: judge the review's sentiment."
    assert ours == guidelines_section()
    keeper = ArgillaGateway(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value(),
                            dataset_name=dataset_name, workspace=stack_settings.workspace,
                            fields=["headline", "review_body"], guidelines="keep")
    httpx.patch(f"{stack_settings.api_url}/api/v1/datasets/{their_dataset.id}", json={"guidelines": "Only ours."},
                headers={"X-Argilla-Api-Key": stack_settings.api_key.get_secret_value()}).raise_for_status()
    keeper.prepare()
    assert httpx.get(f"{stack_settings.api_url}/api/v1/datasets/{their_dataset.id}",
                     headers={"X-Argilla-Api-Key": stack_settings.api_key.get_secret_value()}
                     ).json()["guidelines"] == "Only ours."  # guidelines = keep: never touched

    assert score_job(services, full=True).scored == 0  # up to date: nothing scored twice

    scored_settings = _dataset_settings(stack_settings, their_dataset.id)
    services.settings.publish.metadata = ["source_site", "original_agnt"]
    with pytest.raises(ConfigError, match="publish.metadata: dataset .* has no metadata property 'original_agnt'; "
                                          "it has: .*original_agent"):
        publish_job(services, directory=tmp_path / "published")
    services.settings.publish.metadata = ["source_site", "original_agent", "original_score"]
    publish_job(services, directory=tmp_path / "published")
    assert _dataset_settings(stack_settings, their_dataset.id) == scored_settings
    card = (tmp_path / "published" / "README.md").read_text()  # a public card: their server's address is not in it
    assert stack_settings.api_url not in card and "reviewed in [Argilla](https://argilla.io)" in card
    table = datasets.load_dataset(str(tmp_path / "published"), cache_dir=str(tmp_path / "hf-cache"))
    rows = {row["id"]: row for split in table.values() for row in split}
    names = table[next(iter(table))].features["label"].names
    assert len(rows) == COUNT
    for record_id, row in rows.items():
        expected = truth[record_id] if record_id in annotated else after[record_id]["metadata"]["original_label"]
        assert names[row["label"]] == expected, record_id
        assert names[row["original_label"]] == after[record_id]["metadata"]["original_label"]
        assert (row["headline"], row["review_body"]) == (before[record_id]["fields"]["headline"],
                                                         before[record_id]["fields"].get("review_body"))
        metadata = after[record_id]["metadata"]  # their property and the other agent's label, as columns
        assert (row["source_site"], row["original_agent"], row["original_score"]) == (
            metadata["source_site"], AGENT, metadata["original_score"])
    assert "text" not in table[next(iter(table))].column_names  # their fields, under their names


@pytest.mark.parametrize(("environment", "message"), [
    ({}, "has 2 text or chat fields (headline, review_body): set argilla.fields"),
    ({"ARGILLA_WORKER_ARGILLA__FIELDS": '["review_body"]', "ARGILLA_WORKER_ARGILLA__QUESTION": "label"},
     "argilla.question: no question named 'label'"),
    ({"ARGILLA_WORKER_ARGILLA__FIELDS": '["body"]'}, "argilla.fields: no field named 'body'"),
    ({"ARGILLA_WORKER_ARGILLA__FIELDS": '["review_body"]', "ARGILLA_WORKER_ARGILLA__REFERENCE": "metadata:gold"},
     "no metadata property 'gold'"),
    ({"ARGILLA_WORKER_ARGILLA__WORKSPACE": "their-other-team"},
     "workspace 'their-other-team' does not exist on"),
])
def test_a_misconfigured_binding_is_one_line_on_the_command_line(their_dataset, stack_settings, dataset_name,
                                                                 tmp_path, environment, message):
    env = {**os.environ, "ARGILLA_WORKER_ARGILLA__API_KEY": stack_settings.api_key.get_secret_value(),
           "ARGILLA_WORKER_ARGILLA__API_URL": stack_settings.api_url,
           "ARGILLA_WORKER_ARGILLA__DATASET": dataset_name,
           "ARGILLA_WORKER_ARGILLA__WORKSPACE": stack_settings.workspace,
           "ARGILLA_WORKER_REGISTRY__PATH": str(tmp_path / "registry"),
           "ARGILLA_WORKER_STATE_DIR": str(tmp_path / "state"), **environment}
    metadata_before = {p.name for p in their_dataset.settings.metadata}
    with warnings.catch_warnings(record=True) as caught:  # a process would print them beside the error line
        warnings.simplefilter("always")
        result = run_worker(["train"], env)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    printed = [str(w.message) for w in caught  # what Python shows by default (not a collected socket's ResourceWarning)
               if issubclass(w.category, UserWarning) and f"{os.sep}argilla{os.sep}" in w.filename]
    assert not printed  # the SDK's own warnings
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    dataset = client.datasets(name=dataset_name, workspace=stack_settings.workspace)
    assert {p.name for p in dataset.settings.metadata} == metadata_before  # nothing written


SPELLINGS = {"positive": ("POSITIVE", "Positive 👍", "positive "), "negative": ("Negative", "NEGATIVE", "Negative 👎")}
UNSURE = {"e5", "e11"}  # their labeller could not decide


def test_their_label_property_in_their_own_spelling_trains_and_scores_and_unsure_values_are_no_label(
        local_argilla, stack_settings, dataset_name, tmp_path):
    """`argilla.reference = "metadata:gold"` on a property the team filled their way — the UI's titles, capitals,
    a trailing space — and `unsure` on two records: `config check` says how the first records read, `train` learns
    the spelled labels (it stopped at the first `POSITIVE`: "not one of ['negative', 'positive']"), and `score`
    scores every record (it stopped at the first `unsure`), the two as records without a label, named in the log."""
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    settings = rg.Settings(fields=[rg.TextField(name="review")],
                           questions=[rg.LabelQuestion(name="verdict", labels={"positive": "Positive 👍",
                                                                                "negative": "Negative 👎"})],
                           metadata=[rg.TermsMetadataProperty(name="gold")])
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, settings=settings, client=client)
    dataset.create()
    examples = sentiment_examples(24)
    dataset.records.log([rg.Record(id=example.id, fields={"review": example.text}, metadata={
        "gold": "unsure" if example.id in UNSURE else SPELLINGS[example.label][index % 3]})
        for index, example in enumerate(examples)])
    env = {"ARGILLA_WORKER_ARGILLA__FIELDS": '["review"]', "ARGILLA_WORKER_ARGILLA__REFERENCE": "metadata:gold",
           "ARGILLA_WORKER_TRAINING__BASE_MODEL": str(save_tiny_classifier(tmp_path / "base")),
           "ARGILLA_WORKER_TRAINING__MIN_ANNOTATED": "10"}

    checked = _cli(stack_settings, dataset_name, tmp_path, "config", "check", extra_env=env)
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert "of the first 24 records, 22 carry one (read as the question's labels: " in checked.stdout, checked.stdout
    assert "'Positive 👍' → 'positive' (" in checked.stdout and "'NEGATIVE' → 'negative' (" in checked.stdout
    assert ("2 hold a name in gold that is none of its labels ('unsure' × 2; e.g. record 'e5'): read as records "
            "without a label") in checked.stdout

    trained = _cli(stack_settings, dataset_name, tmp_path, "train", extra_env=env)
    assert trained.returncode == 0 and "Traceback" not in trained.stderr, trained.stderr[-3000:]
    assert "model v0001: promoted" in trained.stdout, trained.stdout
    scored = _cli(stack_settings, dataset_name, tmp_path, "score", extra_env=env)
    assert scored.returncode == 0 and "Traceback" not in scored.stderr, scored.stderr[-3000:]
    assert "24 scored" in scored.stdout, scored.stdout
    assert ("record 'e5': metadata gold = 'unsure': 'unsure' is none of the labels of question 'verdict' "
            "['positive', 'negative']: read as a record without a label") in scored.stderr
    truth = {example.id: example.label for example in examples}
    for record_id, record in _stored(stack_settings, dataset.id).items():
        metadata = record["metadata"]
        assert metadata["gold"] in (("unsure",) if record_id in UNSURE else SPELLINGS[truth[record_id]])  # theirs
        if record_id in UNSURE:
            assert "loss" not in metadata and metadata["bald"] >= 0, metadata
        else:
            assert metadata["reference_label"] == truth[record_id] and metadata["loss"] >= 0, metadata
        assert record["suggestions"][0]["value"] in ("positive", "negative")

    # a review replaces the worker's pre-selection of their label (agent "gold", the model's probability): that is
    # not another agent's suggestion to keep — their label is in their property — so nothing is copied
    stored = _stored(stack_settings, dataset.id)
    assert stored["e0"]["suggestions"][0]["agent"] == "gold"
    submit_label(stack_settings, stored["e0"]["id"], "negative", question="verdict")
    again = _cli(stack_settings, dataset_name, tmp_path, "score", extra_env=env)
    assert again.returncode == 0 and "1 scored" in again.stdout, again.stdout + again.stderr[-3000:]
    reviewed = _stored(stack_settings, dataset.id)["e0"]
    assert reviewed["suggestions"][0]["agent"] == "v0001" and reviewed["metadata"]["reference_label"] == "negative"
    assert not {"original_label", "original_agent", "original_score"} & set(reviewed["metadata"]), reviewed


def test_their_label_codes_are_read_through_argilla_reference_map_which_config_check_writes_out(
        local_argilla, stack_settings, dataset_name, tmp_path):
    """Their labels live in an integer property (`gold` = 0 / 1, the ClassLabel codes of their export): no spelling
    reads them, so `config check` says so and writes the `argilla.reference_map` to fill in; with it the codes are
    the labels. A map to a label the question lacks, or without a property to read, is one line."""
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    settings = rg.Settings(fields=[rg.TextField(name="review")],
                           questions=[rg.LabelQuestion(name="verdict", labels=["negative", "positive"])],
                           metadata=[rg.IntegerMetadataProperty(name="gold")])
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, settings=settings, client=client)
    dataset.create()
    examples = sentiment_examples(12)
    dataset.records.log([rg.Record(id=example.id, fields={"review": example.text},
                                   metadata={"gold": LABELS.index(example.label)}) for example in examples])
    env = {"ARGILLA_WORKER_ARGILLA__FIELDS": '["review"]', "ARGILLA_WORKER_ARGILLA__REFERENCE": "metadata:gold",
           "ARGILLA_WORKER_TRAINING__BASE_MODEL": str(save_tiny_classifier(tmp_path / "base"))}

    codes = _cli(stack_settings, dataset_name, tmp_path, "config", "check", extra_env=env)
    assert codes.returncode == 0, codes.stderr[-3000:]
    assert ("of the first 12 records, 0 carry one; 12 hold a name in gold that is none of its labels ('0' × 6, "
            "'1' × 6; e.g. record 'e0'): read as records without a label — where they stand for its labels, "
            "argilla.reference_map = {\"0\" = \"LABEL\", \"1\" = \"LABEL\"} reads them as those") in codes.stdout, \
        codes.stdout
    mapped = _cli(stack_settings, dataset_name, tmp_path, "config", "check", extra_env={
        **env, "ARGILLA_WORKER_ARGILLA__REFERENCE_MAP": json.dumps({"0": LABELS[0], "1": LABELS[1]})})
    assert mapped.returncode == 0, mapped.stderr[-3000:]
    assert (f"of the first 12 records, 12 carry one (read as the question's labels: '0' → {LABELS[0]!r} (6), '1' → "
            f"{LABELS[1]!r} (6))\n") in mapped.stdout, mapped.stdout
    wrong = _cli(stack_settings, dataset_name, tmp_path, "config", "check", extra_env={
        **env, "ARGILLA_WORKER_ARGILLA__REFERENCE_MAP": '{"0": "neutral"}'})
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    assert ("argilla.reference_map maps to ['neutral'], which are not labels of question 'verdict' ['negative', "
            "'positive']") in wrong.stderr, wrong.stderr
    unused = _cli(stack_settings, dataset_name, tmp_path, "config", "check", extra_env={
        **env, "ARGILLA_WORKER_ARGILLA__REFERENCE": "auto", "ARGILLA_WORKER_ARGILLA__REFERENCE_MAP": '{"0": "x"}'})
    assert unused.returncode == 1 and "Traceback" not in unused.stderr
    assert "argilla.reference_map reads the values of the team's label property: it needs argilla.reference = " \
        "'metadata:NAME' (it is 'auto')" in unused.stderr, unused.stderr


def test_score_without_a_model_says_what_to_do_before_anything_is_written(their_dataset, stack_settings,
                                                                          dataset_name, tmp_path):
    """A new team runs `score` before any model exists: one line naming `train` and `models register`; their
    dataset gets neither the worker's metadata properties nor its section of the guidelines."""
    before = _dataset_settings(stack_settings, their_dataset.id)
    result = _cli(stack_settings, dataset_name, tmp_path, "score")
    assert result.returncode != 0
    assert "no current model" in result.stderr and "argilla-worker train" in result.stderr
    assert "argilla-worker models register" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert _dataset_settings(stack_settings, their_dataset.id) == before


def test_config_check_says_how_the_worker_binds_and_what_is_missing_without_writing_to_the_dataset(
        their_dataset, stack_settings, dataset_name, tmp_path, server_version):
    """A new team's first command: how the worker reads their dataset, its size, what is still to do (no model),
    what would stop a job (a start model that is not there; a model for another question), and their dataset
    untouched."""
    before = _dataset_settings(stack_settings, their_dataset.id)
    base = str(save_tiny_classifier(tmp_path / "base"))
    starts = tmp_path / "plugin-starts.jsonl"  # a plugin that would announce its start must know it is a check
    fresh = _cli(stack_settings, dataset_name, tmp_path, "config", "check",
                 extra_env={"ARGILLA_WORKER_TRAINING__BASE_MODEL": base,
                            "ARGILLA_WORKER_PLUGIN_MODULES": '["tests.worker_plugins.recorder"]',
                            "ARGILLA_WORKER_PLUGINS": json.dumps({"tests.worker_plugins.recorder": {
                                "startup_file": str(starts)}})})
    missing_start = _cli(stack_settings, dataset_name, tmp_path, "config", "check",
                         extra_env={"ARGILLA_WORKER_TRAINING__BASE_MODEL": str(tmp_path / "no-such-model")})

    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert [json.loads(line) for line in starts.read_text().splitlines()] == [{"checking": True}]
    assert f"reachable, key accepted (argilla-server {server_version})" in fresh.stdout
    assert ("keeps an existing record's fields" in fresh.stdout) == (server_version < FIELD_UPDATES_SINCE)
    assert f"dataset {stack_settings.workspace}/{dataset_name}: {COUNT} records, 0 with a submitted response" \
        in fresh.stdout
    assert "model reads: review_body" in fresh.stdout
    assert f"question {QUESTION!r}: 2 labels (negative, positive)" in fresh.stdout
    assert "an unreviewed record's label (argilla.reference = 'auto'): the ingested original_label" in fresh.stdout
    # whose labels a first model would learn: another agent's suggestions
    assert f"of the first {COUNT} records, {COUNT} carry one (suggestions by {AGENT!r} ({COUNT}))\n" in fresh.stdout, \
        fresh.stdout
    misspelt = _cli(stack_settings, dataset_name, tmp_path, "config", "check",
                    extra_env={"ARGILLA_WORKER_TRAINING__BASE_MODEL": base,
                               "ARGILLA_WORKER_ARGILLA__REFERENCE": "suggestion:gpt-labeler"})
    assert (f"of the first {COUNT} records, 0 carry one: none has a suggestion by agent 'gpt-labeler'; their "
            f"suggestions are by {AGENT!r} ({COUNT})") in misspelt.stdout, misspelt.stdout
    # texts longer than training.max_length: said before a training cuts them (in the start model's tokens)
    assert "are longer than training.max_length" not in fresh.stdout
    cutting = _cli(stack_settings, dataset_name, tmp_path, "config", "check",
                   extra_env={"ARGILLA_WORKER_TRAINING__BASE_MODEL": base, "ARGILLA_WORKER_TRAINING__MAX_LENGTH": "8"})
    assert re.search(rf"of the first {COUNT - len(NO_BODY)} texts, \d+ are longer than training.max_length = 8 tokens "
                     r"\(median \d+, longest \d+\): a model trained here learns and scores their first 8 only; the "
                     r"model reads up to 64: a larger training.max_length reads more", cutting.stdout), cutting.stdout
    assert "to do: no model yet: `argilla-worker train`" in fresh.stdout
    assert ("if no record carries a label yet, `argilla-worker cold-start --vector embedding` ranks a first batch to "
            "annotate") in fresh.stdout
    assert "  vectors: embedding (3 dimensions)" in fresh.stdout
    assert "to do: no test set: the validation records are ones picked for review" in fresh.stdout
    scores = sum(spec.written_by == "score" for spec in worker_metadata())
    assert (f"the worker's metadata: none on the dataset yet; each job adds its properties with its first values "
            f"(score: {scores}; score --oof: 2; cold-start: 2; copies: 3;") in fresh.stdout
    assert "problem" not in fresh.stdout + fresh.stderr
    assert missing_start.returncode == 1 and "Traceback" not in missing_start.stderr
    assert "problem: training.base_model = " in missing_start.stderr and "no such directory" in missing_start.stderr
    assert _dataset_settings(stack_settings, their_dataset.id) == before

    on_ray = {"ARGILLA_WORKER_TRAINING__BASE_MODEL": base, "ARGILLA_WORKER_SCORING__ENGINE": "ray",
              "ARGILLA_WORKER_RAY__GPUS_PER_ACTOR": "0"}
    too_many = _cli(stack_settings, dataset_name, tmp_path, "config", "check",
                    extra_env={**on_ray, "ARGILLA_WORKER_RAY__ACTORS": "64"})
    assert too_many.returncode == 1 and "Traceback" not in too_many.stderr, too_many.stderr[-3000:]
    assert re.search(r"problem: ray: 64 actor\(s\) × \(0 GPU, 1 CPU\) ask 64 CPU, the cluster has \d+: lower "
                     r"ray\.actors", too_many.stderr), too_many.stderr[-3000:]
    one = _cli(stack_settings, dataset_name, tmp_path, "config", "check", extra_env=on_ray)
    assert one.returncode == 0, one.stderr[-3000:]
    assert re.search(r"^scoring on a local Ray \(0 GPU, \d+ CPU\): 1 actor\(s\) × \(0 GPU, 1 CPU\)$", one.stdout,
                     re.MULTILINE), one.stdout

    registered = _cli(stack_settings, dataset_name, tmp_path, "models", "register", base)
    assert registered.returncode == 0, registered.stderr
    fitting = _cli(stack_settings, dataset_name, tmp_path, "config", "check",
                   extra_env={"ARGILLA_WORKER_TRAINING__BASE_MODEL": base})
    assert fitting.returncode == 0 and "model: v0001 (fits the question)" in fitting.stdout, fitting.stderr
    assert ("the next training is fine-tuned from v0001 (the model you registered; training.start_from = 'auto')"
            in fitting.stdout)
    (tmp_path / "their-folder").mkdir()
    (tmp_path / "their-folder" / "notes.md").write_text("ours")
    publishing_over_theirs = _cli(stack_settings, dataset_name, tmp_path, "config", "check",
                                  extra_env={"ARGILLA_WORKER_TRAINING__BASE_MODEL": base,
                                             "ARGILLA_WORKER_PUBLISH__DIRECTORY": str(tmp_path / "their-folder")})
    assert publishing_over_theirs.returncode == 1
    assert "problem: publish.directory" in publishing_over_theirs.stderr
    assert "holds files the worker did not publish (notes.md)" in publishing_over_theirs.stderr
    misnamed = _cli(stack_settings, dataset_name, tmp_path, "config", "check",
                    extra_env={"ARGILLA_WORKER_TRAINING__BASE_MODEL": base,
                               "ARGILLA_WORKER_PUBLISH__METADATA": '["tem"]',
                               "ARGILLA_WORKER_PUBLISH__QUESTIONS": f'["{QUESTION}"]'})
    assert misnamed.returncode == 1 and "Traceback" not in misnamed.stderr, misnamed.stderr[-3000:]
    assert f"problem: publish.metadata: dataset {dataset_name!r} has no metadata property 'tem'; it has:" in \
        misnamed.stderr, misnamed.stderr[-3000:]
    assert f"problem: publish.questions: {QUESTION!r} is the question the worker serves" in misnamed.stderr

    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    other = rg.Dataset(name=f"{dataset_name}-topics", workspace=stack_settings.workspace, client=client,
                       settings=rg.Settings(fields=[rg.TextField(name="review_body")],
                                            questions=[rg.LabelQuestion(name="topic", labels=["film", "music", "tv"])]))
    other.create()
    elsewhere = _cli(stack_settings, other.name, tmp_path, "config", "check",
                     extra_env={"ARGILLA_WORKER_TRAINING__BASE_MODEL": base})
    assert elsewhere.returncode == 1 and "Traceback" not in elsewhere.stderr
    assert "problem: current model v0001: the model's labels ['negative', 'positive'] differ from the dataset " \
           "question's labels ['film', 'music', 'tv']" in elsewhere.stderr, elsewhere.stderr
    assert f"dataset {stack_settings.workspace}/{other.name}: 0 records" in elsewhere.stdout


def test_a_reading_command_does_not_create_a_missing_dataset(local_argilla, stack_settings, dataset_name, tmp_path,
                                                             monkeypatch):
    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    services = Services(_settings(stack_settings, dataset_name, tmp_path, labels=list(LABELS)))
    with pytest.raises(Exception, match="does not exist"):
        services.labels()
    assert services.gateway.existing_labels() is None


def _dataset_settings(stack_settings, dataset_id) -> tuple[str, list[str]]:
    """(guidelines, metadata property names) as the server has them."""
    headers = {"X-Argilla-Api-Key": stack_settings.api_key.get_secret_value()}
    dataset = httpx.get(f"{stack_settings.api_url}/api/v1/datasets/{dataset_id}", headers=headers).json()
    properties = httpx.get(f"{stack_settings.api_url}/api/v1/me/datasets/{dataset_id}/metadata-properties",
                           headers=headers).json()["items"]
    return dataset["guidelines"], sorted(prop["name"] for prop in properties)


def _cli(stack_settings, dataset_name, tmp_path, *args, extra_env=None):
    env = {**os.environ, "ARGILLA_WORKER_ARGILLA__API_KEY": stack_settings.api_key.get_secret_value(),
           "ARGILLA_WORKER_ARGILLA__API_URL": stack_settings.api_url,
           "ARGILLA_WORKER_ARGILLA__DATASET": dataset_name,
           "ARGILLA_WORKER_ARGILLA__WORKSPACE": stack_settings.workspace,
           "ARGILLA_WORKER_ARGILLA__FIELDS": '["review_body"]',
           "ARGILLA_WORKER_REGISTRY__PATH": str(tmp_path / "registry"),
           "ARGILLA_WORKER_STATE_DIR": str(tmp_path / "state"),
           "ARGILLA_WORKER_SCORING__DEVICE": "cpu", "ARGILLA_WORKER_SCORING__SAMPLES": "3",
           "ARGILLA_WORKER_TRAINING__DEVICE": "cpu", "ARGILLA_WORKER_TRAINING__EPOCHS": "3",
           "ARGILLA_WORKER_TRAINING__BATCH_SIZE": "8", "ARGILLA_WORKER_TRAINING__MAX_LENGTH": "32",
           "ARGILLA_WORKER_TRAINING__LEARNING_RATE": "0.003", **(extra_env or {})}
    return run_worker(args, env)


def test_a_model_the_user_already_has_is_registered_and_scores(their_dataset, stack_settings, dataset_name,
                                                               tmp_path):
    from transformers import AutoConfig

    model_dir = save_tiny_classifier(tmp_path / "their-model", labels=("NEG", "POS"))
    mismatch = _cli(stack_settings, dataset_name, tmp_path, "models", "register", str(model_dir))
    assert mismatch.returncode != 0 and "Traceback" not in mismatch.stderr
    assert "['NEG', 'POS']" in mismatch.stderr and "['negative', 'positive']" in mismatch.stderr

    registered = _cli(stack_settings, dataset_name, tmp_path, "models", "register", str(model_dir),
                      "--label-map", "NEG=negative,POS=positive")
    assert registered.returncode == 0, registered.stderr
    assert "as v0001 (current)" in registered.stdout
    stored = AutoConfig.from_pretrained(tmp_path / "registry" / "versions" / "v0001")
    assert stored.id2label == {0: "negative", 1: "positive"}

    scored = _cli(stack_settings, dataset_name, tmp_path, "score", "--full")
    assert scored.returncode == 0, scored.stderr
    # bound to the optional review_body alone: the records without one have nothing to read, and say so
    assert f"{COUNT - len(NO_BODY)} scored" in scored.stdout and f"{len(NO_BODY)} skipped" in scored.stdout
    assert all(f"record {record_id} not scored: text is missing" in scored.stderr for record_id in NO_BODY)
    after = _stored(stack_settings, their_dataset.id)
    assert all(record["metadata"]["model_version"] == "v0001" for record_id, record in after.items()
               if record_id not in NO_BODY)

    # the registry lost (another machine, a volume not mounted): the next model must not be another "v0001",
    # whose values the records already "have" — it numbers past the versions on the dataset and scores them all
    fresh = {"ARGILLA_WORKER_REGISTRY__PATH": str(tmp_path / "fresh-registry"),
             "ARGILLA_WORKER_STATE_DIR": str(tmp_path / "fresh-state")}
    again = _cli(stack_settings, dataset_name, tmp_path, "models", "register", str(model_dir), "--label-map",
                 "NEG=negative,POS=positive", extra_env=fresh)
    assert "as v0002 (current)" in again.stdout, again.stderr
    rescored = _cli(stack_settings, dataset_name, tmp_path, "score", extra_env=fresh)
    assert f"{COUNT - len(NO_BODY)} scored" in rescored.stdout, rescored.stdout


def test_their_model_trained_without_label_names_registers_with_the_map_read_from_their_records_labels(
        their_dataset, stack_settings, dataset_name, tmp_path):
    """A model fine-tuned without label names (transformers' LABEL_0 / LABEL_1, its outputs in the other order than
    the question's): refused with the way out named; `--label-map auto` reads the map from the labels their records
    carry (the other team's suggestions, 3 of them wrong), prints it to keep, and the model then suggests the labels
    the texts have."""
    truth = {e.id: e.label for e in sentiment_examples(COUNT)}
    model_dir = save_nameless_sentiment_classifier(tmp_path / "nameless")
    refused = _cli(stack_settings, dataset_name, tmp_path, "models", "register", str(model_dir))
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "transformers' defaults (it was trained without label names): --label-map auto reads which is which" \
        in refused.stderr, refused.stderr

    registered = _cli(stack_settings, dataset_name, tmp_path, "models", "register", str(model_dir),
                      "--label-map", "auto")

    assert registered.returncode == 0, registered.stderr[-3000:]
    assert f"read the model's labels from {COUNT - len(NO_BODY)} labelled records" in registered.stdout
    assert "to register it so again: --label-map LABEL_0=positive,LABEL_1=negative" in registered.stdout
    assert "as v0001 (current)" in registered.stdout
    assert "reviewed records" not in registered.stdout  # the first model: nothing to compare it with
    scored = _cli(stack_settings, dataset_name, tmp_path, "score", "--full")
    assert scored.returncode == 0, scored.stderr[-3000:]
    suggested = {record_id: record["metadata"]["predicted_label"]
                 for record_id, record in _stored(stack_settings, their_dataset.id).items() if record_id not in NO_BODY}
    agreeing = sum(label == truth[record_id] for record_id, label in suggested.items())
    assert agreeing >= 0.85 * len(suggested), (agreeing, suggested)


def test_a_model_registered_beside_the_current_one_is_compared_with_it_on_the_reviewed_records(
        their_dataset, stack_settings, dataset_name, tmp_path):
    """What `models promote` is decided on: the registered model and the current one, each judged on the records
    the annotators reviewed (the current one, registered too, says nothing of what it trained on: all count)."""
    truth = {e.id: e.label for e in sentiment_examples(COUNT)}
    first = _cli(stack_settings, dataset_name, tmp_path, "models", "register",
                 str(save_tiny_classifier(tmp_path / "untrained")))  # predicts one label for every text
    assert "as v0001 (current)" in first.stdout, first.stderr[-3000:]
    nameless = save_nameless_sentiment_classifier(tmp_path / "nameless")
    before_reviews = _cli(stack_settings, dataset_name, tmp_path, "models", "register", str(nameless),
                          "--label-map", "LABEL_0=positive,LABEL_1=negative")
    assert "no reviewed record yet to compare it with the current model v0001 on" in before_reviews.stdout, \
        before_reviews.stdout
    stored = _stored(stack_settings, their_dataset.id)
    reviewed = [record_id for record_id in sorted(stored) if record_id not in NO_BODY][:10]
    for record_id in reviewed:
        submit_label(stack_settings, stored[record_id]["id"], truth[record_id], question=QUESTION)

    registered = _cli(stack_settings, dataset_name, tmp_path, "models", "register", str(nameless),
                      "--label-map", "LABEL_0=positive,LABEL_1=negative")

    assert registered.returncode == 0, registered.stderr[-3000:]
    # the same model again (a deploy script's second run): the version it is already, compared now that reviews came
    assert (f"{nameless} is registered already as v0002 (the same weights, labels and tokenizer): nothing registered; "
            f"v0002 is candidate; `argilla-worker models promote v0002` makes it current") in registered.stdout
    assert sorted(path.name for path in (tmp_path / "registry" / "versions").iterdir()) == ["v0001", "v0002"]
    found = re.search(r"on 10 reviewed records the current model v0001 was not taught: macro-F1 v0002 (\d\.\d+), "
                      r"v0001 (\d\.\d+) \(difference [+-]\d\.\d+, 95 % interval ", registered.stdout)
    assert found, registered.stdout
    assert float(found[1]) >= 0.8 > float(found[2]), found.groups()  # the trained model, the one-label model
    listed = _cli(stack_settings, dataset_name, tmp_path, "models", "list")  # kept with the version
    assert (f"         registered from {nameless}; beside v0001 on 10 reviewed records: macro-F1 {found[1]} vs "
            f"{found[2]}") in listed.stdout, listed.stdout
    checked = _cli(stack_settings, dataset_name, tmp_path, "config", "check")  # and config check reminds of it
    assert (f"to do: v0002 (registered from {nameless}) waits for a decision: macro-F1 {found[1]} vs {found[2]} of "
            f"v0001 on 10 reviewed records — `argilla-worker models promote v0002` makes it current\n") \
        in checked.stdout, checked.stdout


def test_their_modernbert_trains_and_their_deberta_registers_and_both_score(their_dataset, stack_settings,
                                                                             dataset_name, tmp_path):
    """Two architectures teams bring that the worker did not serve before: DeBERTa-v3's shape (no SDPA
    attention: it did not load) and ModernBERT (every dropout 0: its MC samples were all equal, BALD 0)."""
    scored = {record_id for record_id in _stored(stack_settings, their_dataset.id) if record_id not in NO_BODY}
    modernbert = save_tiny_architecture(tmp_path / "modernbert", "modernbert")
    trained = _cli(stack_settings, dataset_name, tmp_path, "train",
                   extra_env={"ARGILLA_WORKER_TRAINING__BASE_MODEL": str(modernbert)})
    assert trained.returncode == 0 and "Traceback" not in trained.stderr, trained.stderr[-3000:]
    first = _cli(stack_settings, dataset_name, tmp_path, "score", "--full")
    assert first.returncode == 0, first.stderr[-3000:]
    # said once per model version and process: the training's own scoring of v0001 said it first here
    assert "(ModernBertForSequenceClassification) has no dropout" in trained.stderr + first.stderr
    after = _stored(stack_settings, their_dataset.id)
    assert {after[record_id]["metadata"]["model_version"] for record_id in scored} == {"v0001"}
    assert max(after[record_id]["metadata"]["bald"] for record_id in scored) > 1e-9

    deberta = save_tiny_architecture(tmp_path / "deberta", "deberta-v2", labels=("NEG", "POS"))
    registered = _cli(stack_settings, dataset_name, tmp_path, "models", "register", str(deberta),
                      "--label-map", "NEG=negative,POS=positive")
    assert "as v0002 (candidate" in registered.stdout, registered.stderr[-3000:]
    assert _cli(stack_settings, dataset_name, tmp_path, "models", "promote", "v0002").returncode == 0
    second = _cli(stack_settings, dataset_name, tmp_path, "score", "--full")
    assert second.returncode == 0 and "Traceback" not in second.stderr, second.stderr[-3000:]
    assert f"{len(scored)} scored" in second.stdout
    assert "fast MC cannot replay" not in second.stderr  # DeBERTa's layers are replayed, relative positions and all
    after = _stored(stack_settings, their_dataset.id)
    assert {after[record_id]["metadata"]["model_version"] for record_id in scored} == {"v0002"}
    assert max(after[record_id]["metadata"]["bald"] for record_id in scored) > 1e-9


def test_out_of_fold_scores_without_any_model_rank_the_wrong_labels(their_dataset, stack_settings, dataset_name,
                                                                    tmp_path):
    """The seed workflow on a dataset with no annotation and no model: noisy labels in, OOF loss out."""
    base = save_tiny_classifier(tmp_path / "base")
    result = _cli(stack_settings, dataset_name, tmp_path, "score", "--oof", "3",
                  extra_env={"ARGILLA_WORKER_TRAINING__BASE_MODEL": str(base)})
    assert result.returncode == 0, result.stderr
    assert "base-oof3" in result.stdout and "no current model yet" in result.stdout
    assert f"{len(NO_BODY)} skipped" in result.stdout  # bound to review_body alone: nothing to read in these
    assert all(f"record {record_id} not scored: no text in review_body" in result.stderr for record_id in NO_BODY)
    after = {record_id: record for record_id, record in _stored(stack_settings, their_dataset.id).items()
             if record_id not in NO_BODY}
    assert all(record["metadata"]["model_version"] == "base-oof3" for record in after.values())
    assert all(record["metadata"]["original_agent"] == AGENT for record in after.values())
    losses = {record_id: record["metadata"]["expected_loss"] for record_id, record in after.items()}
    assert all(isinstance(value, float) for value in losses.values())
    issues = [record["metadata"]["label_issue"] for record in after.values()]
    assert all(0.0 <= value <= 1.0 for value in issues) and len(set(issues)) > 1
    assert all(isinstance(record["metadata"]["area_under_margin"], float) for record in after.values())
    assert "label_issue" in result.stdout


def test_out_of_fold_scores_reach_every_record_when_the_fold_models_train_on_a_sample(
        local_argilla, stack_settings, dataset_name, tmp_path, monkeypatch, caplog):
    """``training.max_original`` bounds what the K fold models train on (a 10^6-record dataset would be K trainings on
    all of it, and every text in memory): a dataset made with the SDK, 150 records labelled by another team's
    labeller and a few reviewed in the UI. Every labelled record still gets held-out values; label_issue goes to the
    records the models trained on — every reviewed one among them —, an earlier run's values leave the others, and
    no response changes."""
    from tests.integration.annotator import raw_responses

    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    settings = rg.Settings(fields=[rg.TextField(name="review")],
                           questions=[rg.LabelQuestion(name=QUESTION, labels=list(LABELS))])
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, settings=settings, client=client)
    dataset.create()
    examples = sentiment_examples(150)
    dataset.records.log([rg.Record(id=e.id, fields={"review": e.text},
                                   suggestions=[rg.Suggestion(question_name=QUESTION, agent=AGENT, value=e.label)])
                         for e in examples])
    server_ids = {record.id: str(record._server_id) for record in dataset.records}
    reviewed = {"e7": "negative", "e90": "positive", "e141": "negative"}
    for record_id, label in reviewed.items():
        submit_label(stack_settings, server_ids[record_id], label, question=QUESTION)
    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    services = Services(load_settings(
        argilla={"api_url": stack_settings.api_url, "dataset": dataset_name, "workspace": stack_settings.workspace},
        training={"base_model": str(save_tiny_classifier(tmp_path / "base")), "epochs": 2, "batch_size": 16,
                  "learning_rate": 3e-3, "max_length": 32, "device": "cpu", "min_steps": 0, "max_original": 10},
        scoring={"samples": 3, "device": "cpu", "push_batch": 40},
        registry={"path": str(tmp_path / "registry")}, state_dir=str(tmp_path / "state")))
    services.prepare_for_push()
    # an earlier run's, when every record was trained on (a margin no two-epoch tiny model reaches: 0.5 is a
    # label_issue this run can give, an untrained model's 1 − √(½ · σ(0)))
    earlier = {"label_issue": 0.25, "area_under_margin": 123.0}
    services.gateway.push_metadata({e.id: earlier for e in examples},
                                   current={r.record_id: r for r in services.gateway.pull()})
    before = raw_responses(stack_settings, services.gateway.dataset_id())

    with caplog.at_level("INFO", logger="worker"):
        report = oof_score_job(services, 3)

    assert report.scored == len(examples) and report.failed == 0
    stored = _stored(stack_settings, dataset.id)
    assert all(record["metadata"]["model_version"] == "base-oof3" for record in stored.values())
    assert all(isinstance(record["metadata"]["loss"], float) for record in stored.values())
    assert all(0 <= record["metadata"]["variation_ratio"] <= 1 for record in stored.values())  # the built-in plugin's
    with_issue = {record_id for record_id, record in stored.items() if "label_issue" in record["metadata"]}
    sampled = next(int(r.getMessage().split("seeded sample of ")[1].split()[0]) for r in caplog.records
                   if "seeded sample of" in r.getMessage())
    assert len(with_issue) == len(reviewed) + sampled == report.label_issues < len(examples)  # 10 + ≤ 50 a label
    assert set(reviewed) <= with_issue  # the others' earlier values are gone (a sort would mix them in)
    assert with_issue == {record_id for record_id, record in stored.items()
                          if "area_under_margin" in record["metadata"]}
    assert max(stored[record_id]["metadata"]["area_under_margin"] for record_id in with_issue) < 123.0
    assert all(record["suggestions"] for record in stored.values())  # the drop wrote metadata only
    assert not any((tmp_path / "registry").rglob("*.sqlite"))  # the records' texts on disk went with the run
    assert raw_responses(stack_settings, services.gateway.dataset_id()) == before


def test_out_of_fold_scores_on_a_dataset_without_labels_say_what_is_missing(local_argilla, stack_settings,
                                                                           dataset_name, tmp_path):
    """A new team's dataset: texts, a question, no label anywhere yet. ``score --oof`` names what it needs, and their
    dataset gets neither the worker's metadata properties nor its section of the guidelines."""
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, client=client, settings=rg.Settings(
        fields=[rg.TextField(name="review_body")], questions=[rg.LabelQuestion(name=QUESTION, labels=list(LABELS))]))
    dataset.create()
    dataset.records.log([rg.Record(id=e.id, fields={"review_body": e.text}) for e in sentiment_examples(6)])
    before = _dataset_settings(stack_settings, dataset.id)

    result = _cli(stack_settings, dataset_name, tmp_path, "score", "--oof", "3",
                  extra_env={"ARGILLA_WORKER_TRAINING__BASE_MODEL": str(save_tiny_classifier(tmp_path / "base"))})

    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "only 0 records with a text carry a label" in result.stderr + result.stdout
    assert "`score --oof 3` needs at least 3" in result.stderr + result.stdout
    assert not any((tmp_path / "registry").rglob("*.sqlite"))
    assert _dataset_settings(stack_settings, dataset.id) == before


def test_refused_and_unavailable_are_different_errors(local_argilla, stack_settings, dataset_name):
    """4xx and a missing dataset: retrying cannot help; no server: retry later (the runner backs off only then)."""
    from worker.errors import ArgillaRefusedError, ArgillaUnavailableError
    from worker.gateway import ArgillaGateway
    from worker.gateway.client import RetryPolicy

    options = {"api_key": stack_settings.api_key.get_secret_value(), "dataset_name": dataset_name,
               "workspace": stack_settings.workspace, "retry": RetryPolicy(attempts=1)}
    gateway = ArgillaGateway(api_url=stack_settings.api_url, **options)
    with pytest.raises(ArgillaRefusedError, match="does not exist"):
        gateway.prepare()
    with pytest.raises(ArgillaRefusedError, match="answered 404"):
        gateway._request("GET", "/api/v1/datasets/00000000-0000-0000-0000-000000000000")
    with pytest.raises(ArgillaUnavailableError, match="127.0.0.1:9"):
        ArgillaGateway(api_url="http://127.0.0.1:9", **options).prepare()


def test_cold_start_ranks_a_first_batch_that_trains_the_first_model(local_argilla, stack_settings, dataset_name,
                                                                   tmp_path, monkeypatch):
    """No label anywhere: rank → annotate the top of the ranking through the UI endpoint → first model."""
    from worker.jobs import cold_start_job

    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, client=client, settings=rg.Settings(
        fields=[rg.TextField(name="quote")], questions=[rg.LabelQuestion(name="tone", labels=list(LABELS))]))
    dataset.create()
    examples = sentiment_examples(COUNT)
    dataset.records.log([rg.Record(id=e.id, fields={"quote": e.text}) for e in examples])
    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    services = Services(_settings(stack_settings, dataset_name, tmp_path))

    from worker.coldstart import ColdStartSettings
    report = cold_start_job(services, ColdStartSettings(clusters=8, device="cpu"))

    assert report.sent == COUNT and not report.failed
    stored = _stored(stack_settings, dataset.id)
    ranks = sorted((record["metadata"]["cold_start_rank"], record_id) for record_id, record in stored.items())
    assert [rank for rank, _ in ranks] == [float(r) for r in range(1, COUNT + 1)]
    assert all(record["metadata"]["outlier_score"] > 0 for record in stored.values())
    assert all(not record["suggestions"] for record in stored.values())  # metadata only
    truth = {e.id: e.label for e in examples}
    for _, record_id in ranks[:20]:  # the annotator works down the ranking
        submit_label(stack_settings, stored[record_id]["id"], truth[record_id], question="tone")

    outcome = train_job(services)

    assert outcome.promoted and outcome.model.version == "v0001"
    assert outcome.model.metrics["training"]["annotated"] == 20


def test_cold_start_ranks_by_the_vectors_their_dataset_holds(local_argilla, stack_settings, dataset_name, tmp_path,
                                                             monkeypatch, caplog):
    """Their embeddings in a vector field: the ranking and the outlier score come from those (no encoder is set, so
    none could be loaded); a record without the vector gets no rank and is left as it was. Their dataset has a
    second label question, so the worker's properties are named ``tone_…`` — and the log says to sort by that
    name."""
    from worker.coldstart import ColdStartSettings
    from worker.jobs import cold_start_job

    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, client=client, settings=rg.Settings(
        fields=[rg.TextField(name="quote")], questions=[rg.LabelQuestion(name="tone", labels=list(LABELS)),
                   rg.LabelQuestion(name="flag", labels=["fine", "spam"], required=False)],
        vectors=[rg.VectorField(name="their_embedding", dimensions=4)]))
    dataset.create()
    rng = np.random.default_rng(0)
    centres = np.eye(4) * 10  # four well-apart regions of their embedding space
    vectors = {f"c{cluster}-{i}": (centres[cluster] + rng.normal(0, 0.3, 4)).tolist()
               for cluster in range(4) for i in range(6 + 2 * cluster)}
    vectors["stray"] = [-30.0, 40.0, -30.0, 40.0]
    texts = {record_id: text for record_id, text in zip(
        [*vectors, "no-vector"], (e.text for e in sentiment_examples(len(vectors) + 1)), strict=True)}
    dataset.records.log([rg.Record(id=record_id, fields={"quote": text},
                                   vectors={"their_embedding": vectors[record_id]} if record_id in vectors else {})
                         for record_id, text in texts.items()])
    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    settings = _settings(stack_settings, dataset_name, tmp_path, question="tone")
    services = Services(settings.model_copy(update={"training": settings.training.model_copy(
        update={"base_model": ""})}))

    with pytest.raises(ConfigError, match="training.base_model is not set.*cold-start --vector NAME"):
        cold_start_job(services, ColdStartSettings(clusters=5, neighbours=3))
    with pytest.raises(ConfigError, match=r"has no vector 'embedding': its vectors: their_embedding \(4 dimensions"):
        cold_start_job(services, ColdStartSettings(clusters=5, neighbours=3, vector="embedding"))
    # a first run stopped (SIGTERM) while its first page of 10 is pushed: the top 10 ranks are there, nothing else
    stop, push = threading.Event(), services.gateway.push_metadata

    def push_then_stop(*args, **kwargs):
        report = push(*args, **kwargs)
        stop.set()
        return report

    monkeypatch.setattr(services.gateway, "push_metadata", push_then_stop)
    monkeypatch.setattr("worker.jobs.PAGE_SIZE", 10)
    with pytest.raises(Interrupted, match=f"after pushing ranks 1 to 10 of {len(vectors)}: annotate from the top"):
        cold_start_job(services, ColdStartSettings(clusters=5, neighbours=3, vector="their_embedding"), stop=stop)
    partial = [record["metadata"]["tone_cold_start_rank"] for record in _stored(stack_settings, dataset.id).values()
               if "tone_cold_start_rank" in (record["metadata"] or {})]
    assert sorted(partial) == [float(rank) for rank in range(1, 11)]
    monkeypatch.setattr(services.gateway, "push_metadata", push)
    monkeypatch.setattr("worker.jobs.PAGE_SIZE", PAGE_SIZE)

    with caplog.at_level("INFO", logger="worker.jobs"):
        report = cold_start_job(services, ColdStartSettings(clusters=5, neighbours=3, vector="their_embedding"))

    assert (report.sent, report.unchanged) == (len(vectors) - 10, 10) and not report.failed  # the same ranks again
    stored = _stored(stack_settings, dataset.id)
    assert "sort by tone_cold_start_rank ascending" in caplog.text and "by tone_outlier_score descending" in caplog.text
    assert "tone_cold_start_rank" not in (stored["no-vector"]["metadata"] or {})
    ranked = sorted(stored[record_id]["metadata"]["tone_cold_start_rank"] for record_id in vectors)
    assert ranked == [float(rank) for rank in range(1, len(vectors) + 1)]
    first = sorted(vectors, key=lambda record_id: stored[record_id]["metadata"]["tone_cold_start_rank"])[:5]
    assert [record_id.split("-")[0] for record_id in first] == ["c3", "c2", "c1", "c0", "stray"], first  # largest first
    outlier = {record_id: stored[record_id]["metadata"]["tone_outlier_score"] for record_id in vectors}
    assert max(outlier, key=outlier.__getitem__) == "stray"
    assert stored["c0-0"]["vectors"]["their_embedding"] == pytest.approx(vectors["c0-0"])  # theirs, unchanged
    todo = check_config(services).todo
    assert any("the records are ranked for a first batch: sort by tone_cold_start_rank, ascending" in line
               for line in todo), todo


def test_a_rescore_by_id_reads_only_the_records_it_names(their_dataset, stack_settings, dataset_name, tmp_path,
                                                          monkeypatch):
    """What a webhook triggers: the submitted record is read by its server id and rescored; the dataset is not
    pulled (the event's cost does not grow with the dataset); ids of missing records are skipped."""
    from worker.training.register import register_model

    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    services = Services(_settings(stack_settings, dataset_name, tmp_path, fields=["headline", "review_body"]))
    register_model(str(save_tiny_classifier(tmp_path / "theirs")), services.registry, services.labels())
    assert score_job(services, full=True).pushed == COUNT
    target = _stored(stack_settings, their_dataset.id)["e3"]
    corrected = sentiment_examples(COUNT)[3].label if "e3" not in WRONG else _flip(target["metadata"]["original_label"])
    submit_label(stack_settings, target["id"], corrected, question=QUESTION)

    def no_pull(*args, **kwargs):
        raise AssertionError("a rescore by id must not pull the dataset")

    monkeypatch.setattr(services.gateway, "pull", no_pull)
    unknown = [str(uuid.UUID(int=index + 1)) for index in range(300)]  # > the server's 250 values per filter
    report = score_job(services, server_ids=[*unknown[:150], target["id"], *unknown[150:], "not-an-id"])

    assert (report.considered, report.scored, report.pushed, report.failed) == (1, 1, 1, 0)
    stored = _stored(stack_settings, their_dataset.id)["e3"]
    assert stored["metadata"]["reference_label"] == corrected  # the annotator's answer is now the label under review
    assert [r["values"][QUESTION]["value"] for r in stored["responses"]] == [corrected]


def test_after_a_retrain_records_whose_view_would_not_change_keep_their_values(their_dataset, stack_settings,
                                                                              dataset_name, tmp_path, monkeypatch):
    """A new version that moves no value (the same weights registered again) changes no order annotators
    see: with a rank tolerance no record is pushed, each keeps the values and version that computed them;
    with the tolerance at 0 (exact everywhere) every record is pushed."""
    from worker.training.register import register_model

    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    settings = _settings(stack_settings, dataset_name, tmp_path, fields=["headline", "review_body"])
    settings.scoring.view_exact_top = 0
    services = Services(settings)
    model = save_tiny_classifier(tmp_path / "theirs")
    register_model(str(model), services.registry, services.labels())

    def same_weights_again() -> str:  # (`models register` would say it is v0001 already: a copy made by hand)
        with services.registry.staging() as staged:
            shutil.copytree(model, staged, dirs_exist_ok=True)
            return services.registry.add(staged, {"registered_from": str(model), "parent": None}).version

    first = score_job(services, full=True)
    services.registry.promote(same_weights_again())
    second = score_job(services, full=True)  # adds original_loss (their label is preserved by the first push)
    services.registry.promote(same_weights_again())

    third = score_job(services, full=True)

    assert (first.pushed, first.kept) == (COUNT, 0)  # no quantiles of an earlier full run: everything exact
    assert (second.pushed, second.kept) == (COUNT, 0)  # a new sort key is a change of the view
    assert (third.scored, third.pushed, third.kept) == (COUNT, 0, COUNT)
    stored = _stored(stack_settings, their_dataset.id)
    assert {record["metadata"]["model_version"] for record in stored.values()} == {"v0002"}
    settings.scoring.view_rank_tolerance = 0.0
    exact = score_job(Services(settings), full=True)
    assert (exact.pushed, exact.kept) == (COUNT, 0)
    stored = _stored(stack_settings, their_dataset.id)
    assert {record["metadata"]["model_version"] for record in stored.values()} == {"v0003"}


def test_a_changed_scoring_option_scores_every_record_again_once_and_a_stopped_run_goes_on(
        their_dataset, stack_settings, dataset_name, tmp_path, monkeypatch, caplog):
    """``scoring.samples`` 4 → 6 (the same model): the next run reads every record and scores each again, even where
    no rank moves (a monotone change keeps the view: the tolerance is off for them), and those the team's own script
    wrote to since (their record is newer, the worker's suggestion is not); stopped after its first batch, the run
    after scores only the rest; then nothing is left."""
    import logging
    import threading

    from worker.training.register import register_model

    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    settings = _settings(stack_settings, dataset_name, tmp_path, fields=["headline", "review_body"])
    settings.scoring.adaptive = False  # every record gets `samples`: mc_samples says which options scored it
    services = Services(settings)
    register_model(str(save_tiny_classifier(tmp_path / "theirs")), services.registry, services.labels())
    assert score_job(services, full=True).pushed == COUNT
    assert score_job(Services(settings), full=True).scored == 0  # the options are kept: nothing to score again

    settings.scoring.samples = 6
    assert any("scored with other [scoring] options (samples 4 → 6): the next score run reads every record" in line
               for line in check_config(Services(settings)).todo)
    stop = threading.Event()
    stop.set()  # (a stop asked for while the first batch scored: the run ends after pushing it)
    with caplog.at_level(logging.INFO, logger="worker.jobs"):
        first = score_job(Services(settings), stop=stop)

    assert "[scoring] changed since the records of" in caplog.text and "samples 4 → 6" in caplog.text
    assert "this run reads every record" in caplog.text
    assert first.stopped and 0 < first.pushed < COUNT
    old = [record for record in _stored(stack_settings, their_dataset.id).values()
           if record["metadata"]["mc_samples"] == 4]
    for record in old[::2]:  # their script re-tags some records the run has not reached: a newer record
        response = httpx.patch(f"{stack_settings.api_url}/api/v1/records/{record['id']}",
                               headers={"X-Argilla-Api-Key": stack_settings.api_key.get_secret_value()},
                               json={"metadata": {**record["metadata"], "source_site": "retagged"}}, timeout=30)
        response.raise_for_status()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="worker.jobs"):
        second = score_job(Services(settings), stop=stop)
    assert "[scoring] changed since the records of" not in caplog.text  # said once, by the run that noticed it
    assert second.stopped and second.pushed > 0
    assert any("was stopped: the next one reads every record" in line for line in check_config(Services(settings)).todo)
    rest = score_job(Services(settings))
    # the records pushed before are newer; the retagged ones are not, whatever their record's time says
    assert rest.scored == COUNT - first.pushed - second.pushed and not rest.stopped
    stored = _stored(stack_settings, their_dataset.id)
    assert {record["metadata"]["mc_samples"] for record in stored.values()} == {6}
    assert score_job(Services(settings), full=True).scored == 0
    assert Services(settings).sync_state.scored_by(services.gateway.dataset_key).stale_before is None
    assert not any("[scoring]" in line for line in check_config(Services(settings)).todo)


def test_two_label_questions_are_served_by_one_worker_each_without_touching_the_other(
        local_argilla, stack_settings, dataset_name, tmp_path, monkeypatch, caplog):
    """A dataset with two label questions and a float property of the user's named ``loss``, made with the
    SDK. One worker per question (``score --oof``: no model, no annotation yet): each writes its question's
    suggestion and its metadata as ``<question>_…``; the other question's suggestion and values, the user's
    ``loss`` and the guidelines' other section stay as they were; each worker's reference is its own
    question's label (another agent's, preserved before the worker replaced it)."""
    from worker.jobs import oof_score_job

    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, client=client, settings=rg.Settings(
        guidelines="Ours first.",
        fields=[rg.TextField(name="review")],
        questions=[rg.LabelQuestion(name="sentiment", labels=list(LABELS)),
                   rg.LabelQuestion(name="length", labels=["short", "long"])],
        metadata=[rg.FloatMetadataProperty(name="loss", title="Their loss")]))
    dataset.create()
    examples = sentiment_examples(COUNT)
    length = {e.id: "long" if len(e.text.split()) > 6 else "short" for e in examples}
    dataset.records.log([rg.Record(
        id=e.id, fields={"review": e.text}, metadata={"loss": index / 100},
        suggestions=[rg.Suggestion(question_name="sentiment", value=e.label, agent=AGENT),
                     rg.Suggestion(question_name="length", value=length[e.id], agent="word-counter")])
        for index, e in enumerate(examples)])
    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())

    workers = {question: Services(_settings(stack_settings, dataset_name, tmp_path / question, question=question))
               for question in ("sentiment", "length")}
    assert workers["sentiment"].gateway.binding.metadata_prefix == "sentiment_"
    with caplog.at_level("INFO", logger="worker.jobs"):
        report = oof_score_job(workers["sentiment"], 3)
    assert (report.scored, report.failed) == (COUNT, 0)
    assert "sort by sentiment_label_issue, descending" in caplog.text  # the name the UI shows
    after_first = _stored(stack_settings, dataset.id)
    report = oof_score_job(workers["length"], 3)
    assert (report.scored, report.failed) == (COUNT, 0)
    after = _stored(stack_settings, dataset.id)

    by_question = {question["name"]: question["id"] for question in httpx.get(
        f"{stack_settings.api_url}/api/v1/datasets/{dataset.id}/questions",
        headers={"X-Argilla-Api-Key": stack_settings.api_key.get_secret_value()}).json()["items"]}
    for index, e in enumerate(examples):
        record, first = after[e.id], after_first[e.id]
        metadata = record["metadata"]
        assert metadata["loss"] == index / 100, e.id  # the user's property of the same name: untouched
        for question, truth, agent in (("sentiment", e.label, AGENT), ("length", length[e.id], "word-counter")):
            assert (metadata[f"{question}_original_label"], metadata[f"{question}_original_agent"]) == (truth, agent)
            assert metadata[f"{question}_model_version"] == "base-oof3"
            assert isinstance(metadata[f"{question}_label_issue"], float)
            assert metadata[f"{question}_reference_label"] == truth  # its own question's label, not the other's
        assert {key: value for key, value in metadata.items() if key.startswith("sentiment_")} == {
            key: value for key, value in first["metadata"].items() if key.startswith("sentiment_")}
        suggestions = {s["question_id"]: s for s in record["suggestions"]}
        assert set(suggestions) == set(by_question.values())  # one per question, the first one kept
        assert suggestions[by_question["sentiment"]] == next(
            s for s in first["suggestions"] if s["question_id"] == by_question["sentiment"])
        assert suggestions[by_question["length"]]["value"] in ("short", "long")
    assert not ({"bald", "model_version", "original_label"} & set().union(*(r["metadata"] for r in after.values())))

    guidelines, properties = _dataset_settings(stack_settings, dataset.id)
    assert guidelines.startswith("Ours first.\n\n") and guidelines.count("argilla-worker guidelines for question") == 4
    assert "`sentiment_loss`, **descending**" in guidelines and "`length_loss`, **descending**" in guidelines
    assert {"loss", "sentiment_loss", "length_loss", "sentiment_bald", "length_bald"} <= set(properties)

    # Annotators answer both questions; the sentiment worker trains on its question's answers and scores: the
    # length worker's values stay, and a second run finds every record up to date (nothing of the other
    # question's, nor the user's `loss`, reads as a change)
    for e in examples[:ANNOTATED]:
        httpx.post(f"{stack_settings.api_url}/api/v1/records/{after[e.id]['id']}/responses",
                   headers={"X-Argilla-Api-Key": stack_settings.api_key.get_secret_value()},
                   json={"values": {"sentiment": {"value": e.label}, "length": {"value": length[e.id]}},
                         "status": "submitted"}, timeout=30).raise_for_status()
    outcome = train_job(workers["sentiment"])
    assert outcome.promoted and outcome.model.metrics["training"]["annotated"] == ANNOTATED
    report = score_job(workers["sentiment"], full=True)
    assert (report.scored, report.failed) == (COUNT, 0) and report.pushed > 0
    scored = _stored(stack_settings, dataset.id)
    for e in examples:
        assert {k: v for k, v in scored[e.id]["metadata"].items() if not k.startswith("sentiment_")} == {
            k: v for k, v in after[e.id]["metadata"].items() if not k.startswith("sentiment_")}, e.id
        assert scored[e.id]["metadata"]["sentiment_model_version"] == "v0001"
    assert score_job(workers["sentiment"], full=True).scored == 0


def test_an_annotators_api_key_is_one_line_naming_the_user_before_anything_is_written(their_dataset, stack_settings,
                                                                                      dataset_name, tmp_path):
    """An annotator may answer questions, not search records or add metadata properties: every command says so
    up front (instead of a 403 half-way through a job) and nothing is written."""
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    username = f"labeller-{dataset_name[-8:]}"
    headers = create_annotator(stack_settings, client, username)
    api_key = httpx.get(f"{stack_settings.api_url}/api/v1/me", headers=headers, timeout=30).json()["api_key"]
    before = _dataset_settings(stack_settings, their_dataset.id)
    for command in (("score",), ("train",), ("publish", "--directory", str(tmp_path / "out"))):
        result = _cli(stack_settings, dataset_name, tmp_path, *command,
                      extra_env={"ARGILLA_WORKER_ARGILLA__API_KEY": api_key})
        assert result.returncode == 1, (command, result.stderr)
        assert f"the API key belongs to '{username}', an annotator" in result.stderr
        assert "Traceback" not in result.stderr + result.stdout
    assert _dataset_settings(stack_settings, their_dataset.id) == before
    assert not (tmp_path / "out").exists()


def test_their_own_properties_with_the_workers_names_keep_their_values(local_argilla, stack_settings, dataset_name,
                                                                       tmp_path):
    """Their labeller's `confidence` and their `model_version` (names the worker also writes): every value of
    theirs stays as it was, the worker's go under worker_<name>, and a second run keeps to those names."""
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, client=client, settings=rg.Settings(
        fields=[rg.TextField(name="review_body")],
        questions=[rg.LabelQuestion(name=QUESTION, labels=list(LABELS))],
        metadata=[rg.FloatMetadataProperty(name="confidence"), rg.TermsMetadataProperty(name="model_version")]))
    dataset.create()
    examples = sentiment_examples(COUNT)
    dataset.records.log([
        rg.Record(id=example.id, fields={"review_body": example.text},
                  metadata={"confidence": round(0.5 + index / 100, 2), "model_version": "gpt-labeller-2024"},
                  suggestions=[rg.Suggestion(question_name=QUESTION, agent=AGENT, value=example.label)])
        for index, example in enumerate(examples)])
    before = _stored(stack_settings, dataset.id)
    base = save_tiny_classifier(tmp_path / "base")
    result = _cli(stack_settings, dataset_name, tmp_path, "score", "--oof", "3",
                  extra_env={"ARGILLA_WORKER_TRAINING__BASE_MODEL": str(base)})
    assert result.returncode == 0, result.stderr
    assert ("metadata named worker_<name> (the dataset's own properties confidence, model_version keep theirs, "
            "untouched)") in result.stderr
    after = _stored(stack_settings, dataset.id)
    for record_id, old in before.items():
        metadata = after[record_id]["metadata"]
        assert (metadata["confidence"], metadata["model_version"]) == (old["metadata"]["confidence"],
                                                                      "gpt-labeller-2024"), record_id
        assert metadata["worker_model_version"] == "base-oof3" and 0 <= metadata["worker_confidence"] <= 1
        assert isinstance(metadata["worker_label_issue"], float) and "label_issue" not in metadata
    _, names = _dataset_settings(stack_settings, dataset.id)
    assert "worker_expected_loss" in names and "expected_loss" not in names
    again = _cli(stack_settings, dataset_name, tmp_path, "score", "--oof", "3",
                 extra_env={"ARGILLA_WORKER_TRAINING__BASE_MODEL": str(base)})
    assert again.returncode == 0 and "metadata named worker_<name>" in again.stderr, again.stderr
    assert _stored(stack_settings, dataset.id)["e1"]["metadata"]["confidence"] == before["e1"]["metadata"]["confidence"]
    refused = _cli(stack_settings, dataset_name, tmp_path, "score",
                   extra_env={"ARGILLA_WORKER_ARGILLA__METADATA_PREFIX": ""})
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "the dataset's own (confidence, model_version)" in refused.stderr


@pytest.fixture
def root_logging():
    """The CLI configures the root logger (level INFO, its handler) for the process: put it back for the tests
    that run after this one in the same process."""
    import logging

    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    yield
    root.setLevel(level)
    root.handlers[:] = handlers


def test_their_model_speaking_the_label_titles_registers_through_the_cli_and_a_base_encoder_is_refused(
        local_argilla, stack_settings, dataset_name, tmp_path, monkeypatch, root_logging):
    """The question's labels are values with titles (what the UI shows); the team's model was trained on the
    titles, in capitals. The command runs in-process (click's runner): the same code as the console script."""
    from click.testing import CliRunner

    from tests.tiny_models import save_tiny_encoder
    from worker.cli import cli

    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, client=client, settings=rg.Settings(
        fields=[rg.TextField(name="text")],
        questions=[rg.LabelQuestion(name="tone", labels={"neg": "Negative 👎", "pos": "Positive 👍"})])).create()
    for name, value in {"API_KEY": stack_settings.api_key.get_secret_value(), "API_URL": stack_settings.api_url,
                        "DATASET": dataset_name, "WORKSPACE": stack_settings.workspace}.items():
        monkeypatch.setenv(f"ARGILLA_WORKER_ARGILLA__{name}", value)
    monkeypatch.setenv("ARGILLA_WORKER_REGISTRY__PATH", str(tmp_path / "registry"))
    monkeypatch.setenv("ARGILLA_WORKER_STATE_DIR", str(tmp_path / "state"))

    base = CliRunner().invoke(cli, ["models", "register", str(save_tiny_encoder(tmp_path / "encoder"))])
    assert base.exit_code == 1 and isinstance(base.exception, SystemExit), base.output
    assert "is not a trained sequence classifier: its checkpoint has no classifier.bias" in base.output
    assert not (tmp_path / "registry" / "versions").exists() or not any((tmp_path / "registry" / "versions").iterdir())

    theirs = save_tiny_classifier(tmp_path / "theirs", labels=("NEGATIVE 👎", "Positive 👍"))
    registered = CliRunner().invoke(cli, ["models", "register", str(theirs)])
    assert registered.exit_code == 0, registered.output
    assert f"registered {theirs} as v0001 (current)" in registered.output
    stored = json.loads((tmp_path / "registry" / "versions" / "v0001" / "config.json").read_text())
    assert stored["id2label"] == {"0": "neg", "1": "pos"}
