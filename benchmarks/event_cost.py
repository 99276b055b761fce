"""What one webhook event costs the worker, by dataset size: reading the record it names.

Side by side in one run, on the local Argilla stack, for datasets of growing size:

  (a) before: a full pull of the dataset, then the record picked out (what a webhook rescore did)
  (b) now: ``ArgillaGateway.read([server_id])`` — the dataset's search endpoint filtered on the id

The ratio (a)/(b) is what an event saves; (b) should stay flat as the dataset grows.

    python benchmarks/event_cost.py                      # 1,000 and 4,000 records
    python benchmarks/event_cost.py --sizes 1000 10000   # a larger one (logging 10,000 takes minutes)
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import write_results
from worker.demo_data import SENTIMENT_LABELS as LABELS
from worker.gateway import ArgillaGateway
from worker.local_argilla.settings import LocalArgillaSettings
from worker.local_argilla.stack import LocalArgilla
from worker.logging_setup import configure_logging
from worker.records import LabelledText

logger = logging.getLogger("benchmarks.event_cost")


def _gateway(settings: LocalArgillaSettings, records: int) -> ArgillaGateway:
    """A dataset of ``records`` records (created once, reused by later runs)."""
    gateway = ArgillaGateway(api_url=settings.api_url, api_key=settings.api_key.get_secret_value(),
                             dataset_name=f"bench-events-{records}", workspace=settings.workspace)
    gateway.ensure_dataset(LABELS)
    if sum(1 for _ in gateway.pull()) < records:
        logger.info("logging %d records", records)
        gateway.log_labelled_texts(LabelledText(f"b{i}", f"benchmark text number {i}", LABELS[i % 2])
                                   for i in range(records))
    return gateway


def _median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(gateway: ArgillaGateway, repeats: int) -> dict:
    records = list(gateway.pull())
    target = records[len(records) // 2]

    def full_pull_then_pick():
        found = [r for r in gateway.pull() if r.record_id == target.record_id]
        assert len(found) == 1

    def read_by_id():
        found = list(gateway.read([target.server_id]))
        assert [r.record_id for r in found] == [target.record_id]

    before = _median_seconds(full_pull_then_pick, repeats)
    now = _median_seconds(read_by_id, repeats)
    return {"records": len(records), "full_pull_s": before, "read_by_id_s": now, "ratio": before / now}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--repeats", type=int, default=5, help="median of this many timings per path")
    args = parser.parse_args()
    configure_logging("INFO")

    settings = LocalArgillaSettings()
    LocalArgilla(settings).up()
    rows = [measure(_gateway(settings, size), args.repeats) for size in args.sizes]
    lines = [f"Cost of one webhook event: reading the record it names (local Argilla, median of {args.repeats})",
             "", "| records | (a) full pull + pick, s | (b) read by id, s | (a)/(b) |",
             "|---:|---:|---:|---:|"]
    lines += [f"| {r['records']} | {r['full_pull_s']:.3f} | {r['read_by_id_s']:.4f} | {r['ratio']:.0f} |"
              for r in rows]
    write_results("event_cost", {"rows": rows}, lines)


if __name__ == "__main__":
    main()
