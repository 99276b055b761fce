"""A first model from a handful of reviewed records, with its validation records held out (they only measure it:
fewer than ``training.select_min_validation``, they pick no epoch) vs trained again on every reviewed record
(``training.refit_first_model``, the default).

The same reviewed sample, split, settings and seed for both; both scored on the same held-out records (accuracy,
macro-F1 of the deterministic pass). The worker's own code: ``stratified_split`` and ``train_classifier`` on the
offline all-MiniLM-L6-v2.

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.first_model_refit [--seeds 3] [--test 400] [--sets bbc]

Writes benchmarks/results/first_model_refit.{json,md}. CPU: about 20 minutes on 2 cores for 3 seeds.
"""

from __future__ import annotations

import logging
import random
import tempfile
import time
from pathlib import Path

from benchmarks._shared import write_results
from benchmarks.first_model import _mean_sd, arguments, by_set_count_and, reviewed_sample, samples
from worker.config import TrainingSettings
from worker.offline_assets import MINILM_MODEL, fetch
from worker.scoring import load_classifier
from worker.training.data import Example, stratified_split
from worker.training.evaluate import evaluate_classifier
from worker.training.trainer import train_classifier

logger = logging.getLogger("benchmarks.first_model_refit")
HELD_OUT, REFIT = "validation held out", "refit on every reviewed record"


def run_one(pool, count: int, seed: int, test_size: int, work: Path) -> dict[str, dict]:
    """Both ways on one reviewed sample: {way: {accuracy, macro_f1, train, seconds}}."""
    reviewed = reviewed_sample(pool, count, seed)
    taken = {r.id for r in reviewed}
    test = random.Random(seed + 1000).sample([r for r in pool if r.id not in taken], test_size)
    labels = sorted({r.label for r in pool})
    examples = [Example(r.id, r.text, r.label) for r in reviewed]
    train, validation = stratified_split(examples, 0.2, seed=seed)
    settings = TrainingSettings(base_model=str(fetch(MINILM_MODEL)), device="auto", seed=seed)
    outcome = {}
    for way, (data, held) in {HELD_OUT: (train, validation), REFIT: ([*train, *validation], [])}.items():
        started = time.perf_counter()
        train_classifier(settings.base_model, data, held, labels, work / way[:5], settings)
        seconds = time.perf_counter() - started
        classifier = load_classifier(work / way[:5], device="auto")
        scored = evaluate_classifier(classifier, [r.text for r in test], [r.label for r in test], samples=1)
        outcome[way] = {"accuracy": scored.accuracy, "macro_f1": scored.macro_f1, "train": len(data),
                        "validation": len(validation), "seconds": seconds}
    return outcome


def main() -> None:
    args = arguments(__doc__.split("\n\n")[0])
    runs: list[dict] = []
    for set_name, pool, count, seed in samples(args):
        with tempfile.TemporaryDirectory() as work:
            outcome = run_one(pool, count, seed, args.test, Path(work))
        for way, figures in outcome.items():
            runs.append({"set": set_name, "reviewed": count, "seed": seed, "way": way, **figures})
        logger.warning("%s n=%d seed %d: accuracy %.3f held out → %.3f refit", set_name, count, seed,
                       outcome[HELD_OUT]["accuracy"], outcome[REFIT]["accuracy"])
    lines = ["| set | reviewed | first model | trained on | held-out accuracy | macro-F1 | training s |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for key, group in by_set_count_and(runs, "way"):
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {group[0]['train']} | "
                     f"{_mean_sd([r['accuracy'] for r in group])} | {_mean_sd([r['macro_f1'] for r in group])} | "
                     f"{sum(r['seconds'] for r in group) / len(group):.0f} |")
    write_results("first_model_refit", {"runs": runs, "seeds": args.seeds, "test": args.test}, lines)


if __name__ == "__main__":
    main()
