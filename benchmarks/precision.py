"""Mixed precision on CUDA, side by side: training and MC-dropout scoring in fp32, bf16 and fp16.

One run, one device, one seed. Training: the offline all-MiniLM-L6-v2 fine-tuned on movie-review
snippets in each precision (autocast; fp16 adds the GradScaler); every trained model is then
evaluated in fp32, so the accuracy / ECE columns show what the training precision did to the
model. Scoring: the fp32-trained model scores the test snippets (full MC dropout, T samples) in
each precision; the deviation columns compare with the fp32 scores of the same records.
Throughput and peak memory are ratios against the fp32 row of the same run.

    python benchmarks/precision.py                   # on a CUDA machine: ≈ 1 min on an H100
    python benchmarks/precision.py --device cpu      # fp32 rows only (autocast here is CUDA-only)

Writes benchmarks/results/precision.{json,md}.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import movie_split, write_results
from worker.calibration import expected_calibration_error
from worker.demo_data import SENTIMENT_LABELS
from worker.logging_setup import configure_logging
from worker.offline_assets import MINILM_MODEL, fetch
from worker.scoring import load_classifier
from worker.scoring.device import pick_device
from worker.scoring.uncertainty import uncertainty_scores
from worker.training.data import Example
from worker.training.evaluate import predict_probabilities
from worker.training.trainer import TrainingSettings, train_classifier

logger = logging.getLogger("benchmarks.precision")

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3, help="≥ 2: the first epoch is the warm-up")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--samples", type=int, default=20, help="MC-dropout samples T when scoring")
    parser.add_argument("--score-batch-size", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    configure_logging("INFO")
    args = parse_args()
    device = pick_device(args.device)
    precisions = list(PRECISIONS) if device.type == "cuda" else ["fp32"]
    train, test = movie_split(train=args.train, test=args.test, seed=args.seed)
    targets = np.array([SENTIMENT_LABELS.index(r.label) for r in test])
    with tempfile.TemporaryDirectory() as work:
        models = {name: Path(work) / name for name in precisions}
        training = {name: _train(args, train, models[name], name, device) for name in precisions}
        for name in precisions:
            training[name].update(_evaluate_fp32(models[name], test, targets, args))
        scoring = _score_in_each_precision(models["fp32"], test, targets, precisions, args)
    lines = _table(args, device, training, scoring)
    write_results("precision", {"args": vars(args), "device": _device_name(device),
                                "training": training, "scoring": scoring}, lines)


def _train(args, train, output: Path, precision: str, device: torch.device) -> dict:
    settings = TrainingSettings(
        epochs=args.epochs, batch_size=args.batch_size, max_length=args.max_length, seed=args.seed,
        device=str(device), mixed_precision=precision != "fp32",
        amp_dtype={"fp32": "auto", "bf16": "bfloat16", "fp16": "float16"}[precision])
    examples = [Example(r.id, r.text, r.label) for r in train]
    _reset_peak(device)
    result = train_classifier(fetch(MINILM_MODEL), examples, [], SENTIMENT_LABELS, output, settings)
    steady = result.history[1:] or result.history  # epoch 1 pays kernel loading and selection per padded length
    return {"seconds": result.seconds, "first_epoch_s": result.history[0].seconds,
            "examples_per_s": len(examples) * len(steady) / sum(epoch.seconds for epoch in steady),
            "peak_mib": _peak_mib(device)}


def _evaluate_fp32(model_dir: Path, test, targets: np.ndarray, args) -> dict:
    classifier = load_classifier(model_dir, device=args.device, mixed_precision=False)
    probs = predict_probabilities(classifier, [r.text for r in test], samples=1, mc_layers=0).deterministic
    return {"accuracy": float((probs.argmax(1) == targets).mean()),
            "ece": expected_calibration_error(probs, targets)}


def _score_in_each_precision(model_dir: Path, test, targets: np.ndarray, precisions: list[str], args) -> dict:
    """Full MC dropout over the test texts in each precision; deviations against the fp32 run."""
    texts = [r.text for r in test]
    results, reference = {}, None
    for name in precisions:
        classifier = load_classifier(model_dir, device=args.device, mixed_precision=False)
        classifier.amp_dtype = PRECISIONS[name]
        predict_probabilities(classifier, texts, samples=args.samples, mc_layers="all",
                              batch_size=args.score_batch_size)  # warm-up: kernels for every padded length
        _reset_peak(classifier.device)
        started = time.perf_counter()
        probs = predict_probabilities(classifier, texts, samples=args.samples, mc_layers="all",
                                      batch_size=args.score_batch_size, seed=args.seed)
        seconds = time.perf_counter() - started
        bald = uncertainty_scores(probs.mc)["bald"]  # [N]
        row = {"records_per_s": len(texts) / seconds, "peak_mib": _peak_mib(classifier.device),
               "accuracy": float((probs.mc_mean.argmax(1) == targets).mean()),
               "ece": expected_calibration_error(probs.mc_mean, targets)}
        if reference is None:
            reference = (probs, bald)
        else:
            row["max_abs_dprob_deterministic"] = float(np.abs(probs.deterministic - reference[0].deterministic).max())
            row["prediction_agreement"] = float(
                (probs.deterministic.argmax(1) == reference[0].deterministic.argmax(1)).mean())
            row["bald_spearman_vs_fp32"] = float(spearmanr(bald, reference[1]).statistic)
        results[name] = row
    return results


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _table(args, device: torch.device, training: dict, scoring: dict) -> list[str]:
    fp32_train, fp32_score = training["fp32"], scoring["fp32"]

    def ratio(value, base):
        return f"{value / base:.2f}" if value is not None and base else "–"

    def mib(value):
        return f"{value:.0f}" if value is not None else "–"

    lines = [
        (f"Mixed precision — {_device_name(device)}; all-MiniLM-L6-v2, {args.train} movie snippets × "
         f"{args.epochs} epochs (batch {args.batch_size}, {args.max_length} tokens); scoring {args.test} "
         f"snippets, full MC T={args.samples}, batch {args.score_batch_size}"),
        "",
        "Training (examples/s after the first epoch; each model evaluated in fp32 on the test snippets)",
        "",
        "| precision | first epoch s | examples/s | × fp32 | peak MiB | × fp32 | accuracy | ECE |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in training.items():
        speed = ratio(row['examples_per_s'], fp32_train['examples_per_s'])
        lines.append(f"| {name} | {row['first_epoch_s']:.1f} | {row['examples_per_s']:.0f} | {speed}"
                     f" | {mib(row['peak_mib'])} | {ratio(row['peak_mib'], fp32_train['peak_mib'])}"
                     f" | {row['accuracy']:.4f} | {row['ece']:.4f} |")
    lines += ["", "Scoring (the fp32-trained model; timed on a second pass over the same texts)", "",
              ("| precision | records/s | × fp32 | peak MiB | × fp32 | MC accuracy | MC ECE | max abs Δp (det.) "
               "| same prediction | BALD Spearman vs fp32 |"),
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in scoring.items():
        lines.append(
            f"| {name} | {row['records_per_s']:.0f} | {ratio(row['records_per_s'], fp32_score['records_per_s'])}"
            f" | {mib(row['peak_mib'])} | {ratio(row['peak_mib'], fp32_score['peak_mib'])}"
            f" | {row['accuracy']:.4f} | {row['ece']:.4f} | {row.get('max_abs_dprob_deterministic', 0):.4f}"
            f" | {row.get('prediction_agreement', 1):.4f} | {row.get('bald_spearman_vs_fp32', 1):.4f} |")
    return lines


if __name__ == "__main__":
    main()
