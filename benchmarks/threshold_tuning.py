"""How optimistic a multi-label model's validation macro-F1 reads when its thresholds were tuned on the same records.

A multi-label model's per-label decision thresholds are tuned on its validation records (each label's F1 at its
best cut, `tune_thresholds`); read on those same records, its macro-F1 is the best of many cuts on them — and a
loop's first models have a few dozen validation records. Here a MiniLM with a sigmoid head is fine-tuned as the
worker trains (`training.min_steps` steps) on `--train` records of real label sets and tuned on `--validation` others,
over `--seeds` draws, and its validation macro-F1 is read three ways beside the truth (its macro-F1 at the tuned
thresholds on `--test` records it never saw):

  in-sample     decided at the thresholds tuned on those records (what the report and the gate read before)
  cross-fitted  each half decided at thresholds tuned on the other (`cross_fitted_decisions`: what they read now)
  at 0.5        untuned

Movie snippets with every sentiment ≥ 20 % of their own raters gave (3 labels, benchmarks/multilabel.py).

    python -m benchmarks.threshold_tuning --train 120 --validation 30 --test 1000 --seeds 5
"""

from __future__ import annotations

import argparse
import logging
import random
import tempfile
from pathlib import Path

import numpy as np

from benchmarks._shared import write_results
from benchmarks.multilabel import SENTIMENTS, rated_snippets
from worker.logging_setup import configure_logging
from worker.offline_assets import MINILM_MODEL, fetch
from worker.scoring import load_classifier
from worker.scoring.multilabel import cross_fitted_decisions
from worker.training.data import Example
from worker.training.evaluate import label_set_metrics, label_set_targets, predict_probabilities
from worker.training.trainer import TrainingSettings, train_classifier

logger = logging.getLogger("benchmarks.threshold_tuning")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=120)
    parser.add_argument("--validation", type=int, default=30)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()
    configure_logging("INFO")
    rows = [Example(row_id, text, tuple(s for s in SENTIMENTS if s in chosen))
            for row_id, text, chosen in rated_snippets(0.2)]
    runs = [_run(rows, seed, args) for seed in range(args.seeds)]
    errors = {name: [run[name] - run["test"] for run in runs] for name in ("in-sample", "cross-fitted", "at 0.5")}
    lines = ["## Validation macro-F1 of a multi-label model whose thresholds the validation records tuned, CPU", "",
             (f"MiniLM sigmoid head on {args.train} movie-rater label sets (3 labels), thresholds tuned on "
              f"{args.validation} validation records, truth: macro-F1 at the tuned thresholds on {args.test} unseen "
              f"records; {args.seeds} seeds."), "",
             "| seed | validation in-sample | cross-fitted | at 0.5 | test (truth) |", "|---:|---:|---:|---:|---:|",
             *(f"| {seed} | {run['in-sample']:.3f} | {run['cross-fitted']:.3f} | {run['at 0.5']:.3f} | "
               f"{run['test']:.3f} |" for seed, run in enumerate(runs)), "",
             "| reading | mean error vs test | mean absolute error |", "|---|---:|---:|",
             *(f"| {name} | {np.mean(values):+.3f} | {np.mean(np.abs(values)):.3f} |"
               for name, values in errors.items())]
    write_results("threshold_tuning", {"args": vars(args), "runs": runs}, lines)


def _run(rows: list[Example], seed: int, args) -> dict:
    """One draw: train, tune on the validation records, read their macro-F1 three ways and the test set's."""
    drawn = random.Random(seed).sample(rows, args.train + args.validation + args.test)
    train, validation = drawn[:args.train], drawn[args.train:args.train + args.validation]
    test = drawn[args.train + args.validation:]
    settings = TrainingSettings(epochs=3, max_length=args.max_length, batch_size=16, seed=seed, device="auto",
                                select_min_validation=10 ** 6)  # every planned epoch, as the worker's first models
    with tempfile.TemporaryDirectory() as work:
        train_classifier(fetch(MINILM_MODEL), train, validation, SENTIMENTS, Path(work), settings)
        classifier = load_classifier(Path(work), device="auto")
        thresholds = np.asarray(classifier.thresholds)

        def read(examples):
            probabilities = predict_probabilities(classifier, [e.text for e in examples], samples=1,
                                                  seed=seed).deterministic  # [N, L]
            return probabilities, label_set_targets([e.label for e in examples], SENTIMENTS)

        probabilities, targets = read(validation)
        test_probabilities, test_targets = read(test)
    run = {"in-sample": label_set_metrics(probabilities >= thresholds, targets)[1],
           "cross-fitted": label_set_metrics(cross_fitted_decisions(probabilities, targets, seed=seed), targets)[1],
           "at 0.5": label_set_metrics(probabilities >= 0.5, targets)[1],
           "test": label_set_metrics(test_probabilities >= thresholds, test_targets)[1],
           "thresholds": thresholds.tolist()}
    logger.info("seed %d: %s", seed, {k: round(v, 3) for k, v in run.items() if k != "thresholds"})
    return run


if __name__ == "__main__":
    main()
