"""A temperature fitted on records the model answered almost all right: what it does to the confidence the worker
writes on the other records.

Training fits τ on the test records answered in rank order once 100 are (``fit_scores_temperature``: kept where it
lowers the cross-fitted calibration error). A model that answers nearly all of them right gives the fit nothing to
stop at: with no wrong answer, the sharpest τ (0.05) "lowers" the error on both halves, and the worker then writes
confidences near 1 on every record, the wrong ones too.

Per set: MiniLM fine-tuned on ``--train`` records drawn at random (an early model of the loop), the pool's other
records scored as a score run scores them (the worker's ``Scorer``, ``[scoring]`` defaults but T = ``--samples``:
the MC mean, uncalibrated). Then ``--draws`` times per fit size: a random fit set (a test set answered in rank
order), τ fitted as training fits it, and the expected calibration error (10 bins) on the rest of the pool (the
truth) at that τ against the uncalibrated one — grouped by how many wrong answers the fit set held, and for the rule
"no τ below k wrong answers" at several k.

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.temperature_errors [--draws 300]

Writes benchmarks/results/temperature_errors.{json,md}. CPU: about 10 minutes on 2 cores (run it alone).
"""

from __future__ import annotations

import argparse
import logging
import random
from pathlib import Path

import numpy as np

from benchmarks._shared import write_results
from worker import calibration
from worker.calibration import TemperatureFit, expected_calibration_error, fit_scores_temperature, tempered
from worker.config import ScoringSettings
from worker.demo_data import SENTIMENT_LABELS, LabelledText, load_movie_snippets, load_sms_spam
from worker.jobs import scorer_options
from worker.offline_assets import MINILM_MODEL, cache_root, fetch
from worker.records import label_index
from worker.scoring import load_classifier
from worker.training.calibrate import scored_probabilities
from worker.training.data import Example
from worker.training.finetune import fine_tune

logger = logging.getLogger("benchmarks.temperature_errors")

SETS = {"sms-spam": (load_sms_spam, ("ham", "spam"), 80), "movies": (load_movie_snippets, SENTIMENT_LABELS, 200)}
RULES = (0, 1, 3, 5, 10)  # no τ fitted below this many wrong answers in the fit set (0: the rule before)
BUCKETS = ((0, 0), (1, 2), (3, 4), (5, 9), (10, 10**9))


def _model(name: str, records: list[LabelledText], labels, seed: int) -> Path:
    target = cache_root() / "benchmark-models" / f"temperature-errors-{name}-n{len(records)}-s{seed}"
    if not (target / "config.json").exists():
        fine_tune(fetch(MINILM_MODEL), records, labels, target, epochs=4, batch_size=16, seed=seed, device="auto")
    return target


def _scored(name: str, pool_size: int, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(MC-mean probabilities [P, C] of the pool, true class indices [P], the model's accuracy on the pool)."""
    load, labels, train_size = SETS[name]
    records = load()
    random.Random(seed).shuffle(records)
    train, pool = records[:train_size], records[train_size:train_size + pool_size]
    classifier = load_classifier(_model(name, train, labels, seed), device="cpu", version=name)
    options = {**scorer_options(ScoringSettings()), "samples": samples}
    examples = [Example(record.id, record.text, str(record.label)) for record in pool]
    probabilities = scored_probabilities(classifier, examples, options, seed=seed)
    if probabilities is None:
        raise RuntimeError(f"{name}: the scorer skipped a text")
    index = label_index(classifier.labels)
    targets = np.asarray([index[str(record.label)] for record in pool])
    return probabilities, targets, float((probabilities.argmax(axis=1) == targets).mean())


def _fit_on_any_errors(probabilities: np.ndarray, targets: np.ndarray, seed: int) -> TemperatureFit | None:
    """``fit_scores_temperature`` without its floor on wrong answers (the rule before it): the table applies each
    floor to these fits."""
    floor = calibration.MIN_TEMPERATURE_ERRORS
    calibration.MIN_TEMPERATURE_ERRORS = 0
    try:
        return fit_scores_temperature(probabilities, targets, seed=seed)
    finally:
        calibration.MIN_TEMPERATURE_ERRORS = floor


def _draws(probabilities: np.ndarray, targets: np.ndarray, fit_size: int, draws: int, seed: int) -> list[dict]:
    """Per draw: the fit set's wrong answers, the τ training would keep (1: none) and the truth's ECE at it and raw."""
    rng = np.random.default_rng(seed)
    rows = []
    for draw in range(draws):
        chosen = np.zeros(len(targets), dtype=bool)
        chosen[rng.choice(len(targets), fit_size, replace=False)] = True
        fit = _fit_on_any_errors(probabilities[chosen], targets[chosen], seed=draw)
        temperature = fit.temperature if fit is not None else 1.0
        rest, rest_targets = probabilities[~chosen], targets[~chosen]
        rows.append({"wrong": int((probabilities[chosen].argmax(axis=1) != targets[chosen]).sum()),
                     "temperature": temperature,
                     "ece_raw": expected_calibration_error(rest, rest_targets),
                     "ece_fitted": expected_calibration_error(tempered(rest, temperature), rest_targets)})
    return rows


def _summary(name: str, fit_size: int, accuracy: float, rows: list[dict]) -> tuple[str, list[str]]:
    raw = np.mean([row["ece_raw"] for row in rows])
    by_rule = [np.mean([row["ece_fitted"] if row["wrong"] >= rule else row["ece_raw"] for row in rows])
               for rule in RULES]
    worst = max(row["ece_fitted"] for row in rows)
    head = (f"| {name} | {fit_size} | {accuracy:.3f} | {np.median([row['wrong'] for row in rows]):.0f} | {raw:.4f} | "
            + " | ".join(f"{value:.4f}" for value in by_rule) + f" | {worst:.4f} |")
    buckets = []
    for low, high in BUCKETS:
        inside = [row for row in rows if low <= row["wrong"] <= high]
        if inside:
            kept = [row for row in inside if row["temperature"] != 1.0]
            buckets.append(f"| {name} | {fit_size} | {low}–{high if high < 10**9 else '…'} | {len(inside)} | "
                           f"{len(kept)} | {np.median([row['temperature'] for row in kept]) if kept else 1.0:.2f} | "
                           f"{np.mean([row['ece_raw'] for row in inside]):.4f} | "
                           f"{np.mean([row['ece_fitted'] for row in inside]):.4f} |")
    return head, buckets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--pool", type=int, default=3000, help="records scored per set (the fit sets and the truth)")
    parser.add_argument("--fit-sizes", type=int, nargs="+", default=[100, 200])
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--samples", type=int, default=8, help="MC-dropout samples a record (T)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    heads, buckets, payload = [], [], {}
    for name in args.sets:
        probabilities, targets, accuracy = _scored(name, args.pool, args.samples, args.seed)
        for fit_size in args.fit_sizes:
            rows = _draws(probabilities, targets, fit_size, args.draws, args.seed)
            payload[f"{name}/{fit_size}"] = {"accuracy": accuracy, "draws": rows}
            head, bucket = _summary(name, fit_size, accuracy, rows)
            heads.append(head)
            buckets.extend(bucket)
    lines = ["| set | fit records | accuracy | wrong in fit (median) | ECE uncalibrated | "
             + " | ".join(f"τ kept at ≥ {rule} wrong" for rule in RULES) + " | worst draw, rule ≥ 0 |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(RULES) + "---:|", *heads, "",
             ("| set | fit records | wrong answers in fit | draws | τ kept | median τ kept | ECE uncalibrated | "
              "ECE at the τ kept (rule ≥ 0) |"), "|---|---:|---|---:|---:|---:|---:|---:|", *buckets]
    write_results("temperature_errors", payload, lines)


if __name__ == "__main__":
    main()
