"""Pull, push and corrections against the real local Argilla (no HTTP mocks)."""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import replace

import pytest

from tests.integration.annotator import (
    create_annotator,
    raw_responses,
    search_sorted_by_metadata,
    submit_label,
)
from worker.demo_data import LabelledText
from worker.errors import ArgillaUnavailableError
from worker.gateway import ArgillaGateway
from worker.gateway.client import WATERMARK_OVERLAP, RetryPolicy
from worker.gateway.sync_state import SyncState
from worker.local_argilla.stack import _terminate_group
from worker.records import Prediction

LABELS = ("negative", "positive")
TEXTS = ["a moving film", "dull and lifeless", "funny and smart", "a tedious mess", "charming", "far too long"]


@pytest.fixture
def gateway(local_argilla, stack_settings, dataset_name):
    gateway = ArgillaGateway(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value(),
                             dataset_name=dataset_name, workspace=stack_settings.workspace)
    gateway.ensure_dataset(LABELS)
    gateway.log_labelled_texts(LabelledText(f"r{i}", text, LABELS[i % 2]) for i, text in enumerate(TEXTS))
    return gateway


def _predictions(version: str, *, loss_offset: float = 0.0) -> list[Prediction]:
    return [
        Prediction(f"r{i}", LABELS[(i + 1) % 2], score=0.6 + i / 20, agent=version,
                   metadata={"loss": i + loss_offset, "bald": 0.01 * i, "predicted_label": LABELS[(i + 1) % 2],
                             "model_version": version, "disagreement": "yes"})
        for i in range(len(TEXTS))
    ]


def _by_id(records) -> dict:
    return {record.record_id: record for record in records}


def test_ingest_pull_push_round_trip(gateway, stack_settings):
    pulled = _by_id(gateway.pull())
    assert set(pulled) == {f"r{i}" for i in range(6)}
    assert pulled["r1"].suggestion.agent == "original"
    assert pulled["r1"].metadata == {"original_label": "positive", "original_agent": "original"}

    report = gateway.push(_predictions("model-v1"), current=pulled)

    assert report.ok and report.sent == 6
    after = _by_id(gateway.pull())
    assert after["r1"].suggestion.value == "negative" and after["r1"].suggestion.agent == "model-v1"
    assert after["r1"].suggestion.score == pytest.approx(0.65)
    assert after["r1"].metadata["original_label"] == "positive"  # merged, not replaced
    assert after["r1"].metadata["loss"] == pytest.approx(1.0)
    ordered = [r["external_id"] for r in search_sorted_by_metadata(stack_settings, gateway.dataset_id(), "loss")]
    assert ordered == [f"r{i}" for i in reversed(range(6))]


def test_pushing_twice_sends_nothing_new_and_never_touches_responses(gateway, stack_settings):
    pulled = _by_id(gateway.pull())
    submit_label(stack_settings, pulled["r0"].server_id, "positive")
    submit_label(stack_settings, pulled["r3"].server_id, "negative", status="draft")
    dataset_id = gateway.dataset_id()
    before = raw_responses(stack_settings, dataset_id)

    first = gateway.push(_predictions("model-v1"), current=_by_id(gateway.pull()))
    second = gateway.push(_predictions("model-v1"), current=_by_id(gateway.pull()))

    assert (first.sent, second.sent, second.unchanged) == (6, 0, 6)
    assert raw_responses(stack_settings, dataset_id) == before
    assert len(before["r0"]) == 1 and before["r3"][0]["status"] == "draft"


def _scored(version: str, submitted: int = 0, only: str | None = None) -> list[Prediction]:
    """Predictions as the worker writes them, with the number of submitted responses they were computed with."""
    return [Prediction(p.record_id, p.label, p.score, p.agent, {**p.metadata, "submitted_responses": submitted})
            for p in _predictions(version) if only is None or p.record_id == only]


def test_an_ui_submission_is_seen_by_the_next_incremental_pull(gateway, stack_settings, tmp_path):
    """The record was scored before its review (``submitted_responses`` = 0): the search index does not
    date a response, the worker's own metadata tells a first review apart. It stays pending until the
    worker has written values computed with it."""
    gateway.prepare()
    assert gateway.push(_scored("model-v1"), current=_by_id(gateway.pull())).sent == 6
    state = SyncState(tmp_path / "sync.json")
    assert len(list(gateway.pull_incremental(state))) == 6  # first pull: everything
    assert state.watermark(gateway.dataset_key) is not None
    target = _by_id(gateway.pull())["r4"]

    submit_label(stack_settings, target.server_id, "negative")
    changed = list(gateway.pull_incremental(state))
    still_pending = list(gateway.pull_incremental(state))
    gateway.push(_scored("model-v1", submitted=1, only="r4"), current=_by_id(changed))
    own_push = list(gateway.pull_incremental(state))  # the worker's write changed the record: read once
    unchanged_since = list(gateway.pull_incremental(state))

    assert [record.record_id for record in changed] == ["r4"]
    assert changed[0].responses[0].value == "negative" and changed[0].responses[0].status == "submitted"
    assert [record.record_id for record in still_pending] == ["r4"]
    assert [record.record_id for record in own_push] == ["r4"]
    assert unchanged_since == []


def test_a_second_annotators_response_is_caught_by_reconciliation_not_by_the_plain_poll(gateway, stack_settings,
                                                                                      tmp_path):
    """A response that does not change the record's status leaves no trace the plain poll can find (it
    reads only updated records and first reviews); the reconciling poll finds it among the annotated
    records, and the next reconciliation reads nothing again."""
    gateway.prepare()
    pulled = _by_id(gateway.pull())
    submit_label(stack_settings, pulled["r2"].server_id, "negative")
    gateway.push(_scored("model-v1"), current=_by_id(gateway.pull()))
    gateway.push(_scored("model-v1", submitted=1, only="r2"), current=_by_id(gateway.pull()))
    time.sleep(WATERMARK_OVERLAP.total_seconds() + 0.5)  # a later change moves the watermark past r2 and the overlap
    gateway.push(_scored("model-v2", only="r5"), current=_by_id(gateway.pull()))
    state = SyncState(tmp_path / "sync.json")
    assert len(list(gateway.pull_incremental(state, reconcile=True))) == 6
    second = create_annotator(stack_settings, gateway.client, f"annotator-{uuid.uuid4().hex[:8]}")
    submit_label(stack_settings, pulled["r2"].server_id, "positive", headers=second)
    time.sleep(3.5)  # the reconciliation's mark: the server's Date header (to the second, refreshed once a second)
    # less one second: a response in the last ~3 s before a reconciliation is read again by the next one

    plain = list(gateway.pull_incremental(state))
    reconciled = list(gateway.pull_incremental(state, reconcile=True))
    again = list(gateway.pull_incremental(state, reconcile=True))

    assert plain == []
    assert [record.record_id for record in reconciled] == ["r2"]
    assert sorted(r.value for r in reconciled[0].responses) == ["negative", "positive"]
    assert again == []


def test_a_pull_pages_past_its_page_size_with_records_inserted_meanwhile(gateway):
    """Keyset paging on the real server: records logged between two pages are read at the end, none twice."""
    pages = gateway.pull(page_size=4)
    first = [next(pages) for _ in range(4)]
    gateway.log_labelled_texts(LabelledText(f"late{i}", f"a late text {i}", LABELS[0]) for i in range(5))
    read = [record.record_id for record in first + list(pages)]
    assert len(read) == len(set(read)) == 11
    assert set(read) == {f"r{i}" for i in range(6)} | {f"late{i}" for i in range(5)}
    assert read[-5:] == [f"late{i}" for i in range(5)]


def test_non_finite_values_are_not_sent_and_the_rest_lands(gateway):
    pulled = _by_id(gateway.pull())
    predictions = [Prediction("r0", "negative", 0.9, "model-v1", {"loss": math.nan, "entropy": 0.3}),
                   Prediction("r1", "negative", 0.9, "model-v1", {"loss": 2.0, "bald": math.inf})]

    report = gateway.push(predictions, current=pulled)

    assert report.ok and report.sent == 2
    after = _by_id(gateway.pull())
    assert "loss" not in after["r0"].metadata and after["r0"].metadata["entropy"] == pytest.approx(0.3)
    assert "bald" not in after["r1"].metadata and after["r1"].metadata["loss"] == pytest.approx(2.0)


def test_bad_predictions_are_rejected_by_name_and_the_others_land(gateway):
    pulled = _by_id(gateway.pull())
    predictions = [Prediction("r0", "neutral", 0.5, "v1", {}),
                   Prediction("r1", "negative", 1.5, "v1", {}),
                   Prediction("r2", "negative", 0.5, "v1", {"colour": "red"}),
                   Prediction("ghost", "negative", 0.5, "v1", {}),
                   Prediction("r3", "negative", 0.5, "v1", {"loss": 1.0})]

    report = gateway.push(predictions, current=pulled)

    assert report.sent == 1
    assert "label 'neutral' is not one of" in report.rejected["r0"]
    assert "score 1.5 is not in [0, 1]" in report.rejected["r1"]
    assert "['colour'] are not properties" in report.rejected["r2"]
    assert "not in the dataset" in report.rejected["ghost"]


def test_a_record_deleted_after_the_pull_is_isolated_and_the_rest_of_its_batch_lands(gateway):
    """The server refuses a whole bulk upsert (422) for one record it no longer has: the batch is split."""
    pulled = _by_id(gateway.pull())
    gateway.client.http_client.delete(f"/api/v1/records/{pulled['r2'].server_id}").raise_for_status()

    report = gateway.push(_predictions("model-v3"), current=pulled)

    assert list(report.failed) == ["r2"] and "422" in report.failed["r2"]
    assert report.sent == len(pulled) - 1 and sorted(report.sent_ids) == sorted(set(pulled) - {"r2"})
    after = _by_id(gateway.pull())
    assert "r2" not in after
    assert {record.metadata["model_version"] for record in after.values()} == {"model-v3"}


def _another_writer_sets(gateway, server_id: str, metadata: dict) -> None:
    """What the team's script (or the worker serving another question) does meanwhile: replace the record's
    metadata with ``metadata`` through the bulk endpoint, as any Argilla client writes it."""
    gateway.client.http_client.put(f"/api/v1/datasets/{gateway.dataset_id()}/records/bulk",
                                   json={"items": [{"id": server_id, "metadata": metadata}]}).raise_for_status()


def _add_property(gateway, name: str, kind: str) -> None:
    gateway.client.http_client.post(f"/api/v1/datasets/{gateway.dataset_id()}/metadata-properties", json={
        "name": name, "title": name, "visible_for_annotators": True, "settings": {"type": kind}}).raise_for_status()


def test_what_another_writer_set_after_the_pull_is_kept_by_the_push(gateway):
    """The server replaces a record's metadata as a whole: a push built on the copy pulled before scoring would
    put back what another writer set since (a property of theirs, a value another question's worker wrote). The
    push merges into each record as the server holds it just before sending; a record it cannot find then (deleted
    meanwhile) is written from its pulled copy and refused alone, as before."""
    _add_property(gateway, "team", "terms")
    pulled = _by_id(gateway.pull())
    for record_id in ("r1", "r4"):
        _another_writer_sets(gateway, pulled[record_id].server_id, {**pulled[record_id].metadata, "team": "billing"})

    report = gateway.push(_predictions("model-v1"), current=pulled)

    assert report.ok and report.sent == len(pulled)
    after = _by_id(gateway.pull())
    assert {record_id: record.metadata.get("team") for record_id, record in after.items()} == {
        f"r{i}": "billing" if i in (1, 4) else None for i in range(len(TEXTS))}
    assert {record.metadata["model_version"] for record in after.values()} == {"model-v1"}

    # the same for a metadata-only push (cold start ranks, copies): the team's newer value stays beside the worker's
    _another_writer_sets(gateway, after["r2"].server_id, {**after["r2"].metadata, "team": "refunds"})
    report = gateway.push_metadata({record_id: {"bald": 0.5} for record_id in after}, current=after)

    assert report.ok and report.sent == len(after)
    final = _by_id(gateway.pull())
    assert (final["r1"].metadata["team"], final["r2"].metadata["team"], final["r2"].metadata["bald"]) == (
        "billing", "refunds", 0.5)
    assert final["r2"].metadata["model_version"] == "model-v1"


def test_a_worker_property_the_team_deleted_is_created_again_by_the_next_job(gateway):
    """The dataset's settings were read once per gateway: a property deleted while the worker ran (its values then
    stored, but not sortable in the UI) stayed missing until a restart. Each job reads the properties again, and its
    first write creates the missing one."""
    gateway.prepare()
    gateway.push(_predictions("model-v1"), current=_by_id(gateway.pull()))
    http, dataset_id = gateway.client.http_client, gateway.dataset_id()

    def properties() -> dict[str, str]:
        items = http.get(f"/api/v1/me/datasets/{dataset_id}/metadata-properties").json()["items"]
        return {item["name"]: item["id"] for item in items}

    http.delete(f"/api/v1/metadata-properties/{properties()['loss']}").raise_for_status()
    assert "loss" not in properties()

    gateway.prepare()  # what every scoring job does first
    report = gateway.push(_predictions("model-v2", loss_offset=1.0), current=_by_id(gateway.pull()))

    assert report.ok and "loss" in properties()
    ordered = search_sorted_by_metadata_ids(gateway, "loss")
    assert ordered[:3] == ["r5", "r4", "r3"]  # sortable again, highest loss first


def search_sorted_by_metadata_ids(gateway, name: str) -> list[str]:
    body = {"sort": [{"scope": {"entity": "metadata", "metadata_property": name}, "order": "desc"}]}
    response = gateway.client.http_client.post(f"/api/v1/datasets/{gateway.dataset_id()}/records/search", json=body,
                                               params={"limit": 50})
    response.raise_for_status()
    return [item["record"]["external_id"] for item in response.json()["items"]]


def test_concurrent_bulk_requests_land_every_record_once_merged_into_its_current_copy(gateway):
    """``scoring.push_concurrency`` > 1: the writes are cut into that many requests sent at once (here 3 of 2
    records), each read again and merged like a single one."""
    pulled = _by_id(gateway.pull())
    _add_property(gateway, "bald", "float")  # as the worker's first write of it does
    _another_writer_sets(gateway, pulled["r5"].server_id, {**pulled["r5"].metadata, "bald": 0.25})
    predictions = [replace(p, metadata={key: value for key, value in p.metadata.items() if key != "bald"})
                   for p in _predictions("model-v2")]

    report = gateway.push(predictions, current=pulled, concurrency=3)

    assert report.ok and report.sent == len(pulled) and sorted(report.sent_ids) == sorted(pulled)
    after = _by_id(gateway.pull())
    assert {record_id: record.metadata["loss"] for record_id, record in after.items()} == {
        p.record_id: p.metadata["loss"] for p in predictions}
    assert after["r5"].metadata["bald"] == 0.25 and "bald" not in after["r0"].metadata
    assert {record.suggestion.agent for record in after.values()} == {"model-v2"}
    again = gateway.push(predictions, current=after, concurrency=3)
    assert (again.sent, again.unchanged) == (0, len(pulled))


def test_a_stopped_server_is_retried_then_reported_and_a_rerun_converges(gateway, local_argilla):
    pulled = _by_id(gateway.pull())
    gateway.retry = RetryPolicy(attempts=3, initial_wait_s=0.05, max_wait_s=0.2)
    gateway.dataset_id()  # resolved while the server is up
    _terminate_group(local_argilla._read_pids()["server"]["pid"])
    try:
        with pytest.raises(ArgillaUnavailableError, match="unreachable after 3 attempts") as error:
            gateway.push(_predictions("model-v2"), current=pulled, batch_size=4)
    finally:
        local_argilla.up()
    assert error.value.status is None  # no answer: the batch is not split into more doomed requests

    rerun = gateway.push(_predictions("model-v2"), current=_by_id(gateway.pull()))
    again = gateway.push(_predictions("model-v2"), current=_by_id(gateway.pull()))
    assert (rerun.sent, again.sent, again.unchanged) == (6, 0, 6)


def test_corrections_take_the_majority_and_report_ties(gateway, stack_settings):
    pulled = _by_id(gateway.pull())
    second_annotator = create_annotator(stack_settings, gateway.client, f"annotator-{uuid.uuid4().hex[:8]}")
    submit_label(stack_settings, pulled["r1"].server_id, "negative")  # original: positive
    submit_label(stack_settings, pulled["r1"].server_id, "negative", headers=second_annotator)
    submit_label(stack_settings, pulled["r2"].server_id, "negative")  # original: negative → a confirmation
    submit_label(stack_settings, pulled["r3"].server_id, "negative")  # tie
    submit_label(stack_settings, pulled["r3"].server_id, "positive", headers=second_annotator)
    submit_label(stack_settings, pulled["r5"].server_id, "negative", status="draft")

    corrections, ties = gateway.corrections()

    by_id = {correction.record_id: correction for correction in corrections}
    assert set(by_id) == {"r1", "r2"}
    assert (by_id["r1"].label, by_id["r1"].original_label, by_id["r1"].num_annotators) == ("negative", "positive", 2)
    assert by_id["r1"].is_correction and not by_id["r2"].is_correction
    assert [(tie.record_id, tie.tied_labels) for tie in ties] == [("r3", ("negative", "positive"))]
