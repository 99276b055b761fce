"""The `copies` job's index at scale, without a server: N records' text keys and labels into the SQLite file, the
texts with copies counted and numbered, every marked record's values read back — time and peak memory (RSS) per N,
side by side (10× apart), to show the job's memory does not grow with the dataset.

    python benchmarks/copies_index.py                      # N = 10^5 and 10^6, 10 % of the texts copied

Writes benchmarks/results/copies_index.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import write_results
from worker.duplicates import NO_LABEL, CopyIndex, text_key

PAGE = 500  # the gateway's page: records added and values read back this many at a time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # run one size in this process (a child)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return
    rows = []
    for count in args.records:  # each size in a fresh process: its own peak memory
        output = subprocess.run([sys.executable, __file__, "--one", str(count)], capture_output=True, text=True,
                                check=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
    lines = ["The copies index at scale (one process per N; 10 % of the texts copied once or twice, labels of 3)", "",
             ("| records | texts with copies | disagreeing | index s | count s | read back s | marked | RSS MB: "
              "before → peak |"),
             "|---:|---:|---:|---:|---:|---:|---:|---:|",
             *(f"| {r['records']:,} | {r['texts']:,} | {r['disagreeing']:,} | {r['index_s']:.1f} | "
               f"{r['count_s']:.1f} | {r['read_s']:.1f} | {r['marked']:,} | {r['before_mb']:.0f} → "
               f"{r['peak_mb']:.0f} |" for r in rows)]
    write_results("copies_index", {"rows": rows}, lines)


def measure(count: int) -> dict:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MB after the imports
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as work:
        index = CopyIndex(Path(work) / "copies.sqlite")
        started = time.perf_counter()
        page = []
        for number in range(count):
            text = f"ticket {rng.randrange(count)} body" if number % 10 == 0 else f"ticket {number} body"
            label = rng.choice(("account", "billing", NO_LABEL))
            page.append((f"srv-{number}", f"r{number}", text_key(text), label, False))
            if len(page) == PAGE:
                index.add(page)
                page = []
        index.add(page)
        indexed = time.perf_counter()
        counts = index.count()
        counted = time.perf_counter()
        marked = sum(len(batch) for batch in index.values(PAGE))
        read = time.perf_counter()
        index.close()
    return {"records": count, "texts": counts.texts, "disagreeing": counts.disagreeing_texts,
            "index_s": indexed - started, "count_s": counted - indexed, "read_s": read - counted, "marked": marked,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "before_mb": before}


if __name__ == "__main__":
    main()
