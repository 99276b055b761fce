"""What ``score --oof K`` holds before its first fold model trains, at 10^5 and 10^6 labelled records, with and
without ``training.max_original``.

The K fold models used to train on every labelled record: at 10^6 the job held every text (and the trainer then
tokenized 0.8 × 10^6 of them K times). Now they train on every annotated record and a seeded sample of the others,
and the records outside the sample wait on disk for the model of their fold. Here a stream of synthetic records
(``--chars`` characters of words, 20 labels with a long tail, none annotated: a new team's dataset) goes through
the job's own steps — ``labelled_sample`` (the pull), ``stratified_folds`` of the sample, ``LabelledRecords.assign``
— then every fold is read back as its model would score it. Each variant runs in a fresh process:

  peak MB above start   the process's resident high-water mark (VmHWM), above its memory before the pull
  pull s                wall time of the pull step (the records are generated inside the stream: their cost counts)
  folds s               stratified folds of the sample, assigning them, and reading all K folds back
  trained on            examples the fold models train on (K − 1 folds of them each)
  disk MB               the SQLite file of the run's labelled records (removed with the run)

    HF_HUB_OFFLINE=1 PYTHONPATH=. .venv/bin/python -m benchmarks.oof_memory [--sizes 100000 1000000] [--cap 100000]

Writes benchmarks/results/oof_memory.{json,md}. About 8 minutes on 2 CPU cores at the defaults.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks._shared import in_fresh_process, write_results
from benchmarks.training_set import LABELS, _records, _status_mb, sample_arguments

FOLDS = 5


def _measure(size: int, cap: int | str, chars: int, queue) -> None:
    from worker.config import TrainingSettings
    from worker.jobs import labelled_sample
    from worker.training.data import stratified_folds
    from worker.training.kfold import LabelledRecords

    settings = TrainingSettings(max_original=cap)
    before = _status_mb("VmRSS")
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "labelled.sqlite"
        labelled = LabelledRecords(path, k=FOLDS, seed=settings.seed)
        start = time.perf_counter()
        sample, _ = labelled_sample(_records(size, chars, seed=0), LABELS, labelled, settings)
        pulled = time.perf_counter()
        folds = stratified_folds(sample, FOLDS, seed=settings.seed)
        labelled.assign({example.id: fold for example, fold in zip(sample, folds, strict=True)})
        read = sum(sum(1 for _ in labelled.fold(fold)) for fold in range(FOLDS))
        done = time.perf_counter()
        labelled.close()
        disk = path.stat().st_size / 2**20
    queue.put({"records": size, "max_original": cap, "peak_mb": max(0.0, _status_mb("VmHWM") - before),
               "pull_seconds": pulled - start, "folds_seconds": done - pulled, "trained_on": len(sample),
               "scored": read, "labels_in_sample": len({example.label for example in sample}), "disk_mb": disk})


def main() -> None:
    args = sample_arguments(__doc__)
    rows = [in_fresh_process(_measure, size, cap, args.chars)
            for size in args.sizes for cap in ("all", args.cap)]
    header = ("| records | max_original | peak MB above start | pull s | folds s | trained on | scored | "
              f"labels in sample (of {len(LABELS)}) | disk MB |")
    lines = [header, "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {row['records']} | {row['max_original']} | {row['peak_mb']:.0f} | {row['pull_seconds']:.1f} | "
              f"{row['folds_seconds']:.1f} | {row['trained_on']} | {row['scored']} | {row['labels_in_sample']} | "
              f"{row['disk_mb']:.0f} |" for row in rows]
    write_results("oof_memory", {"chars": args.chars, "folds": FOLDS, "rows": rows}, lines)


if __name__ == "__main__":
    main()
