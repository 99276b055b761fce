"""A first label-set model from a few hundred reviews: the classification head's learning rate.

`training.head_learning_rate = "auto"` gives a new single-label head of 8+ labels (or 6+ skewed ones) 1e-2 while the
encoder trains at 5e-5; until 2026-12-07 a new label-set (sigmoid) head kept the encoder's rate, unmeasured (this
benchmark's figures made "auto" give it 1e-2: RESULTS.md, "A first label-set model's head rate").
A 6-label team's first model from 150 reviews read per-label accuracy 0.58 and, a few trainings on, ticked every
label (RESULTS.md 2026-12-06). Here the worker's own `train_classifier` trains a first model on `--train` sizes of
real label sets, at the worker's defaults (5 epochs, at least 100 steps, batch 16, the stratified validation split
tunes each label's threshold), once per head rate, from the same records and seed:

  same            every parameter at training.learning_rate (5e-5): what "auto" gave label sets before
  head 1e-3       training.head_learning_rate = 1e-3
  head 1e-2       training.head_learning_rate = 1e-2 (what "auto" gives a new label-set head now)

Read on `--test` records the model never saw: macro-F1 at the tuned thresholds beside ticking every label (a model
that tells nothing apart reaches that), macro average precision (each label's ranking, no threshold), per-label
accuracy, labels ticked per record against carried.

  friends        windows of 6 Friends transcript lines, the main characters who speak (6 co-occurring labels)
  movie-raters   movie snippets, every sentiment ≥ 20 % of the snippet's own raters gave (3 labels)

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.label_set_head --dataset friends --train 150,500 --seeds 3

Writes benchmarks/results/label_set_head-<dataset>[-noise<share>].{json,md}. CPU, 2 cores: about a minute a training
on movie snippets, 3–4 minutes on Friends scenes.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import tempfile
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from benchmarks._shared import write_results
from benchmarks.multilabel import CHARACTERS, SENTIMENTS, corrupt, friends_windows, rated_snippets
from worker.logging_setup import configure_logging
from worker.offline_assets import MINILM_MODEL, fetch
from worker.scoring import load_classifier
from worker.scoring.multilabel import binary_cross_entropy
from worker.training.data import Example, stratified_split
from worker.training.evaluate import label_set_metrics, label_set_targets, predict_probabilities
from worker.training.trainer import TrainingSettings, train_classifier

logger = logging.getLogger("benchmarks.label_set_head")

HEAD_RATES: dict[str, float | str] = {"same": "same", "head 1e-3": 1e-3, "head 1e-2": 1e-2}
FIGURES = ("macro-F1", "every-label macro-F1", "macro AP", "per-label accuracy", "ticked", "carried", "loss AUROC")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=("friends", "movie-raters"), default="friends")
    parser.add_argument("--train", default="150,500", help="reviews a first model trains on (comma-separated): "
                        "the worker's split keeps 20 %% of them for validation")
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rates", default=",".join(HEAD_RATES), help="which of: " + ", ".join(HEAD_RATES))
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--noise", type=float, default=0.0, help="share of the reviews whose set is made wrong (half "
                        "lose a label they carry, half gain one): the loss sort's AUROC on them is reported")
    args = parser.parse_args()
    configure_logging("INFO")
    labels, source = (CHARACTERS, friends_windows(6)) if args.dataset == "friends" else (SENTIMENTS,
                                                                                          rated_snippets(0.2))
    rows = [Example(row_id, text, tuple(label for label in labels if label in chosen))
            for row_id, text, chosen in source]
    sizes = [int(size) for size in args.train.split(",")]
    unknown = sorted(set(args.rates.split(",")) - set(HEAD_RATES))
    if unknown:
        parser.error(f"--rates: {', '.join(unknown)} not among {', '.join(HEAD_RATES)}")
    rates = {name: HEAD_RATES[name] for name in args.rates.split(",")}
    runs = [{"train": size, "seed": seed, "rate": name, **_run(rows, labels, size, seed, rate, args)}
            for size in sizes for seed in range(args.seeds) for name, rate in rates.items()]
    lines = [f"## A first label-set model's head rate — {args.dataset} ({len(labels)} labels), CPU", "",
             (f"all-MiniLM-L6-v2 sigmoid head trained by `train_classifier` at the worker's defaults (5 epochs, ≥ 100 "
              f"steps, batch 16, max_length {args.max_length}; thresholds tuned on its 20 % validation split); "
              f"read on {args.test} unseen records; mean over {args.seeds} seeds (min–max of macro-F1)."), "",
             ("| reviews | head rate | macro-F1 (min–max) | every-label macro-F1 | macro AP | per-label accuracy | "
              "ticked / carried | loss AUROC on the wrong sets |"), "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for size in sizes:
        for name in rates:
            chosen = [run for run in runs if run["train"] == size and run["rate"] == name]
            mean = {figure: statistics.mean(run[figure] for run in chosen) for figure in FIGURES}
            f1s = [run["macro-F1"] for run in chosen]
            lines.append(f"| {size} | {name} | {mean['macro-F1']:.3f} ({min(f1s):.3f}–{max(f1s):.3f}) | "
                         f"{mean['every-label macro-F1']:.3f} | {mean['macro AP']:.3f} | "
                         f"{mean['per-label accuracy']:.3f} | {mean['ticked']:.2f} / {mean['carried']:.2f} | "
                         + (f"{mean['loss AUROC']:.3f} |" if args.noise else "– |"))
    name = f"label_set_head-{args.dataset}" + (f"-noise{args.noise:g}" if args.noise else "")
    write_results(name, {"args": vars(args), "runs": runs}, lines)


def _run(rows: list[Example], labels: tuple[str, ...], size: int, seed: int, rate: float | str, args) -> dict:
    """One first model from ``size`` reviews drawn with ``seed`` at head rate ``rate``: its figures on the test
    records (the same draw for every rate)."""
    drawn = random.Random(seed).sample(rows, size + args.test)
    reviewed, test = drawn[:size], drawn[size:]
    noisy, wrong = corrupt(label_set_targets([e.label for e in reviewed], labels), args.noise, seed)  # [n, L], rows
    reviewed = [Example(e.id, e.text, tuple(label for label, on in zip(labels, row, strict=True) if on))
                for e, row in zip(reviewed, noisy, strict=True)]
    train, validation = stratified_split(reviewed, 0.2, seed=seed)
    settings = TrainingSettings(max_length=args.max_length, seed=seed, device="auto", head_learning_rate=rate)
    with tempfile.TemporaryDirectory() as work:
        train_classifier(fetch(MINILM_MODEL), train, validation, labels, Path(work), settings)
        classifier = load_classifier(Path(work), device="auto")
        thresholds = np.asarray(classifier.thresholds)  # [L]
        probabilities = predict_probabilities(classifier, [e.text for e in test], samples=1,
                                              seed=seed).deterministic  # [N, L]
        on_reviewed = predict_probabilities(classifier, [e.text for e in reviewed], samples=1,
                                            seed=seed).deterministic  # [n, L]
    targets = label_set_targets([e.label for e in test], labels)  # [N, L] bool
    decided = probabilities >= thresholds
    present = [column for column in range(len(labels)) if 0 < targets[:, column].sum() < len(targets)]
    run = {"macro-F1": label_set_metrics(decided, targets)[1],
           "every-label macro-F1": label_set_metrics(np.ones_like(targets), targets)[1],
           "macro AP": float(np.mean([average_precision_score(targets[:, c], probabilities[:, c]) for c in present])),
           "per-label accuracy": float((decided == targets).mean()),
           "ticked": float(decided.sum(axis=1).mean()), "carried": float(targets.sum(axis=1).mean()),
           "loss AUROC": (float(roc_auc_score(np.isin(np.arange(size), list(wrong)),
                                              binary_cross_entropy(on_reviewed, noisy).sum(axis=1)))
                         if wrong else float("nan")),
           "thresholds": thresholds.tolist()}
    logger.info("%d reviews, seed %d, %s: %s", size, seed, rate,
                {key: round(value, 3) for key, value in run.items() if key != "thresholds"})
    return run


if __name__ == "__main__":
    main()
