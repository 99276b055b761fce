"""Whether the confidence the worker writes is calibrated on the records it makes suggestions for, and whether the
test set or the validation records tell — in the active-learning loop of ``benchmarks/test_set_estimate.py``.

Per set, seed and model of that loop, the validation records, the test set and a seeded sample of ``--truth`` other
unreviewed records are scored as a score run scores them (the worker's ``Scorer``, ``[scoring]`` defaults: T = 20
MC-dropout samples, uncalibrated: the MC mean). Reported, each an expected calibration error (10 bins):

* what the worker writes now on the other unreviewed records (the truth): read at the temperature training fits on
  the validation records (none below ``MIN_TEMPERATURE_RECORDS`` = 100 validation records, or when it would not
  lower the cross-fitted error), beside the raw MC mean and a temperature fitted on the test set;
* the two estimates of that truth: on the validation records (in-sample) and on the test set.

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.test_set_calibration [--seeds 1] [--truth 400]

Writes benchmarks/results/test_set_calibration.{json,md}. CPU: about 10 minutes per set and seed on 2 cores (run it
alone).
"""

from __future__ import annotations

import argparse
import logging
import random

import numpy as np

from benchmarks._shared import write_results
from benchmarks.test_set_estimate import LoopModel, _examples, add_loop_arguments, loop_rows, mean_text
from worker.calibration import expected_calibration_error, fit_scores_temperature, fit_temperature, tempered
from worker.config import ScoringSettings
from worker.constants import PROBABILITY_FLOOR
from worker.jobs import scorer_options
from worker.records import label_index
from worker.training.calibrate import scored_probabilities
from worker.training.data import Example


def _scored(model: LoopModel, examples: list[Example], options: dict) -> tuple[np.ndarray, np.ndarray]:
    """(MC-mean probabilities [N, C] as a score run computes them, true class indices [N])."""
    probabilities = scored_probabilities(model.classifier, examples, options)
    if probabilities is None:
        raise RuntimeError(f"{model.name}: the scorer skipped a text")
    index = label_index(model.classifier.labels)
    return probabilities, np.asarray([index[str(example.label)] for example in examples])


def _log(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probabilities, PROBABILITY_FLOOR, 1.0))


def calibration_row(model: LoopModel, truth_size: int, seed: int) -> dict:
    """One model's calibration figures (see the module docstring)."""
    options = scorer_options(ScoringSettings())
    truth = random.Random(seed).sample(model.unreviewed, min(truth_size, len(model.unreviewed)))
    validation, validation_targets = _scored(model, model.validation, options)
    test, test_targets = _scored(model, _examples(model.test), options)
    rest, rest_targets = _scored(model, _examples(truth), options)
    fit = fit_scores_temperature(validation, validation_targets, seed=seed)
    worker_temperature = fit.temperature if fit is not None else 1.0
    test_temperature = fit_temperature(_log(test), test_targets)

    def ece(probabilities: np.ndarray, targets: np.ndarray, temperature: float) -> float:
        return expected_calibration_error(tempered(probabilities, temperature), targets)

    return {"model": model.name, "reviewed": model.reviewed, "validation_records": len(validation_targets),
            "test_records": len(test_targets), "truth_records": len(rest_targets),
            "worker_temperature": worker_temperature, "test_temperature": test_temperature,
            "truth_ece_raw": ece(rest, rest_targets, 1.0),
            "truth_ece_worker": ece(rest, rest_targets, worker_temperature),
            "truth_ece_test_temperature": ece(rest, rest_targets, test_temperature),
            "validation_estimate": ece(validation, validation_targets, worker_temperature),
            "test_estimate": ece(test, test_targets, worker_temperature)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_loop_arguments(parser, seeds=1)
    parser.add_argument("--truth", type=int, default=400, help="other unreviewed records scored as the truth")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    runs = loop_rows(args, lambda models, seed: [calibration_row(model, args.truth, seed) for model in models],
                     lambda row: (f"{row['model']}: truth ECE raw {row['truth_ece_raw']:.3f}, worker "
                                  f"(τ {row['worker_temperature']:.2f}) {row['truth_ece_worker']:.3f}, test τ "
                                  f"{row['test_temperature']:.2f} {row['truth_ece_test_temperature']:.3f}; estimates: "
                                  f"validation {row['validation_estimate']:.3f}, test set {row['test_estimate']:.3f}"))
    lines = [("| set | model | reviewed (validation) | truth: raw MC mean | truth: as the worker writes (τ) | "
              "truth: τ fitted on the test set | estimate on the validation records | estimate on the test set |"),
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for run in runs:
        lines.append(f"| {run['set']} s{run['seed']} | {run['model']} | {run['reviewed']} "
                     f"({run['validation_records']}) | {run['truth_ece_raw']:.3f} | {run['truth_ece_worker']:.3f} "
                     f"(τ {run['worker_temperature']:.2f}) | {run['truth_ece_test_temperature']:.3f} "
                     f"(τ {run['test_temperature']:.2f}) | {run['validation_estimate']:.3f} | "
                     f"{run['test_estimate']:.3f} |")
    if runs:
        distance = {source: mean_text([abs(r[f"{source}_estimate"] - r["truth_ece_worker"]) for r in runs])
                    for source in ("validation", "test")}
        lines += ["", (f"Mean distance of the estimate from the truth's error as the worker writes it: validation "
                       f"{distance['validation']}, test set {distance['test']}. Mean truth error: as written "
                       f"{mean_text([r['truth_ece_worker'] for r in runs])}, at the test set's τ "
                       f"{mean_text([r['truth_ece_test_temperature'] for r in runs])}.")]
    write_results("test_set_calibration", {"runs": runs, "seeds": args.seeds, "pool": args.pool, "test": args.test,
                                           "truth": args.truth}, lines)


if __name__ == "__main__":
    main()
