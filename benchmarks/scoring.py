"""Scoring throughput and quality, side by side in one run, same model, same data, T = 20.

  (a) BaaL's reference path: BaalTransformersTrainer.predict_on_dataset(iterations=T)
  (a2) a careful BaaL loop: patch_module, batches in input order with dynamic padding, the T samples of
       a batch as one enlarged batch (BaaL's replicate-in-memory), inference mode
  (b) one deterministic pass (ours: length-bucketed batches, inference mode)
  (c) our full MC dropout; (c') the same with another seed: the noise floor of a T = 20 estimate
  (d) our fast MC dropout with the last k = 1, 4 (auto on a CPU) and 0 encoder layers stochastic; (d') k = 4,
      another seed
  (c"), (d") fixed T = 20 with consistent masks (sample t is the same sub-network for every record), which
      adaptive sampling uses
  (e) adaptive MC (scoring.adaptive, default tolerances), full and fast k = 4: quality is compared with fixed
      T = 20 on the same masks ((c"), (d")) — BALD and expected-loss Spearman, ΔECE, Δ label-error AUROC —
      beside the noise floor of fixed T itself ((c'), (d')) and consistent vs BaaL's masks ((c"), (d")).

The records carry a reference label with a seeded fraction flipped (``--flip``): the label-error AUROC is
how well ``expected_loss`` ranks the flipped ones first.

Each method runs in its own fresh process (spawned one after the other) so its peak memory is
its own; the model is the offline all-MiniLM-L6-v2 fine-tuned briefly on movie-review snippets
(cached after the first run). Writes ``benchmarks/results/scoring.{json,md}``.

    python benchmarks/scoring.py                 # 1,000 scored records, CPU here: a few minutes
    python benchmarks/scoring.py --records 200   # quick look
    python benchmarks/scoring.py --device cuda   # unchanged on a GPU
    python benchmarks/scoring.py --adaptive-sweep # also fast MC adaptive over a grid of tolerances
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import queue as queue_module
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import finetuned_minilm, movie_split
from worker.calibration import expected_calibration_error
from worker.demo_data import SENTIMENT_LABELS
from worker.logging_setup import configure_logging

logger = logging.getLogger("benchmarks.scoring")

METHODS = {
    "a_baal": "(a) BaaL predict_on_dataset",
    "a2_baal_loop": "(a2) BaaL careful loop",
    "b_deterministic": "(b) deterministic pass",
    "c_full_mc": "(c) ours, full MC",
    "c_full_mc_seed1": "(c') ours, full MC, another seed",
    "d_fast_k1": "(d) ours, fast MC k=1",
    "d_fast_auto": "(d) ours, fast MC k=4 of 6 (auto on a CPU)",
    "d_fast_auto_seed1": "(d') ours, fast MC k=4, another seed",
    "d_fast_k0": "(d) ours, fast MC k=0",
    "c_full_mc_consistent": "(c\") ours, full MC, consistent masks",
    "d_fast_auto_consistent": "(d\") ours, fast MC k=4, consistent masks",
    "e_adaptive_full": "(e) ours, full MC adaptive",
    "e_adaptive_auto": "(e) ours, fast MC k=4 adaptive",
}
# What each of our rows runs: Scorer options (+ "seed", "adaptive": tolerances or None).
OURS = {
    "c_full_mc": {"strategy": "full"},
    "c_full_mc_seed1": {"strategy": "full", "seed": 1},
    "d_fast_k1": {"strategy": "partial", "mc_layers": 1},
    "d_fast_auto": {"strategy": "partial", "mc_layers": 4},
    "d_fast_auto_seed1": {"strategy": "partial", "mc_layers": 4, "seed": 1},
    "d_fast_k0": {"strategy": "partial", "mc_layers": 0},
    "c_full_mc_consistent": {"strategy": "full", "consistent": True},
    "d_fast_auto_consistent": {"strategy": "partial", "mc_layers": 4, "consistent": True},
    "e_adaptive_full": {"strategy": "full", "adaptive": {}},
    "e_adaptive_auto": {"strategy": "partial", "mc_layers": 4, "adaptive": {}},
}
# Rows compared with a fixed-T row of the same strategy: row -> the fixed row.
VERSUS = {"c_full_mc_seed1": "c_full_mc", "d_fast_auto_seed1": "d_fast_auto", "c_full_mc_consistent": "c_full_mc",
          "d_fast_auto_consistent": "d_fast_auto", "e_adaptive_full": "c_full_mc_consistent",
          "e_adaptive_auto": "d_fast_auto_consistent"}


class PeakMemory:
    """Peak resident memory (CPU, sampled) or peak allocated CUDA memory while the block runs, in MiB."""

    def __init__(self, device: str):
        self.device = device
        self.peak_mib = 0.0

    def __enter__(self):
        import psutil
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
            return self
        self._process = psutil.Process()
        self._base = self._process.memory_info().rss
        self._peak = self._base
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while self._running:
            self._peak = max(self._peak, self._process.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc):
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.peak_mib = (torch.cuda.max_memory_allocated() - self._base) / 2**20
        else:
            self._running = False
            self._thread.join()
            self.peak_mib = (self._peak - self._base) / 2**20


def _baal_reference(model_dir: Path, texts: list[str], samples: int, batch_size: int, device: str) -> dict:
    import torch
    from baal.bayesian.dropout import patch_module
    from baal.transformers_trainer_wrapper import BaalTransformersTrainer
    from datasets import Dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        TrainingArguments,
    )

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = patch_module(AutoModelForSequenceClassification.from_pretrained(model_dir))
    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(output_dir=output_dir, per_device_eval_batch_size=batch_size, report_to=[],
                                 use_cpu=not device.startswith("cuda"), disable_tqdm=True,
                                 bf16=device.startswith("cuda") and torch.cuda.is_bf16_supported())
        trainer = BaalTransformersTrainer(model=model, args=args, data_collator=DataCollatorWithPadding(tokenizer))

        def run(subset: list[str]) -> np.ndarray:
            dataset = Dataset.from_dict({"text": subset}).map(
                lambda rows: tokenizer(rows["text"], truncation=True, max_length=tokenizer.model_max_length),
                batched=True, remove_columns=["text"])
            return np.asarray(trainer.predict_on_dataset(dataset, iterations=samples))  # [N, C, T] logits

        run(_warm_up_texts(texts, batch_size, device))
        with PeakMemory(device) as memory:
            started = time.perf_counter()
            logits = run(texts)
            seconds = time.perf_counter() - started
    logits = logits - logits.max(axis=1, keepdims=True)
    mc_probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return {"seconds": seconds, "peak_mib": memory.peak_mib, "mc_probs": mc_probs}


def _baal_loop(model_dir: Path, texts: list[str], samples: int, batch_size: int, device: str) -> dict:
    """A careful hand-written BaaL loop: BaaL's ``patch_module``, batches in input order padded to their own
    longest text, the T samples of a batch as one enlarged batch, inference mode."""
    import torch
    from baal.bayesian.dropout import patch_module
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = patch_module(AutoModelForSequenceClassification.from_pretrained(model_dir)).to(device).eval()

    @torch.inference_mode()
    def run(subset: list[str]) -> np.ndarray:
        out = []
        for start in range(0, len(subset), batch_size):
            inputs = tokenizer(subset[start:start + batch_size], padding=True, truncation=True,
                               return_tensors="pt").to(device)
            repeated = {key: value.repeat(samples, 1) for key, value in inputs.items()}
            logits = model(**repeated).logits.float().view(samples, -1, model.config.num_labels)
            out.append(torch.softmax(logits, dim=-1).permute(1, 2, 0).cpu().numpy())  # [B, C, T]
        return np.concatenate(out)

    timing, mc_probs = _timed(run, texts, batch_size, device)
    return {**timing, "mc_probs": mc_probs}


def _timed(run, texts: list[str], batch_size: int, device: str) -> tuple[dict, np.ndarray]:
    """``run(texts)`` after an untimed warm-up: ({seconds, peak_mib}, its output)."""
    run(_warm_up_texts(texts, batch_size, device))
    with PeakMemory(device) as memory:
        started = time.perf_counter()
        output = run(texts)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_mib": memory.peak_mib}, output


def _warm_up_texts(texts: list[str], batch_size: int, device: str) -> list[str]:
    """What each method runs untimed first: one batch on the CPU; on CUDA every text, so that lazy kernel
    loading and cuBLAS / SDPA kernel selection for each padded length stay out of the timed pass."""
    return texts if device.startswith("cuda") else texts[:batch_size]


def _deterministic(model_dir: Path, texts: list[str], batch_size: int, device: str) -> dict:
    import torch

    from worker.scoring import ScoringInput, load_classifier
    from worker.scoring.batching import windows
    from worker.scoring.device import autocast

    classifier = load_classifier(model_dir, device=device)

    def run(subset: list[str]) -> np.ndarray:
        records = [ScoringInput(str(i), text) for i, text in enumerate(subset)]
        probs = np.zeros((len(records), len(classifier.labels)), dtype=np.float32)
        for window_start, window in _offsets(windows(records, classifier.tokenizer, batch_size=batch_size,
                                                     max_length=classifier.max_length)):
            for batch in window.batches:
                inputs = {k: v.to(classifier.device) for k, v in batch.inputs.items()}
                with torch.inference_mode(), autocast(classifier.device, classifier.amp_dtype):
                    logits = classifier.model(**inputs).logits.float()
                rows = [window_start + position for position in batch.positions]
                probs[rows] = torch.softmax(logits, dim=-1).cpu().numpy()
        return probs

    timing, probs = _timed(run, texts, batch_size, device)
    return {**timing, "mean_probs": probs}


def _offsets(window_iter):
    offset = 0
    for window in window_iter:
        yield offset, window
        offset += len(window.records)


def _ours(model_dir: Path, texts: list[str], references: list[str], samples: int, batch_size: int, device: str,
          *, seed: int = 0, adaptive: dict | None = None, **mc) -> dict:
    from worker.config import ScoringSettings
    from worker.jobs import adaptive_sampling
    from worker.scoring import Scorer, ScoringInput, load_classifier

    rule = None if adaptive is None else adaptive_sampling(ScoringSettings(**{f"adaptive_{key}": value
                                                                              for key, value in adaptive.items()}))
    scorer = Scorer(load_classifier(model_dir, device=device), samples=samples, batch_size=batch_size,
                    progress=False, seed=seed, adaptive=rule, **mc)
    list(scorer.score(ScoringInput(str(i), t) for i, t in enumerate(_warm_up_texts(texts, batch_size, device))))
    with PeakMemory(device) as memory:
        started = time.perf_counter()
        scores = list(scorer.score(ScoringInput(str(i), text, reference)
                                   for i, (text, reference) in enumerate(zip(texts, references, strict=True))))
        seconds = time.perf_counter() - started
    labels = scorer.classifier.labels
    return {
        "seconds": seconds,
        "peak_mib": memory.peak_mib,
        "mean_probs": np.array([[s.probabilities[label] for label in labels] for s in scores]),
        "bald": np.array([s.bald for s in scores]),
        "expected_loss": np.array([s.expected_loss for s in scores]),
        "mc_samples": float(np.mean([s.mc_samples for s in scores])),
    }


def _baal_summary(result: dict, references: list[str]) -> dict:
    """Mean probabilities, BALD and expected loss from BaaL's [N, C, T] probabilities, as for our rows."""
    from worker.demo_data import SENTIMENT_LABELS
    from worker.scoring.uncertainty import label_losses, uncertainty_scores

    mc_probs = result.pop("mc_probs")
    log_probs = np.log(np.clip(mc_probs, 1e-12, None))
    reference = np.array([SENTIMENT_LABELS.index(label) for label in references])
    _, expected_loss = label_losses(log_probs.mean(axis=2), log_probs, reference)
    return {**result, "mean_probs": mc_probs.mean(axis=2), "bald": uncertainty_scores(mc_probs)["bald"],
            "expected_loss": expected_loss, "mc_samples": float(mc_probs.shape[2])}


def _child(method: str, options: dict | None, model_dir: str, texts: list[str], references: list[str], samples: int,
           batch_size: int, device: str, queue):
    import torch

    torch.manual_seed(0)
    model_path = Path(model_dir)
    if method in ("a_baal", "a2_baal_loop"):
        run = _baal_reference if method == "a_baal" else _baal_loop
        result = _baal_summary(run(model_path, texts, samples, batch_size, device), references)
    elif method == "b_deterministic":
        result = _deterministic(model_path, texts, batch_size, device)
    else:
        result = _ours(model_path, texts, references, samples, batch_size, device, **(options or OURS[method]))
    queue.put(result)


def run_method(method: str, model_dir: Path, texts: list[str], references: list[str], args,
               options: dict | None = None) -> dict:
    """Run one method in a fresh spawned process; ``options`` (Scorer options) for rows outside OURS."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(method, options, str(model_dir), texts, references, args.samples,
                                                   args.batch_size, args.device, queue))
    process.start()
    while True:
        try:
            result = queue.get(timeout=5)
            break
        except queue_module.Empty:  # check the child is still alive
            if not process.is_alive():
                raise RuntimeError(f"{method} failed (exit code {process.exitcode}); see its traceback") from None
    process.join()
    logger.info("%s: %.1f s, %.0f records/s", METHODS.get(method, method), result["seconds"],
                len(texts) / result["seconds"])
    return result


def _auroc(positives: np.ndarray, scores: np.ndarray | None) -> float | None:
    from sklearn.metrics import roc_auc_score

    if scores is None or positives.all() or not positives.any():
        return None
    return float(roc_auc_score(positives, scores))


def quality(result: dict, true_labels: np.ndarray, flipped: np.ndarray) -> dict:
    """Accuracy and ECE against the true labels, BALD's AUROC for the model's errors, expected loss's AUROC
    for the flipped reference labels."""
    probs = result["mean_probs"]
    wrong = probs.argmax(axis=1) != true_labels
    return {"accuracy": float(1 - wrong.mean()), "ece": expected_calibration_error(probs, true_labels),
            "bald_auroc_misclassified": _auroc(wrong, result.get("bald")),
            "label_error_auroc": _auroc(flipped, result.get("expected_loss")),
            "mc_samples": result.get("mc_samples")}


def versus(row: dict, result: dict, fixed_row: dict, fixed: dict) -> dict:
    """How far ``result`` is from the fixed-T result of the same strategy (the quality guard's terms)."""
    from scipy.stats import spearmanr

    return {"bald_spearman_vs_fixed": float(spearmanr(result["bald"], fixed["bald"]).statistic),
            "loss_spearman_vs_fixed": float(spearmanr(result["expected_loss"], fixed["expected_loss"]).statistic),
            "ece_diff_vs_fixed": abs(row["ece"] - fixed_row["ece"]),
            "auroc_diff_vs_fixed": abs(row["label_error_auroc"] - fixed_row["label_error_auroc"])}


def summarise(results: dict[str, dict], true_labels: np.ndarray, flipped: np.ndarray, records: int
              ) -> dict[str, dict]:
    from scipy.stats import spearmanr

    summary = {}
    for method, result in results.items():
        summary[method] = {"name": METHODS[method], "records_per_s": records / result["seconds"],
                           "seconds": result["seconds"], "peak_memory_mib": result["peak_mib"],
                           **quality(result, true_labels, flipped)}
    def rate(method: str) -> float | None:
        return summary[method]["records_per_s"] if method in summary else None

    for row in summary.values():
        row["speedup_vs_a"] = row["records_per_s"] / rate("a_baal") if rate("a_baal") else None
        row["speedup_vs_a2"] = row["records_per_s"] / rate("a2_baal_loop") if rate("a2_baal_loop") else None
        row["cost_vs_b"] = rate("b_deterministic") / row["records_per_s"] if rate("b_deterministic") else None
    for method in ("d_fast_k1", "d_fast_auto", "d_fast_k0"):
        if method in results and "c_full_mc" in results:
            summary[method]["bald_spearman_vs_c"] = float(spearmanr(results[method]["bald"],
                                                                    results["c_full_mc"]["bald"]).statistic)
    for method, fixed in VERSUS.items():
        if method in results and fixed in results:
            summary[method].update(versus(summary[method], results[method], summary[fixed], results[fixed]))
    return summary


def _fmt(value, pattern="{:.3f}"):
    return "–" if value is None else pattern.format(value)


def markdown_table(summary: dict[str, dict], meta: dict) -> str:
    lines = [
        (f"Scoring benchmark — {meta['records']} records ({meta['flipped']} reference labels flipped), "
         f"T = {meta['samples']}, batch {meta['batch_size']}, device {meta['device']}, model {meta['model']}; "
         f"adaptive: {meta['adaptive']}"),
        "",
        ("| method | records/s | × (a) | × (a2) | cost × (b) | MC samples | peak MiB | accuracy | ECE "
         "| BALD AUROC (errors) | label-error AUROC | BALD ρ vs (c) |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in summary.values():
        lines.append(
            f"| {row['name']} | {row['records_per_s']:.1f} | {_fmt(row['speedup_vs_a'], '{:.2f}')} "
            f"| {_fmt(row['speedup_vs_a2'], '{:.2f}')} | {_fmt(row['cost_vs_b'], '{:.2f}')} "
            f"| {_fmt(row['mc_samples'], '{:.1f}')} | {row['peak_memory_mib']:.0f} "
            f"| {row['accuracy']:.3f} | {row['ece']:.4f} | {_fmt(row['bald_auroc_misclassified'])} "
            f"| {_fmt(row['label_error_auroc'], '{:.4f}')} | {_fmt(row.get('bald_spearman_vs_c'))} |"
        )
    lines += ["",
              "Against fixed T = 20 of the same strategy (adaptive's guard: ρ ≥ 0.95, ΔECE ≤ 0.005, ΔAUROC ≤ 0.002)",
              "",
              "| method | vs | BALD ρ | expected-loss ρ | ΔECE | Δ label-error AUROC |",
              "|---|---|---:|---:|---:|---:|"]
    for method, fixed in VERSUS.items():
        row = summary.get(method, {})
        if "bald_spearman_vs_fixed" not in row:
            continue
        lines.append(f"| {row['name']} | {summary[fixed]['name']} | {row['bald_spearman_vs_fixed']:.3f} "
                     f"| {row['loss_spearman_vs_fixed']:.3f} | {row['ece_diff_vs_fixed']:.4f} "
                     f"| {row['auroc_diff_vs_fixed']:.4f} |")
    return "\n".join(lines) + "\n"


def layer_sweep(model_dir: Path, texts: list[str], references: list[str], true_labels: np.ndarray, full: dict,
                args) -> list[dict]:
    """Fast MC for k = 0..L: speed and how well its BALD tracks full MC's."""
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score
    from transformers import AutoConfig

    layers = AutoConfig.from_pretrained(model_dir).num_hidden_layers
    rows = []
    for k in range(layers + 1):
        result = run_method(f"sweep_k{k}", model_dir, texts, references, args,
                            options={"strategy": "partial", "mc_layers": k})
        wrong = result["mean_probs"].argmax(axis=1) != true_labels
        rows.append({"k": k, "records_per_s": len(texts) / result["seconds"],
                     "bald_spearman_vs_full": float(spearmanr(result["bald"], full["bald"]).statistic),
                     "bald_auroc_misclassified": float(roc_auc_score(wrong, result["bald"]))})
    return rows


def sweep_table(rows: list[dict]) -> str:
    lines = ["", "Fast MC depth sweep (k stochastic layers of the encoder)", "",
             "| k | records/s | BALD ρ vs full MC | BALD AUROC (errors) |", "|---:|---:|---:|---:|"]
    lines += [f"| {r['k']} | {r['records_per_s']:.1f} | {r['bald_spearman_vs_full']:.3f} "
              f"| {r['bald_auroc_misclassified']:.3f} |" for r in rows]
    return "\n".join(lines) + "\n"


# (bald_rse, loss_se) pairs tried by --adaptive-sweep, from strict to loose.
SWEEP_TOLERANCES = [(0.1, 0.05), (0.2, 0.05), (0.3, 0.05), (0.3, 0.1), (0.5, 0.1), (0.7, 0.1), (1.0, 0.2)]


def adaptive_sweep(model_dir: Path, texts: list[str], references: list[str], true_labels: np.ndarray,
                   flipped: np.ndarray, results: dict, summary: dict, args) -> list[dict]:
    """Fast MC k = 4 adaptive over SWEEP_TOLERANCES: speed, samples used and the guard's terms vs fixed T."""
    rows = []
    for bald_rse, loss_se in args.tolerances or SWEEP_TOLERANCES:
        result = run_method(f"adaptive bald_rse={bald_rse} loss_se={loss_se}", model_dir, texts, references, args,
                            options={"strategy": "partial", "mc_layers": 4,
                                     "adaptive": {"bald_rse": bald_rse, "loss_se": loss_se}})
        row = {"bald_rse": bald_rse, "loss_se": loss_se, "records_per_s": len(texts) / result["seconds"],
               **quality(result, true_labels, flipped)}
        row.update(versus(row, result, summary["d_fast_auto_consistent"], results["d_fast_auto_consistent"]))
        row["speedup_vs_a2"] = row["records_per_s"] / summary["a2_baal_loop"]["records_per_s"]
        rows.append(row)
        logger.info("adaptive sweep: %s", {key: round(value, 4) for key, value in row.items()})
    return rows


def adaptive_sweep_table(rows: list[dict]) -> str:
    lines = ["", "Fast MC k=4 adaptive, tolerance sweep (vs fixed T = 20 k=4, consistent masks)", "",
             "| bald_rse | loss_se | records/s | × (a2) | MC samples | BALD ρ | expected-loss ρ | ΔECE | ΔAUROC |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['bald_rse']} | {r['loss_se']} | {r['records_per_s']:.1f} | {_fmt(r['speedup_vs_a2'], '{:.2f}')} "
              f"| {r['mc_samples']:.1f} | {r['bald_spearman_vs_fixed']:.3f} | {r['loss_spearman_vs_fixed']:.3f} "
              f"| {r['ece_diff_vs_fixed']:.4f} | {r['auroc_diff_vs_fixed']:.4f} |" for r in rows]
    return "\n".join(lines) + "\n"


def flipped_references(true_labels: np.ndarray, fraction: float, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Reference labels: the true label, flipped for a seeded ``fraction`` of records → (labels, flipped [N] bool)."""
    rng = np.random.default_rng(seed)
    flipped = rng.random(len(true_labels)) < fraction
    return [SENTIMENT_LABELS[(label + 1) % 2 if flip else label]
            for label, flip in zip(true_labels.tolist(), flipped.tolist(), strict=True)], flipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1000, help="records scored by each method")
    parser.add_argument("--train", type=int, default=4000, help="snippets used to fine-tune MiniLM")
    parser.add_argument("--samples", type=int, default=20, help="MC-dropout samples T")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--flip", type=float, default=0.1, help="fraction of reference labels flipped")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--layer-sweep", action="store_true",
                        help="also run fast MC for every k and report BALD's agreement with full MC")
    parser.add_argument("--adaptive-sweep", action="store_true",
                        help="also run fast MC k=4 adaptive over a grid of tolerances")
    parser.add_argument("--tolerances", nargs="+", metavar="RSE:LOSS_SE",
                        type=lambda pair: tuple(float(value) for value in pair.split(":")),
                        help="the (bald_rse, loss_se) pairs of --adaptive-sweep (default: a grid)")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS),
                        help="a subset of the rows (the comparisons need their reference rows)")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    configure_logging()

    from worker.config import ScoringSettings

    train, test = movie_split(train=args.train, test=args.records)
    model_dir = finetuned_minilm(train)
    texts = [record.text for record in test]
    true_labels = np.array([SENTIMENT_LABELS.index(record.label) for record in test])
    references, flipped = flipped_references(true_labels, args.flip)
    results = {method: run_method(method, model_dir, texts, references, args) for method in args.methods}
    summary = summarise(results, true_labels, flipped, len(texts))
    sweep = (layer_sweep(model_dir, texts, references, true_labels, results["c_full_mc"], args)
             if args.layer_sweep else None)
    tolerances = (adaptive_sweep(model_dir, texts, references, true_labels, flipped, results, summary, args)
                  if args.adaptive_sweep else None)
    defaults = ScoringSettings()
    meta = {"records": len(texts), "flipped": int(flipped.sum()), "samples": args.samples,
            "batch_size": args.batch_size, "device": args.device,
            "model": f"all-MiniLM-L6-v2 fine-tuned on {len(train)} movie snippets",
            "adaptive": f"rounds of {defaults.adaptive_round}, bald_rse {defaults.adaptive_bald_rse}, "
                        f"loss_se {defaults.adaptive_loss_se}"}
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "scoring.json").write_text(json.dumps(
        {"meta": meta, "results": summary, "layer_sweep": sweep, "adaptive_sweep": tolerances}, indent=2))
    table = (markdown_table(summary, meta) + (sweep_table(sweep) if sweep else "")
             + (adaptive_sweep_table(tolerances) if tolerances else ""))
    (args.output / "scoring.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
