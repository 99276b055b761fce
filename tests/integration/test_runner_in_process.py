"""The worker's loop run in-process (``Runner.work(burst=True)``) against the real local Argilla: it connects,
drains its queue and returns, so dispatch, status and the exit path are checked without a subprocess (the
real-process signal tests are in test_worker_process.py)."""

from __future__ import annotations

import json
from typing import Self

from tests.tiny_models import save_tiny_classifier
from tests.training_data import LABELS, sentiment_examples
from worker.config import load_settings
from worker.demo_data import LabelledText
from worker.jobs import Services
from worker.runner import Runner
from worker.training.register import register_model

COUNT = 12


def _settings(tmp_path, api_url: str, dataset_name: str, workspace: str):
    return load_settings(
        argilla={"api_url": api_url, "dataset": dataset_name, "workspace": workspace},
        scoring={"samples": 3, "device": "cpu", "push_batch": 5},
        registry={"path": str(tmp_path / "registry")}, state_dir=str(tmp_path / "state"),
        webhooks={"enabled": False}, http={"port": 0})


def _their_dataset(stack_settings, dataset_name: str, count: int):
    """A team's dataset made with the plain SDK (field ``review``, question ``sentiment``), ``count`` records with no
    label: (the SDK dataset, the examples by id, with the labels a reviewer would give)."""
    import argilla as rg

    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, client=client, settings=rg.Settings(
        fields=[rg.TextField(name="review")], questions=[rg.LabelQuestion(name="sentiment", labels=list(LABELS))]))
    dataset.create()
    examples = {e.id: e for e in sentiment_examples(count)}
    dataset.records.log([rg.Record(id=e.id, fields={"review": e.text}) for e in examples.values()])
    return dataset, examples


def _answer_in_rank_order(stack_settings, test_set, examples, count: int) -> None:
    """Submit the first ``count`` test records' labels, in rank order, as the UI does."""
    from tests.integration.annotator import submit_label

    for record_id, server_id in list(zip(test_set.ids, test_set.server_ids, strict=True))[:count]:
        submit_label(stack_settings, server_id, examples[record_id].label, question="sentiment")


def test_a_burst_run_scores_every_record_once_and_returns(local_argilla, stack_settings, dataset_name, tmp_path,
                                                          monkeypatch):
    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    services = Services(_settings(tmp_path, stack_settings.api_url, dataset_name, stack_settings.workspace))
    services.gateway.ensure_dataset(LABELS)
    services.gateway.log_labelled_texts(LabelledText(e.id, e.text, e.label) for e in sentiment_examples(COUNT))
    register_model(str(save_tiny_classifier(tmp_path / "model")), services.registry, services.labels())

    assert Runner(services.settings, services).work(burst=True) == 0

    status = json.loads((tmp_path / "state" / "status.json").read_text())
    assert status["jobs"]["score"]["status"] == "ok", status["jobs"]
    assert f"{COUNT} scored" in status["jobs"]["score"]["summary"]
    assert (status["mode"], status["argilla"]["reachable"], status["stopping"]) == ("polling", True, True)
    assert status["model"]["version"] == "v0001" and status["queue"] == []
    assert {r.metadata.get("model_version") for r in services.gateway.pull()} == {"v0001"}

    again = Runner(services.settings, services)
    assert again.work(burst=True) == 0  # the next run finds every record up to date
    assert "0 scored" in again.status.jobs["score"]["summary"]


def test_corrections_a_stop_left_counted_ask_for_the_retrain_at_the_next_start(local_argilla, stack_settings,
                                                                              dataset_name, tmp_path, monkeypatch):
    """A retrain cut short by a stop (SIGTERM during a deploy: the training is abandoned, its corrections stay
    counted in the state directory): the next start asks for it at once instead of waiting for one more
    correction. Found in a play-through: `status` said `queue: empty   corrections pending: 40` with
    retrain.min_new_corrections = 40 after a restart."""
    from worker.status import CorrectionCounter

    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    monkeypatch.setattr("worker.runner.DEBOUNCE_S", 0.0)
    settings = _settings(tmp_path, stack_settings.api_url, dataset_name, stack_settings.workspace)
    settings.retrain = settings.retrain.model_copy(update={"min_new_corrections": 3})
    services = Services(settings)
    services.gateway.ensure_dataset(LABELS)
    services.gateway.log_labelled_texts(LabelledText(e.id, e.text, e.label) for e in sentiment_examples(COUNT))
    register_model(str(save_tiny_classifier(tmp_path / "model")), services.registry, services.labels())
    CorrectionCounter(settings.state_dir / "counters.json").add(3)  # what the stopped worker left

    runner = Runner(settings, services)
    assert runner.work(burst=True) == 0

    assert "retrain" in runner.status.jobs, runner.status.jobs  # (it finds no reviewed record here: skipped)
    assert "only 0 records have a consensus label" in runner.status.jobs["retrain"]["summary"]
    # status says when the next retrain starts: the one that found too few labels waits for 3 more corrections
    assert (runner.status.corrections_pending, runner.status.retrain_at) == (3, 6)
    from click.testing import CliRunner

    from worker.cli import cli

    monkeypatch.setenv("ARGILLA_WORKER_STATE_DIR", str(settings.state_dir))
    output = CliRunner().invoke(cli, ["status"]).output
    assert "corrections pending: 3 (a retrain starts at 6)" in output, output


def test_a_burst_run_that_cannot_reach_argilla_says_so_and_returns_1(tmp_path, monkeypatch):
    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", "any")
    settings = _settings(tmp_path, "http://127.0.0.1:9", "reviews", "argilla")

    assert Runner(settings).work(burst=True) == 1

    status = json.loads((tmp_path / "state" / "status.json").read_text())
    assert status["argilla"]["reachable"] is False and "127.0.0.1:9" in status["argilla"]["error"]
    assert status["stopping"] is True


def test_a_stop_request_ends_the_running_loop_cleanly(local_argilla, stack_settings, dataset_name, tmp_path,
                                                      monkeypatch):
    """What the first SIGTERM does (the handler sets the same event): the loop finishes and returns 0, with
    its schedule running meanwhile and the status saying it stopped."""
    import threading

    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    services = Services(_settings(tmp_path, stack_settings.api_url, dataset_name, stack_settings.workspace))
    services.gateway.ensure_dataset(LABELS)
    runner = Runner(services.settings, services)
    stopper = threading.Timer(3.0, runner.stop.set)
    stopper.start()
    try:
        assert runner.work() == 0
    finally:
        stopper.cancel()
    status = json.loads((tmp_path / "state" / "status.json").read_text())
    assert status["stopping"] is True and status["jobs"]["score"]["status"] == "skipped"  # no model yet
    assert (tmp_path / "state" / "jobs.sqlite").exists()  # the schedule ran while the loop did


def test_a_missing_dataset_is_created_with_a_multi_label_question_when_configured(local_argilla, stack_settings,
                                                                                  dataset_name, tmp_path, monkeypatch):
    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    settings = load_settings(
        argilla={"api_url": stack_settings.api_url, "dataset": dataset_name, "workspace": stack_settings.workspace,
                 "labels": ["humour", "praise"], "multi_label": True},
        registry={"path": str(tmp_path / "registry")}, state_dir=str(tmp_path / "state"))
    services = Services(settings)

    services.ensure_dataset()
    binding = services.gateway.binding
    assert binding.multi_label and sorted(binding.labels) == ["humour", "praise"]
    assert [m.name for m in services.gateway.shape().metadata] == []  # each added by its first write
    services.gateway.log_labelled_texts([LabelledText("a", "lovely and funny", ("humour", "praise"))])
    current = {record.record_id: record for record in services.gateway.pull()}
    assert services.gateway.push_metadata({"a": {"labels_to_add": "humour", "label_changes": 1}}, current=current).ok
    names = {m.name for m in Services(settings).gateway.shape().metadata}
    assert {"labels_to_add", "labels_to_remove", "bald_mean", "loss", "original_scores"} <= names  # the scores', too
    assert "copies" not in names
    Services(settings).ensure_dataset()  # it exists now: nothing is created or refused


def test_the_first_model_trains_by_itself_once_enough_records_are_reviewed(local_argilla, stack_settings,
                                                                          dataset_name, tmp_path, monkeypatch):
    """A team's own dataset with no label and no model: the worker ranks a first batch by itself (once: the dataset
    keeps the ranks), waits (saying how many reviews it needs), trains the first model at training.min_annotated
    reviewed records — not at retrain.min_new_corrections — and, after a first training that could not start (one
    label only so far), waits for more reviews instead of pulling every record again on each event."""

    from tests.integration.annotator import submit_label

    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    dataset, examples = _their_dataset(stack_settings, dataset_name, 30)
    server_ids = {record.id: str(record._server_id) for record in dataset.records}
    settings = _settings(tmp_path, stack_settings.api_url, dataset_name, stack_settings.workspace)
    settings.training = settings.training.model_copy(update={
        "base_model": str(save_tiny_classifier(tmp_path / "base")), "min_annotated": 6, "epochs": 2,
        "batch_size": 4, "max_length": 32, "device": "cpu"})
    services = Services(settings)

    def review(ids, label=None):
        for record_id in ids:
            submit_label(stack_settings, server_ids[record_id], label or examples[record_id].label,
                         question="sentiment")

    positives = [i for i, e in examples.items() if e.label == "positive"]
    negatives = [i for i, e in examples.items() if e.label == "negative"]
    review(positives[:5])
    runner = Runner(settings, services)
    assert runner.work(burst=True) == 0
    assert runner.status.jobs["score"]["status"] == "skipped"
    assert "no model yet: 5 of 6 records reviewed" in runner.status.jobs["score"]["summary"]
    assert "the worker ranks a first batch now (cold_start.auto)" in runner.status.jobs["score"]["summary"]
    assert runner.status.jobs["cold_start"]["status"] == "ok", runner.status.jobs
    assert "first batch: 30 records ranked (0 failed)" in runner.status.jobs["cold_start"]["summary"]
    ranks = sorted(r.metadata.get("cold_start_rank") for r in services.gateway.pull())
    assert ranks == list(range(1, 31))  # every record, the 5 reviewed too (their rank is history)
    assert "retrain" not in runner.status.jobs and services.registry.current_version() is None
    runner.status.jobs.pop("cold_start")
    again = Runner(settings, services)  # a restart: the dataset's ranks say a first batch is there
    assert again.work(burst=True) == 0
    assert "cold_start" not in again.status.jobs
    assert "(annotate in cold_start_rank order, ascending)" in again.status.jobs["score"]["summary"]

    review(positives[5:6])  # 6 reviewed, all one label: the first training cannot start
    assert runner.work(burst=True) == 0
    assert runner.status.jobs["retrain"]["status"] == "skipped", runner.status.jobs
    assert "no training examples for class(es) ['negative']" in runner.status.jobs["retrain"]["summary"]
    runner.status.jobs.pop("retrain")
    assert runner.work(burst=True) == 0  # nothing new: no second try, the count it waits for is said
    assert "retrain" not in runner.status.jobs
    assert "no model yet: 6 of 7 records reviewed" in runner.status.jobs["score"]["summary"]
    assert "(annotate in cold_start_rank order, ascending)" in runner.status.jobs["score"]["summary"]  # it ranked

    review(negatives[:3])
    assert runner.work(burst=True) == 0
    assert runner.status.jobs["retrain"]["status"] == "ok", runner.status.jobs
    assert services.registry.current_version() == "v0001"
    assert {r.metadata.get("model_version") for r in services.gateway.pull()} == {"v0001"}  # all scored


def test_a_dataset_that_came_with_labels_trains_its_first_model_on_them_without_waiting_for_reviews(
        local_argilla, stack_settings, dataset_name, tmp_path, monkeypatch):
    """Their records carry their labeller's suggestions and nobody has reviewed any: the running worker trains the
    first model on those labels (as `argilla-worker train` would) and scores every record, instead of waiting for
    training.min_annotated reviews; no first batch is ranked."""
    import argilla as rg

    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, client=client, settings=rg.Settings(
        fields=[rg.TextField(name="review")], questions=[rg.LabelQuestion(name="sentiment", labels=list(LABELS))]))
    dataset.create()
    dataset.records.log([rg.Record(id=e.id, fields={"review": e.text}, suggestions=[
        rg.Suggestion(question_name="sentiment", value=e.label, agent="their-llm", score=0.9)])
        for e in sentiment_examples(24)])
    settings = _settings(tmp_path, stack_settings.api_url, dataset_name, stack_settings.workspace)
    settings.training = settings.training.model_copy(update={
        "base_model": str(save_tiny_classifier(tmp_path / "base")), "min_annotated": 10, "epochs": 2,
        "batch_size": 4, "max_length": 32, "device": "cpu"})
    services = Services(settings)

    runner = Runner(settings, services)
    assert runner.work(burst=True) == 0

    assert ("0 records reviewed, and 24 of the first 24 carry a label of their own (argilla.reference): the first "
            "model trains on those labels next") in runner.status.jobs["score"]["summary"]
    assert runner.status.jobs["retrain"]["status"] == "ok", runner.status.jobs
    assert services.registry.current().metrics["training"]["original"] > 0
    assert "cold_start" not in runner.status.jobs
    assert {r.metadata.get("model_version") for r in services.gateway.pull()} == {"v0001"}  # all scored


def test_a_queued_copies_job_marks_the_records_that_share_a_text(local_argilla, stack_settings, dataset_name,
                                                                 tmp_path, monkeypatch):
    """What `copies.cron` queues: the job runs in the loop and its summary lands in the status."""
    from worker.work_queue import JobKind

    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    services = Services(_settings(tmp_path, stack_settings.api_url, dataset_name, stack_settings.workspace))
    services.gateway.ensure_dataset(LABELS)
    examples = sentiment_examples(6)
    copy = LabelledText("copy-of-e0", examples[0].text.upper(), LABELS[1 - LABELS.index(examples[0].label)])
    services.gateway.log_labelled_texts([*(LabelledText(e.id, e.text, e.label) for e in examples), copy])
    runner = Runner(services.settings, services)
    runner.queue.put(JobKind.COPIES)

    assert runner.work(burst=True) == 0

    status = json.loads((tmp_path / "state" / "status.json").read_text())
    assert status["jobs"]["copies"]["status"] == "ok", status["jobs"]
    assert status["jobs"]["copies"]["summary"].startswith("2 of 7 records share 1 texts, 1 with different labels")
    marks = {r.record_id: (r.metadata.get("copies"), r.metadata.get("copies_disagree"))
             for r in services.gateway.pull()}
    assert marks["e0"] == marks["copy-of-e0"] == (1, 1) and marks["e1"] == (None, None)


def test_a_dataset_deleted_and_created_again_under_its_name_is_bound_anew_without_a_restart(
        local_argilla, stack_settings, dataset_name, tmp_path, monkeypatch):
    """The team re-imports its data (delete, create with the plain SDK, log) while the worker runs: the worker
    kept the old dataset's id, and every job answered 404 until it was restarted."""
    import argilla as rg

    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())

    def create(prefix: str) -> rg.Dataset:
        dataset = rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, client=client,
                             settings=rg.Settings(fields=[rg.TextField(name="review")],
                                                  questions=[rg.LabelQuestion(name="verdict", labels=list(LABELS))]))
        dataset.create()
        dataset.records.log([rg.Record(id=f"{prefix}{e.id}", fields={"review": e.text})
                             for e in sentiment_examples(COUNT)])
        return dataset

    first = create("old-")
    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    services = Services(_settings(tmp_path, stack_settings.api_url, dataset_name, stack_settings.workspace))
    register_model(str(save_tiny_classifier(tmp_path / "model")), services.registry, services.labels())
    assert Runner(services.settings, services).work(burst=True) == 0
    key = services.gateway.dataset_key
    services.failed_pushes.update(key, failed={"old-e1": (str(first.id), "a push of the old dataset's")}, landed=())
    first.delete()
    second = create("new-")

    runner = Runner(services.settings, services)
    assert runner.work(burst=True) == 0

    assert runner.status.jobs["score"]["status"] == "ok", runner.status.jobs
    assert f"{COUNT} scored" in runner.status.jobs["score"]["summary"]
    assert runner.dataset_id == str(second.id)
    records = list(client.datasets(name=dataset_name, workspace=stack_settings.workspace).records(
        with_suggestions=True))
    assert len(records) == COUNT and all(record.id.startswith("new-") for record in records)
    assert {record.metadata.get("model_version") for record in records} == {"v0001"}
    assert all(record.suggestions["verdict"].agent == "v0001" for record in records)
    assert services.failed_pushes.of(key) == {}  # the gone dataset's records are not pushed again

    second.delete()  # and now gone for good while the loop runs: the job says so, once, and the loop goes on
    runner.queue.put("score")
    runner._execute(runner.queue.get(timeout=1.0))
    assert runner.status.jobs["score"]["status"] == "skipped", runner.status.jobs
    assert f"{dataset_name} does not exist" in runner.status.jobs["score"]["summary"]
    assert runner.queue.get(timeout=0.1) is None  # nothing retried in a loop


def test_answers_to_test_records_measure_the_model_and_train_nothing(local_argilla, stack_settings, dataset_name,
                                                                      tmp_path, monkeypatch):
    """A team's own dataset (plain SDK, no label) with their model registered and a test set drawn, the loop polling:
    test records answered in rank order are no corrections — no retrain is asked for — but the current model is
    measured on them and the status shows its figures; answers to other records count toward the retrain, whose
    training, still short of labels, says the test records are not among them."""

    from tests.integration.annotator import submit_label
    from worker.jobs import test_set_job

    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    monkeypatch.setattr("worker.runner.MEASURE_DEBOUNCE_S", 0.0)
    dataset, examples = _their_dataset(stack_settings, dataset_name, 30)
    settings = _settings(tmp_path, stack_settings.api_url, dataset_name, stack_settings.workspace)
    settings.retrain = settings.retrain.model_copy(update={"min_new_corrections": 4})
    services = Services(settings)
    register_model(str(save_tiny_classifier(tmp_path / "model")), services.registry, services.labels())
    test_set = test_set_job(services, 8).test_set
    runner = Runner(settings, services)
    assert runner.work(burst=True) == 0  # the first score run

    _answer_in_rank_order(stack_settings, test_set, examples, 5)
    assert runner.work(burst=True) == 0

    assert runner.status.jobs["measure"]["status"] == "ok", runner.status.jobs
    assert "test set: v0001 on 5 reviewed test records" in runner.status.jobs["measure"]["summary"]
    assert runner.status.model["test"]["records"] == 5
    assert "retrain" not in runner.status.jobs and runner.corrections.pending == 0

    others = [record_id for record_id in examples if record_id not in test_set.ids][:4]
    server_ids = {record.id: str(record._server_id) for record in dataset.records}
    for record_id in others:
        submit_label(stack_settings, server_ids[record_id], examples[record_id].label, question="sentiment")
    assert runner.work(burst=True) == 0

    assert runner.status.jobs["retrain"]["status"] == "skipped", runner.status.jobs
    summary = runner.status.jobs["retrain"]["summary"]
    assert "only 4 records have a consensus label" in summary
    assert "(the 5 answered test-set records are kept out of training: they measure every model" in summary
    assert "annotate records outside the test set too, sorted by the model's uncertainty" in summary  # it has one


def test_a_model_promoted_while_no_worker_ran_is_scored_on_every_record_at_the_next_start(
        local_argilla, stack_settings, dataset_name, tmp_path, monkeypatch):
    """`argilla-worker train` or `models promote` by hand while the service is stopped: the next start finds the
    records scored with another version than the current one and reads them all, not only those changed since."""
    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    settings = _settings(tmp_path, stack_settings.api_url, dataset_name, stack_settings.workspace)
    services = Services(settings)
    services.gateway.ensure_dataset(LABELS)
    services.gateway.log_labelled_texts(LabelledText(e.id, e.text, e.label) for e in sentiment_examples(COUNT))
    register_model(str(save_tiny_classifier(tmp_path / "model")), services.registry, services.labels())
    assert Runner(settings, services).work(burst=True) == 0
    assert Runner(settings, services).work(burst=True) == 0  # (re-reads once the records the first run pushed)
    register_model(str(save_tiny_classifier(tmp_path / "theirs", seed=7)), services.registry, services.labels())
    services.registry.promote("v0002")

    restarted = Services(settings)
    assert Runner(settings, restarted).work(burst=True) == 0

    assert {record.metadata.get("model_version") for record in restarted.gateway.pull()} == {"v0002"}
    assert restarted.sync_state.scored_with(restarted.gateway.dataset_key) == "v0002"


def test_before_the_first_model_answered_test_records_are_not_counted_toward_it(local_argilla, stack_settings,
                                                                                  dataset_name, tmp_path, monkeypatch):
    """No model yet and a test set drawn first (as the README advises): the reviews the first model waits for are
    those outside the test set, and the wait says how many test records were answered besides."""

    from worker.jobs import test_set_job

    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    _, examples = _their_dataset(stack_settings, dataset_name, 20)
    settings = _settings(tmp_path, stack_settings.api_url, dataset_name, stack_settings.workspace)
    settings.training = settings.training.model_copy(update={"min_annotated": 4})
    services = Services(settings)
    test_set = test_set_job(services, 6).test_set
    _answer_in_rank_order(stack_settings, test_set, examples, 5)

    runner = Runner(settings, services)
    assert runner.work(burst=True) == 0

    assert runner.status.jobs["score"]["status"] == "skipped" and "retrain" not in runner.status.jobs
    assert ("no model yet: 0 of 4 records reviewed (and 5 test-set records: they measure models and train none)"
            in runner.status.jobs["score"]["summary"])


class _DeliverySink:
    """A local HTTP endpoint that keeps what Argilla's webhook delivers (body and headers), to hand the real,
    signed event to the runner as its webhook server would."""

    def __init__(self) -> None:
        import queue
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received: queue.Queue = queue.Queue()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received.put((body, dict(self.headers.items())))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook"

    def __enter__(self) -> Self:
        import threading

        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def next(self, secret: str, timeout: float = 60.0):
        from worker.webhooks import verify

        body, headers = self.received.get(timeout=timeout)
        return verify(secret, body, headers)


def test_an_answer_delivered_by_webhook_for_a_copy_of_a_test_text_is_no_correction(local_argilla, stack_settings,
                                                                                   dataset_name, tmp_path,
                                                                                   monkeypatch):
    """A record added after the test set was drawn that carries a test record's text is kept out of training like
    the test record (it would teach the answer), so its answer is no correction toward the retrain — also when it
    arrives by webhook, where the runner knows the record only by the event: Argilla's own signed delivery, read
    by its field values. An answer to another record counts one."""
    import argilla as rg

    from tests.integration.annotator import submit_label
    from worker.jobs import test_set_job

    monkeypatch.setenv("ARGILLA_WORKER_ARGILLA__API_KEY", stack_settings.api_key.get_secret_value())
    dataset, examples = _their_dataset(stack_settings, dataset_name, 16)
    settings = _settings(tmp_path, stack_settings.api_url, dataset_name, stack_settings.workspace)
    services = Services(settings)
    register_model(str(save_tiny_classifier(tmp_path / "model")), services.registry, services.labels())
    test_set = test_set_job(services, 4).test_set
    tested = test_set.ids[0]
    dataset.records.log([rg.Record(id="copy-of-test", fields={"review": f"  {examples[tested].text.upper()} "})])
    runner = Runner(settings, services)
    assert runner.work(burst=True) == 0  # binds and scores
    server_ids = {record.id: str(record._server_id) for record in dataset.records}
    other = next(record_id for record_id in examples if record_id not in test_set.ids)

    with _DeliverySink() as sink:
        hook = services.gateway.create_webhook(sink.url, ["response.created"], "test: deliveries to the runner")
        try:
            submit_label(stack_settings, server_ids["copy-of-test"], examples[tested].label, question="sentiment")
            runner.on_delivery(sink.next(hook["secret"]))
            assert runner.corrections.pending == 0
            submit_label(stack_settings, server_ids[other], examples[other].label, question="sentiment")
            delivery = sink.next(hook["secret"])
            runner.on_delivery(delivery)
            assert delivery.server_id == server_ids[other] and runner.corrections.pending == 1
        finally:
            services.gateway.delete_webhook(hook["id"])
