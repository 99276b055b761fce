"""A record the server cannot index must not stall the others, nor be forgotten, nor empty the search index.

argilla-server 2.8 accepts a discarded response without ``values`` (the POST answers 500 but the database
keeps it) and then crashes mapping that record for its search index: every bulk upsert of a batch holding
it commits to the database, answers 500, and leaves the index stale; ``search-engine reindex`` fails too.
The local stack's launcher fixes that mapping; ``upstream_stack`` below keeps the upstream behaviour
(``upstream_response_mapping``) to reproduce the failure on a real server.
"""

from __future__ import annotations

import json
import os
import signal

import argilla as rg
import httpx
import psutil
import pytest

from tests.integration.cli import run_worker
from tests.tiny_models import save_tiny_classifier
from worker.errors import ComponentStartError
from worker.local_argilla.settings import LocalArgillaSettings
from worker.local_argilla.stack import LocalArgilla
from worker.registry import ModelRegistry
from worker.training.register import register_model

COUNT = 24
POISON = "r05"


@pytest.fixture(scope="module")
def upstream_stack(stack_settings, tmp_path_factory):
    settings = LocalArgillaSettings(port=stack_settings.port + 10, search_port=stack_settings.search_port + 10,
                                    redis_port=stack_settings.redis_port + 10, server_venv=stack_settings.venv,
                                    server_version=stack_settings.server_version,
                                    state_dir=tmp_path_factory.mktemp("upstream-argilla"),
                                    upstream_response_mapping=True)
    stack = LocalArgilla(settings)
    try:
        stack.up()
        yield stack
    finally:  # also when up fails half-way (a port taken): nothing it started is left running
        stack.down()


def _headers(settings: LocalArgillaSettings) -> dict[str, str]:
    return {"X-Argilla-Api-Key": settings.api_key.get_secret_value()}


def _dataset_with_a_valueless_response(settings: LocalArgillaSettings, name: str) -> tuple[rg.Dataset, str]:
    """The dataset, and the server id of the record with the discarded response without values."""
    client = rg.Argilla(api_url=settings.api_url, api_key=settings.api_key.get_secret_value())
    dataset = rg.Dataset(name=name, workspace=settings.workspace, client=client, settings=rg.Settings(
        fields=[rg.TextField(name="text")],
        questions=[rg.LabelQuestion(name="label", labels=["negative", "positive"])])).create()
    dataset.records.log([rg.Record(id=f"r{i:02d}",
                                   fields={"text": f"review number {i}: {'great' if i % 2 else 'dull'}"})
                         for i in range(COUNT)])
    poison = next(record for record in dataset.records() if record.id == POISON)
    httpx.post(f"{settings.api_url}/api/v1/records/{poison._server_id}/responses", json={"status": "discarded"},
               headers=_headers(settings), timeout=30)  # upstream answers 500 here, yet the database keeps it
    stored = httpx.get(f"{settings.api_url}/api/v1/records/{poison._server_id}", headers=_headers(settings)).json()
    assert [(r["status"], r["values"]) for r in stored["responses"]] == [("discarded", None)]
    return dataset, str(poison._server_id)


def _indexed_with(settings: LocalArgillaSettings, dataset_id, version: str) -> set[str]:
    """External ids the search index (what the UI filters on) has with metadata model_version = version."""
    body = {"filters": {"and": [{"type": "terms", "scope": {"entity": "metadata", "metadata_property": "model_version"},
                                 "values": [version]}]}}
    response = httpx.post(f"{settings.api_url}/api/v1/datasets/{dataset_id}/records/search", json=body,
                          params={"limit": 1000}, headers=_headers(settings), timeout=30)
    response.raise_for_status()
    return {item["record"]["external_id"] for item in response.json()["items"]}


def _kill_search(stack: LocalArgilla) -> None:
    """kill -9 the stack's search engine and wait until it is gone: the signal is delivered asynchronously,
    and an ``up`` that still sees the dying process would not restart it."""
    process = psutil.Process(stack._read_pids()["search"]["pid"])
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def _cli(settings: LocalArgillaSettings, name: str, tmp_path, *args):
    env = {**os.environ, "ARGILLA_WORKER_ARGILLA__API_KEY": settings.api_key.get_secret_value(),
           "ARGILLA_WORKER_ARGILLA__API_URL": settings.api_url, "ARGILLA_WORKER_ARGILLA__DATASET": name,
           "ARGILLA_WORKER_ARGILLA__WORKSPACE": settings.workspace,
           "ARGILLA_WORKER_REGISTRY__PATH": str(tmp_path / "registry"),
           "ARGILLA_WORKER_STATE_DIR": str(tmp_path / "state"),
           "ARGILLA_WORKER_SCORING__DEVICE": "cpu", "ARGILLA_WORKER_SCORING__SAMPLES": "2",
           "ARGILLA_WORKER_SCORING__PUSH_BATCH": "10"}
    return run_worker(args, env)


def test_a_poison_record_is_isolated_remembered_and_pushed_once_the_server_can_take_it(upstream_stack, dataset_name,
                                                                                        tmp_path):
    settings = upstream_stack.settings
    dataset, poison_id = _dataset_with_a_valueless_response(settings, dataset_name)
    # the model is registered in-process (one CLI process fewer: the CLI's register is tested elsewhere)
    registered = register_model(str(save_tiny_classifier(tmp_path / "model")), ModelRegistry(tmp_path / "registry"),
                                ["negative", "positive"])
    assert registered.version == "v0001"

    first = _cli(settings, dataset_name, tmp_path, "score", "--full")

    assert first.returncode == 1 and "Traceback" not in first.stderr
    assert f"push failed for record {POISON}: Argilla PUT" in first.stderr and "answered 500" in first.stderr
    assert f"{COUNT} scored" in first.stdout and f"{COUNT - 1} pushed, 0 unchanged, 1 failed" in first.stdout
    assert _indexed_with(settings, dataset.id, "v0001") == {f"r{i:02d}" for i in range(COUNT)} - {POISON}
    failing = json.loads((tmp_path / "state" / "failed_pushes.json").read_text())
    (entry,) = failing.values()
    assert list(entry) == [POISON] and entry[POISON]["attempts"] == 1 and "500" in entry[POISON]["reason"]

    # The database holds the new values (the 500 came after the commit), so the record reads as up to
    # date; it is pushed again all the same, by id, on an incremental run.
    second = _cli(settings, dataset_name, tmp_path, "score")
    assert second.returncode == 1 and f"push failed for record {POISON}" in second.stderr
    entry = next(iter(json.loads((tmp_path / "state" / "failed_pushes.json").read_text()).values()))
    assert entry[POISON]["attempts"] == 2

    response_id = httpx.get(f"{settings.api_url}/api/v1/records/{poison_id}",  # (the SDK cannot read it)
                            headers=_headers(settings)).json()["responses"][0]["id"]
    httpx.put(f"{settings.api_url}/api/v1/responses/{response_id}", headers=_headers(settings), timeout=30,
              json={"status": "submitted", "values": {"label": {"value": "positive"}}}).raise_for_status()

    third = _cli(settings, dataset_name, tmp_path, "score")
    assert third.returncode == 0, third.stderr
    assert POISON in _indexed_with(settings, dataset.id, "v0001")
    assert json.loads((tmp_path / "state" / "failed_pushes.json").read_text()) == {}


def test_a_failed_reindex_fails_up_and_shows_in_status(upstream_stack, dataset_name):
    _dataset_with_a_valueless_response(upstream_stack.settings, dataset_name)
    _kill_search(upstream_stack)

    with pytest.raises(ComponentStartError, match="reindex"):
        upstream_stack.up()

    index = next(status for status in upstream_stack.status() if status.name == "index")
    assert not index.running and "re-index failed" in index.detail
    assert not upstream_stack.is_up()


def test_after_a_search_engine_crash_up_reindexes_every_record_and_says_so(local_argilla, stack_settings,
                                                                             dataset_name):
    dataset, _ = _dataset_with_a_valueless_response(stack_settings, dataset_name)  # the fixed mapping takes it
    _kill_search(local_argilla)

    local_argilla.up()

    check = local_argilla.check_index()
    assert check.ok and check.indexed == check.records > 0
    assert next(status for status in local_argilla.status() if status.name == "index").running
    body = {"filters": {"and": [{"type": "terms", "scope": {"entity": "response", "property": "status"},
                                 "values": ["discarded"]}]}}
    found = httpx.post(f"{stack_settings.api_url}/api/v1/datasets/{dataset.id}/records/search", json=body,
                       headers=_headers(stack_settings), timeout=30).json()
    assert [item["record"]["external_id"] for item in found["items"]] == [POISON]
