"""The `copies` job's index at scale, without a server: N records' text keys and labels into the SQLite file, the
texts with copies counted and numbered, every marked record's values read back — time and peak memory (RSS) per N,
side by side (10× apart), to show the job's memory does not grow with the dataset.

The texts are 12–30 words drawn from the movie snippets' vocabulary (distinct, and as unlike each other as real
texts mostly are); every tenth record repeats an earlier record's text — half of them exactly (in other case and
spacing), half with one edit (benchmarks/duplicates.py ``edited``). With ``--similarity 1`` only the exact copies
count (the job before near copies); below 1, the near copies too (MinHash signatures and band keys into the file).

    python benchmarks/copies_index.py                      # N = 10^5 and 10^6, copies.similarity 0.6
    python benchmarks/copies_index.py --similarity 1

Writes benchmarks/results/copies_index-s<similarity>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import load_movie_snippets, write_results
from benchmarks.duplicates import edited
from worker.duplicates import NO_LABEL, CopyIndex, text_key

PAGE = 500  # the gateway's page: records added and values read back this many at a time
RECENT = 1_000  # copies repeat one of the last this many distinct texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--similarity", type=float, default=0.6, help="copies.similarity (1: exact copies only)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # run one size in this process (a child)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.similarity)))
        return
    rows = []
    for count in args.records:  # each size in a fresh process: its own peak memory
        output = subprocess.run([sys.executable, __file__, "--one", str(count), "--similarity", str(args.similarity)],
                                capture_output=True, text=True, check=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
    lines = [(f"The copies index at scale, copies.similarity {args.similarity:g} (one process per N; every tenth "
              "record a copy of an earlier one, half exact, half with one edit; labels of 3)"), "",
             ("| records | texts with copies | disagreeing | index s | count s | read back s | marked | RSS MB: "
              "before → peak | SQLite file MB | disk MB, peak |"),
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
             *(f"| {r['records']:,} | {r['texts']:,} | {r['disagreeing']:,} | {r['index_s']:.1f} | "
               f"{r['count_s']:.1f} | {r['read_s']:.1f} | {r['marked']:,} | {r['before_mb']:.0f} → "
               f"{r['peak_mb']:.0f} | {r['disk_mb']:.0f} | {r['disk_peak_mb']:.0f} |" for r in rows)]
    write_results(f"copies_index-s{args.similarity:g}", {"similarity": args.similarity, "rows": rows}, lines)


def measure(count: int, similarity: float) -> dict:
    rng = random.Random(0)
    vocabulary = sorted({word for snippet in load_movie_snippets() for word in snippet.text.split()})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MB after the imports and the vocabulary
    recent: list[str] = []  # the last texts, for copies (an earlier record, not the whole dataset, is remembered)
    with tempfile.TemporaryDirectory() as work, disk_peak() as peak:
        index = CopyIndex(Path(work) / "copies.sqlite", similarity)
        started = time.perf_counter()
        page, texts = [], []
        for number in range(count):
            if number % 10 == 9 and recent:
                earlier = rng.choice(recent)
                text = earlier.upper() if number % 20 == 9 else edited(earlier, rng)
            else:
                text = " ".join(rng.choices(vocabulary, k=rng.randint(12, 30)))
                if len(recent) < RECENT:
                    recent.append(text)
                else:
                    recent[number % RECENT] = text
            label = rng.choice(("account", "billing", NO_LABEL))
            page.append((f"srv-{number}", f"r{number}", text_key(text), label, False))
            texts.append((text, None))
            if len(page) == PAGE:
                index.add(page, texts if similarity < 1 else None)
                page, texts = [], []
        index.add(page, texts if similarity < 1 else None)
        indexed = time.perf_counter()
        counts = index.count()
        counted = time.perf_counter()
        marked = sum(len(batch) for batch in index.values(PAGE))
        read = time.perf_counter()
        index.close()
        disk = sum(path.stat().st_size for path in Path(work).iterdir()) / 2**20
    return {"records": count, "texts": counts.texts, "disagreeing": counts.disagreeing_texts,
            "index_s": indexed - started, "count_s": counted - indexed, "read_s": read - counted, "marked": marked,
            "disk_mb": disk, "disk_peak_mb": peak[0],
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "before_mb": before}


@contextmanager
def disk_peak(every_s: float = 0.05) -> Iterator[list[float]]:
    """[the most MB of disk this process held in open files above what it held at the start], filled in on exit:
    the SQLite file and the temporary files SQLite sorts in (unlinked when opened, so in no directory, but open:
    /proc/self/fd lists them). Sampled every ``every_s``; blocks allocated, not apparent sizes. Linux only."""
    start, peak, done = _open_files_mb(), [0.0], threading.Event()

    def sample() -> None:
        while not done.wait(every_s):
            peak[0] = max(peak[0], _open_files_mb() - start)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


def _open_files_mb() -> float:
    """MB allocated to the regular files this process has open."""
    total = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            status = os.stat(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if stat.S_ISREG(status.st_mode):
            total += status.st_blocks * 512
    return total / 2**20


if __name__ == "__main__":
    main()
