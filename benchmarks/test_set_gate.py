"""Which records should the promotion gate compare two models on: the candidate's validation records, or the test
set — in the active-learning loop of ``benchmarks/test_set_estimate.py``.

Per set and seed the loop trains a first model (the cold start's batch) and a second (+ the batch the first was least
sure of). The gate is played both ways: the second model as the candidate against the first (a retrain that
improved: the truth says promote in every run so far) and the first as the candidate against the second (a retrain
that regressed). Each way, the worker's ``compare_models`` reads the difference in macro-F1 on

* the candidate's validation records the current model was not taught (the gate without a test set);
* those and the test set's ranks 1–50 (a test set being reviewed);
* the test set's ranks 1–50 alone, and all ``--test`` of them (a test set answered in rank order);

and on every other unreviewed pool record (the truth). Reported: how far each reading is from the true difference,
and whether the gate's decision (candidate not below the current model by more than ``training.gate_tolerance``)
matches the decision on the truth.

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.test_set_gate [--seeds 2] [--pool 1200] [--test 200]

Writes benchmarks/results/test_set_gate.{json,md}. CPU: about 8 minutes per set and seed on 2 cores (run it
alone).
"""

from __future__ import annotations

import argparse
import logging
import statistics
from collections.abc import Sequence
from types import SimpleNamespace
from unittest.mock import patch

import numpy as np

from benchmarks._shared import write_results
from benchmarks.test_set_estimate import LoopModel, _examples, add_loop_arguments, loop_rows, mean_text
from worker.config import TrainingSettings
from worker.scoring.model import Classifier
from worker.training.compare import Comparison, compare_models
from worker.training.data import Example
from worker.training.evaluate import predict_probabilities

TOLERANCE = TrainingSettings().gate_tolerance
FIRST_RANKS = 50  # a test set being reviewed: its first ranks answered


def _difference(comparison: Comparison) -> float:
    return comparison.candidate_macro_f1 - comparison.current_macro_f1


def readings(candidate: LoopModel, current: LoopModel, test: Sequence[Example]) -> dict[str, Comparison]:
    """The gate's comparison of ``candidate`` with ``current`` on each choice of records (see the module
    docstring)."""
    first = list(test[:FIRST_RANKS])
    compare = candidate.classifier, current.classifier
    return {
        "validation": compare_models(*compare, candidate.validation, set(current.taught)),
        f"validation + test ranks 1–{FIRST_RANKS}": compare_models(*compare, candidate.validation,
                                                                   set(current.taught), test=first),
        f"test ranks 1–{FIRST_RANKS}": compare_models(*compare, [], set(current.taught), test=first),
        f"test set ({len(test)})": compare_models(*compare, [], set(current.taught), test=list(test)),
    }


class RememberedAnswers:
    """``predict_probabilities`` for ``compare_models``, each (model, text)'s deterministic answer computed once:
    the readings overlap (the test set's ranks 1–50 are in all 200) and both ways ask for both models' answers.
    One per loop (a model is known by its ``id``)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[int, str], np.ndarray] = {}

    def __call__(self, classifier: Classifier, texts: Sequence[str], *, pairs=None, samples: int = 1,
                 seed: int = 0) -> SimpleNamespace:
        assert pairs is None and samples == 1, "the loop's records are single texts, compared deterministically"
        missing = [text for text in dict.fromkeys(texts) if (id(classifier), text) not in self.rows]
        if missing:
            computed = predict_probabilities(classifier, missing, samples=1, seed=seed).deterministic  # [M, C]
            self.rows.update({(id(classifier), text): row for text, row in zip(missing, computed, strict=True)})
        return SimpleNamespace(deterministic=np.stack([self.rows[(id(classifier), text)] for text in texts]))


def gate_rows(models: list[LoopModel]) -> list[dict]:
    """Both ways of one loop: [{way, truth difference, {reading: (difference, records, interval)}}]."""
    first, second = models
    test = _examples(first.test)
    truth_records = _examples(second.unreviewed)  # unreviewed after both batches: neither model trained on them
    rows = []
    with patch("worker.training.compare.predict_probabilities", RememberedAnswers()):
        for way, candidate, current in (("improved: second model vs first", second, first),
                                        ("regressed: first model vs second", first, second)):
            truth = compare_models(candidate.classifier, current.classifier, truth_records, None)
            rows.append({"way": way, "truth_difference": _difference(truth), "truth_records": truth.records,
                         "readings": {name: {"difference": _difference(reading), "records": reading.records,
                                             "test_records": reading.test_records,
                                             "interval": list(reading.interval) if reading.interval else None}
                                      for name, reading in readings(candidate, current, test).items()}})
    return rows


def _decision(difference: float) -> bool:
    return difference >= -TOLERANCE


def report(runs: list[dict]) -> list[str]:
    names = list(runs[0]["readings"]) if runs else []
    lines = ["| set | way | truth: difference (records) | " + " | ".join(f"{name}: difference (records)"
                                                                      for name in names) + " |",
             "|---|---|---:|" + "---:|" * len(names)]
    for run in runs:
        cells = []
        for name in names:
            reading = run["readings"][name]
            wrong = "" if _decision(reading["difference"]) == _decision(run["truth_difference"]) else " ✗"
            cells.append(f"{reading['difference']:+.3f} ({reading['records']}){wrong}")
        lines.append(f"| {run['set']} s{run['seed']} | {run['way']} | {run['truth_difference']:+.3f} "
                     f"({run['truth_records']}) | " + " | ".join(cells) + " |")
    if runs:
        lines += ["", "| records the gate compares on | mean distance from the true difference | decisions right |",
                  "|---|---:|---:|"]
        for name in names:
            errors = [abs(run["readings"][name]["difference"] - run["truth_difference"]) for run in runs]
            right = sum(_decision(run["readings"][name]["difference"]) == _decision(run["truth_difference"])
                        for run in runs)
            lines.append(f"| {name} | {mean_text(errors)} | {right} / {len(runs)} |")
        lines += ["", (f"✗: the gate's decision (tolerance {TOLERANCE}) differs from the decision on the truth. "
                       f"Mean size of the true difference: "
                       f"{statistics.mean(abs(run['truth_difference']) for run in runs):.3f}.")]
    return lines


def _describe(row: dict) -> str:
    readings = "; ".join(f"{name} {reading['difference']:+.3f} ({reading['records']})"
                         for name, reading in row["readings"].items())
    return f"{row['way']}: truth {row['truth_difference']:+.3f}; {readings}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_loop_arguments(parser, seeds=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    runs = loop_rows(args, lambda models, seed: gate_rows(list(models)), _describe)
    write_results("test_set_gate", {"runs": runs, "seeds": args.seeds, "pool": args.pool, "test": args.test,
                                    "tolerance": TOLERANCE}, report(runs))


if __name__ == "__main__":
    main()
