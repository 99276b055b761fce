"""Ingest into the real local Argilla → corrections through the UI endpoint → `argilla-worker publish`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import datasets
import pytest

from tests.hub_stub import HubStub
from tests.integration.annotator import create_annotator, submit_label
from tests.integration.cli import run_worker
from tests.stops import SetAfterLooks
from worker.config import load_settings
from worker.demo_data import LabelledText
from worker.errors import Interrupted
from worker.gateway import ArgillaGateway
from worker.jobs import Services, publish_job

LABELS = ("negative", "positive")
INGESTED = {f"p{i}": LABELS[i % 2] for i in range(12)}
CORRECTIONS = {"p0": "positive", "p1": "negative", "p2": "negative", "p3": "positive"}  # p2, p3 confirm
TIED = "p4"


def _cli(*args, env):
    return run_worker(args, env)


def _cli_process(*args, env):
    """A real process: huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE when it is imported."""
    return subprocess.run([sys.executable, "-m", "worker", *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)


def test_published_labels_are_the_corrections_and_original_labels_the_ingested_ones(
        local_argilla, stack_settings, dataset_name, tmp_path):
    gateway = ArgillaGateway(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value(),
                             dataset_name=dataset_name, workspace=stack_settings.workspace)
    gateway.ensure_dataset(LABELS)
    gateway.log_labelled_texts(LabelledText(i, f"review number {i} of the film", label, split="train" if
                                            int(i[1:]) < 9 else "test") for i, label in INGESTED.items())
    pulled = {r.record_id: r for r in gateway.pull()}
    for record_id, label in CORRECTIONS.items():
        submit_label(stack_settings, pulled[record_id].server_id, label)
    second = create_annotator(stack_settings, gateway.client, f"annotator-{dataset_name}")
    submit_label(stack_settings, pulled[TIED].server_id, "positive")
    submit_label(stack_settings, pulled[TIED].server_id, "negative", headers=second)

    config = tmp_path / "worker.toml"
    events = tmp_path / "events.jsonl"
    config.write_text(f'plugin_modules = ["tests.worker_plugins.recorder"]\n'
                      f'[argilla]\napi_url = "{stack_settings.api_url}"\ndataset = "{dataset_name}"\n'
                      f'workspace = "{stack_settings.workspace}"\n[publish]\nsplit = "keep"\nlicense = "mit"\n'
                      f'[registry]\npath = "{tmp_path / "registry"}"\n'
                      f'[plugins."tests.worker_plugins.recorder"]\nevents_file = "{events}"\n')
    env = {**os.environ, "ARGILLA_WORKER_ARGILLA__API_KEY": stack_settings.api_key.get_secret_value()}
    out = tmp_path / "published"

    first = _cli("publish", "-c", str(config), "--directory", str(out), env=env)
    again = _cli("publish", "-c", str(config), "--directory", str(out), env=env)

    assert first.returncode == 0, first.stderr
    assert "published" in first.stdout and "unchanged, nothing written" in again.stdout
    theirs = tmp_path / "our-data"  # a directory of the team's: refused before the records are read, kept whole
    theirs.mkdir()
    (theirs / "raw.csv").write_text("id,text\n")
    refused = _cli("publish", "-c", str(config), "--directory", str(theirs), env=env)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr + refused.stdout
    assert "holds files the worker did not publish (raw.csv)" in refused.stderr, refused.stderr
    assert [p.name for p in theirs.iterdir()] == ["raw.csv"]
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))
    assert {name: split.num_rows for name, split in loaded.items()} == {"train": 8, "test": 3}  # tie left out
    rows = {row["id"]: row for split in loaded.values() for row in split}
    names = loaded["train"].features["label"].names
    assert names == list(LABELS) and TIED not in rows
    for record_id, ingested in INGESTED.items():
        if record_id == TIED:
            continue
        row = rows[record_id]
        assert names[row["original_label"]] == ingested
        assert names[row["label"]] == CORRECTIONS.get(record_id, ingested)
        assert row["was_corrected"] == (record_id in ("p0", "p1"))
        assert row["reviewed"] == (record_id in CORRECTIONS)
    assert "1 record(s) not published: annotators are tied" in first.stderr
    published_events = [json.loads(line) for line in events.read_text().splitlines()]  # on_published, twice
    assert published_events == [["published", [str(out.resolve())]]] * 2

    token = "hf_e2e_token"
    with HubStub(token) as hub:
        hub_env = {**env, "HF_ENDPOINT": hub.url, "HF_TOKEN": token, "HF_HUB_OFFLINE": "0"}
        pushed = _cli_process("publish", "-c", str(config), "--repo-id", "team/cleaned", env=hub_env)
        assert pushed.returncode == 0, pushed.stderr
        assert token not in pushed.stdout + pushed.stderr
    data_files = [name for name in hub.repos["team/cleaned"].files if name.startswith("data/")]
    assert sorted(name.split("-")[0] for name in data_files) == ["data/test", "data/train"], data_files
    assert hub.repos["team/cleaned"].commits[0]["title"].startswith("Publish 11 records (2 corrected)")


def test_their_other_fields_are_published_beside_the_one_the_model_reads(local_argilla, stack_settings, dataset_name,
                                                                          tmp_path):
    """A ticket dataset made with the plain SDK: the model reads `body`; the subject, the agent's notes, the chat
    thread and a custom field (a JSON object) are the team's data too and belong in their cleaned dataset."""
    import argilla as rg
    import pytest

    from worker.config import load_settings
    from worker.errors import ConfigError
    from worker.jobs import Services, publish_job

    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, client=client, settings=rg.Settings(
        fields=[rg.TextField(name="subject"), rg.TextField(name="body"),
                rg.TextField(name="notes", required=False), rg.ChatField(name="thread"),
                rg.CustomField(name="customer", template="<b>{{record.fields.customer.plan}}</b>")],
        questions=[rg.LabelQuestion(name="queue", labels=["billing", "tech"])]))
    dataset.create()
    tickets = {f"t{i}": "billing" if i % 2 else "tech" for i in range(6)}
    dataset.records.log([rg.Record(
        id=ticket,
        fields={"subject": f"subject {ticket}", "body": f"the body of {ticket}",
                **({"notes": f"called back {ticket}"} if ticket != "t0" else {}),
                "thread": [{"role": "user", "content": f"help {ticket}"}, {"role": "assistant", "content": "on it"}],
                "customer": {"plan": "pro", "seats": 3}},
        suggestions=[rg.Suggestion(question_name="queue", value=queue, agent="router")])
        for ticket, queue in tickets.items()])
    settings = load_settings(argilla={"api_url": stack_settings.api_url, "api_key":
                                      stack_settings.api_key.get_secret_value(), "dataset": dataset_name,
                                      "workspace": stack_settings.workspace, "fields": ["body"]},
                             state_dir=str(tmp_path / "state"), registry={"path": str(tmp_path / "registry")})
    services = Services(settings)

    publish_job(services, directory=tmp_path / "all")

    rows = {row["id"]: row for row in datasets.load_dataset(str(tmp_path / "all"), split="train",
                                                            cache_dir=str(tmp_path / "cache"))}
    assert set(rows) == set(tickets)
    assert rows["t1"]["subject"] == "subject t1" and rows["t1"]["body"] == "the body of t1"
    assert rows["t1"]["notes"] == "called back t1" and rows["t0"]["notes"] is None
    assert rows["t1"]["thread"] == [{"role": "user", "content": "help t1"}, {"role": "assistant", "content": "on it"}]
    assert json.loads(rows["t1"]["customer"]) == {"plan": "pro", "seats": 3}
    assert [rows[ticket]["label"] for ticket in sorted(tickets)] == [
        ["billing", "tech"].index(tickets[ticket]) for ticket in sorted(tickets)]

    services.settings.publish.fields = ["subject"]
    publish_job(services, directory=tmp_path / "some")
    some = datasets.load_dataset(str(tmp_path / "some"), split="train", cache_dir=str(tmp_path / "cache2"))
    assert [name for name in some.column_names if name in ("subject", "body", "notes", "thread", "customer")] == [
        "body", "subject"]
    services.settings.publish.fields = "bound"
    publish_job(services, directory=tmp_path / "bound")
    bound = datasets.load_dataset(str(tmp_path / "bound"), split="train", cache_dir=str(tmp_path / "cache3"))
    assert "body" in bound.column_names and "subject" not in bound.column_names
    services.settings.publish.fields = ["subjct"]
    with pytest.raises(ConfigError, match="publish.fields: dataset .* has no field 'subjct'; it has: subject, body"):
        publish_job(services, directory=tmp_path / "typo")


def test_their_annotators_answers_to_other_questions_are_published_when_named(local_argilla, stack_settings,
                                                                             dataset_name, tmp_path):
    """A dataset made with the plain SDK has a note and an urgency rating beside the label question the worker
    serves: publish.questions publishes each record's submitted answers (two annotators through the UI's endpoint;
    a draft is no answer), in their cleaned dataset beside the label."""
    import argilla as rg
    import httpx
    import pytest

    from worker.config import load_settings
    from worker.errors import ConfigError
    from worker.jobs import Services, publish_job

    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, client=client, settings=rg.Settings(
        fields=[rg.TextField(name="body")],
        questions=[rg.LabelQuestion(name="queue", labels=["billing", "tech"]),
                   rg.TextQuestion(name="comment", required=False),
                   rg.RatingQuestion(name="urgency", values=[1, 2, 3], required=False)]))
    dataset.create()
    tickets = {f"t{i}": "billing" if i % 2 else "tech" for i in range(4)}
    dataset.records.log([rg.Record(id=ticket, fields={"body": f"the body of {ticket}"},
                                   suggestions=[rg.Suggestion(question_name="queue", value=queue, agent="router")])
                         for ticket, queue in tickets.items()])
    server_ids = {record.id: str(record._server_id) for record in dataset.records}
    owner = {"X-Argilla-Api-Key": stack_settings.api_key.get_secret_value()}
    second = create_annotator(stack_settings, client, f"desk-{dataset_name[-8:]}")

    def answer(ticket, headers, status="submitted", **values):
        response = httpx.post(f"{stack_settings.api_url}/api/v1/records/{server_ids[ticket]}/responses",
                              headers=headers, json={"status": status, "values": {
                                  name: {"value": value} for name, value in {"queue": "billing", **values}.items()}},
                              timeout=30)
        response.raise_for_status()

    answer("t1", owner, comment="refund asked twice", urgency=3)
    answer("t1", second, comment="agree")
    answer("t2", owner, urgency=1)
    answer("t3", second, status="draft", comment="not sure yet", urgency=2)
    settings = load_settings(argilla={"api_url": stack_settings.api_url, "api_key":
                                      stack_settings.api_key.get_secret_value(), "dataset": dataset_name,
                                      "workspace": stack_settings.workspace},
                             state_dir=str(tmp_path / "state"), registry={"path": str(tmp_path / "registry")},
                             publish={"questions": ["comment", "urgency"]})
    services = Services(settings)

    publish_job(services, directory=tmp_path / "out")

    loaded = datasets.load_dataset(str(tmp_path / "out"), split="train", cache_dir=str(tmp_path / "cache"))
    rows = {row["id"]: row for row in loaded}
    assert (rows["t1"]["comment"], rows["t1"]["urgency"]) == (["refund asked twice", "agree"], [3])
    assert (rows["t2"]["comment"], rows["t2"]["urgency"]) == ([], [1])
    assert (rows["t3"]["comment"], rows["t3"]["urgency"]) == ([], [])  # a draft is no answer
    assert (rows["t0"]["comment"], rows["t0"]["urgency"], rows["t0"]["reviewed"]) == ([], [], False)
    assert "`comment`, `urgency` — a list per row" in (tmp_path / "out" / "README.md").read_text()

    services.settings.publish.questions = ["coment"]
    with pytest.raises(ConfigError, match="publish.questions: dataset .* has no question 'coment'; it has: queue, "
                                          "comment, urgency"):
        publish_job(services, directory=tmp_path / "typo")
    services.settings.publish.questions = ["queue"]
    with pytest.raises(ConfigError, match="publish.questions: 'queue' is the question the worker serves"):
        publish_job(services, directory=tmp_path / "bound")


def test_a_publication_stopped_on_request_writes_nothing_and_the_last_one_stands(
        local_argilla, stack_settings, dataset_name, tmp_path, monkeypatch):
    """Stopped while weighing the annotators, while reading the records, or after reading them: the last
    publication is left as it was and the message says so; the next run publishes the records."""
    gateway = ArgillaGateway(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value(),
                             dataset_name=dataset_name, workspace=stack_settings.workspace)
    gateway.ensure_dataset(LABELS)
    gateway.log_labelled_texts(LabelledText(i, f"review number {i} of the film", label)
                               for i, label in INGESTED.items())
    first = {r.record_id: r for r in gateway.pull()}["p0"]
    submit_label(stack_settings, first.server_id, "positive")  # one record with a response: the crowd pass reads it
    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    services = Services(load_settings(
        argilla={"api_url": stack_settings.api_url, "dataset": dataset_name, "workspace": stack_settings.workspace},
        registry={"path": str(tmp_path / "registry")}, state_dir=str(tmp_path / "state")))
    out = tmp_path / "published"
    publish_job(services, directory=out)
    last = {path.name: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    gateway.log_labelled_texts([LabelledText("p99", "a record added since the last publication", "negative")])

    # the job reads the stop once for the 1 record with a response, once for each of the 13 records, then once more
    for looks, where in ((0, "while weighing the annotators' votes"), (5, "while reading the records"),
                          (1 + 13, "after reading the 13 rows, before writing them")):
        with pytest.raises(Interrupted) as stopped:
            publish_job(services, directory=out, stop=SetAfterLooks(looks))
        assert str(stopped.value) == (f"publishing stopped on request {where}: nothing published (the last "
                                      f"publication stands); run it again to publish")
        assert {path.name: path.read_bytes() for path in out.rglob("*") if path.is_file()} == last
        assert not any((tmp_path / "state" / "publishing").iterdir())  # the stopped run's scratch is gone

    (result,) = publish_job(services, directory=out, stop=threading.Event())
    assert result.published
    published = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))
    assert "p99" in {row["id"] for split in published.values() for row in split}
