"""The first model from a handful of reviewed records: the training schedule before and after ``training.min_steps``
and ``training.select_min_validation``.

A team starting with no label reviews its first records and the worker trains the first model from them
(validation: the worker's stratified 20 % of those records). Before: ``training.epochs`` (5) epochs whatever the
size — 20 records in batches of 16 are 10 optimizer steps — and the best epoch picked on the 4–10 validation
records. After: at least 100 optimizer steps, and a validation split under 50 records reports but picks no epoch.
Both train the offline all-MiniLM-L6-v2 with the worker's own code (``train_classifier``) on the same records and
are scored on the same held-out records (accuracy, macro-F1 of the deterministic pass).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/first_model.py [--seeds 3] [--test 400]

Writes benchmarks/results/first_model.{json,md}. CPU: about 20 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from benchmarks._shared import write_results
from worker.config import TrainingSettings
from worker.demo_data import load_bbc_news, load_movie_snippets, load_newsgroups
from worker.offline_assets import MINILM_MODEL, fetch
from worker.records import LabelledText
from worker.scoring import load_classifier
from worker.training.data import Example, stratified_split
from worker.training.evaluate import evaluate_classifier
from worker.training.trainer import train_classifier

logger = logging.getLogger("benchmarks.first_model")

SCHEDULES = {  # name -> the TrainingSettings that differ
    "before: 5 epochs, best epoch on validation": {"min_steps": 0, "select_min_validation": 0},
    "after: ≥ 100 steps, last epoch below 50 validation records": {},
}
SETS = {  # name -> (loader, reviewed-record counts)
    "BBC News (5 sections, long articles)": (load_bbc_news, (20, 50)),
    "movie snippets (2 labels)": (load_movie_snippets, (20, 50)),
    "20 Newsgroups (20 groups)": (lambda: load_newsgroups("train"), (100,)),
}


def reviewed_sample(pool: list[LabelledText], count: int, seed: int) -> list[LabelledText]:
    """``count`` records drawn at random, redrawn until every label has 2 (the stratified split keeps one to
    train on): what a team that reviews its first records in no particular order has."""
    labels = {r.label for r in pool}
    rng = random.Random(seed)
    for _ in range(1000):
        sample = rng.sample(pool, count)
        if all(n >= 2 for n in Counter(r.label for r in sample).values()) and len({r.label for r in sample}) == len(
                labels):
            return sample
    raise ValueError(f"no sample of {count} records covers every label twice")


def run_one(pool: list[LabelledText], count: int, seed: int, test_size: int, schedule: dict, work: Path) -> dict:
    reviewed = reviewed_sample(pool, count, seed)
    taken = {r.id for r in reviewed}
    rest = [r for r in pool if r.id not in taken]
    test = random.Random(seed + 1000).sample(rest, test_size)
    labels = sorted({r.label for r in pool})
    examples = [Example(r.id, r.text, r.label) for r in reviewed]
    train, validation = stratified_split(examples, 0.2, seed=seed)
    settings = TrainingSettings(base_model=str(fetch(MINILM_MODEL)), device="auto", seed=seed, **schedule)
    started = time.perf_counter()
    result = train_classifier(settings.base_model, train, validation, labels, work, settings)
    seconds = time.perf_counter() - started
    classifier = load_classifier(work, device="auto")
    held_out = evaluate_classifier(classifier, [r.text for r in test], [r.label for r in test], samples=1)
    return {"accuracy": held_out.accuracy, "macro_f1": held_out.macro_f1, "epochs": len(result.history),
            "best_epoch": result.best_epoch, "validation_records": len(validation),
            "validation_accuracy": result.history[-1].accuracy if validation else None, "seconds": seconds}


def _mean_sd(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"


def arguments(description: str) -> argparse.Namespace:
    """The options both first-model benchmarks take (and the log level they run at)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--test", type=int, default=400, help="held-out records scored per run")
    parser.add_argument("--sets", nargs="*", default=None, help="substrings of the set names to run")
    logging.basicConfig(level=logging.WARNING)
    return parser.parse_args()


def samples(args: argparse.Namespace) -> Iterator[tuple[str, list[LabelledText], int, int]]:
    """(set name, its pool, reviewed count, seed) for every run ``args`` ask for; each pool is loaded once."""
    for set_name, (loader, counts) in SETS.items():
        if args.sets and not any(part.lower() in set_name.lower() for part in args.sets):
            continue
        pool = loader()
        for count in counts:
            for seed in range(args.seeds):
                yield set_name, pool, count, seed


def by_set_count_and(runs: list[dict], column: str) -> Iterator[tuple[tuple, list[dict]]]:
    """((set, reviewed, ``column``'s value), the seeds' runs) in the order the runs came."""
    for key in dict.fromkeys((r["set"], r["reviewed"], r[column]) for r in runs):
        yield key, [r for r in runs if (r["set"], r["reviewed"], r[column]) == key]


def main() -> None:
    args = arguments(__doc__.split("\n\n")[0])
    runs: list[dict] = []
    for set_name, pool, count, seed in samples(args):
        for schedule_name, schedule in SCHEDULES.items():
            with tempfile.TemporaryDirectory() as work:
                outcome = run_one(pool, count, seed, args.test, schedule, Path(work) / "model")
            runs.append({"set": set_name, "reviewed": count, "seed": seed, "schedule": schedule_name,
                         **outcome})
            logger.warning("%s n=%d seed %d %s: accuracy %.3f (%d epochs, %.0f s)", set_name, count, seed,
                           schedule_name, outcome["accuracy"], outcome["epochs"], outcome["seconds"])
    lines = ["| set | reviewed | schedule | held-out accuracy | macro-F1 | epochs | training s |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for key, group in by_set_count_and(runs, "schedule"):
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {_mean_sd([r['accuracy'] for r in group])} | "
                     f"{_mean_sd([r['macro_f1'] for r in group])} | "
                     f"{statistics.mean(r['epochs'] for r in group):.0f} | "
                     f"{statistics.mean(r['seconds'] for r in group):.0f} |")
    write_results("first_model", {"runs": runs, "seeds": args.seeds, "test": args.test}, lines)


if __name__ == "__main__":
    main()
