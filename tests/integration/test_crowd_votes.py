"""Every annotator's vote on the real local Argilla: a dataset made with the plain SDK (its own field and
question names, task distribution of 3 submissions per record), five real annotator accounts submitting
through the UI's endpoint — three reliable, two sloppy. The worker weighs the votes: where the two sloppy
annotators outvote a reliable one the published label is the reliable one's, a tie between a reliable and a sloppy
one goes to the reliable one (``consensus.ties = "resolve"``, the default), every scored record gets
``needs_another_label`` (that tie above every unanimous record), the team lead's status names each annotator's
quality, and no response changes."""

from __future__ import annotations

import uuid

import argilla as rg
import datasets
import pytest

from tests.integration.annotator import create_annotator, raw_responses, submit_label
from tests.tiny_models import save_tiny_classifier
from tests.training_data import LABELS, sentiment_examples
from worker.config import load_settings
from worker.jobs import Services, estimate_crowd, publish_job, score_job, train_job
from worker.status import StatusBook

QUESTION = "tone"
RELIABLE, SLOPPY = ("ann_a", "ann_b", "ann_c"), ("ann_s", "ann_t")
PANELS = [("ann_a", "ann_b", "ann_s"), ("ann_b", "ann_c", "ann_t"), ("ann_a", "ann_c", "ann_s"),
          ("ann_a", "ann_b", "ann_t"), ("ann_b", "ann_c", "ann_s"), ("ann_a", "ann_c", "ann_t")]
OUTVOTED = range(30, 34)  # both sloppy annotators wrong, one reliable annotator right
TIED = 34  # one reliable and one sloppy annotator disagree
UNLABELLED = range(35, 40)


def _flip(label: str) -> str:
    return LABELS[1 - LABELS.index(label)]


def _votes(truth: list[str]) -> dict[int, dict[str, str]]:
    """record index → {annotator: label}: sloppy annotators get every other record they see wrong."""
    votes: dict[int, dict[str, str]] = {}
    seen = dict.fromkeys(SLOPPY, 0)
    for index in range(30):
        votes[index] = {}
        for user in PANELS[index % len(PANELS)]:
            if user in SLOPPY:
                seen[user] += 1
                votes[index][user] = _flip(truth[index]) if seen[user] % 2 else truth[index]
            else:
                votes[index][user] = truth[index]
    for index in OUTVOTED:
        votes[index] = {"ann_s": _flip(truth[index]), "ann_t": _flip(truth[index]), "ann_a": truth[index]}
    votes[TIED] = {"ann_a": truth[TIED], "ann_s": _flip(truth[TIED])}
    return votes


@pytest.fixture
def crowd_dataset(local_argilla, stack_settings, dataset_name):
    """Made with the SDK only; responses submitted by five real accounts."""
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    settings = rg.Settings(fields=[rg.TextField(name="review")],
                           questions=[rg.LabelQuestion(name=QUESTION, labels=list(LABELS))],
                           distribution=rg.TaskDistribution(min_submitted=3))
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, settings=settings, client=client)
    dataset.create()
    examples = sentiment_examples(40)
    dataset.records.log([rg.Record(id=e.id, fields={"review": e.text}) for e in examples])
    suffix = uuid.uuid4().hex[:6]
    headers = {user: create_annotator(stack_settings, client, f"{user}_{suffix}") for user in (*RELIABLE, *SLOPPY)}
    server_ids = {r.id: str(r._server_id) for r in dataset.records}
    truth = [e.label for e in examples]
    user_ids = {}
    for index, votes in _votes(truth).items():
        for user, label in votes.items():
            response = submit_label(stack_settings, server_ids[examples[index].id], label, headers=headers[user],
                                    question=QUESTION)
            user_ids[response["user_id"]] = user
    return examples, user_ids


def test_weighted_votes_train_publish_and_rank_second_opinions(crowd_dataset, stack_settings, dataset_name,
                                                               tmp_path, monkeypatch):
    examples, user_ids = crowd_dataset
    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    settings = load_settings(
        argilla={"api_url": stack_settings.api_url, "dataset": dataset_name, "workspace": stack_settings.workspace,
                 "fields": ["review"], "question": QUESTION, "reference": "none"},
        training={"base_model": str(save_tiny_classifier(tmp_path / "base")), "epochs": 3, "batch_size": 8,
                  "max_length": 32, "device": "cpu", "min_annotated": 16},
        scoring={"samples": 4, "device": "cpu", "push_batch": 20},
        registry={"path": str(tmp_path / "registry")}, state_dir=str(tmp_path / "state"))
    services = Services(settings)
    dataset_id = services.gateway.dataset_id()
    responses_before = raw_responses(stack_settings, dataset_id)

    outcome = train_job(services)
    crowd = services.crowds.latest(services.gateway.dataset_key)
    score_job(services, full=True)
    publish_job(services, directory=tmp_path / "published")

    weights = {user_ids[user]: crowd.weight(user) for user in user_ids}
    assert min(weights[u] for u in RELIABLE) > 10 * max(weights[u] for u in SLOPPY), weights
    assert outcome.model.metrics["training"]["annotated"] == 35  # the tie is decided: trained on

    published = datasets.load_dataset(str(tmp_path / "published"), cache_dir=str(tmp_path / "hf-cache"))
    table = datasets.concatenate_datasets(list(published.values()))
    names = table.features["label"].names
    rows = {row["id"]: row for row in table}
    for index in OUTVOTED:  # the majority was wrong; the weighted consensus is the reliable annotator's label
        row = rows[examples[index].id]
        assert names[row["label"]] == examples[index].label
        assert row["annotator_agreement"] > 0.9 and 0 < row["label_confidence"] < 1
    tie = rows[examples[TIED].id]  # the reliable annotator's label, by the weights: published, marked as split
    assert names[tie["label"]] == examples[TIED].label and 0.5 < tie["annotator_agreement"] < 1

    pulled = {r.record_id: r for r in services.gateway.pull()}
    need = {index: pulled[e.id].metadata["needs_another_label"] for index, e in enumerate(examples)}
    unanimous = [need[i] for i in range(30) if len(set(_votes([e.label for e in examples])[i].values())) == 1]
    assert need[TIED] > max(unanimous)
    assert all(0 <= value <= 0.5 for value in need.values())
    assert {index for index in UNLABELLED} <= set(need)
    # every reviewed record now carries v0001's view, and v0001 was taught each of them: its answers there repeat
    # what it learnt, so the next estimate measures the model on none of them (and no view tips a tie)
    again = estimate_crowd(services, LABELS)
    assert pulled[examples[0].id].metadata["model_version"] == outcome.model.version
    assert all(stats.agreement_with_model is None for stats in again.annotators.values())
    assert again.model_weight == 1.0  # unmeasured: no reviewed record it was not taught yet

    book = StatusBook(tmp_path / "status.json", stack_settings.api_url)
    book.set_annotators(crowd)
    stats = book.status.annotators["annotators"]
    quality = {user_ids[user]: entry["quality"] for user, entry in stats.items()}
    assert min(quality[u] for u in RELIABLE) > max(quality[u] for u in SLOPPY)
    assert {entry["username"].rsplit("_", 1)[0] for entry in stats.values()} == {*RELIABLE, *SLOPPY}
    exposition = book.metrics.registry.get_sample_value("argilla_worker_annotator_weight",
                                                        {"annotator": next(iter(stats.values()))["username"]})
    assert exposition is not None

    assert raw_responses(stack_settings, dataset_id) == responses_before
