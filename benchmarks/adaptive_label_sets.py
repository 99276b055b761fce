"""Adaptive MC dropout on label sets: fixed T vs stopping each record once its estimates settle.

A multi-label MiniLM (sigmoid head) is fine-tuned on movie snippets labelled with every sentiment that at least
20 % of their own raters gave (benchmarks/multilabel.py's ``movie-raters`` set: real co-occurrence from real
disagreement), then scores held-out snippets whose label sets are 10 % corrupted (seeded: half lose a label,
half gain one) through the worker's :class:`~worker.scoring.Scorer` twice, on the same consistent masks:

  fixed       T samples for every record (``scoring.adaptive = false`` with consistent masks)
  adaptive    ``scoring.adaptive = true`` with the config's default round size and tolerances

Reported side by side from one run: records/s and their ratio, MC samples per record, and the adaptive
guard of the single-label benchmark (benchmarks/scoring.py): Spearman ρ ≥ 0.95 of BALD and of the expected
loss against fixed T, and the change of the label-error AUROC (expected loss and loss, corrupted vs clean sets)
≤ 0.002.

    python benchmarks/adaptive_label_sets.py                  # 1,500 to train, 1,000 scored, T = 20
    python benchmarks/adaptive_label_sets.py --tolerances 0.5:0.1 1.0:0.2   # and looser tolerances
    python benchmarks/adaptive_label_sets.py --train 600 --score 400 --epochs 1   # a smoke run

Writes benchmarks/results/adaptive_label_sets.{json,md}.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import write_results
from benchmarks.multilabel import SENTIMENTS, corrupt, rated_snippets
from worker.config import ScoringSettings
from worker.jobs import adaptive_sampling
from worker.logging_setup import configure_logging
from worker.offline_assets import MINILM_MODEL, fetch
from worker.scoring import Scorer, ScoringInput, load_classifier
from worker.scoring.adaptive import AdaptiveSampling
from worker.training.data import Example
from worker.training.trainer import TrainingSettings, train_classifier

logger = logging.getLogger("benchmarks.adaptive_label_sets")


def score(scorer: Scorer, inputs: list[ScoringInput]) -> tuple[dict[str, np.ndarray], float]:
    """Per-record arrays (bald, expected_loss, loss, mc_samples; [N]) in input order, and the seconds taken."""
    list(scorer.score(inputs[: min(64, len(inputs))]))  # warm-up: allocations, the first batches' shapes
    started = time.perf_counter()
    scores = list(scorer.score(inputs))
    seconds = time.perf_counter() - started
    return {name: np.array([getattr(s, name) for s in scores], dtype=np.float64)
            for name in ("bald", "expected_loss", "loss", "mc_samples")}, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=1500)
    parser.add_argument("--score", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerances", nargs="*", default=[], metavar="BALD_RSE:LOSS_SE",
                        help="more adaptive rows with these tolerances (e.g. 0.5:0.1)")
    args = parser.parse_args()
    configure_logging("INFO")

    pool = random.Random(args.seed).sample(rated_snippets(0.2), args.train + args.score)
    truth = np.array([[name in chosen for name in SENTIMENTS] for _, _, chosen in pool])  # [N, L]
    train = [Example(record_id, text, tuple(n for n, on in zip(SENTIMENTS, row, strict=True) if on))
             for (record_id, text, _), row in zip(pool[: args.train], truth[: args.train], strict=True)]
    noisy, corrupted = corrupt(truth[args.train:], args.noise, args.seed)
    inputs = [ScoringInput(record_id, text, tuple(n for n, on in zip(SENTIMENTS, row, strict=True) if on) or None)
              for (record_id, text, _), row in zip(pool[args.train:], noisy, strict=True)]
    is_corrupted = np.array([i in corrupted for i in range(len(inputs))])

    defaults = ScoringSettings()
    rule = adaptive_sampling(defaults)
    results, seconds = {}, {}
    with tempfile.TemporaryDirectory() as work:
        settings = TrainingSettings(epochs=args.epochs, max_length=64, learning_rate=1e-4, batch_size=16,
                                    seed=args.seed, device=args.device)
        train_classifier(fetch(MINILM_MODEL), train, [], SENTIMENTS, Path(work) / "model", settings)
        classifier = load_classifier(Path(work) / "model", device=args.device)
        common = {"samples": args.samples, "mc_layers": defaults.mc_layers, "batch_size": 32, "progress": False,
                  "seed": args.seed}
        scorers = [("fixed", Scorer(classifier, consistent=True, **common)),
                   ("adaptive (default)", Scorer(classifier, adaptive=rule, **common))]
        for pair in args.tolerances:
            bald_rse, loss_se = (float(part) for part in pair.split(":"))
            scorers.append((f"adaptive {bald_rse}:{loss_se}", Scorer(classifier, adaptive=AdaptiveSampling(
                round_size=defaults.adaptive_round, bald_rse=bald_rse, loss_se=loss_se), **common)))
        for name, scorer in scorers:
            results[name], seconds[name] = score(scorer, inputs)
            logger.info("%s: %.1f s, %.2f samples per record", name, seconds[name],
                        results[name]["mc_samples"].mean())

    judged = ~np.isnan(results["fixed"]["loss"])
    rows = {}
    for name, values in results.items():
        rows[name] = {
            "records_per_s": len(inputs) / seconds[name], "samples": float(values["mc_samples"].mean()),
            "auroc_expected_loss": float(roc_auc_score(is_corrupted[judged], values["expected_loss"][judged])),
            "auroc_loss": float(roc_auc_score(is_corrupted[judged], values["loss"][judged])),
            "rho_bald": float(spearmanr(values["bald"], results["fixed"]["bald"]).statistic),
            "rho_expected_loss": float(spearmanr(values["expected_loss"][judged],
                                                 results["fixed"]["expected_loss"][judged]).statistic)}
    fixed, adaptive = rows["fixed"], rows["adaptive (default)"]
    guard = {"ρ BALD ≥ 0.95": adaptive["rho_bald"] >= 0.95,
             "ρ expected loss ≥ 0.95": adaptive["rho_expected_loss"] >= 0.95,
             "|Δ AUROC| ≤ 0.002": abs(adaptive["auroc_expected_loss"] - fixed["auroc_expected_loss"]) <= 0.002}
    lines = [(f"Adaptive MC on label sets — movie snippets labelled with every sentiment ≥ 20 % of their raters "
              f"gave; MiniLM sigmoid head fine-tuned on {args.train} ({args.epochs} epochs), {len(inputs)} scored "
              f"({len(corrupted)} sets corrupted), T = {args.samples}, mc_layers {defaults.mc_layers}, "
              f"device {args.device}; adaptive: rounds of {defaults.adaptive_round}, bald_rse "
              f"{defaults.adaptive_bald_rse}, loss_se {defaults.adaptive_loss_se}; consistent masks for both"), "",
             ("| scoring | records/s | × fixed | MC samples per record | ρ BALD | ρ expected loss | "
              "label-error AUROC (expected loss) | AUROC (loss) |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|",
             *(f"| {name} | {row['records_per_s']:.1f} | {row['records_per_s'] / fixed['records_per_s']:.2f} | "
               f"{row['samples']:.1f} | {row['rho_bald']:.4f} | {row['rho_expected_loss']:.4f} | "
               f"{row['auroc_expected_loss']:.4f} | {row['auroc_loss']:.4f} |" for name, row in rows.items()),
             "", "Guard of the default row (as for single labels): " + ", ".join(f"{name} {'met' if ok else 'MISSED'}"
                                                             for name, ok in guard.items())]
    write_results("adaptive_label_sets", {"args": vars(args), "rows": rows, "guard": guard}, lines)


if __name__ == "__main__":
    main()
