"""`argilla-worker ingest` into a dataset that already holds records — made with the plain Argilla SDK by
another team, with values of the worker's on them: ingesting merges into each record, it never replaces it.

The dataset has two text fields (one required that ingest does not fill), two label questions, a metadata
property of the team's, a vector, another agent's suggestion and an annotator's submitted response. After an
ingest that changes one record's text and gives both records a label: the other field, the team's metadata, the
worker's own values, the vector, the response, the other agent's suggestion and the other question's
suggestion are all still there; a new record the dataset cannot take (a required field) is refused by id
while the rest land; ingesting the same file again writes nothing (``updated_at`` does not move); and
``--field-column`` fills the required field so the new record can be created.

argilla-server before 2.6 answers a bulk upsert of new field values with 200 and keeps the old ones: there
ingest writes the rest of the record and says, by record, that its text was kept (run the suite on such a
release with LOCAL_ARGILLA_SERVER_VERSION, README: Tests)."""

from __future__ import annotations

import json
import os

import argilla as rg
import httpx

from tests.integration.annotator import submit_label
from tests.integration.cli import run_worker
from worker.gateway.client import FIELD_UPDATES_SINCE

SENTIMENT, TOPIC = "sentiment", "topic"


def _their_dataset(stack_settings, dataset_name) -> rg.Dataset:
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    settings = rg.Settings(
        fields=[rg.TextField(name="headline", required=True), rg.TextField(name="body", required=True)],
        questions=[rg.LabelQuestion(name=SENTIMENT, labels=["negative", "positive"]),
                   rg.LabelQuestion(name=TOPIC, labels=["acting", "plot"], required=False)],
        # sentiment_loss: a value an earlier worker wrote for the sentiment question (its properties are there)
        metadata=[rg.TermsMetadataProperty(name="team"), rg.FloatMetadataProperty(name="sentiment_loss"),
                  rg.FloatMetadataProperty(name="sentiment_expected_loss")],
        vectors=[rg.VectorField(name="embedding", dimensions=2)],
    )
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, settings=settings, client=client)
    dataset.create()
    dataset.records.log([
        rg.Record(id="r1", fields={"headline": "Superb", "body": "a superb cast"},
                  metadata={"team": "north", "sentiment_loss": 0.7}, vectors={"embedding": [0.1, 0.2]},
                  suggestions=[rg.Suggestion(question_name=TOPIC, value="acting", agent="topic-model")]),
        rg.Record(id="r2", fields={"headline": "Slow", "body": "the plot drags"},
                  metadata={"team": "south"}, vectors={"embedding": [0.3, 0.4]},
                  suggestions=[rg.Suggestion(question_name=SENTIMENT, value="positive", agent="gpt-labeller",
                                             score=0.6)]),
    ])
    return dataset


def _records(stack_settings, dataset_id) -> dict[str, dict]:
    """The records as the server's JSON (fields, metadata, suggestions, responses, vectors), by external id."""
    response = httpx.post(f"{stack_settings.api_url}/api/v1/datasets/{dataset_id}/records/search",
                          headers={"X-Argilla-Api-Key": stack_settings.api_key.get_secret_value()},
                          params={"include": ["responses", "suggestions", "vectors"], "limit": 50}, json={})
    response.raise_for_status()
    return {item["record"]["external_id"]: item["record"] for item in response.json()["items"]}


def _suggestions(record: dict, question_ids: dict[str, str]) -> dict[str, tuple]:
    names = {question_id: name for name, question_id in question_ids.items()}
    return {names[s["question_id"]]: (s["value"], s["agent"]) for s in record["suggestions"]}


def test_ingest_merges_into_existing_records_and_a_second_run_writes_nothing(local_argilla, stack_settings,
                                                                            dataset_name, tmp_path, server_version):
    updates_fields = server_version >= FIELD_UPDATES_SINCE
    kept = "" if updates_fields else ", 1 texts kept"
    dataset = _their_dataset(stack_settings, dataset_name)
    question_ids = {question.name: str(question.id) for question in dataset.settings.questions}
    r1 = next(record for record in dataset.records() if record.id == "r1")
    submit_label(stack_settings, r1._server_id, "positive", question=SENTIMENT)
    before = _records(stack_settings, dataset.id)
    data = tmp_path / "update.jsonl"
    data.write_text("\n".join(json.dumps(row) for row in [
        {"id": "r1", "text": "a superb cast", "label": "positive"},     # same text: label only
        {"id": "r2", "text": "the plot drags on", "label": "negative"},  # new text and a label
        {"id": "r3", "text": "a new review", "label": "negative"},       # new: the required headline is missing
    ]))
    env = {**os.environ, "ARGILLA_API_KEY": stack_settings.api_key.get_secret_value()}
    command = ["ingest", str(data), "--dataset", dataset_name, "--id-column", "id",
               "--label-column", "label", "--api-url", stack_settings.api_url, "--workspace", stack_settings.workspace]

    unbound = run_worker(command, env)
    assert unbound.returncode == 1 and "Traceback" not in unbound.stderr, unbound.stderr
    assert "--field" in unbound.stderr.strip().splitlines()[-1]

    command += ["--field", "body", "--question", SENTIMENT]
    first = run_worker(command, env)
    assert first.returncode == 2 and "Traceback" not in first.stderr, first.stderr
    assert f"Argilla: 0 records created, 2 updated, 0 unchanged, 1 not written{kept}" in first.stdout, first.stdout
    if not updates_fields:
        assert (f"record r2: field(s) ['body'] differ from the record's, which argilla-server {server_version} keeps"
                in first.stdout), first.stdout
    assert ("record r3: not in the dataset, and a new record needs the required field(s) ['headline'], which the "
            "input does not fill") in first.stdout

    after = _records(stack_settings, dataset.id)
    assert set(after) == {"r1", "r2"}
    one, two = after["r1"], after["r2"]
    assert one["fields"] == before["r1"]["fields"]
    assert two["fields"] == {"headline": "Slow", "body": "the plot drags on" if updates_fields else "the plot drags"}
    assert one["metadata"] == {"team": "north", "sentiment_loss": 0.7, "sentiment_original_label": "positive",
                               "sentiment_original_agent": "original"}
    assert two["metadata"] == {"team": "south", "sentiment_original_label": "negative",
                               "sentiment_original_agent": "original"}
    assert _suggestions(one, question_ids) == {TOPIC: ("acting", "topic-model"), SENTIMENT: ("positive", "original")}
    assert _suggestions(two, question_ids) == {SENTIMENT: ("positive", "gpt-labeller")}  # theirs, not replaced
    for record_id in ("r1", "r2"):
        assert after[record_id]["vectors"] == before[record_id]["vectors"]
        assert after[record_id]["responses"] == before[record_id]["responses"]
    assert [r["values"] for r in one["responses"]] == [{SENTIMENT: {"value": "positive"}}]

    # again, from the worker's config alone (server, key, dataset, workspace, field and question): no flags
    config = tmp_path / "worker.toml"
    config.write_text(f'[argilla]\napi_url = "{stack_settings.api_url}"\ndataset = "{dataset_name}"\n'
                      f'workspace = "{stack_settings.workspace}"\nfields = ["body"]\nquestion = "{SENTIMENT}"\n')
    worker_env = {**{k: v for k, v in os.environ.items() if k != "ARGILLA_API_KEY"},
                  "ARGILLA_WORKER_ARGILLA__API_KEY": stack_settings.api_key.get_secret_value()}
    second = run_worker(["ingest", "-c", str(config), str(data), "--id-column", "id", "--label-column", "label"],
                        worker_env)
    assert second.returncode == 2, second.stderr  # r3 is still refused
    assert f"Argilla: 0 records created, 0 updated, 2 unchanged, 1 not written{kept}" in second.stdout, second.stdout
    again = _records(stack_settings, dataset.id)
    assert {rid: again[rid]["updated_at"] for rid in again} == {rid: after[rid]["updated_at"] for rid in after}

    data.write_text("\n".join(json.dumps(row) for row in [
        {"id": "r1", "title": "Superb", "text": "a superb cast", "label": "positive"},
        {"id": "r2", "title": "Slow", "text": "the plot drags on", "label": "negative"},
        {"id": "r3", "title": "New", "text": "a new review", "label": "negative"},
    ]))
    filled = run_worker([*command, "--field-column", "headline=title"], env)
    assert filled.returncode == (0 if updates_fields else 2), filled.stdout + filled.stderr
    assert f"Argilla: 1 records created, 0 updated, 2 unchanged, 0 not written{kept}" in filled.stdout, filled.stdout
    assert _records(stack_settings, dataset.id)["r3"]["fields"] == {"headline": "New", "body": "a new review"}


def test_another_agents_label_the_worker_preserved_is_kept_and_the_rest_of_the_record_written(
        local_argilla, stack_settings, dataset_name, tmp_path, server_version):
    """The state a scored dataset of the user's is in: the worker replaced gpt-labeller's suggestion with its own
    and kept gpt's label in ``original_label`` (its only copy). Ingesting another label for that record writes the
    new text but not the label, and says so."""
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, client=client, settings=rg.Settings(
        fields=[rg.TextField(name="text")], questions=[rg.LabelQuestion(name="label", labels=["negative", "positive"])],
        metadata=[rg.TermsMetadataProperty(name="original_label"), rg.TermsMetadataProperty(name="original_agent"),
                  rg.TermsMetadataProperty(name="model_version"),
                  rg.FloatMetadataProperty(name="expected_loss")]))  # the worker has served it: its properties
    dataset.create()
    dataset.records.log([rg.Record(
        id="r7", fields={"text": "a fine film"},
        metadata={"original_label": "negative", "original_agent": "gpt-labeller", "model_version": "v0001"},
        suggestions=[rg.Suggestion(question_name="label", value="positive", agent="v0001", score=0.8)])])
    data = tmp_path / "relabel.csv"
    data.write_text("id,text,label\nr7,a fine film indeed,positive\n")
    env = {**os.environ, "ARGILLA_API_KEY": stack_settings.api_key.get_secret_value()}

    result = run_worker(["ingest", str(data), "--dataset", dataset_name, "--workspace", stack_settings.workspace,
                         "--id-column", "id", "--label-column", "label", "--api-url", stack_settings.api_url], env)

    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    if server_version >= FIELD_UPDATES_SINCE:
        assert "Argilla: 0 records created, 1 updated, 0 unchanged, 0 not written, 1 labels kept" in result.stdout
    else:  # the text cannot be written either: nothing is sent
        assert ("Argilla: 0 records created, 0 updated, 1 unchanged, 0 not written, 1 labels kept, 1 texts kept"
                in result.stdout), result.stdout
    assert ("record r7: label 'positive' not written: original_label holds agent 'gpt-labeller''s label "
            "'negative'") in result.stdout
    (record,) = _records(stack_settings, dataset.id).values()
    assert record["fields"] == {"text": "a fine film indeed" if server_version >= FIELD_UPDATES_SINCE
                                else "a fine film"}
    assert record["metadata"] == {"original_label": "negative", "original_agent": "gpt-labeller",
                                  "model_version": "v0001"}
    assert [(s["value"], s["agent"]) for s in record["suggestions"]] == [("positive", "v0001")]


def test_an_ingest_stopped_on_request_keeps_the_batches_sent_and_the_same_records_again_finish_it(
        local_argilla, stack_settings, dataset_name):
    """A SIGTERM while 6 records go in batches of 2 — it arrives while the second batch is read: the first batch
    stands, nothing after it is sent, the report says it stopped; the same records again create the other 4 and
    find the first 2 unchanged (none twice)."""
    import threading

    from worker.gateway import ArgillaGateway
    from worker.records import LabelledText

    gateway = ArgillaGateway(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value(),
                             dataset_name=dataset_name, workspace=stack_settings.workspace)
    gateway.ensure_dataset(["negative", "positive"])
    texts = [LabelledText(f"s{i}", f"a text of its own, number {i}", "positive") for i in range(6)]
    stop = threading.Event()

    def stopped_at_the_third():
        for index, text in enumerate(texts):
            if index == 2:
                stop.set()
            yield text

    first = gateway.log_labelled_texts(stopped_at_the_third(), batch_size=2, stop=stop)
    assert first.stopped and (first.created, first.updated, first.unchanged) == (2, 0, 0)
    assert sorted(record.record_id for record in gateway.pull()) == ["s0", "s1"]

    again = gateway.log_labelled_texts(texts, batch_size=2)
    assert not again.stopped and (again.created, again.unchanged) == (4, 2)
    assert sorted(record.record_id for record in gateway.pull()) == [f"s{i}" for i in range(6)]
