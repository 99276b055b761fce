"""Calibration of MC dropout vs the deterministic model (the seed's "Bayesian vs frequentist" table).

Fine-tunes the offline all-MiniLM-L6-v2 on movie-review snippets (binary sentiment), then on a
held-out test set reports accuracy and ECE of the deterministic model and of MC dropout (T = 20,
dropout in every layer), the ECE-vs-T curve (T = 1…50), reliability diagrams, and temperature
scaling (fitted on a separate calibration split) for reference. Then the probabilities the worker reports (its
``Scorer`` with the ``[scoring]`` defaults: fast MC over the last layers, adaptive T ≤ 20), as they are and read at
the temperature training keeps (``scores_temperature`` on the calibration split, as ``retrain`` fits it on the
validation records; cross-fitted there to decide whether to keep it), both measured on the test set.

    python benchmarks/calibration.py            # 4,000 train / 1,000 test, 3 epochs: ≈ 15 min on 2 CPU cores
    python benchmarks/calibration.py --quick    # 1,000 / 300, 2 epochs: ≈ 3 min

Writes benchmarks/results/calibration.{json,md} and calibration-*.png.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import RESULTS_DIR, finetuned_minilm, movie_split, write_results
from worker.calibration import (
    ece_by_samples,
    expected_calibration_error,
    fit_temperature,
    plot_ece_by_samples,
    plot_reliability_diagram,
    reliability_bins,
    scaled_log_probs,
    tempered,
)
from worker.demo_data import SENTIMENT_LABELS
from worker.logging_setup import configure_logging
from worker.scoring import load_classifier
from worker.training.evaluate import predict_probabilities

logger = logging.getLogger("benchmarks.calibration")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=50, help="largest T of the ECE-vs-T curve")
    parser.add_argument("--report-samples", type=int, default=20, help="T of the table's MC row")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="1,000 train / 300 test, 2 epochs")
    parser.add_argument("--seed", type=int, default=0, help="the split and the fine-tuning's seed")
    args = parser.parse_args()
    configure_logging("INFO")
    if args.quick:
        args.train, args.test, args.epochs = 1000, 300, 2
    train, test = movie_split(train=args.train, test=args.test + args.test // 2, seed=args.seed)
    calibration_split, test = test[:args.test // 2], test[args.test // 2:]
    model_dir = finetuned_minilm(train, epochs=args.epochs, learning_rate=5e-5, seed=args.seed)
    classifier = load_classifier(model_dir, device=args.device, version=model_dir.name)
    targets = np.array([SENTIMENT_LABELS.index(r.label) for r in test])
    probs = predict_probabilities(classifier, [r.text for r in test], samples=args.samples, mc_layers="all")
    mc_mean = probs.mc[:, :, :args.report_samples].mean(axis=2)  # [N, C]
    held = predict_probabilities(classifier, [r.text for r in calibration_split], samples=1)
    temperature = fit_temperature(np.log(np.clip(held.deterministic, 1e-12, 1)),
                                  np.array([SENTIMENT_LABELS.index(r.label) for r in calibration_split]))
    scaled = np.exp(scaled_log_probs(np.log(np.clip(probs.deterministic, 1e-12, 1)), temperature))
    rows = {
        "deterministic": probs.deterministic,
        f"MC dropout T={args.report_samples}": mc_mean,
        f"deterministic + temperature {temperature:.2f}": scaled,
    }
    reported, fit = worker_scores(classifier, calibration_split, test, args.seed)
    rows["worker's scores ([scoring] defaults)"] = reported
    if fit is not None:
        rows[f"worker's scores at the kept temperature {fit.temperature:.2f}"] = tempered(reported, fit.temperature)
    table = {name: {"accuracy": float((p.argmax(1) == targets).mean()),
                    "ece": expected_calibration_error(p, targets),
                    "nll": float(-np.log(np.clip(p[np.arange(len(targets)), targets], 1e-12, 1)).mean())}
             for name, p in rows.items()}
    curve = ece_by_samples(probs.mc, targets)
    plot_ece_by_samples(curve, table["deterministic"]["ece"], RESULTS_DIR / "calibration-ece-vs-T.png")
    plot_reliability_diagram({name: reliability_bins(p, targets) for name, p in rows.items()},
                             RESULTS_DIR / "calibration-reliability.png", title="Movie snippets, test set")
    target_met = table[f"MC dropout T={args.report_samples}"]["ece"] < table["deterministic"]["ece"]
    lines = [
        (f"Calibration — all-MiniLM-L6-v2 fine-tuned {args.epochs} epochs on {len(train)} movie snippets; "
        f"{len(test)} test snippets; temperature fitted on {len(calibration_split)} other snippets"),
        "",
        "| model | accuracy | ECE | NLL |",
        "|---|---:|---:|---:|",
        *(f"| {name} | {v['accuracy']:.4f} | {v['ece']:.4f} | {v['nll']:.4f} |" for name, v in table.items()),
        "",
        "ECE vs T: " + ", ".join(f"T={t}: {e:.4f}" for t, e in curve if t in (1, 2, 5, 10, 20, 30, 50)),
        "",
        f"Target MC ECE < deterministic ECE at T={args.report_samples}: {'met' if target_met else 'MISSED'}",
        "",
        "![ECE vs T](calibration-ece-vs-T.png) ![reliability](calibration-reliability.png)",
    ]
    lines.insert(-2, "Temperature for the worker's scores: " + (
        f"kept, τ = {fit.temperature:.3f} (calibration split: ECE {fit.ece_before:.4f} → {fit.ece_after:.4f} "
        f"cross-fitted)" if fit else "not kept (it did not lower the calibration split's cross-fitted ECE)"))
    lines.insert(-2, "")
    write_results(f"calibration{'-seed' + str(args.seed) if args.seed else ''}",
                  {"args": vars(args), "table": table, "ece_by_samples": curve, "temperature": temperature,
                   "scores_temperature": vars(fit) if fit else None, "target_met": target_met}, lines)


def worker_scores(classifier, calibration_split, test, seed: int):
    """The worker's reported class probabilities [N, C] of ``test`` (its Scorer, [scoring] defaults, no
    temperature) and the temperature training would keep from ``calibration_split`` (None: not kept)."""
    from worker.config import ScoringSettings
    from worker.jobs import scorer_options
    from worker.scoring import Scorer, ScoringInput
    from worker.training.calibrate import scores_temperature
    from worker.training.data import Example

    options = scorer_options(ScoringSettings())
    examples = [Example(record.id, record.text, record.label) for record in calibration_split]
    fit = scores_temperature(classifier, examples, options, seed=seed)
    scorer = Scorer(classifier, **options, calibrated=False, progress=False, seed=seed)
    scores = list(scorer.score(ScoringInput(record.id, record.text) for record in test))
    scorer.close()
    return np.asarray([[score.probabilities[label] for label in classifier.labels] for score in scores]), fit


if __name__ == "__main__":
    main()
