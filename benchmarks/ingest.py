"""Ingest throughput: what merging into existing records costs, side by side with plain writes.

Against the local Argilla stack (started if needed; LOCAL_ARGILLA_* settings apply), N records of
``benchmark text number i`` with a label, each path into a dataset of its own where it matters:

  1. raw bulk upsert: the merged-ingest payloads of new records, ``PUT …/records/bulk`` 250 per call, no
     lookup — the cost of writing alone (the ceiling for an ingest of new records);
  2. SDK log: ``dataset.records.log`` of ``rg.Record``s, 500 per call — what ingest did before it merged
     (it replaced the metadata and fields of records that existed);
  3. ingest, new records: ``ArgillaGateway.log_labelled_texts`` (one search by external id per 250 records,
     then the bulk write);
  4. ingest again, nothing changed: the searches only, nothing written;
  5. ingest again with every label changed: search, merge, write.

Writes ``benchmarks/results/ingest.{json,md}``.

    python benchmarks/ingest.py                  # 5,000 records
    python benchmarks/ingest.py --records 20000
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argilla as rg

from benchmarks._shared import write_results
from worker.gateway import ArgillaGateway
from worker.gateway.client import LogReport, _IngestPlan
from worker.iterables import batched
from worker.local_argilla.settings import LocalArgillaSettings
from worker.local_argilla.stack import LocalArgilla
from worker.logging_setup import configure_logging
from worker.records import LabelledText

LABELS = ("negative", "positive")


def texts(count: int, flip: bool = False) -> list[LabelledText]:
    return [LabelledText(f"b{i}", f"benchmark text number {i}", LABELS[(i + flip) % 2]) for i in range(count)]


def gateway_for(settings: LocalArgillaSettings, name: str) -> ArgillaGateway:
    gateway = ArgillaGateway(api_url=settings.api_url, api_key=settings.api_key.get_secret_value(),
                             dataset_name=name, workspace=settings.workspace)
    gateway.ensure_dataset(LABELS)
    return gateway


def timed(function, *args, **kwargs):
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - started


def raw_write(gateway: ArgillaGateway, records: list[LabelledText]) -> None:
    plan = _IngestPlan(gateway.binding, [])
    dataset_id = gateway._dataset().id
    for batch in batched(records, 250):
        payloads = [(record.id, plan.payload(record, None).item) for record in batch]
        gateway._request("PUT", f"/api/v1/datasets/{dataset_id}/records/bulk",
                         json={"items": [payload for _, payload in payloads]})


def sdk_log(gateway: ArgillaGateway, records: list[LabelledText]) -> None:
    binding = gateway.binding
    gateway._dataset().records.log([
        rg.Record(id=record.id, fields={binding.fields[0]: record.text},
                  metadata={"original_label": record.label, "original_agent": "original"},
                  suggestions=[rg.Suggestion(question_name=binding.question, value=record.label, agent="original")])
        for record in records], batch_size=500)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=5_000)
    args = parser.parse_args()
    configure_logging("WARNING")
    settings = LocalArgillaSettings()
    LocalArgilla(settings).up()
    run = uuid.uuid4().hex[:6]
    records, flipped = texts(args.records), texts(args.records, flip=True)

    _, raw_s = timed(raw_write, gateway_for(settings, f"bench-ingest-raw-{run}"), records)
    _, sdk_s = timed(sdk_log, gateway_for(settings, f"bench-ingest-sdk-{run}"), records)
    merged = gateway_for(settings, f"bench-ingest-merge-{run}")
    new, new_s = timed(merged.log_labelled_texts, records)
    same, same_s = timed(merged.log_labelled_texts, records)
    changed, changed_s = timed(merged.log_labelled_texts, flipped)

    n = args.records
    rows: list[tuple[str, float, LogReport | None]] = [
        ("raw bulk upsert, new records (write only: the ceiling)", raw_s, None),
        ("SDK records.log, new records (ingest before it merged)", sdk_s, None),
        ("ingest, new records (search by id + write)", new_s, new),
        ("ingest again, nothing changed (search only)", same_s, same),
        ("ingest again, every label changed (search + merge + write)", changed_s, changed),
    ]
    payload = {"records": n, "paths": [
        {"path": name, "seconds": seconds, "records_per_s": n / seconds, "vs_raw": raw_s / seconds,
         **({"created": report.created, "updated": report.updated, "unchanged": report.unchanged,
             "failed": len(report.failed)} if report else {})}
        for name, seconds, report in rows]}
    lines = [f"Ingest — {n} records into the local Argilla (one search by external id per 250 records)", "",
             "| path | records/s | fraction of raw write | created / updated / unchanged |", "|---|---:|---:|---|"]
    lines += [f"| {name} | {n / seconds:,.0f} | {raw_s / seconds:.2f} | "
              f"{f'{report.created} / {report.updated} / {report.unchanged}' if report else '—'} |"
              for name, seconds, report in rows]
    write_results("ingest", payload, lines)


if __name__ == "__main__":
    main()
