"""Active learning on the movie-review snippets (or 20 Newsgroups): acquisition strategies compared.

Starts from 100 randomly labelled records; each round fine-tunes the offline all-MiniLM-L6-v2 from
its pretrained weights on the labelled set, measures test accuracy, scores the unlabelled pool with
MC dropout and "labels" (reveals the true label of) the 100 records the strategy picks:

  bald          the top BALD (MC-dropout mutual information)
  bald_power    the worker's batch-aware rank: the top of β·log(BALD) + Gumbel noise (stochastic power
                sampling, Kirsch et al. 2021: a draw without replacement ∝ BALD^β, β = --power-beta)
  entropy       the top predictive entropy of the MC mean
  margin        breaking ties: the smallest gap between the two most likely labels of the MC mean
  small-text    small-text's BreakingTies on the same model's deterministic probabilities (the peer)
  random        100 at random

The same seed gives every strategy the same start set and the same training seeds.

    python benchmarks/active_learning.py           # pool 1,000, test 500, 8 rounds: ≈ 45 min on 2 CPU cores
    python benchmarks/active_learning.py --quick   # pool 500, test 300, 8 rounds of 50
    python benchmarks/active_learning.py --quick --dataset newsgroups --seed 1

Writes benchmarks/results/active_learning-<dataset>-s<seed>.{json,md} and the plot beside them.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import RESULTS_DIR, movie_split, write_results
from worker.demo_data import load_newsgroups
from worker.logging_setup import configure_logging
from worker.offline_assets import MINILM_MODEL, fetch
from worker.scoring import Scorer, ScoringInput, load_classifier
from worker.scoring.acquisition import power_key
from worker.training.data import Example
from worker.training.evaluate import predict_probabilities
from worker.training.trainer import TrainingSettings, train_classifier

logger = logging.getLogger("benchmarks.active_learning")

# (score field, larger-is-more-uncertain); the others are special-cased in _query
STRATEGIES = {"bald": ("bald", True), "bald_power": None, "entropy": ("entropy", True), "margin": ("margin", False),
              "small-text": None, "random": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=int, default=1000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--start", type=int, default=100)
    parser.add_argument("--query", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--min-steps", type=int, default=80,
                        help="at least this many optimizer steps per round (small labelled sets get more epochs)")
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--mc-layers", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--dataset", choices=("movies", "newsgroups"), default="movies")
    parser.add_argument("--power-beta", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true", help="pool 500, test 300, 50 per round")
    args = parser.parse_args()
    configure_logging("INFO")
    if args.quick:
        args.pool, args.test, args.start, args.query = 500, 300, 50, 50
    pool, test = _split(args.dataset, args.pool, args.test, args.seed + 1)
    labels = tuple(sorted({r.label for r in (*pool, *test)}))
    settings = TrainingSettings(epochs=args.epochs, max_length=48, batch_size=16, learning_rate=args.learning_rate,
                                seed=args.seed, device=args.device)
    start_ids = set(random.Random(args.seed).sample([r.id for r in pool], args.start))
    curves, started = {}, time.perf_counter()
    for name in args.strategies.split(","):
        curves[name] = _run_strategy(name, pool, test, start_ids, settings, args, labels)
        logger.info("%s: %s", name, curves[name])
    areas = {name: _area(curve) for name, curve in curves.items()}
    name = f"active_learning-{args.dataset}-s{args.seed}"
    _plot(curves, RESULTS_DIR / f"{name}.png", args.dataset)
    target_met = areas.get("bald_power", 0) > max(areas.get("random", np.inf), areas.get("bald", np.inf))
    label_counts = [n for n, _ in next(iter(curves.values()))]
    lines = [
        (f"Active learning — {args.dataset}, pool {len(pool)}, test {len(test)}, start {args.start}, "
        f"+{args.query} per round, {args.rounds} rounds; all-MiniLM-L6-v2 retrained from scratch each round "
        f"(≥ {args.epochs} epochs and ≥ {args.min_steps} steps, lr {args.learning_rate:g}); MC dropout "
        f"T={args.samples} over the last {args.mc_layers} layers; power β {args.power_beta:g}; "
        f"{time.perf_counter() - started:.0f} s"),
        "",
        "| strategy | " + " | ".join(str(n) for n in label_counts) + " | area (mean accuracy) |",
        "|---|" + "---:|" * (len(label_counts) + 1),
        *(f"| {name} | " + " | ".join(f"{a:.3f}" for _, a in curve) + f" | {areas[name]:.4f} |"
          for name, curve in curves.items()),
        "",
        f"Target bald_power area > random and > bald: {'met' if target_met else 'MISSED'}",
        "",
        f"![accuracy vs labels]({name}.png)",
    ]
    write_results(name, {"args": vars(args), "curves": curves, "areas": areas, "target_met": target_met}, lines)


def _split(dataset: str, pool: int, test: int, seed: int):
    """Disjoint seeded pool / test samples."""
    if dataset == "movies":
        return movie_split(train=pool, test=test, seed=seed)
    posts = load_newsgroups("train")
    random.Random(seed).shuffle(posts)
    return posts[:pool], posts[pool:pool + test]


def _run_strategy(name, pool, test, start_ids, settings, args, labels) -> list[tuple[int, float]]:
    labelled = set(start_ids)
    by_id = {r.id: r for r in pool}
    rng = random.Random(args.seed + 7)
    curve = []
    for round_number in range(args.rounds + 1):
        with tempfile.TemporaryDirectory() as work:
            examples = [Example(i, by_id[i].text, by_id[i].label) for i in sorted(labelled)]
            batches = math.ceil(len(examples) / settings.batch_size)
            epochs = max(args.epochs, math.ceil(args.min_steps / batches))
            train_classifier(fetch(MINILM_MODEL), examples, [], labels, Path(work),
                             settings.model_copy(update={"epochs": epochs}))
            classifier = load_classifier(work, device=args.device)
            accuracy = _accuracy(classifier, test)
            curve.append((len(labelled), accuracy))
            logger.info("%s round %d: %d labels, test accuracy %.3f", name, round_number, len(labelled), accuracy)
            if round_number == args.rounds:
                break
            unlabelled = [r for r in pool if r.id not in labelled]
            labelled |= _query(name, classifier, unlabelled, args, rng, round_key=f"{args.seed}-{round_number}")
    return curve


def _query(name, classifier, unlabelled, args, rng, *, round_key: str) -> set[str]:
    if name == "random":
        return {r.id for r in rng.sample(unlabelled, min(args.query, len(unlabelled)))}
    if name == "small-text":
        return _small_text_breaking_ties(classifier, unlabelled, args.query)
    scorer = Scorer(classifier, samples=args.samples, mc_layers=args.mc_layers, seed=args.seed)
    if name == "bald_power":
        keys = [(power_key(max(s.bald or 0.0, 0.0), s.record_id, round_key, beta=args.power_beta), s.record_id)
                for s in scorer.score(ScoringInput(r.id, r.text) for r in unlabelled)]
        return {record_id for _, record_id in sorted(keys, reverse=True)[:args.query]}
    field, larger_first = STRATEGIES[name]
    scores = [(getattr(s, field), s.record_id) for s in scorer.score(ScoringInput(r.id, r.text) for r in unlabelled)]
    scores.sort(reverse=larger_first)
    return {record_id for _, record_id in scores[:args.query]}


def _small_text_breaking_ties(classifier, unlabelled, n: int) -> set[str]:
    """small-text's BreakingTies query over the unlabelled records, on the model's deterministic probabilities."""
    from small_text.query_strategies import BreakingTies

    class Adapter:  # what small-text asks of a classifier: predict_proba over its dataset (here: texts)
        def predict_proba(self, texts):
            return predict_probabilities(classifier, list(texts), samples=1).deterministic  # [N, C]

    indices = np.arange(len(unlabelled))
    chosen = BreakingTies().query(Adapter(), [r.text for r in unlabelled], indices, np.array([], dtype=int),
                                  np.array([], dtype=int), n=min(n, len(unlabelled)))
    return {unlabelled[int(i)].id for i in chosen}


def _accuracy(classifier, test) -> float:
    scorer = Scorer(classifier, samples=1, mc_layers=0)
    predicted = {s.record_id: s.deterministic_label for s in scorer.score(ScoringInput(r.id, r.text) for r in test)}
    return float(np.mean([predicted[r.id] == r.label for r in test]))


def _area(curve: list[tuple[int, float]]) -> float:
    """Normalised area under accuracy-vs-labels (trapezoids) = mean accuracy over the label range."""
    counts, accuracies = zip(*curve, strict=True)
    return float(np.trapezoid(accuracies, counts) / (counts[-1] - counts[0]))


def _plot(curves, path: Path, dataset: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        axis.plot(*zip(*curve, strict=True), marker="o", label=name)
    axis.set(xlabel="labelled records", ylabel="test accuracy", title=f"Active learning on {dataset}")
    axis.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


if __name__ == "__main__":
    main()
