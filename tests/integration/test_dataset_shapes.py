"""Dataset shapes made with the plain SDK beyond text + label question, on the real local Argilla:

- conversations (a ChatField: LLM support chats to classify), scored by a team's model that ships its own Python
  code — registered only once ``registry.trust_remote_code`` allows it — and published as their messages;
- a RatingQuestion (answer quality 1–3) beside a label question: served as classes "1" … "3", suggested as the
  integers the server holds, its metadata under its own prefix, the label question's suggestions untouched."""

from __future__ import annotations

import os

import argilla as rg
import datasets
import httpx
import pytest

from tests.integration.cli import run_worker
from tests.tiny_models import save_remote_code_classifier, save_tiny_classifier
from tests.training_data import LABELS, sentiment_examples

QUESTION = "customer_mood"
AGENT = "llm-judge"
COUNT = 12


def _conversation(text: str) -> list[dict]:
    return [{"role": "user", "content": text}, {"role": "assistant", "content": "Thanks for telling us."}]


@pytest.fixture
def their_chats(local_argilla, stack_settings, dataset_name):
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    settings = rg.Settings(fields=[rg.ChatField(name="chat", title="Support chat")],
                           questions=[rg.LabelQuestion(name=QUESTION, labels=list(LABELS))])
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, settings=settings, client=client)
    dataset.create()
    dataset.records.log([
        rg.Record(id=example.id, fields={"chat": _conversation(example.text)},
                  suggestions=[rg.Suggestion(question_name=QUESTION, agent=AGENT, value=example.label, score=0.9)])
        for example in sentiment_examples(COUNT)
    ])
    return dataset


def _cli(stack_settings, dataset_name, tmp_path, *args, trust=False, question=None):
    env = {**os.environ, "ARGILLA_WORKER_ARGILLA__API_KEY": stack_settings.api_key.get_secret_value(),
           "ARGILLA_WORKER_ARGILLA__API_URL": stack_settings.api_url,
           "ARGILLA_WORKER_ARGILLA__DATASET": dataset_name,
           "ARGILLA_WORKER_ARGILLA__WORKSPACE": stack_settings.workspace,
           "ARGILLA_WORKER_REGISTRY__PATH": str(tmp_path / "registry"),
           "ARGILLA_WORKER_REGISTRY__TRUST_REMOTE_CODE": "true" if trust else "false",
           "ARGILLA_WORKER_STATE_DIR": str(tmp_path / "state"),
           "ARGILLA_WORKER_SCORING__DEVICE": "cpu", "ARGILLA_WORKER_SCORING__SAMPLES": "3",
           **({"ARGILLA_WORKER_ARGILLA__QUESTION": question} if question else {})}
    return run_worker(args, env)


def _stored(stack_settings, dataset_id) -> dict[str, dict]:
    response = httpx.get(f"{stack_settings.api_url}/api/v1/datasets/{dataset_id}/records",
                         headers={"X-Argilla-Api-Key": stack_settings.api_key.get_secret_value()},
                         params={"include": ["suggestions"], "limit": 1000}, timeout=30)
    response.raise_for_status()
    return {item["external_id"]: item for item in response.json()["items"]}


def test_their_conversations_are_scored_by_their_own_code_model_once_trusted_and_published_as_messages(
        their_chats, stack_settings, dataset_name, tmp_path):
    model = save_remote_code_classifier(tmp_path / "their-model", labels=tuple(LABELS))
    refused = _cli(stack_settings, dataset_name, tmp_path, "models", "register", str(model))
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "registry.trust_remote_code = true" in refused.stderr, refused.stderr[-2000:]
    assert not (tmp_path / "registry" / "versions" / "v0001").exists()

    registered = _cli(stack_settings, dataset_name, tmp_path, "models", "register", str(model), trust=True)
    assert "as v0001 (current)" in registered.stdout, registered.stderr[-3000:]
    scored = _cli(stack_settings, dataset_name, tmp_path, "score", "--full", trust=True)
    assert scored.returncode == 0 and "Traceback" not in scored.stderr, scored.stderr[-3000:]
    assert f"{COUNT} scored" in scored.stdout
    stored = _stored(stack_settings, their_chats.id)
    assert {record["metadata"]["model_version"] for record in stored.values()} == {"v0001"}
    assert all(record["metadata"]["loss"] >= 0 and record["metadata"]["bald"] > 0 for record in stored.values())
    assert all(record["fields"]["chat"] == _conversation(example.text)  # their conversations, unchanged
               for example, record in ((e, stored[e.id]) for e in sentiment_examples(COUNT)))
    # ingest writes plain texts: into a chat field it is refused in one line, before anything is sent
    (tmp_path / "more.csv").write_text("text,label\nanother chat,positive\n")
    ingested = _cli(stack_settings, dataset_name, tmp_path, "ingest", str(tmp_path / "more.csv"),
                    "--label-column", "label")
    assert ingested.returncode != 0 and "Traceback" not in ingested.stderr
    assert "which is a chat field" in ingested.stderr, ingested.stderr[-2000:]
    assert len(_stored(stack_settings, their_chats.id)) == COUNT
    # a later run that may not run the model's code says so in one line, without touching the records
    untrusted = _cli(stack_settings, dataset_name, tmp_path, "score", "--full")
    assert untrusted.returncode != 0 and "Traceback" not in untrusted.stderr
    assert "registry.trust_remote_code" in untrusted.stderr

    published = _cli(stack_settings, dataset_name, tmp_path, "publish", "--directory", str(tmp_path / "out"),
                     trust=True)
    assert published.returncode == 0, published.stderr[-3000:]
    table = datasets.load_dataset(str(tmp_path / "out"), cache_dir=str(tmp_path / "hf-cache"))
    rows = {row["id"]: row for split in table.values() for row in split}
    assert {record_id: row["chat"] for record_id, row in rows.items()} == {
        example.id: _conversation(example.text) for example in sentiment_examples(COUNT)}


RATINGS = ("1", "2", "3")


def test_a_rating_question_is_suggested_as_integers_beside_a_label_question_left_alone(
        local_argilla, stack_settings, dataset_name, tmp_path):
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    settings = rg.Settings(fields=[rg.TextField(name="answer")],
                           questions=[rg.LabelQuestion(name="topic", labels=["billing", "bug"]),
                                      rg.RatingQuestion(name="quality", values=[1, 2, 3])])
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, settings=settings, client=client)
    dataset.create()
    examples = sentiment_examples(COUNT)
    dataset.records.log([
        rg.Record(id=example.id, fields={"answer": example.text},
                  suggestions=[rg.Suggestion(question_name="quality", agent="rater", value=1 + index % 3, score=0.8),
                               rg.Suggestion(question_name="topic", agent="router", value="bug")])
        for index, example in enumerate(examples)
    ])
    before = _stored(stack_settings, dataset.id)
    answered = httpx.post(f"{stack_settings.api_url}/api/v1/records/{before['e0']['id']}/responses",
                          headers={"X-Argilla-Api-Key": stack_settings.api_key.get_secret_value()}, timeout=30,
                          json={"values": {"quality": {"value": 3}, "topic": {"value": "billing"}},
                                "status": "submitted"})  # both questions are required: the UI's Submit sends both
    answered.raise_for_status()

    model = save_tiny_classifier(tmp_path / "rater-model", labels=RATINGS)
    registered = _cli(stack_settings, dataset_name, tmp_path, "models", "register", str(model), question="quality")
    assert "as v0001 (current)" in registered.stdout, registered.stderr[-3000:]
    scored = _cli(stack_settings, dataset_name, tmp_path, "score", "--full", question="quality")
    assert scored.returncode == 0 and "Traceback" not in scored.stderr, scored.stderr[-3000:]
    assert f"{COUNT} scored" in scored.stdout

    after = _stored(stack_settings, dataset.id)
    questions = {q["name"]: q["id"] for q in httpx.get(
        f"{stack_settings.api_url}/api/v1/datasets/{dataset.id}/questions",
        headers={"X-Argilla-Api-Key": stack_settings.api_key.get_secret_value()}, timeout=30).json()["items"]}
    for index, example in enumerate(examples):
        record = after[example.id]
        by_question = {s["question_id"]: s for s in record["suggestions"]}
        assert by_question[questions["topic"]]["value"] == "bug"  # the other question's suggestion: untouched
        rating = by_question[questions["quality"]]
        assert isinstance(rating["value"], int) and rating["value"] in (1, 2, 3)
        metadata = record["metadata"]
        assert metadata["quality_model_version"] == "v0001" and metadata["quality_loss"] >= 0
        assert "loss" not in metadata  # the label question's names stay free for its own worker
        expected = "3" if example.id == "e0" else str(1 + index % 3)  # the annotator's rating wins over the rater's
        assert metadata["quality_reference_label"] == expected, example.id
        # the ordinal view: the model's mean rating, and its mean distance from the rating under review, which is
        # at least the distance of that mean (Jensen) and at most the farthest rating
        assert 1 <= metadata["quality_expected_rating"] <= 3
        distance = abs(metadata["quality_expected_rating"] - int(expected))
        assert distance - 1e-3 <= metadata["quality_rating_error"] <= 2, (example.id, metadata)
    guidelines = httpx.get(f"{stack_settings.api_url}/api/v1/datasets/{dataset.id}",
                           headers={"X-Argilla-Api-Key": stack_settings.api_key.get_secret_value()},
                           timeout=30).json()["guidelines"]
    assert "`quality_loss`, **descending**" in guidelines and "sort by `quality_rating_error`" in guidelines

    published = _cli(stack_settings, dataset_name, tmp_path, "publish", "--directory", str(tmp_path / "out"),
                     question="quality")
    assert published.returncode == 0 and "Traceback" not in published.stderr, published.stderr[-3000:]
    table = datasets.load_dataset(str(tmp_path / "out"), cache_dir=str(tmp_path / "hf-cache"))["train"]
    assert table.features["label"] == datasets.Value("int32")  # the ratings themselves, not class indices
    labels = {row["id"]: (row["label"], row["original_label"]) for row in table}
    assert labels == {example.id: (3 if example.id == "e0" else 1 + index % 3, 1 + index % 3)
                      for index, example in enumerate(examples)}
