"""The local stack is a real Argilla: datasets, records, UI-path annotations, search, restarts."""

from __future__ import annotations

import argilla as rg
import pytest

from tests.integration.annotator import search_sorted_by_metadata, submit_label
from worker.binding import WORKER_MARKS
from worker.demo_data import LabelledText
from worker.errors import LabelSetMismatchError
from worker.gateway import ArgillaGateway
from worker.gateway.schema import WORKER_METADATA_TYPES, worker_metadata
from worker.records import Prediction

LABELS = ("negative", "positive")
QUESTION = "label"  # the question of a dataset the worker creates without [argilla] question


@pytest.fixture
def gateway(local_argilla, stack_settings, dataset_name):
    return ArgillaGateway(
        api_url=stack_settings.api_url,
        api_key=stack_settings.api_key.get_secret_value(),
        dataset_name=dataset_name,
        workspace=stack_settings.workspace,
    )


def _records_with_scores(count: int) -> list[rg.Record]:
    return [
        rg.Record(
            id=f"rec-{i}",
            fields={"text": f"snippet number {i}"},
            metadata={"loss": (i * 7 % count) / 3.0, "original_label": LABELS[i % 2], "model_version": "v1"},
            suggestions=[rg.Suggestion(QUESTION, LABELS[(i + 1) % 2], score=0.5 + i / (4 * count),
                                       agent="model-v1")],
        )
        for i in range(count)
    ]


def _with_score_properties(gateway) -> rg.Dataset:
    """A dataset the worker created, with the properties its first push of ``_records_with_scores``' values would
    add (records logged with the SDK here carry them)."""
    dataset = gateway.ensure_dataset(LABELS)
    for name, kind in (("loss", "float"), ("original_label", "terms"), ("model_version", "terms")):
        gateway.client.http_client.post(f"/api/v1/datasets/{dataset.id}/metadata-properties", json={
            "name": name, "title": name, "visible_for_annotators": True, "settings": {"type": kind}}
        ).raise_for_status()
    return gateway.client.datasets(name=gateway.dataset_name, workspace=gateway.workspace)


def _property_names(gateway) -> list[str]:
    items = gateway.client.http_client.get(f"/api/v1/me/datasets/{gateway.dataset_id()}/metadata-properties")
    return [item["name"] for item in items.json()["items"]]


def test_the_worker_adds_a_jobs_metadata_properties_when_it_first_writes_them(gateway, stack_settings):
    """An empty entry in the UI's sort menu helps nobody: a dataset the worker creates has none of its properties;
    a job's first write adds that job's (with the marks a later binding recognises the worker's names by), in the
    guidelines' order — ingest's original label, then the scores (a plugin's after them), then ``copies`` when that
    job first runs."""
    def of(job: str) -> list[str]:
        return [spec.name for spec in worker_metadata() if spec.written_by == job]

    dataset = gateway.ensure_dataset(LABELS)
    assert list(dataset.settings.questions[QUESTION].labels) == list(LABELS)
    assert "sort by the metadata property `loss`, **descending**" in dataset.settings.guidelines
    assert _property_names(gateway) == []

    gateway.log_labelled_texts([LabelledText("a", "great film", "positive"),
                                LabelledText("b", "dull film", "negative")])
    assert _property_names(gateway) == [*WORKER_MARKS, *of("original")]

    gateway.expect_float_metadata(["variation_ratio"])  # a plugin's score: created with its first values too
    assert "variation_ratio" not in _property_names(gateway)
    current = {record.record_id: record for record in gateway.pull()}
    scores = {"loss": 0.2, "confidence": 0.8, "model_version": "model-v1", "variation_ratio": 0.25}
    report = gateway.push([Prediction(record_id, "positive", 0.8, "model-v1", scores) for record_id in current],
                          current=current)
    assert report.ok and report.sent == 2
    assert _property_names(gateway) == [*WORKER_MARKS, *of("original"),
                                        *(name for name in of("score") if name not in WORKER_MARKS), "variation_ratio"]
    assert [record["metadata"]["variation_ratio"] for record in search_sorted_by_metadata(
        stack_settings, dataset.id, "variation_ratio")] == [0.25, 0.25]  # sortable: a float property

    current = {record.record_id: record for record in gateway.pull()}
    assert gateway.push_metadata({"a": {"copies": 1}, "b": {"copies": 1}}, current=current).ok
    assert _property_names(gateway)[-3:] == of("copies") == ["copies", "copy_group", "copies_disagree"]
    assert [record["metadata"]["copies"] for record in search_sorted_by_metadata(stack_settings, dataset.id, "copies")
            ] == [1, 1]  # sortable
    assert not {*of("oof"), *of("cold-start")} & set(_property_names(gateway))
    refused = gateway.push_metadata({"a": {"labels_to_add": "x"}}, current=current)  # a multi-label question's
    assert refused.rejected == {"a": "metadata ['labels_to_add'] are not properties of the dataset"}
    assert "labels_to_add" in WORKER_METADATA_TYPES and "labels_to_add" not in _property_names(gateway)


def test_ensure_dataset_again_is_a_no_op_and_a_label_conflict_names_both_sets(gateway):
    first = gateway.ensure_dataset(LABELS)
    second = gateway.ensure_dataset(LABELS)
    assert first.id == second.id

    with pytest.raises(LabelSetMismatchError) as error:
        gateway.ensure_dataset(("negative", "neutral", "positive"))
    assert "['negative', 'positive']" in str(error.value)
    assert "['negative', 'neutral', 'positive']" in str(error.value)


def test_records_keep_their_suggestions_and_metadata(gateway):
    dataset = _with_score_properties(gateway)
    dataset.records.log(_records_with_scores(6))

    stored = {record.id: record for record in dataset.records(with_suggestions=True)}
    assert set(stored) == {f"rec-{i}" for i in range(6)}
    suggestion = stored["rec-3"].suggestions[QUESTION]
    assert (suggestion.value, suggestion.agent) == ("negative", "model-v1")
    assert suggestion.score == pytest.approx(0.5 + 3 / 24)
    assert stored["rec-3"].metadata["loss"] == pytest.approx(3 * 7 % 6 / 3.0)


def test_gateway_ingest_keeps_the_original_label_out_of_the_responses(gateway):
    dataset = gateway.ensure_dataset(LABELS)
    written = gateway.log_labelled_texts([LabelledText("a", "great film", "positive"),
                                          LabelledText("b", "dull film", "negative")])

    assert (written.created, written.updated, written.unchanged, written.failed) == (2, 0, 0, {})
    stored = {record.id: record for record in dataset.records(with_suggestions=True, with_responses=True)}
    assert stored["a"].metadata["original_label"] == "positive"
    assert stored["a"].suggestions[QUESTION].agent == "original"
    assert len(stored["a"].responses) == 0


def test_a_dataset_the_worker_creates_takes_the_configured_field_and_question_names(
        local_argilla, stack_settings, dataset_name):
    named = ArgillaGateway(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value(),
                           dataset_name=dataset_name, workspace=stack_settings.workspace,
                           fields=["review"], question="verdict")
    dataset = named.ensure_dataset(LABELS)
    named.log_labelled_texts([LabelledText("a", "great film", "positive")])

    assert [field.name for field in dataset.settings.fields] == ["review"]
    assert [question.name for question in dataset.settings.questions] == ["verdict"]
    (stored,) = list(dataset.records(with_suggestions=True))
    assert stored.fields["review"] == "great film" and stored.suggestions["verdict"].value == "positive"


def test_ui_submission_is_found_by_the_submitted_filter(gateway, stack_settings):
    dataset = _with_score_properties(gateway)
    dataset.records.log(_records_with_scores(4))
    target = next(record for record in dataset.records() if record.id == "rec-2")

    created = submit_label(stack_settings, target._server_id, "negative")

    assert created["status"] == "submitted"
    submitted = list(dataset.records(query=rg.Query(filter=rg.Filter(("response.status", "==", "submitted"))),
                                     with_responses=True))
    assert [record.id for record in submitted] == ["rec-2"]
    assert [response.value for response in submitted[0].responses] == ["negative"]


def test_search_endpoint_sorts_by_a_metadata_property(gateway, stack_settings):
    dataset = _with_score_properties(gateway)
    dataset.records.log(_records_with_scores(9))

    descending = [record["metadata"]["loss"]
                  for record in search_sorted_by_metadata(stack_settings, dataset.id, "loss")]
    ascending = [record["metadata"]["loss"]
                 for record in search_sorted_by_metadata(stack_settings, dataset.id, "loss", order="asc")]

    assert len(descending) == 9
    assert descending == sorted(descending, reverse=True)
    assert ascending == sorted(ascending)


def test_annotation_survives_a_restart_of_the_stack(gateway, stack_settings, local_argilla):
    dataset = _with_score_properties(gateway)
    dataset.records.log(_records_with_scores(3))
    target = next(record for record in dataset.records() if record.id == "rec-1")
    submit_label(stack_settings, target._server_id, "positive")

    ui_copies = local_argilla.scratch_dir / "server"
    before = list(ui_copies.iterdir())
    local_argilla.restart()

    # argilla-server copies its UI to a new temporary directory at each start: the stack's own, the last one removed
    after = list(ui_copies.iterdir())
    assert len(before) == len(after) == 1 and before != after and (after[0] / "statics" / "index.html").is_file()
    dataset = gateway.client.datasets(name=gateway.dataset_name, workspace=gateway.workspace)
    submitted = list(dataset.records(query=rg.Query(filter=rg.Filter(("response.status", "==", "submitted"))),
                                     with_responses=True))
    assert [record.id for record in submitted] == ["rec-1"]
    assert [response.value for response in submitted[0].responses] == ["positive"]
    sorted_records = search_sorted_by_metadata(stack_settings, dataset.id, "loss")
    assert len(sorted_records) == 3
