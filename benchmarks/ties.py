"""Two annotators a record who disagree: keep the tie out, or decide it — and decided by whom.

A team whose Argilla dataset completes a record at two submitted responses (``TaskDistribution(min_submitted=2)``)
gets a tie on every record its two annotators disagree on; the record then leaves the annotators' queue, so no
third vote comes by itself. On the movie snippets' real disagreement that is about a third of the reviewed records.
This measures what each way of handling them hands on and what a first model trained on it learns:

  keep                        a tie gives no label (left out of training and publishing)
  resolve, annotators only    the tie goes to the voter the annotators' agreement weighs more (worker.crowd
                              weights; the model's view left out)
  resolve, with the model     the posterior of the annotators' weights and the model's stored view decides it
                              (``consensus.ties = "resolve"`` as it was)

The simulation is ``benchmarks/multi_annotator.py``'s: a pool of 8 annotators of quality 0.95 … 0.3 (with
probability q they answer like one of the snippet's real raters, else at random) and a spammer; each record gets
2 of them at random; the truth is the sign of the snippet's mean rating. The model view is the shared MiniLM
fine-tuned on 1,200 other snippets (what a current model stored on the records). For each arm, the examples the
worker would train on (``examples_from_records``: each weighed by the share of the votes behind its label) train a
first model from the offline MiniLM (the worker's first-model schedule, no validation); its accuracy, macro-F1 and
ECE on 2,000 held-out snippets against the truth.

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.ties                  # 400 and 1,000 reviewed, 3 seeds
    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.ties --reviewed 400 --seeds 0

Writes benchmarks/results/ties.{json,md}.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks._shared import finetuned_minilm, write_results
from benchmarks.multi_annotator import _pulled, simulate
from worker.config import TrainingSettings
from worker.crowd import CrowdEstimator, CrowdModel
from worker.demo_data import SENTIMENT_LABELS, load_movie_ratings, load_movie_snippets
from worker.logging_setup import configure_logging
from worker.offline_assets import MINILM_MODEL, fetch
from worker.records import PulledRecord, consensus
from worker.scoring import load_classifier
from worker.training.data import examples_from_records
from worker.training.evaluate import evaluate_classifier, predict_probabilities
from worker.training.trainer import train_classifier

logger = logging.getLogger("benchmarks.ties")

ARMS = ("keep", "resolve, annotators only", "resolve, with the model")
MODEL_TRAIN, HELD_OUT = 1200, 2000  # snippets the model view learnt from; snippets every trained model is tested on


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviewed", type=int, nargs="+", default=[400, 1000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    configure_logging("INFO")
    started = time.perf_counter()
    ratings, viewer_train, held_out, rest = split_snippets()
    viewer = load_classifier(finetuned_minilm(viewer_train), device=args.device, version="minilm-1200")
    runs = []
    for reviewed in args.reviewed:
        for seed in args.seeds:
            runs.extend(run_pool(pool_of(rest, seed, reviewed), ratings, viewer, held_out, seed, args.device))
    lines = report(runs, args, time.perf_counter() - started)
    write_results("ties", {"args": vars(args), "runs": runs}, lines)


def split_snippets():
    """(ratings, the view model's training snippets, the held-out snippets, the rest: reviewed pools are drawn from
    it), one seeded split of the rated movie snippets."""
    snippets, ratings = load_movie_snippets(), load_movie_ratings()
    snippets = [s for s in snippets if s.id in ratings]
    order = np.random.default_rng(0).permutation(len(snippets))
    viewer_train = [snippets[i] for i in order[:MODEL_TRAIN]]
    held_out = [snippets[i] for i in order[MODEL_TRAIN:MODEL_TRAIN + HELD_OUT]]
    return ratings, viewer_train, held_out, [snippets[i] for i in order[MODEL_TRAIN + HELD_OUT:]]


def pool_of(rest, seed: int, size: int):
    """A seed's reviewed pool: the first ``size`` of one permutation of ``rest`` (a smaller pool is a prefix)."""
    return [rest[i] for i in np.random.default_rng(seed).permutation(len(rest))[:size]]


def mean_sd(rows: list[dict], key: str, digits: int = 3) -> str:
    """``key``'s mean ± sd over ``rows`` (None values left out; "–" when none)."""
    values = [row[key] for row in rows if row[key] is not None]
    if not values:
        return "–"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {spread:.{digits}f}"


def run_pool(pool, ratings, viewer, held_out, seed: int, device: str) -> list[dict]:
    """One reviewed pool: its votes, the three arms' labels and a first model trained on each."""
    views = predict_probabilities(viewer, [r.text for r in pool], samples=1).deterministic  # [N, 2]
    votes = simulate(pool, ratings, votes=2, seed=seed)
    records = [replace(_pulled(r.id, votes[r.id], views[i]), text=r.text) for i, r in enumerate(pool)]
    blind = [replace(record, metadata={}) for record in records]  # no model view stored on them
    crowd = _estimate(records)
    truth = {r.id: r.label for r in pool}
    arms = {"keep": (records, crowd),
            "resolve, annotators only": (blind, replace(crowd, resolve_ties=True)),
            "resolve, with the model": (records, replace(crowd, resolve_ties=True))}
    tied = {record.record_id for record in records if consensus(record).label is None}
    out = []
    for arm, (arm_records, arm_crowd) in arms.items():
        examples, _, left_out = examples_from_records(arm_records, SENTIMENT_LABELS, crowd=arm_crowd)
        decided_ties = [e for e in examples if e.id in tied]
        row = {"arm": arm, "reviewed": len(pool), "seed": seed, "ties": len(tied), "examples": len(examples),
               "left_out": len(left_out),
               "label_accuracy": _share(examples, truth),
               "tie_accuracy": _share(decided_ties, truth) if decided_ties else None}
        row.update(_train_and_test(examples, held_out, seed, device))
        logger.info("%s", row)
        out.append(row)
    return out


def _estimate(records: list[PulledRecord]) -> CrowdModel:
    estimator = CrowdEstimator(SENTIMENT_LABELS)
    for record in records:
        estimator.add(record)
    return estimator.estimate()


def _share(examples, truth: dict[str, str]) -> float:
    return sum(truth[e.id] == e.label for e in examples) / len(examples)


def _train_and_test(examples, held_out, seed: int, device: str, *, keep_model: bool = False) -> dict:
    """A first model trained on ``examples`` and its figures on ``held_out``; with ``keep_model`` the loaded
    classifier too (under ``"model"``)."""
    settings = TrainingSettings(base_model=str(fetch(MINILM_MODEL)), device=device, seed=seed, max_length=64)
    with tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        train_classifier(settings.base_model, examples, [], SENTIMENT_LABELS, Path(work), settings)
        seconds = time.perf_counter() - started
        model = load_classifier(Path(work), device=device)
        metrics = evaluate_classifier(model, [r.text for r in held_out], [r.label for r in held_out], samples=1)
    row = {"accuracy": metrics.accuracy, "macro_f1": metrics.macro_f1, "ece": metrics.ece_deterministic,
           "train_seconds": seconds}
    return row | {"model": model} if keep_model else row


def report(runs: list[dict], args, seconds: float) -> list[str]:
    lines = [f"# Ties of two votes: keep, or decide (`benchmarks/ties.py`, seeds {args.seeds}, {seconds / 60:.0f} min)",
             "", ("| reviewed | arm | ties | examples | label accuracy | ties decided right | held-out accuracy | "
                  "macro-F1 | ECE |"), "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for reviewed in args.reviewed:
        for arm in ARMS:
            rows = [r for r in runs if r["reviewed"] == reviewed and r["arm"] == arm]
            lines.append(f"| {reviewed} | {arm} | {mean_sd(rows, 'ties', 0)} | {mean_sd(rows, 'examples', 0)} | "
                         f"{mean_sd(rows, 'label_accuracy')} | {mean_sd(rows, 'tie_accuracy')} | "
                         f"{mean_sd(rows, 'accuracy')} | {mean_sd(rows, 'macro_f1')} | {mean_sd(rows, 'ece')} |")
    return lines


if __name__ == "__main__":
    main()
