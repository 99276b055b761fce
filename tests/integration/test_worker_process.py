"""The worker as a real subprocess against the real local Argilla: scoring and pushing, a UI-endpoint
submission arriving as a signed webhook, forged webhooks, SIGTERM and restart, the persistent schedule,
a broken plugin, config errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.integration.annotator import raw_responses, submit_label
from tests.integration.cli import run_worker
from tests.tiny_models import save_tiny_classifier
from tests.training_data import LABELS, sentiment_examples
from worker.demo_data import LabelledText
from worker.gateway import ArgillaGateway
from worker.registry import ModelRegistry

REPO_ROOT = Path(__file__).resolve().parents[2]
RECORDS = 40


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WorkerProcess:
    def __init__(self, config: Path, env: dict, log: Path):
        self.config, self.env, self.log = config, env, log
        self.process: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        self.handle = self.log.open("a")
        self.process = subprocess.Popen([sys.executable, "-m", "worker", "run", "-c", str(self.config)],
                                        cwd=REPO_ROOT, env=self.env, stdout=self.handle, stderr=subprocess.STDOUT)
        return self

    def stop(self, timeout: float = 120, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        finally:
            self.handle.close()

    def output(self) -> str:
        return self.log.read_text()


def _wait(condition, timeout: float, what: str, process: WorkerProcess | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        if process is not None and process.process.poll() is not None:
            pytest.fail(f"the worker exited ({process.process.returncode}) while waiting for {what}:\n"
                        f"{process.output()[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout} s waiting for {what}" +
                (f":\n{process.output()[-3000:]}" if process else ""))


@pytest.fixture
def setup(local_argilla, stack_settings, dataset_name, tmp_path):
    """A dataset of 40 records, a registry whose current model is a tiny BERT, a config file."""
    gateway = ArgillaGateway(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value(),
                             dataset_name=dataset_name, workspace=stack_settings.workspace)
    gateway.ensure_dataset(LABELS)
    gateway.log_labelled_texts(LabelledText(e.id, e.text, e.label) for e in sentiment_examples(RECORDS))
    registry = ModelRegistry(tmp_path / "registry")
    with registry.staging() as staged:
        shutil.copytree(save_tiny_classifier(tmp_path / "tiny"), staged, dirs_exist_ok=True)
        registry.promote(registry.add(staged, {"validation": {"macro_f1": 0.5, "accuracy": 0.5,
                                                              "ece_deterministic": 0.1, "ece_mc": 0.1}}).version)
    port = _free_port()
    record_file = tmp_path / "scored.jsonl"

    def write_config(*, plugins=("tests.worker_plugins.recorder",), sleep=0.0, push_batch=10,
                     interval=60.0) -> Path:
        config = tmp_path / "worker.toml"
        config.write_text(
            f'state_dir = "{tmp_path / "state"}"\n'
            f'plugin_modules = {json.dumps(list(plugins))}\n'
            f'[argilla]\napi_url = "{stack_settings.api_url}"\ndataset = "{dataset_name}"\n'
            f'workspace = "{stack_settings.workspace}"\n'
            f'[scoring]\nsamples = 4\ndevice = "cpu"\npush_batch = {push_batch}\ninterval_minutes = {interval}\n'
            f'[registry]\npath = "{registry.root}"\n'
            f'[http]\nport = {port}\nidle_timeout_s = 2\n'
            f'[plugins."tests.worker_plugins.recorder"]\nrecord_file = "{record_file}"\nsleep_per_batch = {sleep}\n')
        return config

    env = {**os.environ, "ARGILLA_WORKER_ARGILLA__API_KEY": stack_settings.api_key.get_secret_value()}
    return {"gateway": gateway, "port": port, "write_config": write_config, "env": env, "tmp": tmp_path,
            "record_file": record_file, "settings": stack_settings}


def _versions(gateway) -> Counter:
    return Counter(r.metadata.get("model_version") for r in gateway.pull())


def _scored(record_file: Path) -> Counter:
    if not record_file.exists():
        return Counter()
    return Counter(tuple(json.loads(line)) for line in record_file.read_text().splitlines())


def _status(tmp: Path) -> dict:
    path = tmp / "state" / "status.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_the_worker_scores_pushes_rescores_on_a_signed_webhook_and_rejects_forgeries(setup):
    gateway, port, tmp = setup["gateway"], setup["port"], setup["tmp"]
    worker = WorkerProcess(setup["write_config"](), setup["env"], tmp / "worker.log").start()
    try:
        _wait(lambda: _versions(gateway)["v0001"] == RECORDS, 180, "every record scored by v0001", worker)
        _wait(lambda: _status(tmp).get("mode") == "webhooks", 60, "webhooks mode (Argilla's ping)", worker)
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert health.status_code == 200 and health.json()["model"] == "v0001"

        target = next(r for r in gateway.pull() if r.record_id == "e3")
        flipped = LABELS[1 - LABELS.index(target.metadata["original_label"])]
        submit_label(setup["settings"], target.server_id, flipped)
        _wait(lambda: next(r for r in gateway.pull() if r.record_id == "e3").metadata.get("reference_label")
              == flipped, 60, "the webhook-triggered rescore of e3", worker)
        _wait(lambda: _status(tmp).get("jobs", {}).get("rescore", {}).get("status") == "ok", 30,
              "the rescore job in the status", worker)
        assert _status(tmp)["corrections_pending"] == 1

        forged_headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(time.time())),
                          "webhook-signature": "v1,bm90IGEgcmVhbCBzaWduYXR1cmU="}
        body = json.dumps({"type": "response.created", "timestamp": "2026-01-01T00:00:00Z", "data": {}})
        forged = httpx.post(f"http://127.0.0.1:{port}/webhooks/argilla", content=body, headers=forged_headers)
        unsigned = httpx.post(f"http://127.0.0.1:{port}/webhooks/argilla", content=body)
        assert forged.status_code == 401 and unsigned.status_code == 401
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert "argilla_worker_webhooks_rejected_total 2.0" in metrics
        assert f"argilla_worker_records_scored_total {RECORDS + 1}.0" in metrics
        assert 'argilla_worker_model_info{version="v0001"} 1.0' in metrics
        _replays_and_malformed_requests_are_refused_and_counted_once(setup, port, tmp)
        status = subprocess.run([sys.executable, "-m", "worker", "status", "-c", str(worker.config)],
                                cwd=REPO_ROOT, env=setup["env"], capture_output=True, text=True, timeout=60,
                                check=False)
        assert status.returncode == 0 and "mode: webhooks" in status.stdout and "model: v0001" in status.stdout
        assert f"dataset {gateway.workspace}/{gateway.dataset_name}: question 'label', fields text" in status.stdout
        assert _status(tmp)["binding"]["metadata_prefix"] == ""
        assert setup["env"]["ARGILLA_WORKER_ARGILLA__API_KEY"] not in status.stdout + worker.output()
    finally:
        code = worker.stop()
    assert code == 0, worker.output()[-3000:]
    assert "webhook rejected" in worker.output()


def test_a_webhook_someone_deleted_while_the_worker_runs_is_noticed_and_registered_again(setup):
    """A clean-up script (or an admin) deletes the worker's webhook: no event arrives any more, so a review was
    neither rescored at once nor counted toward a retrain — silently, for as long as the worker ran. The next
    scheduled score run notices (one request), counts what was submitted meanwhile and registers the webhook
    again; the next review arrives by webhook."""
    gateway, port, tmp, settings = setup["gateway"], setup["port"], setup["tmp"], setup["settings"]
    headers = {"X-Argilla-Api-Key": settings.api_key.get_secret_value()}
    url = f"http://127.0.0.1:{port}/webhooks/argilla"

    def ours() -> list[dict]:
        hooks = httpx.get(f"{settings.api_url}/api/v1/webhooks", headers=headers, timeout=30).json()["items"]
        return [hook for hook in hooks if hook["url"] == url]

    worker = WorkerProcess(setup["write_config"](interval=0.1), setup["env"], tmp / "worker.log").start()
    try:
        _wait(lambda: _versions(gateway)["v0001"] == RECORDS, 180, "every record scored by v0001", worker)
        _wait(lambda: _status(tmp).get("mode") == "webhooks", 60, "webhooks mode (Argilla's ping)", worker)
        first = ours()[0]["id"]
        httpx.delete(f"{settings.api_url}/api/v1/webhooks/{first}", headers=headers, timeout=30).raise_for_status()
        records = {r.record_id: r for r in gateway.pull()}

        def correct(record_id: str) -> None:
            label = records[record_id].metadata["original_label"]
            submit_label(settings, records[record_id].server_id, LABELS[1 - LABELS.index(label)])

        correct("e3")

        _wait(lambda: f"the worker's Argilla webhook {first} was deleted while the worker ran" in worker.output(), 60,
              "the lost webhook noticed", worker)
        _wait(lambda: ours() and _status(tmp).get("mode") == "webhooks", 60, "the webhook registered again", worker)
        assert ours()[0]["id"] != first
        _wait(lambda: _status(tmp)["corrections_pending"] == 1, 30, "the review counted by the polling run", worker)
        correct("e4")
        _wait(lambda: _status(tmp)["corrections_pending"] == 2, 30, "the next review counted by webhook", worker)
        second = ours()[0]["id"]
        httpx.delete(f"{settings.api_url}/api/v1/webhooks/{second}", headers=headers, timeout=30).raise_for_status()
    finally:
        assert worker.stop() == 0, worker.output()[-3000:]
    # the clean stop finds it gone: what the stop was for, not a warning
    assert f"Argilla webhook {second} was deleted already" in worker.output()
    assert "could not delete the Argilla webhook" not in worker.output()


def _replays_and_malformed_requests_are_refused_and_counted_once(setup, port: int, tmp: Path) -> None:
    """Validly signed (the secret Argilla generated for the worker's webhook) but replayed or malformed."""
    from standardwebhooks.webhooks import Webhook

    headers = {"X-Argilla-Api-Key": setup["settings"].api_key.get_secret_value()}
    hooks = httpx.get(f"{setup['settings'].api_url}/api/v1/webhooks", headers=headers, timeout=30).json()["items"]
    signer = Webhook(next(hook for hook in hooks if f":{port}/" in hook["url"])["secret"])
    url = f"http://127.0.0.1:{port}/webhooks/argilla"

    def signed_post(event, delivery_id: str) -> httpx.Response:
        body, now = json.dumps(event), datetime.now(UTC)
        return httpx.post(url, content=body, timeout=10, headers={
            "webhook-id": delivery_id, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(delivery_id, now, body)})

    dataset = {"id": str(setup["gateway"].dataset_id())}
    submitted = {"type": "response.created", "timestamp": "2026-01-01T00:00:00Z",
                 "data": {"status": "submitted", "record": {"external_id": "e5", "dataset": dataset}}}
    before = _status(tmp)["corrections_pending"]
    first, replay = signed_post(submitted, "msg_replayed"), signed_post(submitted, "msg_replayed")
    assert (first.json()["status"], replay.json()["status"]) == ("accepted", "duplicate")
    for event in ({"type": 5}, {"type": "response.created", "data": [1]}):
        refused = signed_post(event, f"msg_{event['type']}")
        assert refused.status_code == 400 and "error" in refused.json()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /webhooks/argilla HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        assert sock.recv(200).startswith(b"HTTP/1.0 400")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
        started = time.monotonic()
        assert idle.recv(10) == b"" and time.monotonic() - started < 8  # closed by the worker after ~2 s
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    _wait(lambda: _status(tmp)["corrections_pending"] == before + 1, 60, "one correction counted, not two")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_stopped_mid_scoring_then_restarted_every_record_is_scored_exactly_once(setup, sig):
    gateway, tmp = setup["gateway"], setup["tmp"]
    responses_before = raw_responses(setup["settings"], gateway.dataset_id())
    config = setup["write_config"](sleep=1.5, push_batch=5)
    worker = WorkerProcess(config, setup["env"], tmp / "worker.log").start()
    _wait(lambda: sum(_scored(setup["record_file"]).values()) >= 5, 180, "the first pushed batch", worker)
    code = worker.stop(sig=sig)
    first_run = sum(_scored(setup["record_file"]).values())
    assert first_run < RECORDS, "the worker did not stop mid-run"
    if sig == signal.SIGTERM:
        assert code == 0, worker.output()[-3000:]
        assert "finishing the current batch" in worker.output()

    restarted = WorkerProcess(setup["write_config"](push_batch=5), setup["env"], tmp / "worker.log").start()
    try:
        _wait(lambda: _versions(gateway)["v0001"] == RECORDS, 180, "the rest of the records", restarted)
    finally:
        assert restarted.stop() == 0
    scored = _scored(setup["record_file"])
    assert set(scored) == {("v0001", f"e{i}") for i in range(RECORDS)}
    assert max(scored.values()) == 1, f"scored twice: {[k for k, v in scored.items() if v > 1]}"
    assert raw_responses(setup["settings"], gateway.dataset_id()) == responses_before


def test_a_one_shot_score_stopped_by_sigterm_ends_its_batch_and_the_next_one_goes_on_after_it(setup):
    """``argilla-worker score`` under ``docker stop`` or a preempted Kubernetes Job: the first SIGTERM ends the run
    after its current batch (exit 143, the shell's status for SIGTERM, one line on stderr) and leaves the full run's
    checkpoint; the next ``score`` reads only the records after it and scores each of the rest once."""
    tmp = setup["tmp"]
    config = setup["write_config"](sleep=1.5, push_batch=5)
    command = [sys.executable, "-m", "worker", "score", "-c", str(config)]
    with (tmp / "score-first.log").open("w") as log:
        first = subprocess.Popen(command, cwd=REPO_ROOT, env=setup["env"], stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait(lambda: sum(_scored(setup["record_file"]).values()) >= 5, 180, "the first pushed batch")
        finally:
            first.send_signal(signal.SIGTERM)
            code = first.wait(120)
    output = (tmp / "score-first.log").read_text()
    assert code == 143, output[-3000:]
    assert "SIGTERM: finishing the current batch, then exiting" in output and "Traceback" not in output
    assert "stopped on request: every pushed batch stands; the next `argilla-worker score` goes on from there" \
           in output
    pushed = sum(_scored(setup["record_file"]).values())
    assert pushed < RECORDS and list((tmp / "state" / "full_pass").iterdir()), output[-3000:]

    second = subprocess.run(command, cwd=REPO_ROOT, env=setup["env"], capture_output=True, text=True, timeout=600,
                            check=False)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "a full run going on after the " in second.stdout and f"{RECORDS - pushed} records considered" \
           in second.stdout, second.stdout
    scored = _scored(setup["record_file"])
    assert set(scored) == {("v0001", f"e{i}") for i in range(RECORDS)} and max(scored.values()) == 1
    assert not list((tmp / "state" / "full_pass").iterdir())


def test_an_out_of_fold_run_stopped_mid_way_resumes_with_the_fold_models_it_completed(setup):
    """``score --oof 3`` SIGTERM'd while its first fold model's scores are pushed ends after that batch (exit 143,
    one line saying what is kept, no traceback); the rerun trains only the two other fold models, finds what the
    first run pushed unchanged, and leaves no fold model on disk. (A kill -9 leaves the same fold model on disk: the
    margins file is written last.)"""
    gateway, tmp = setup["gateway"], setup["tmp"]
    config = setup["write_config"](sleep=1.0, push_batch=5)
    env = {**setup["env"], "ARGILLA_WORKER_TRAINING__BASE_MODEL": str(save_tiny_classifier(tmp / "base")),
           "ARGILLA_WORKER_TRAINING__DEVICE": "cpu", "ARGILLA_WORKER_TRAINING__EPOCHS": "2",
           "ARGILLA_WORKER_TRAINING__MIN_STEPS": "0", "ARGILLA_WORKER_TRAINING__MAX_LENGTH": "32"}
    command = [sys.executable, "-m", "worker", "score", "--oof", "3", "-c", str(config)]
    with (tmp / "oof-first.log").open("w") as log:
        first = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait(lambda: sum(_scored(setup["record_file"]).values()) >= 5, 180, "the first fold's first batch")
        finally:
            first.send_signal(signal.SIGTERM)
            code = first.wait(120)
    output = (tmp / "oof-first.log").read_text()
    assert code == 143 and "Traceback" not in output, output[-3000:]
    assert ("the out-of-fold run stopped on request after a pushed batch: every pushed batch stands, and the 1 of 3 "
            "fold models it completed are kept") in output, output[-3000:]
    pushed_before = sum(_scored(setup["record_file"]).values())
    assert pushed_before < RECORDS, "the run ended before it was stopped"
    assert len(list((tmp / "registry" / "folds").glob("v0001-oof3-*/fold-0/margins.npy"))) == 1

    setup["write_config"](push_batch=5)  # no longer slowed down
    rerun = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)

    assert rerun.returncode == 0 and "Traceback" not in rerun.stderr, rerun.stderr[-3000:]
    assert "fold-0: trained by a stopped run on the same examples and settings; used again" in rerun.stderr
    assert rerun.stderr.count("trained on ") == 2, rerun.stderr[-3000:]  # folds 1 and 2 only
    unchanged = int(rerun.stdout.split(" unchanged")[0].rsplit(", ", 1)[1])
    assert unchanged >= pushed_before, rerun.stdout  # the same model and seed: the same values, not pushed again
    assert _versions(gateway)["v0001-oof3"] == RECORDS
    assert all(isinstance(r.metadata.get("label_issue"), float) for r in gateway.pull())
    assert not any((tmp / "registry" / "folds").iterdir())


def test_a_promotion_or_rollback_from_the_command_line_is_noticed_and_rescored(setup):
    gateway, port, tmp = setup["gateway"], setup["port"], setup["tmp"]
    registry = ModelRegistry(tmp / "registry")
    with registry.staging() as staged:
        shutil.copytree(save_tiny_classifier(tmp / "tiny-2", seed=7), staged, dirs_exist_ok=True)
        registry.add(staged, {"validation": {"macro_f1": 0.6}})
    worker = WorkerProcess(setup["write_config"](), setup["env"], tmp / "worker.log").start()

    def models(*args):
        result = subprocess.run([sys.executable, "-m", "worker", "models", *args, "-c", str(worker.config)],
                                cwd=REPO_ROOT, env=setup["env"], capture_output=True, text=True, timeout=60,
                                check=False)
        assert result.returncode == 0, result.stderr

    def health_model():
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()["model"]

    try:
        _wait(lambda: _versions(gateway)["v0001"] == RECORDS, 180, "every record scored by v0001", worker)
        models("promote", "v0002")
        _wait(lambda: health_model() == "v0002", 30, "/healthz to report v0002", worker)
        _wait(lambda: _versions(gateway)["v0002"] == RECORDS, 180, "every record rescored by v0002", worker)
        models("rollback")
        _wait(lambda: health_model() == "v0001", 30, "/healthz to report v0001 again", worker)
        _wait(lambda: _versions(gateway)["v0001"] == RECORDS, 180, "every record rescored by v0001", worker)
    finally:
        assert worker.stop() == 0
    assert "the current model changed to v0002" in worker.output()


def test_while_argilla_is_unreachable_at_start_status_and_healthz_say_so_alike(setup):
    tmp, port = setup["tmp"], setup["port"]
    config = setup["write_config"]()
    config.write_text(config.read_text().replace(setup["settings"].api_url, f"http://127.0.0.1:{_free_port()}"))
    worker = WorkerProcess(config, setup["env"], tmp / "worker.log").start()
    try:
        _wait(lambda: _status(tmp).get("argilla", {}).get("reachable") is False, 60, "status.json: unreachable",
              worker)
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json()
        status = subprocess.run([sys.executable, "-m", "worker", "status", "-c", str(config)], cwd=REPO_ROOT,
                                env=setup["env"], capture_output=True, text=True, timeout=60, check=False)
    finally:
        assert worker.stop() == 0
    assert health["argilla"]["reachable"] is False
    assert "UNREACHABLE" in status.stdout and "Traceback" not in status.stderr
    assert "connecting again in" in worker.output()


def test_the_schedule_survives_a_restart(setup):
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    tmp = setup["tmp"]
    config = setup["write_config"](interval=90.0)
    for _ in range(2):
        worker = WorkerProcess(config, setup["env"], tmp / "worker.log").start()
        pid = worker.process.pid
        _wait(lambda pid=pid: _status(tmp).get("pid") == pid and _status(tmp).get("jobs", {}).get("score"),
              180, "the first scoring job", worker)
        assert worker.stop() == 0
        store = SQLAlchemyJobStore(url=f"sqlite:///{tmp / 'state' / 'jobs.sqlite'}")
        jobs = {job.id: job.next_run_time for job in store.get_all_jobs()}
        store.shutdown()
        if _ == 0:
            first = jobs
    assert set(jobs) == {"score"} and jobs == first, "the stored schedule was reset by the restart"
    assert "schedule: score kept" in worker.output()


def test_a_broken_plugin_is_logged_by_name_and_the_loop_goes_on(setup):
    gateway, tmp = setup["gateway"], setup["tmp"]
    config = setup["write_config"](plugins=("tests.worker_plugins.broken", "tests.worker_plugins.recorder"))
    worker = WorkerProcess(config, setup["env"], tmp / "worker.log").start()
    try:
        _wait(lambda: _versions(gateway)["v0001"] == RECORDS, 180, "every record scored despite the plugin", worker)
    finally:
        assert worker.stop() == 0
    assert "plugin tests.worker_plugins.broken failed in on_records_scored" in worker.output()
    assert "plugin tests.worker_plugins.broken failed in register_scorers" in worker.output()
    assert sum(_scored(setup["record_file"]).values()) == RECORDS  # the other plugin still ran


def test_config_errors_name_the_key_and_the_value(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[scoring]\nsamples = 0\nmc_layers = "most"\n[argilla]\napi_key = "leaked"\n')
    secret = subprocess.run([sys.executable, "-m", "worker", "run", "-c", str(config)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=60, check=False)
    assert secret.returncode == 1 and "argilla.api_key is a secret" in secret.stderr
    assert "leaked" not in secret.stderr
    config.write_text('[scoring]\nsamples = 0\n[retrain]\nmin_new_corrections = "many"\n')
    bad = subprocess.run([sys.executable, "-m", "worker", "run", "-c", str(config)], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 1
    assert "scoring.samples = 0" in bad.stderr and "retrain.min_new_corrections = 'many'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_unusable_disks_and_model_paths_are_one_line_before_any_long_job(setup):
    """/sys is read-only even for root (the tests may run as root, for whom chmod changes nothing)."""
    env, tmp = setup["env"], setup["tmp"]
    base_env = {**env, "ARGILLA_WORKER_ARGILLA__API_URL": setup["settings"].api_url,
                "ARGILLA_WORKER_ARGILLA__DATASET": setup["gateway"].dataset_name,
                "ARGILLA_WORKER_ARGILLA__WORKSPACE": setup["settings"].workspace,
                "ARGILLA_WORKER_STATE_DIR": str(tmp / "state"), "ARGILLA_WORKER_REGISTRY__PATH": str(tmp / "registry"),
                "ARGILLA_WORKER_TRAINING__BASE_MODEL": str(save_tiny_classifier(tmp / "base")),
                "ARGILLA_WORKER_TRAINING__DEVICE": "cpu", "ARGILLA_WORKER_SCORING__DEVICE": "cpu"}
    (tmp / "not-a-model").mkdir()
    cases = [
        (["train"], {"ARGILLA_WORKER_REGISTRY__PATH": "/sys/argilla-worker-registry"},
         "registry.path = '/sys/argilla-worker-registry' is not writable"),
        (["train"], {"ARGILLA_WORKER_STATE_DIR": "/sys"}, "state_dir = '/sys' is not writable"),
        (["score"], {"ARGILLA_WORKER_STATE_DIR": "/sys"}, "state_dir = '/sys' is not writable"),
        (["run"], {"ARGILLA_WORKER_STATE_DIR": "/sys/state"}, "state_dir = '/sys/state' is not writable"),
        (["score", "--oof", "2"], {"ARGILLA_WORKER_TRAINING__BASE_MODEL": str(tmp / "missing" / "minilm")},
         f"training.base_model = '{tmp / 'missing' / 'minilm'}': no such directory"),
        (["cold-start"], {"ARGILLA_WORKER_TRAINING__BASE_MODEL": str(tmp / "not-a-model")},
         "the directory holds no transformers model"),
        (["cold-start", "--vector", "embedding"], {}, "has no vector 'embedding': its vectors: none"),
        # what no retry fixes, on connecting: one line saying what to change (the worker does not wait it out)
        (["run"], {"ARGILLA_WORKER_ARGILLA__API_KEY": "not.a.key"}, "the API key was refused (401)"),
        (["score"], {"ARGILLA_WORKER_ARGILLA__API_URL": setup["settings"].api_url + "/api/v1"},
         "so this is not an Argilla 2.x server's root URL"),
    ]

    as_processes = {3, 7}  # `run` (the service) as real processes; the others through the same CLI in this process

    def attempt(index_and_case):
        index, (args, override, _) = index_and_case
        started = time.monotonic()
        if index in as_processes:
            result = subprocess.run([sys.executable, "-m", "worker", *args], cwd=REPO_ROOT,
                                    env={**base_env, **override}, capture_output=True, text=True, timeout=120,
                                    check=False)
        else:
            result = run_worker(args, {**base_env, **override})
        return result, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=2) as pool:  # the processes beside the in-process commands
        processes = {index: pool.submit(attempt, (index, cases[index])) for index in as_processes}
        outcomes = [processes[index].result() if index in processes else attempt((index, case))
                    for index, case in enumerate(cases)]
    for (args, _, message), (result, seconds) in zip(cases, outcomes):
        assert result.returncode == 1 and "Traceback" not in result.stderr, (args, result.stderr[-2000:])
        assert result.stderr.strip().splitlines()[-1] == f"error: {message}" or message in result.stderr, (
            args, result.stderr[-2000:])
        assert seconds < 60, f"{args} took minutes before failing"
