"""The promotion gate's figures against the truth: before (the validation split reshuffled at every retrain, every
validation record compared) and after (hashed split sides, the records the current model was taught left out).

A team reviews ``--first`` records, the worker trains ``v1``; they review ``--second`` in all, the worker trains a
candidate and the gate compares the two on the candidate's validation records. Before, about half of those were
``v1``'s own training records, so the gate read ``v1``'s figure on records it had memorised. Both variants train
the offline all-MiniLM-L6-v2 with the worker's own code (``train_classifier``, default schedule) on the same
reviewed records and read each model's macro-F1 on ``--test`` held-out records: the truth the gate estimates.

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.gate [--seeds 3] [--first 150] [--second 300] [--test 1000]

Writes benchmarks/results/gate.{json,md}. CPU: about 5 minutes a seed on 2 cores.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import tempfile
from pathlib import Path

from benchmarks._shared import held_out_metrics, write_results
from worker.config import TrainingSettings
from worker.demo_data import load_movie_snippets
from worker.iterables import shuffled_label_clusters, take_clusters
from worker.offline_assets import MINILM_MODEL, fetch
from worker.scoring import load_classifier
from worker.training.compare import compare_models
from worker.training.data import Example, example_keys, strata, stratified_split
from worker.training.trainer import train_classifier

logger = logging.getLogger("benchmarks.gate")
TOLERANCE = 0.01  # training.gate_tolerance's default


def reshuffled_split(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """The validation split before: each stratum's clusters shuffled as a whole set, so the sides move with it."""
    ordered = sorted(examples, key=lambda e: e.id)
    keys = example_keys(ordered)
    train: list[Example] = []
    validation: list[Example] = []
    for clusters in shuffled_label_clusters(strata(ordered), [keys[e.id] for e in ordered], random.Random(seed)):
        size = sum(map(len, clusters))
        held, kept = take_clusters(clusters, 0 if size < 2 else max(1, min(size - 1, round(size * fraction))))
        validation.extend(ordered[p] for p in held)
        train.extend(ordered[p] for p in kept)
    return train, validation


VARIANTS = {
    "before: reshuffled split, every validation record compared": (reshuffled_split, False),
    "after: hashed split, the current model's taught records left out": (
        lambda examples, fraction, seed: stratified_split(examples, fraction, seed=seed), True),
}


def run_variant(reviewed: list[Example], first: int, test: list[Example], labels: list[str], seed: int,
                split, leave_out: bool, work: Path) -> dict:
    settings = TrainingSettings(base_model=str(fetch(MINILM_MODEL)), device="auto", seed=seed)
    models = []
    for round_number, examples in enumerate((reviewed[:first], reviewed), start=1):
        train, validation = split(examples, settings.validation_fraction, seed)
        directory = work / f"v{round_number}"
        train_classifier(settings.base_model, train, validation, labels, directory, settings)
        models.append((load_classifier(directory, device="auto", version=f"v{round_number}"), train, validation))
    (current, current_train, _), (candidate, _, validation) = models
    taught = {e.id for e in current_train} if leave_out else None
    comparison = compare_models(candidate, current, validation, taught, seed=seed)
    truth_current, truth_candidate = held_out_metrics(current, test)[1], held_out_metrics(candidate, test)[1]
    memorised = sum(e.id in {t.id for t in current_train} for e in validation)
    return {"validation": len(validation), "memorised_in_validation": memorised, "compared": comparison.records,
            "gate_current": comparison.current_macro_f1, "gate_candidate": comparison.candidate_macro_f1,
            "true_current": truth_current, "true_candidate": truth_candidate,
            "interval": comparison.interval,
            "gate_passes": comparison.current_macro_f1 - comparison.candidate_macro_f1 <= TOLERANCE,
            "should_pass": truth_current - truth_candidate <= TOLERANCE}


def _difference_error(row: dict) -> float:
    """How far the gate's candidate − current difference is from the true one."""
    return (row["gate_candidate"] - row["gate_current"]) - (row["true_candidate"] - row["true_current"])


def _mean_sd(values: list[float]) -> str:
    return f"{statistics.mean(values):+.3f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first", type=int, default=150, help="records reviewed before the first model")
    parser.add_argument("--second", type=int, default=300, help="records reviewed in all before the candidate")
    parser.add_argument("--test", type=int, default=1000, help="held-out records: the truth")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    snippets = load_movie_snippets()
    labels = sorted({s.label for s in snippets})
    runs = []
    for seed in range(args.seeds):
        pool = random.Random(seed).sample(snippets, args.second + args.test)
        reviewed = [Example(s.id, s.text, s.label) for s in pool[:args.second]]
        test = [Example(s.id, s.text, s.label) for s in pool[args.second:]]
        for name, (split, leave_out) in VARIANTS.items():
            with tempfile.TemporaryDirectory() as work:
                row = run_variant(reviewed, args.first, test, labels, seed, split, leave_out, Path(work))
            runs.append({"seed": seed, "variant": name, **row})
            logger.warning("seed %d %s: %s", seed, name, row)
    title = (f"Movie snippets: v1 on {args.first} reviewed records, the candidate on {args.second}; truth = "
             f"macro-F1 on {args.test} held-out records; {args.seeds} seeds (mean ± sd; per seed in gate.json)")
    header = ("| variant | validation records | of them v1's training records | compared | gate's v1 − true v1 | "
              "gate's candidate − true candidate | gate's difference − true difference | decisions right |")
    lines = [title, "", header, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in VARIANTS:
        group = [r for r in runs if r["variant"] == name]
        lines.append(
            f"| {name} | {statistics.mean(r['validation'] for r in group):.0f} | "
            f"{statistics.mean(r['memorised_in_validation'] for r in group):.1f} | "
            f"{statistics.mean(r['compared'] for r in group):.0f} | "
            f"{_mean_sd([r['gate_current'] - r['true_current'] for r in group])} | "
            f"{_mean_sd([r['gate_candidate'] - r['true_candidate'] for r in group])} | "
            f"{_mean_sd([_difference_error(r) for r in group])} | "
            f"{sum(r['gate_passes'] == r['should_pass'] for r in group)} / {len(group)} |")
    write_results("gate", {"runs": runs, **vars(args)}, lines)


if __name__ == "__main__":
    main()
