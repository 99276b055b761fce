"""Rating questions: does ``rating_error`` find the ratings that are far off better than the cross-entropy ``loss``?

Movie snippets with their real per-rater ratings (15–29 people each, −4..4). Each snippet's rating on a 1–5
scale is its mean rating binned into five equal bins (−4..−2.4 → 1, …, 2.4..4 → 5). A MiniLM is fine-tuned on
``--train`` snippets with those ratings ("1" … "5" as its classes, as the worker serves a RatingQuestion); the
``--pool`` other snippets are scored by the worker's :class:`~worker.scoring.Scorer` (MC dropout, T samples)
against ratings of which ``--corrupt`` were changed: half by one point ("near": a 4 for a 5), half by two or
more ("far": a 1 for a 4). The rankings compared, each as the worker writes it:

  loss            −log p(rating under review), the deterministic pass (what every question gets)
  expected_loss   the same averaged over the MC samples
  rating_error    Σ p(r)·|r − rating| over the MC mean (rating questions only, worker.predictions.rating_metadata)
  |E[r] − rating| the distance of the model's expected rating (for reference, not written)
  P(far)          Σ_{|r − rating| ≥ 2} p(r), the model's probability that the rating is two or more off (for
                  reference, not written)

For the far errors (what an annotator most wants fixed first) and for every error: AUROC and precision@k
(k = the number of such errors).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/rating_errors.py      # ≈ 5 min on 2 CPU cores

Writes benchmarks/results/rating_errors.{json,md}.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import precision_at, write_results
from worker.demo_data import load_movie_ratings, load_movie_snippets
from worker.logging_setup import configure_logging
from worker.offline_assets import MINILM_MODEL, cache_root, fetch
from worker.predictions import rating_metadata
from worker.records import LabelledText
from worker.scoring import Scorer, ScoringInput, load_classifier
from worker.training.finetune import fine_tune

logger = logging.getLogger("benchmarks.rating_errors")

RATINGS = ("1", "2", "3", "4", "5")
RANKINGS = ("loss", "expected_loss", "rating_error", "|E[r] − rating|", "P(far)")


def five_point(mean_rating: float) -> str:
    """A mean rating on −4..4 as one of five equal bins, "1" … "5"."""
    return str(min(5, int((mean_rating + 4) / 1.6) + 1))


def rated_snippets(seed: int) -> list[LabelledText]:
    """Every snippet with its five-point rating, shuffled by ``seed``."""
    ratings = load_movie_ratings()
    snippets = [LabelledText(s.id, s.text, five_point(float(np.mean(ratings[s.id]))))
                for s in load_movie_snippets() if s.id in ratings]
    random.Random(seed).shuffle(snippets)
    return snippets


def corrupt(pool: list[LabelledText], fraction: float, seed: int) -> tuple[list[LabelledText], set[str], set[str]]:
    """``pool`` with ``fraction`` of its ratings changed, half by one point, half by two or more (within 1–5);
    returns the changed pool and the ids of the near and the far changes."""
    rng = random.Random(seed)
    chosen = rng.sample(range(len(pool)), int(len(pool) * fraction))
    near, far, changed = set(), set(), list(pool)
    for position, index in enumerate(chosen):
        true = int(pool[index].label)
        options = [r for r in range(1, 6) if (abs(r - true) == 1) == (position % 2 == 0) and r != true]
        new = rng.choice(options)
        (near if abs(new - true) == 1 else far).add(pool[index].id)
        changed[index] = LabelledText(pool[index].id, pool[index].text, str(new))
    return changed, near, far


def evaluate(values: dict[str, float], positives: set[str]) -> tuple[float, float]:
    """AUROC and precision@|positives| of ranking by ``values`` descending."""
    ids = sorted(values, key=lambda record_id: -values[record_id])
    auroc = roc_auc_score([record_id in positives for record_id in ids], [values[i] for i in ids])
    return float(auroc), precision_at(ids, positives, len(positives))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=1500)
    parser.add_argument("--pool", type=int, default=1000)
    parser.add_argument("--corrupt", type=float, default=0.2, help="share of the pool's ratings changed")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    configure_logging("INFO")
    started = time.perf_counter()

    snippets = rated_snippets(args.seed)
    train, pool = snippets[:args.train], snippets[args.train:args.train + args.pool]
    changed, near, far = corrupt(pool, args.corrupt, args.seed)
    model = cache_root() / "benchmark-models" / f"minilm-ratings-n{args.train}-e{args.epochs}-s{args.seed}"
    if not (model / "config.json").exists():
        fine_tune(fetch(MINILM_MODEL), train, RATINGS, model, epochs=args.epochs, max_length=64, batch_size=32,
                  learning_rate=1e-4, seed=args.seed)
    scorer = Scorer(load_classifier(model, device="cpu"), samples=args.samples, seed=args.seed)
    scores = list(scorer.score(ScoringInput(r.id, r.text, r.label) for r in changed))
    truth = {r.id: int(r.label) for r in pool}
    accuracy = float(np.mean([int(s.predicted_label) == truth[s.record_id] for s in scores]))
    # the model's ordinal quality: its expected rating's mean absolute error, and how often it predicts 2+ off
    mae = float(np.mean([abs(rating_metadata(s)["expected_rating"] - truth[s.record_id]) for s in scores]))
    far_predictions = float(np.mean([abs(int(s.predicted_label) - truth[s.record_id]) >= 2 for s in scores]))
    rankings = {"loss": {s.record_id: s.loss for s in scores},
                "expected_loss": {s.record_id: s.expected_loss for s in scores},
                "rating_error": {s.record_id: rating_metadata(s)["rating_error"] for s in scores},
                "|E[r] − rating|": {s.record_id: abs(rating_metadata(s)["expected_rating"] - int(s.reference_label))
                                    for s in scores},
                "P(far)": {s.record_id: sum(p for r, p in (s.probabilities or {}).items()
                                            if abs(int(r) - int(s.reference_label)) >= 2) for s in scores}}
    results = {name: {"far": evaluate(values, far), "any": evaluate(values, near | far)}
               for name, values in rankings.items()}

    seconds = time.perf_counter() - started
    counts = {rating: sum(r.label == rating for r in pool) for rating in RATINGS}
    lines = [(f"train {len(train)}, pool {len(pool)} (true ratings {counts}), {len(near)} near + {len(far)} far "
              f"changes, T = {args.samples}, {args.epochs} epochs, seed {args.seed}; on the true pool ratings the "
              f"model's accuracy is {accuracy:.3f}, its expected rating's MAE {mae:.3f}, its predictions 2+ points "
              f"off {far_predictions:.3f}; {seconds:.0f} s"),
             "",
             f"| ranking | far: AUROC | far: precision@{len(far)} | any: AUROC | any: precision@{len(near | far)} |",
             "|---|---:|---:|---:|---:|"]
    for name in RANKINGS:
        (far_auroc, far_p), (any_auroc, any_p) = results[name]["far"], results[name]["any"]
        lines.append(f"| {name} | {far_auroc:.4f} | {far_p:.3f} | {any_auroc:.4f} | {any_p:.3f} |")
    write_results(f"rating_errors-s{args.seed}",
                  {"args": vars(args), "accuracy": accuracy, "mae": mae, "far_predictions": far_predictions,
                   "results": results, "near": len(near), "far": len(far), "seconds": seconds}, lines)


if __name__ == "__main__":
    main()
