"""Copies of one text in a team's own dataset (made with the plain SDK), on the real local Argilla: the `copies`
command marks them (near copies too: a templated ticket with another order number) — `copies`, `copy_group` (texts
whose copies disagree first), `copies_disagree` — through the CLI; a record whose copy is deleted gets 0 on the next
run; nothing the team wrote changes."""

from __future__ import annotations

import os

import argilla as rg
import httpx
import pytest

from tests.integration.annotator import search_sorted_by_metadata, submit_label
from tests.integration.cli import run_worker
from tests.integration.sdk import create_with_sdk, stored_records

QUESTION = "intent"
LABELS = ("account", "billing", "other")
AGENT = "rules-v2"
# record id -> (text, the other team's suggested label or None)
RECORDS = {
    "a1": ("Reset my password please", "account"),
    "a2": ("RESET my  password please ", "billing"),  # the same text, another label: one of them is wrong
    "a3": ("reset my password please", "account"),
    "b1": ("Where is my invoice?", "billing"),
    "b2": ("where is my invoice?", "billing"),
    "d1": ("I want a refund", None),  # copies nobody labelled: no disagreement
    "d2": ("i want a refund", None),
    "t1": ("Order 48213 has not arrived yet, tracking shows nothing since Monday", "billing"),  # near copies:
    "t2": ("Order 90577 has not arrived yet, tracking shows nothing since Monday", "billing"),  # another number
    **{f"c{i}": (text, label) for i, (text, label) in enumerate([
        ("The app crashes on start", "other"), ("Change my email address", "account"),
        ("Why was I charged twice?", "billing"), ("Great service, thanks", "other"),
        ("My password expired yesterday, how can I change it", "account"), ("Invoice for March missing", "billing")])},
}


@pytest.fixture
def their_tickets(local_argilla, stack_settings, dataset_name):
    dataset = create_with_sdk(stack_settings, dataset_name, lambda: rg.Settings(
        fields=[rg.TextField(name="message")], questions=[rg.LabelQuestion(name=QUESTION, labels=list(LABELS))],
        metadata=[rg.TermsMetadataProperty(name="channel")]))
    dataset.records.log([
        rg.Record(id=record_id, fields={"message": text}, metadata={"channel": "email"},
                  suggestions=[rg.Suggestion(question_name=QUESTION, agent=AGENT, value=label, score=0.8)]
                  if label else [])
        for record_id, (text, label) in RECORDS.items()])
    return dataset


def _cli(stack_settings, dataset_name, tmp_path, *args):
    env = {**os.environ, "ARGILLA_WORKER_ARGILLA__API_KEY": stack_settings.api_key.get_secret_value(),
           "ARGILLA_WORKER_ARGILLA__API_URL": stack_settings.api_url,
           "ARGILLA_WORKER_ARGILLA__DATASET": dataset_name,
           "ARGILLA_WORKER_ARGILLA__WORKSPACE": stack_settings.workspace,
           "ARGILLA_WORKER_REGISTRY__PATH": str(tmp_path / "registry"),
           "ARGILLA_WORKER_STATE_DIR": str(tmp_path / "state")}
    return run_worker(args, env)


def _marks(record: dict) -> tuple:
    metadata = record["metadata"] or {}
    return metadata.get("copies"), metadata.get("copy_group"), metadata.get("copies_disagree")


def test_copies_of_one_text_are_marked_disagreeing_ones_first_and_a_deleted_copy_unmarks_the_other(
        their_tickets, stack_settings, dataset_name, tmp_path):
    before = stored_records(stack_settings, their_tickets.id)
    submit_label(stack_settings, before["a3"]["id"], "account", question=QUESTION)  # an annotator confirmed a3
    before = stored_records(stack_settings, their_tickets.id)

    found = _cli(stack_settings, dataset_name, tmp_path, "copies")

    assert found.returncode == 0 and "Traceback" not in found.stderr, found.stderr[-3000:]
    assert "9 of 15 records share 4 texts (near copies included: copies.similarity 0.6); 1 of those texts carry " \
        "different labels (e.g. records a1, a2, a3)" in found.stdout, found.stdout
    stored = stored_records(stack_settings, their_tickets.id)
    assert {record_id: _marks(stored[record_id]) for record_id in ("a1", "a2", "a3")} == {
        "a1": (2, 1, 1), "a2": (2, 1, 2), "a3": (2, 1, 1)}  # the disagreeing text is group 1
    groups = {_marks(stored["b1"])[1], _marks(stored["d1"])[1], _marks(stored["t1"])[1]}
    assert _marks(stored["b1"]) == _marks(stored["b2"]) and _marks(stored["b1"])[::2] == (1, 0)
    assert _marks(stored["d1"]) == _marks(stored["d2"]) and _marks(stored["d1"])[::2] == (1, 0)
    assert _marks(stored["t1"]) == _marks(stored["t2"]) and _marks(stored["t1"])[::2] == (1, 0)
    assert groups == {2, 3, 4}
    assert all(_marks(stored[f"c{i}"]) == (None, None, None) for i in range(6))
    for record_id, record in before.items():  # theirs is untouched
        assert stored[record_id]["responses"] == record["responses"]
        assert stored[record_id]["suggestions"] == record["suggestions"]
        assert stored[record_id]["metadata"]["channel"] == "email"
    listed = search_sorted_by_metadata(stack_settings, their_tickets.id, "copy_group", order="asc")
    assert {record["external_id"] for record in listed[:3]} == {"a1", "a2", "a3"}

    headers = {"X-Argilla-Api-Key": stack_settings.api_key.get_secret_value()}
    httpx.delete(f"{stack_settings.api_url}/api/v1/records/{stored['b2']['id']}", headers=headers,
                 timeout=30).raise_for_status()
    again = _cli(stack_settings, dataset_name, tmp_path, "copies")

    assert again.returncode == 0, again.stderr[-3000:]
    assert "7 of 14 records share 3 texts" in again.stdout, again.stdout
    after = stored_records(stack_settings, their_tickets.id)
    assert _marks(after["b1"]) == (0, 0, 0)
    assert _marks(after["a2"]) == (2, 1, 2)
