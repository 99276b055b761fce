"""Push throughput: the gateway vs raw bulk calls of the same payload through the SDK's low-level API.

Against the local Argilla stack (started if needed; LOCAL_ARGILLA_* settings apply):
  1. ingest N records once (reused by later runs),
  2. raw: ``client.api.records.bulk_upsert`` with suggestion + metadata payloads, 500 per call,
  3. gateway: ``ArgillaGateway.push`` of new values for the same records (includes its merge and
     change detection; the pull that gives it the current state is timed separately),
  4. gateway again with the same values: what it still sends.
Writes ``benchmarks/results/sync.{json,md}``.

    python benchmarks/sync.py                # 10,000 records
    python benchmarks/sync.py --records 2000
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from argilla._models import RecordModel, SuggestionModel

from worker.demo_data import LabelledText
from worker.gateway import ArgillaGateway
from worker.local_argilla.settings import LocalArgillaSettings
from worker.local_argilla.stack import LocalArgilla
from worker.logging_setup import configure_logging
from worker.records import Prediction, PulledRecord

LABELS = ("negative", "positive")


def predictions(records: list[PulledRecord], version: str, seed: int) -> list[Prediction]:
    rng = random.Random(seed)
    return [
        Prediction(record.record_id, rng.choice(LABELS), round(rng.uniform(0.5, 1.0), 6), version,
                   {"loss": rng.uniform(0, 5), "expected_loss": rng.uniform(0, 5), "bald": rng.uniform(0, 0.7),
                    "entropy": rng.uniform(0, 0.7), "margin": rng.uniform(0, 1), "confidence": rng.uniform(0.5, 1),
                    "predicted_label": rng.choice(LABELS), "model_version": version, "disagreement": "no"})
        for record in records
    ]


def raw_push(gateway: ArgillaGateway, records: dict[str, PulledRecord], batch: list[Prediction]) -> None:
    dataset = gateway._dataset()
    question_id = gateway.binding.question_id
    models = [
        RecordModel(id=records[p.record_id].server_id, fields={gateway.binding.fields[0]: records[p.record_id].text},
                    metadata={**records[p.record_id].metadata, **p.metadata},
                    suggestions=[SuggestionModel(value=p.label, question_id=question_id, type="model", score=p.score,
                                                 agent=p.agent)])
        for p in batch
    ]
    gateway.client.api.records.bulk_upsert(dataset.id, models)


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    configure_logging("WARNING")

    settings = LocalArgillaSettings()
    LocalArgilla(settings).up()
    gateway = ArgillaGateway(api_url=settings.api_url, api_key=settings.api_key.get_secret_value(),
                             dataset_name=f"bench-sync-{args.records}", workspace=settings.workspace)
    gateway.ensure_dataset(LABELS)
    current, pull_seconds = timed(lambda: {r.record_id: r for r in gateway.pull()})
    if len(current) < args.records:
        gateway.log_labelled_texts(LabelledText(f"b{i}", f"benchmark text number {i}", LABELS[i % 2])
                                   for i in range(args.records))
        current, pull_seconds = timed(lambda: {r.record_id: r for r in gateway.pull()})
    records = list(current.values())

    raw_batch = predictions(records, "bench-raw", seed=1)
    _, raw_seconds = timed(lambda: [raw_push(gateway, current, raw_batch[i:i + 500])
                                    for i in range(0, len(raw_batch), 500)])
    current = {r.record_id: r for r in gateway.pull()}
    gateway_batch = predictions(records, "bench-gateway", seed=2)
    first, gateway_seconds = timed(gateway.push, gateway_batch, current=current)
    current = {r.record_id: r for r in gateway.pull()}
    second, second_seconds = timed(gateway.push, gateway_batch, current=current)

    n = len(records)
    result = {
        "records": n,
        "pull_records_per_s": n / pull_seconds,
        "raw_records_per_s": n / raw_seconds,
        "gateway_records_per_s": n / gateway_seconds,
        "gateway_vs_raw": raw_seconds / gateway_seconds,
        "first_push_sent": first.sent,
        "second_push_sent": second.sent,
        "second_push_unchanged": second.unchanged,
        "second_push_seconds": second_seconds,
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "sync.json").write_text(json.dumps(result, indent=2))
    table = "\n".join([
        f"Push benchmark — {n} records (suggestion + 9 metadata values), local Argilla",
        "",
        "| path | records/s |",
        "|---|---:|",
        f"| raw SDK bulk_upsert | {result['raw_records_per_s']:.0f} |",
        f"| gateway push | {result['gateway_records_per_s']:.0f} |",
        f"| gateway / raw | {result['gateway_vs_raw']:.2f} |",
        f"| full pull | {result['pull_records_per_s']:.0f} |",
        "",
        f"Second push with no changes: {second.sent} sent, {second.unchanged} unchanged, {second_seconds:.2f} s.",
    ]) + "\n"
    (args.output / "sync.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
