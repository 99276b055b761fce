"""Which statistic should the promotion gate decide on when the test set's records are few for the labels: macro-F1
(the gate before), accuracy, or macro-F1 only where every label compared has a few records.

Found in a play-through (20 Newsgroups, 20 labels, 100 test records answered): the second model trained on 120
reviews was right on 0.702 of the 2,780 posts nobody reviewed (macro-F1 0.676) where the current one was right on
0.559 (0.524), and the gate rejected it: on the 100 test records its accuracy was +0.07 but its macro-F1 −0.022 —
with 1 to 3 records of most labels, each label's F1 swings by a whole 1/20 of the mean on one answer.

Per set and seed the loop of ``benchmarks/test_set_estimate.py`` trains a first model (the cold start's batch) and a
second (+ the batch the first was least sure of); both answer every pool record neither trained on (the test set's and
the other unreviewed ones, deterministic pass). The truth is the macro-F1 difference on all of them; the gate is
played both ways (second vs first: a retrain that improved; first vs second: one that regressed) on ``--draws``
random test sets of 50, 100 and 200 of those records, each statistic deciding "promote when the candidate is not
below the current model by more than training.gate_tolerance". Reported: how often each decision matches the truth's.

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.gate_statistic [--seeds 2] [--sets news] [--draws 400]

Writes benchmarks/results/gate_statistic.{json,md}. CPU: about 8 minutes per set and seed on 2 cores (run it alone).
"""

from __future__ import annotations

import argparse
import logging
import statistics

import numpy as np

from benchmarks._shared import write_results
from benchmarks.test_set_estimate import LoopModel, _examples, add_loop_arguments, loop_rows
from worker.config import TrainingSettings
from worker.training.evaluate import predict_probabilities

TOLERANCE = TrainingSettings().gate_tolerance
MIN_LABEL_RECORDS = 5  # the hybrid rule: records of each label present needed to decide on macro-F1
SIZES = (50, 100, 200)
RULES = ("macro-F1", "accuracy", f"macro-F1, accuracy when a label has < {MIN_LABEL_RECORDS} records")
logger = logging.getLogger("benchmarks.gate_statistic")


def gate_statistic(label_counts: np.ndarray) -> str:
    """The hybrid rule's statistic, given how many of the compared records carry each label (``label_counts`` [C]):
    ``"macro-F1"`` when every label among them has :data:`MIN_LABEL_RECORDS`, else ``"accuracy"`` (with 1 to 4
    records of a label, one answer moves that label's F1 by a third or more)."""
    present = label_counts[label_counts > 0]
    return "macro-F1" if present.size and int(present.min()) >= MIN_LABEL_RECORDS else "accuracy"


def _macro_f1(predicted: np.ndarray, targets: np.ndarray, classes: int) -> float:
    """Mean F1 over the labels present in ``targets`` ([N] class indices, as ``predicted``), as the gate reads it."""
    scores = []
    for label in range(classes):
        tp = np.sum((predicted == label) & (targets == label))
        fp = np.sum((predicted == label) & (targets != label))
        fn = np.sum((predicted != label) & (targets == label))
        if tp + fn:
            scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def differences(candidate: np.ndarray, current: np.ndarray, targets: np.ndarray, classes: int) -> dict[str, float]:
    """Candidate − current on the records given (``candidate`` / ``current``: [N] predicted class indices,
    ``targets`` [N]) for each rule; the last rule by :func:`gate_statistic`."""
    f1 = _macro_f1(candidate, targets, classes) - _macro_f1(current, targets, classes)
    accuracy = float(np.mean(candidate == targets) - np.mean(current == targets))
    chosen = f1 if gate_statistic(np.bincount(targets, minlength=classes)) == "macro-F1" else accuracy
    return dict(zip(RULES, (f1, accuracy, chosen), strict=True))


def gate_rows(models: list[LoopModel], seed: int, draws: int) -> list[dict]:
    """Both ways of one loop: [{way, truth difference, {size: {rule: share of draws decided as the truth}}}]."""
    first, second = models
    records = _examples(second.unreviewed) + _examples(first.test)  # neither model trained on them
    labels = list(first.classifier.labels)
    targets = np.array([labels.index(example.label) for example in records])  # [N]
    answers = {model.name: predict_probabilities(model.classifier, [e.text for e in records],
                                                 samples=1).deterministic.argmax(axis=1) for model in models}  # [N]
    rng = np.random.default_rng(seed)
    rows = []
    for way, candidate, current in (("improved: second model vs first", second, first),
                                    ("regressed: first model vs second", first, second)):
        truth = _macro_f1(answers[candidate.name], targets, len(labels)) - _macro_f1(answers[current.name], targets,
                                                                                  len(labels))
        right: dict[int, dict[str, float]] = {}
        for size in SIZES:
            decided = {rule: 0 for rule in RULES}
            for _ in range(draws):
                drawn = rng.choice(len(records), size=size, replace=False)
                for rule, difference in differences(answers[candidate.name][drawn], answers[current.name][drawn],
                                                    targets[drawn], len(labels)).items():
                    decided[rule] += (difference >= -TOLERANCE) == (truth >= -TOLERANCE)
            right[size] = {rule: count / draws for rule, count in decided.items()}
        rows.append({"way": way, "truth_difference": truth, "truth_records": len(records), "right": right})
    return rows


def report(runs: list[dict]) -> list[str]:
    lines = ["| set | way | truth: macro-F1 difference (records) | test records | " + " | ".join(RULES) + " |",
             "|---|---|---:|---:|" + "---:|" * len(RULES)]
    for run in runs:
        for size in SIZES:
            shares = run["right"][size] if size in run["right"] else run["right"][str(size)]
            lines.append(f"| {run['set']} s{run['seed']} | {run['way']} | {run['truth_difference']:+.3f} "
                         f"({run['truth_records']}) | {size} | " + " | ".join(f"{shares[r]:.3f}" for r in RULES) + " |")
    lines += ["", "| test records | " + " | ".join(RULES) + " |", "|---:|" + "---:|" * len(RULES)]
    for size in SIZES:
        means = [statistics.mean(run["right"][size][rule] for run in runs) for rule in RULES]
        lines.append(f"| {size} | " + " | ".join(f"{mean:.3f}" for mean in means) + " |")
    lines += ["", (f"Share of the random test sets on which the gate's decision (tolerance {TOLERANCE}) matches the "
                   f"one the truth gives.")]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_loop_arguments(parser, seeds=2)
    parser.add_argument("--draws", type=int, default=400, help="random test sets drawn per size")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    runs = loop_rows(args, lambda models, seed: gate_rows(list(models), seed, args.draws),
                     lambda row: f"{row['way']}: truth {row['truth_difference']:+.3f}; " + "; ".join(
                         f"{size}: " + ", ".join(f"{rule} {share:.2f}" for rule, share in shares.items())
                         for size, shares in row["right"].items()))
    write_results("gate_statistic", {"runs": runs, "seeds": args.seeds, "pool": args.pool, "draws": args.draws,
                                     "tolerance": TOLERANCE}, report(runs))


if __name__ == "__main__":
    main()
