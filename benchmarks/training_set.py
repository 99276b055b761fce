"""What building a training set holds and costs at 10^5 and 10^6 labelled records, with and without
``training.max_original``.

A first model trains on the labels the records carry (a weak labeller's, an import's). Before the sample, every one
of them became a training example: at 10^6 records the training set alone held every text, and each epoch walked
all of them. Here a stream of synthetic records (``--chars`` characters of words, 20 labels with a long tail, none
annotated yet: a new team's dataset) goes through ``prepare_training_set`` exactly as ``argilla-worker train`` builds it
(consensus, copy keys, the stratified validation split), each variant in a fresh process:

  peak MB above start   the process's resident high-water mark (VmHWM) during the build, above its memory before
  s                     wall time of the build (the records are generated inside the stream: their cost counts)
  train / validation    examples in each side

    .venv/bin/python benchmarks/training_set.py [--sizes 100000 1000000] [--cap 100000]

Writes benchmarks/results/training_set.{json,md}. About 5 minutes on 2 CPU cores at the defaults.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import in_fresh_process, write_results

LABELS = [f"topic-{index:02d}" for index in range(20)]
WORDS = [f"w{index}" for index in range(5_000)]


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def _records(count: int, chars: int, seed: int) -> Iterator:
    """``count`` unreviewed records as a pull yields them, made one at a time (the stream holds none of them):
    labels drawn with weight 1/(rank+1) (a long tail)."""
    from datetime import UTC, datetime

    from worker.records import PulledRecord

    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(LABELS))]
    now = datetime.now(UTC)
    for index in range(count):
        label = rng.choices(LABELS, weights)[0]
        words, length = [], 0
        while length < chars:
            words.append(rng.choice(WORDS))
            length += len(words[-1]) + 1
        yield PulledRecord(f"srv-{index}", f"r{index:07d}", " ".join(words), {"original_label": label}, None,
                           (), now)


def _build(size: int, cap: int | str, chars: int, queue) -> None:
    from worker.config import TrainingSettings
    from worker.training.job import prepare_training_set

    settings = TrainingSettings(data="annotated+original", max_original=cap)
    before = _status_mb("VmRSS")
    start = time.perf_counter()
    training = prepare_training_set(_records(size, chars, seed=0), LABELS, settings, first_model=True)
    seconds = time.perf_counter() - start
    queue.put({"records": size, "max_original": cap, "peak_mb": max(0.0, _status_mb("VmHWM") - before),
               "seconds": seconds, "train": len(training.train), "validation": len(training.validation),
               "labels_in_train": len({example.label for example in training.train})})


def sample_arguments(description: str) -> argparse.Namespace:
    """--sizes (records), --cap (``training.max_original`` of the sampled variant), --chars (per text)."""
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--cap", type=int, default=100_000, help="training.max_original of the sampled variant")
    parser.add_argument("--chars", type=int, default=300, help="characters per record's text")
    return parser.parse_args()


def main() -> None:
    args = sample_arguments(__doc__)
    rows = [in_fresh_process(_build, size, cap, args.chars) for size in args.sizes for cap in ("all", args.cap)]
    lines = ["| records | max_original | peak MB above start | s | train | validation | labels in train |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {row['records']} | {row['max_original']} | {row['peak_mb']:.0f} | {row['seconds']:.1f} | "
              f"{row['train']} | {row['validation']} | {row['labels_in_train']} |" for row in rows]
    write_results("training_set", {"chars": args.chars, "rows": rows}, lines)


if __name__ == "__main__":
    main()
