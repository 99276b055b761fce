"""How the promotion gate decides on few records: the difference in macro-F1 (the worker's rule) against the
difference in accuracy and two combinations, on random samples of 10–100 records.

Found in a play-through on a team's own data (600 Reuters wires, 8 topics, an LLM's labels): a first model trained
on the records' own labels is taught nearly every record, so the next candidate's gate compared on 13 records and
rejected a better model (macro-F1 −0.17, 95 % interval −0.33 to 0.00). Per set and seed this plays the active-learning
loop of ``benchmarks/test_set_estimate.py`` (a first model on the cold start's batch, a second with the batch the
first was least sure of) and the gate both ways (the second model as the candidate: a retrain that improved; the
first as the candidate: one that regressed). The truth is the difference in macro-F1 on every unreviewed pool record
(neither model trained on them); the decision on it is the gate's (candidate not below the current model by more
than ``training.gate_tolerance``). Then ``--draws`` random samples of each ``--sizes`` records are drawn from those
records, and each rule decides on a sample through the worker's ``compare_models``:

* ``macro-F1``: reject when the candidate's macro-F1 is below the current model's by more than the tolerance;
* ``accuracy``: the same on accuracy;
* ``both``: reject only when both are;
* ``interval``: reject only when the 95 % interval of the macro-F1 difference lies below −tolerance.

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.small_gate [--seeds 2] [--sets bbc groups reuters]

Writes benchmarks/results/small_gate.{json,md}. CPU: about 8 minutes per set and seed on 2 cores (run it alone).
"""

from __future__ import annotations

import argparse
import logging
import random
from collections.abc import Callable, Sequence
from unittest.mock import patch

import numpy as np

from benchmarks import test_set_estimate
from benchmarks._shared import write_results
from benchmarks.test_set_estimate import LoopModel, _examples, add_loop_arguments, loop_rows
from benchmarks.test_set_gate import RememberedAnswers
from worker.config import TrainingSettings
from worker.demo_data import load_reuters8
from worker.training.compare import Comparison, compare_models
from worker.training.data import Example
from worker.training.evaluate import predict_probabilities

TOLERANCE = TrainingSettings().gate_tolerance
SIZES = (10, 15, 25, 50, 100)

Rule = Callable[[Comparison, float], bool]  # (the comparison, the accuracy difference) → promote?

RULES: dict[str, Rule] = {
    "macro-F1": lambda c, accuracy: c.candidate_macro_f1 - c.current_macro_f1 >= -TOLERANCE,
    "accuracy": lambda c, accuracy: accuracy >= -TOLERANCE,
    "both": lambda c, accuracy: c.candidate_macro_f1 - c.current_macro_f1 >= -TOLERANCE or accuracy >= -TOLERANCE,
    "interval": lambda c, accuracy: c.interval is None or c.interval[1] >= -TOLERANCE,
}


def _correct(model: LoopModel, examples: Sequence[Example]) -> dict[str, bool]:
    """Example id → whether the model's deterministic answer is the example's label."""
    probabilities = predict_probabilities(model.classifier, [e.text for e in examples], samples=1).deterministic
    labels = model.classifier.labels
    return {e.id: labels[int(row.argmax())] == e.label for e, row in zip(examples, probabilities, strict=True)}


def small_sample_rows(models: list[LoopModel], seed: int, sizes: Sequence[int], draws: int) -> list[dict]:
    """Both ways of one loop: [{way, truth difference, {size: {rule: decisions right}}}]."""
    first, second = models
    pool = _examples(second.unreviewed)  # neither model trained on them
    rng = random.Random(seed)
    rows = []
    with patch("worker.training.compare.predict_probabilities", RememberedAnswers()):
        correct = {id(model): _correct(model, pool) for model in models}
        for way, candidate, current in (("improved", second, first), ("regressed", first, second)):
            truth = compare_models(candidate.classifier, current.classifier, pool, None)
            promote = truth.candidate_macro_f1 - truth.current_macro_f1 >= -TOLERANCE
            right = {}
            for size in sizes:
                counts = dict.fromkeys(RULES, 0)
                for draw in range(draws):
                    sample = rng.sample(pool, size)
                    comparison = compare_models(candidate.classifier, current.classifier, sample, None, seed=draw)
                    accuracy = float(np.mean([correct[id(candidate)][e.id] for e in sample])
                                     - np.mean([correct[id(current)][e.id] for e in sample]))
                    for name, rule in RULES.items():
                        counts[name] += rule(comparison, accuracy) == promote
                right[str(size)] = {name: count / draws for name, count in counts.items()}
            rows.append({"way": way, "truth_difference": truth.candidate_macro_f1 - truth.current_macro_f1,
                         "truth_accuracy_difference": float(
                             np.mean([correct[id(candidate)][e.id] for e in pool])
                             - np.mean([correct[id(current)][e.id] for e in pool])),
                         "truth_records": len(pool), "right": right})
    return rows


def report(runs: list[dict], sizes: Sequence[int]) -> list[str]:
    header = " | ".join(f"{size} records: " + " / ".join(RULES) for size in sizes)
    lines = [f"| set | way | truth: macro-F1 / accuracy difference | {header} |",
             "|---|---|---:|" + "---:|" * len(sizes)]
    for run in runs:
        cells = [" / ".join(f"{run['right'][str(size)][name]:.2f}" for name in RULES) for size in sizes]
        lines.append(f"| {run['set']} s{run['seed']} | {run['way']} | {run['truth_difference']:+.3f} / "
                     f"{run['truth_accuracy_difference']:+.3f} | " + " | ".join(cells) + " |")
    if runs:
        lines += ["", "| rule | " + " | ".join(f"{size} records" for size in sizes) + " |",
                  "|---|" + "---:|" * len(sizes)]
        for name in RULES:
            means = [np.mean([run["right"][str(size)][name] for run in runs]) for size in sizes]
            lines.append(f"| {name} | " + " | ".join(f"{mean:.3f}" for mean in means) + " |")
        lines += ["", (f"Share of the random samples on which the rule's decision (tolerance {TOLERANCE}) matches "
                       f"the decision on the truth; the summary averages every set, seed and way.")]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_loop_arguments(parser, seeds=2)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    parser.add_argument("--draws", type=int, default=200, help="random samples per size")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    test_set_estimate.SETS.setdefault("Reuters R8 (8 topics)", (lambda: load_reuters8("train"), 40, 40))
    runs = loop_rows(args, lambda models, seed: small_sample_rows(list(models), seed, args.sizes, args.draws),
                     lambda row: f"{row['way']}: truth {row['truth_difference']:+.3f}; "
                                 + "; ".join(f"{size}: {right}" for size, right in row["right"].items()))
    write_results("small_gate", {"runs": runs, "seeds": args.seeds, "pool": args.pool, "sizes": args.sizes,
                                 "draws": args.draws, "tolerance": TOLERANCE}, report(runs, args.sizes))


if __name__ == "__main__":
    main()
