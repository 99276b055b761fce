"""A long-running worker's memory, file descriptors and threads while annotators keep answering.

The worker is a service that runs for weeks: what one event costs it must not stay behind. This starts the real
worker (`argilla-worker run`, a real process) on the local Argilla stack with a real model (all-MiniLM-L6-v2
fine-tuned briefly on movie snippets), on a dataset of ``--records`` snippets, and once it has scored them all,
answers ``--answers`` records a round through the endpoint the UI's Submit button calls, for ``--rounds`` rounds:
each answer is a signed webhook event, a rescore job, a push. After each round (the answered records rescored, and
the worker idle: no job running or queued, so a retrain's peak is not taken for its size) it reads the worker
process's resident memory, open file descriptors and threads. The scheduled incremental score runs
every minute meanwhile; retraining is off unless ``--retrain-every`` is given (then a retrain, a promotion and a
full rescore are part of the soak too).

Reported: each figure after ``--warmup`` rounds and at the end, and the resident memory's growth per 100 events (a
least-squares slope over the rounds after the warm-up). A leak shows as a slope that does not flatten with more
rounds and as descriptors or threads that keep growing.

    python -m benchmarks.soak                                  # 2,000 records, 60 rounds of 5 answers
    python -m benchmarks.soak --rounds 200 --retrain-every 100

Writes benchmarks/results/soak.{json,md}. About 10 minutes at the defaults on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

from benchmarks._shared import finetuned_minilm, movie_split, write_results
from worker.demo_data import SENTIMENT_LABELS as LABELS
from worker.gateway import ArgillaGateway
from worker.local_argilla.settings import LocalArgillaSettings
from worker.local_argilla.stack import LocalArgilla
from worker.logging_setup import configure_logging

logger = logging.getLogger("benchmarks.soak")

REPO_ROOT = Path(__file__).resolve().parents[1]
NO_RETRAIN = 10**9  # retrain.min_new_corrections when the soak leaves retraining out
IDLE_STATUS_AGE_S = 1.5  # an idle worker's status.json is at most this old (written each second between jobs)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _dataset(settings: LocalArgillaSettings, records: int) -> ArgillaGateway:
    """A fresh dataset of ``records`` movie snippets with their labels as the labels they came with."""
    name = f"bench-soak-{records}"
    import argilla as rg

    client = rg.Argilla(api_url=settings.api_url, api_key=settings.api_key.get_secret_value())
    old = client.datasets(name, workspace=settings.workspace)
    if old is not None:
        old.delete()
    gateway = ArgillaGateway(api_url=settings.api_url, api_key=settings.api_key.get_secret_value(),
                             dataset_name=name, workspace=settings.workspace)
    gateway.ensure_dataset(LABELS)
    _, snippets = movie_split(train=400, test=records, seed=1)
    gateway.log_labelled_texts(snippets)
    return gateway


def _config(directory: Path, settings: LocalArgillaSettings, dataset: str, port: int, retrain_every: int) -> Path:
    config = directory / "worker.toml"
    config.write_text(
        f'state_dir = "{directory / "state"}"\n'
        f'[argilla]\napi_url = "{settings.api_url}"\ndataset = "{dataset}"\nworkspace = "{settings.workspace}"\n'
        f'[scoring]\ndevice = "cpu"\ninterval_minutes = 1\n'
        f'[retrain]\nmin_new_corrections = {retrain_every}\n'
        f'[registry]\npath = "{directory / "registry"}"\n'
        f'[http]\nport = {port}\n'
        f'[publish]\nafter_promotion = false\n')
    return config


def _footprint(pid: int) -> dict:
    """The worker process's resident memory (MB, its children's included), open descriptors and threads."""
    process = psutil.Process(pid)
    family = [process, *process.children(recursive=True)]
    return {"rss_mb": sum(member.memory_info().rss for member in family) / 2**20,
            "fds": process.num_fds(), "threads": process.num_threads()}


def _wait(condition, timeout: float, what: str, worker: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited ({worker.returncode}) while waiting for {what}")
        if condition():
            return
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def _slope_per_100(events: list[int], values: list[float]) -> float:
    """Least-squares growth of ``values`` per 100 events."""
    if len(events) < 2:
        return 0.0
    return float(np.polyfit(np.asarray(events, dtype=float), np.asarray(values, dtype=float), 1)[0] * 100)


def soak(args: argparse.Namespace) -> dict:
    settings = LocalArgillaSettings()
    LocalArgilla(settings).up()
    gateway = _dataset(settings, args.records)
    train, _ = movie_split(train=400, test=args.records, seed=1)
    model = finetuned_minilm(train, epochs=1, max_length=64)
    with tempfile.TemporaryDirectory(prefix="soak-") as scratch:
        directory = Path(scratch)
        config = _config(directory, settings, gateway.dataset_name, _free_port(), args.retrain_every or NO_RETRAIN)
        env = {**os.environ, "ARGILLA_WORKER_ARGILLA__API_KEY": settings.api_key.get_secret_value(),
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        registered = subprocess.run([sys.executable, "-m", "worker", "models", "register", str(model), "-c",
                                     str(config)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
        if registered.returncode != 0:
            raise RuntimeError(f"models register failed: {registered.stderr[-2000:]}")
        log = (directory / "worker.log").open("w")
        worker = subprocess.Popen([sys.executable, "-m", "worker", "run", "-c", str(config)], cwd=REPO_ROOT,
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            return _rounds(args, gateway, settings, worker, directory)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=120)
            log.close()
            if args.keep_log:
                Path(args.keep_log).write_text((directory / "worker.log").read_text())


def _rounds(args, gateway: ArgillaGateway, settings: LocalArgillaSettings, worker: subprocess.Popen,
            directory: Path) -> dict:
    status = directory / "state" / "status.json"

    def state() -> dict:
        try:
            return json.loads(status.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def idle() -> bool:
        """No job queued, and none running (an idle worker writes its status every second, a job's run every 10 s
        with its progress: the job under way is in it)."""
        try:
            return (not state().get("queue") and not state().get("running")
                    and time.time() - status.stat().st_mtime < IDLE_STATUS_AGE_S)
        except FileNotFoundError:
            return False

    _wait(lambda: state().get("mode") == "webhooks", 300, "webhooks mode", worker)
    _wait(lambda: " complete" in (state().get("jobs", {}).get("full_score") or state().get("jobs", {}).get("score")
                                  or {}).get("summary", ""), 1800, "the first score of every record", worker)
    pending = [record.server_id for record in gateway.pull()]
    chance = random.Random(0)  # which records are answered, and with which label: the same in every run
    chance.shuffle(pending)
    headers = {"X-Argilla-Api-Key": settings.api_key.get_secret_value()}
    samples, answered, started = [], 0, time.monotonic()
    for round_index in range(args.rounds):
        batch = [pending.pop() for _ in range(args.answers)]
        for server_id in batch:
            response = httpx.post(f"{settings.api_url}/api/v1/records/{server_id}/responses", headers=headers,
                                  json={"values": {"label": {"value": chance.choice(LABELS)}},
                                        "status": "submitted"}, timeout=30)
            response.raise_for_status()
        answered += len(batch)
        _wait(lambda batch=batch: all(record.metadata.get("submitted_responses") == 1
                                      for record in gateway.read(batch)), 600, "the answered records rescored", worker)
        _wait(idle, 1800, "the worker idle (no job running, none queued)", worker)
        sample = {"round": round_index + 1, "events": answered, "seconds": time.monotonic() - started,
                  **_footprint(worker.pid)}
        samples.append(sample)
        logger.info("round %d: %d events, %.0f MB, %d descriptors, %d threads", sample["round"], answered,
                    sample["rss_mb"], sample["fds"], sample["threads"])
    return {"records": args.records, "rounds": args.rounds, "answers_per_round": args.answers,
            "warmup": args.warmup, "retrain_every": args.retrain_every, "samples": samples,
            "jobs": state().get("jobs", {})}


def report(result: dict) -> list[str]:
    samples = result["samples"]
    after = [sample for sample in samples if sample["round"] > result["warmup"]] or samples
    first, last = after[0], samples[-1]
    slope = _slope_per_100([s["events"] for s in after], [s["rss_mb"] for s in after])
    result["rss_mb_per_100_events"] = slope
    return [
        (f"Soak: the worker process on {result['records']} records, {result['rounds']} rounds of "
        f"{result['answers_per_round']} answers (a webhook event each; read with the worker idle; retrain "
        f"{'every ' + str(result['retrain_every']) if result['retrain_every'] else 'off'})"),
        "",
        "| | after the warm-up (round {}) | at the end (round {}) |".format(first["round"], last["round"]),
        "|---|---:|---:|",
        f"| events answered | {first['events']} | {last['events']} |",
        f"| resident memory, MB | {first['rss_mb']:.0f} | {last['rss_mb']:.0f} |",
        f"| open file descriptors | {first['fds']} | {last['fds']} |",
        f"| threads | {first['threads']} | {last['threads']} |",
        "",
        (f"Resident memory after the warm-up: {slope:+.2f} MB per 100 events (least squares over "
        f"{len(after)} rounds); descriptors {min(s['fds'] for s in after)}–{max(s['fds'] for s in after)}, threads "
        f"{min(s['threads'] for s in after)}–{max(s['threads'] for s in after)}."),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--answers", type=int, default=5, help="records answered a round (one event each)")
    parser.add_argument("--warmup", type=int, default=10, help="rounds before the figures count")
    parser.add_argument("--retrain-every", type=int, default=0,
                        help="retrain.min_new_corrections (0: no retraining during the soak)")
    parser.add_argument("--keep-log", help="copy the worker's log here")
    args = parser.parse_args()
    if args.rounds * args.answers > args.records:
        parser.error("--rounds × --answers exceeds --records: each answer goes to a record nobody answered")
    configure_logging("INFO")
    result = soak(args)
    lines = report(result)
    write_results("soak", result, lines)


if __name__ == "__main__":
    main()
