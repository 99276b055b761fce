"""The worker at dataset sizes 10× apart: what grows with the dataset and what must not.

On the local Argilla stack (default ports), for each size N, side by side in one run:

  * raw bulk upsert: the rate of ``ArgillaGateway.push`` alone (suggestion + metadata, 500 per request, no
    model) on 2,000 records already scored once, as a rescore finds them — the physical limit of a full
    rescore here (also measured on records never scored: the server inserts a suggestion faster than it
    replaces one);
  * full rescore: ``score_job(full=True)`` with a new model version (every record stale), in a child process:
    records/s end to end (read, score, push overlapped) and its peak RSS;
  * one submission → its refreshed suggestion: a response posted as the UI does, then the record rescored
    (a) by id, as a webhook event triggers it, (b) by the incremental poll (no reconciliation due); the
    latency runs from the POST to the moment the record reads back with values computed with the response.
    (The runner adds its debounce, 2 s, to (a) and waits for the next poll for (b).)

The model is the tiny in-process BERT of the tests (2 layers, 32 hidden; MC dropout T = 20, adaptive): it
scores far faster than the server upserts, so the rescore measures what the worker adds to the push.

    python benchmarks/scale.py                       # 5,000 and 50,000 records (logging 50,000 takes ~12 min)
    python benchmarks/scale.py --sizes 2000 --raw 500
    python benchmarks/scale.py --publish-only        # publishing each dataset: seconds and peak RSS
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import write_results
from worker.demo_data import SENTIMENT_LABELS as LABELS
from worker.demo_data import load_movie_snippets
from worker.gateway import ArgillaGateway
from worker.local_argilla.settings import LocalArgillaSettings
from worker.local_argilla.stack import LocalArgilla
from worker.logging_setup import configure_logging
from worker.records import LabelledText, Prediction

logger = logging.getLogger("benchmarks.scale")
WORK = Path(tempfile.gettempdir()) / "argilla-worker-scale-bench"


def _dataset_name(size: int) -> str:
    return f"bench-scale-{size}"


def _gateway(settings: LocalArgillaSettings, size: int) -> ArgillaGateway:
    gateway = ArgillaGateway(api_url=settings.api_url, api_key=settings.api_key.get_secret_value(),
                             dataset_name=_dataset_name(size), workspace=settings.workspace)
    gateway.ensure_dataset(LABELS)
    gateway.prepare()
    return gateway


def ensure_records(gateway: ArgillaGateway, size: int) -> None:
    """``size`` records of movie snippets (logged once; later runs reuse the dataset)."""
    present = sum(1 for _ in gateway.pull())
    if present >= size:
        return
    snippets = load_movie_snippets()
    logger.info("logging %d records (%d present)", size - present, present)
    started = time.perf_counter()
    gateway.log_labelled_texts(
        LabelledText(f"s{i}", f"{snippets[i % len(snippets)].text} ({i})", snippets[i % len(snippets)].label)
        for i in range(present, size))
    logger.info("logged in %.0f s", time.perf_counter() - started)


def raw_upsert_rate(gateway: ArgillaGateway, count: int) -> float:
    """records/s of the gateway's bulk upsert alone, values that differ from what is stored."""
    current = {}
    for record in gateway.pull():
        current[record.record_id] = record
        if len(current) == count:
            break
    stamp = time.time() % 1000
    predictions = [Prediction(record_id, LABELS[i % 2], 0.5, "raw-upsert",
                              {"loss": round(stamp + i / 1000, 3), "bald": 0.1, "model_version": "raw-upsert"})
                   for i, record_id in enumerate(current)]
    started = time.perf_counter()
    report = gateway.push(predictions, current=current)
    seconds = time.perf_counter() - started
    assert report.sent == len(predictions), report
    return report.sent / seconds


def full_rescore(settings: LocalArgillaSettings, size: int, torch_threads: int | None) -> dict:
    """A full rescore in a child process (its peak RSS is its own): {scored, seconds, rate, peak_rss_mb}."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    child = subprocess.run([sys.executable, __file__, "--child-full-rescore", str(size),
                            "--torch-threads", str(torch_threads or 0)], check=False,
                           capture_output=True,
                           text=True, env={**os.environ, "ARGILLA_API_KEY": settings.api_key.get_secret_value(),
                                           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    if child.returncode != 0:
        raise RuntimeError(f"full rescore failed:\n{child.stderr[-3000:]}")
    result = json.loads(child.stdout.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result["peak_rss_mb"] = max(peak, before) / 1024  # ru_maxrss: KiB on Linux; the largest child so far
    return result


def _services(size: int, *, new_model: bool = True):
    from tests.tiny_models import save_tiny_classifier
    from worker.config import load_settings
    from worker.jobs import Services
    from worker.training.register import register_model

    local = LocalArgillaSettings()
    settings = load_settings(
        argilla={"api_url": local.api_url, "dataset": _dataset_name(size), "workspace": local.workspace},
        scoring={"samples": 20, "device": "cpu"},
        registry={"path": str(WORK / f"registry-{size}")}, state_dir=str(WORK / f"state-{size}"))
    services = Services(settings)
    if not new_model:
        return services
    stamp = time.time_ns()  # a new model each call (the same weights would register as the same version)
    model = save_tiny_classifier(WORK / f"model-{stamp}", seed=stamp % 1_000_003)
    entry = register_model(str(model), services.registry, services.labels())
    services.registry.promote(entry.version, reason="benchmark")
    return services


def child_full_rescore(size: int, torch_threads: int | None) -> None:
    import torch

    from worker.jobs import score_job

    if torch_threads:
        torch.set_num_threads(torch_threads)
    services = _services(size)
    first_push: list[tuple[float, int]] = []

    def on_batch(report, scores) -> None:
        if not first_push:
            first_push.append((time.perf_counter(), report.pushed))

    started = time.perf_counter()
    report = score_job(services, full=True, on_batch=on_batch)
    ended = time.perf_counter()
    steady = ((report.pushed - first_push[0][1]) / (ended - first_push[0][0])
              if first_push and report.pushed > first_push[0][1] else 0.0)
    print(json.dumps({"scored": report.scored, "pushed": report.pushed, "seconds": ended - started,
                      "rate": report.pushed / (ended - started), "steady_rate": steady,
                      "first_push_s": first_push[0][0] - started if first_push else None}))


def publish(settings: LocalArgillaSettings, size: int) -> dict:
    """``publish_job`` to a local directory in a child process: {records, seconds, peak_rss_mb} (its own RSS)."""
    child = subprocess.run([sys.executable, __file__, "--child-publish", str(size)], check=False, capture_output=True,
                           text=True, env={**os.environ, "ARGILLA_API_KEY": settings.api_key.get_secret_value(),
                                           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    if child.returncode != 0:
        raise RuntimeError(f"publishing failed:\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def child_publish(size: int) -> None:
    from worker.jobs import publish_job

    services = _services(size, new_model=False)
    services.labels()  # binds before the clock starts, as a running worker has
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as target:
        [result] = publish_job(services, directory=Path(target) / "cleaned")
        records = json.loads((Path(target) / "cleaned" / "publication.json").read_text())["counts"]["records"]
    print(json.dumps({"records": records, "seconds": time.perf_counter() - started, "published": result.published,
                      "baseline_rss_mb": baseline,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def submission_latency(size: int) -> dict:
    """Seconds from a UI-style submission to the record reading back refreshed: by id (webhook) and by poll."""
    from worker.jobs import score_job

    services = _services(size, new_model=False)  # the model of the full rescore: every record is up to date
    gateway = services.gateway
    score_job(services)  # reads once what the last pushes changed (and rescores what the raw upserts overwrote)
    score_job(services)  # … and once what that run pushed: the poll below reads only news
    latencies = {}
    for path, offset in (("by_id", size // 3), ("poll", 2 * size // 3)):
        target = next(r for i, r in enumerate(gateway.pull()) if i >= offset and not r.responses)
        started = time.perf_counter()
        _submit(gateway, target.server_id)
        report = score_job(services, server_ids=[target.server_id]) if path == "by_id" else score_job(services)
        refreshed = next(gateway.read([target.server_id]))
        latencies[f"{path}_s"] = time.perf_counter() - started
        latencies[f"{path}_considered"] = report.considered
        assert refreshed.metadata.get("submitted_responses") == 1, (path, refreshed.metadata)
    return latencies


def _submit(gateway: ArgillaGateway, server_id: str) -> None:
    question = gateway.binding.question
    gateway.client.http_client.post(f"/api/v1/records/{server_id}/responses", json={
        "values": {question: {"value": LABELS[0]}}, "status": "submitted"}).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--raw", type=int, default=2000, help="records pushed to measure the raw upsert rate")
    parser.add_argument("--torch-threads", type=int, default=0,
                        help="torch threads of the scoring process (0: torch's default, every core)")
    parser.add_argument("--latency-only", action="store_true",
                        help="only the submission → refreshed latencies (datasets and model from an earlier run)")
    parser.add_argument("--publish-only", action="store_true",
                        help="only publishing each dataset to a local directory: seconds and peak RSS")
    parser.add_argument("--child-full-rescore", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-publish", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_full_rescore:
        configure_logging("WARNING")
        return child_full_rescore(args.child_full_rescore, args.torch_threads)
    if args.child_publish:
        configure_logging("WARNING")
        return child_publish(args.child_publish)
    configure_logging("INFO")
    settings = LocalArgillaSettings()
    os.environ.setdefault("ARGILLA_API_KEY", settings.api_key.get_secret_value())
    LocalArgilla(settings).up()
    if args.publish_only:
        rows = [{"records_in_argilla": size, **publish(settings, size)} for size in args.sizes]
        lines = ["| records | published | seconds | records/s | peak RSS MB (before publishing) |",
                 "|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['records_in_argilla']} | {r['records']} | {r['seconds']:.1f} | "
                  f"{r['records'] / r['seconds']:.0f} | {r['peak_rss_mb']:.0f} ({r['baseline_rss_mb']:.0f}) |"
                  for r in rows]
        if len(rows) > 1:
            rss_ratio = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
            size_ratio = rows[-1]["records_in_argilla"] / rows[0]["records_in_argilla"]
            lines += ["", f"peak RSS {rss_ratio:.2f}× for {size_ratio:.0f}× the records"]
        write_results("scale_publish", {"rows": rows}, lines)
        return
    if args.latency_only:
        rows = [{"records": size, **submission_latency(size)} for size in args.sizes]
        lines = ["| records | submission → refreshed, by id s (records read) | by poll s (records read) |",
                 "|---:|---:|---:|"]
        lines += [f"| {r['records']} | {r['by_id_s']:.2f} ({r['by_id_considered']}) | {r['poll_s']:.2f} "
                  f"({r['poll_considered']}) |" for r in rows]
        write_results("scale_latency", {"rows": rows}, lines)
        return
    rows = []
    for size in args.sizes:
        gateway = _gateway(settings, size)
        ensure_records(gateway, size)
        raw_fresh = raw_upsert_rate(gateway, min(args.raw, size))
        rescore = full_rescore(settings, size, args.torch_threads)
        raw = raw_upsert_rate(gateway, min(args.raw, size))  # records as the rescore found them: scored before
        latency = submission_latency(size)
        rows.append({"records": size, "raw_upsert_per_s": raw, "raw_upsert_fresh_per_s": raw_fresh,
                     **{f"rescore_{k}": v for k, v in rescore.items()}, **latency})
        logger.info("%s", rows[-1])
    lines = ["Scale: the same runs at each size (local Argilla on this machine; tiny BERT, T = 20 adaptive)", "",
             ("| records | raw upsert rec/s | full rescore rec/s | ÷ raw | full rescore s | peak RSS MB | "
             "submission → refreshed, by id s | by poll s |"), "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['records']} | {r['raw_upsert_per_s']:.0f} ({r['raw_upsert_fresh_per_s']:.0f}) | "
              f"{r['rescore_rate']:.0f} | "
              f"{r['rescore_rate'] / r['raw_upsert_per_s']:.2f} | {r['rescore_seconds']:.0f} | "
              f"{r['rescore_peak_rss_mb']:.0f} | {r['by_id_s']:.2f} | {r['poll_s']:.2f} |" for r in rows]
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        lines += ["", (f"{last['records']} vs {first['records']} records: submission latency by id "
                      f"{last['by_id_s'] / first['by_id_s']:.2f}×, by poll {last['poll_s'] / first['poll_s']:.2f}×, "
                      f"peak RSS {last['rescore_peak_rss_mb'] / first['rescore_peak_rss_mb']:.2f}×")]
    write_results("scale", {"rows": rows}, lines)


if __name__ == "__main__":
    main()
