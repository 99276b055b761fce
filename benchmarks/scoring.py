"""Scoring throughput and quality, side by side in one run, same model, same data, T = 20.

  (a) BaaL's reference path: BaalTransformersTrainer.predict_on_dataset(iterations=T)
  (b) one deterministic pass (ours: length-bucketed batches, inference mode)
  (c) our full MC dropout
  (d) our fast MC dropout with the last k = 1 and k = 0 encoder layers stochastic

Each method runs in its own fresh process (spawned one after the other) so its peak memory is
its own; the model is the offline all-MiniLM-L6-v2 fine-tuned briefly on movie-review snippets
(cached after the first run). Writes ``benchmarks/results/scoring.{json,md}``.

    python benchmarks/scoring.py                 # 1,000 scored records, CPU here: a few minutes
    python benchmarks/scoring.py --records 200   # quick look
    python benchmarks/scoring.py --device cuda   # unchanged on a GPU
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
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
    "b_deterministic": "(b) deterministic pass",
    "c_full_mc": "(c) ours, full MC",
    "d_fast_k1": "(d) ours, fast MC k=1",
    "d_fast_auto": "(d) ours, fast MC k=4 of 6 (auto on a CPU)",
    "d_fast_k0": "(d) ours, fast MC k=0",
}


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

    run(_warm_up_texts(texts, batch_size, device))
    with PeakMemory(device) as memory:
        started = time.perf_counter()
        probs = run(texts)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_mib": memory.peak_mib, "mean_probs": probs}


def _offsets(window_iter):
    offset = 0
    for window in window_iter:
        yield offset, window
        offset += len(window.records)


def _ours(model_dir: Path, texts: list[str], samples: int, batch_size: int, device: str, **mc) -> dict:
    from worker.scoring import Scorer, ScoringInput, load_classifier

    scorer = Scorer(load_classifier(model_dir, device=device), samples=samples, batch_size=batch_size,
                    progress=False, **mc)
    list(scorer.score(ScoringInput(str(i), t) for i, t in enumerate(_warm_up_texts(texts, batch_size, device))))
    with PeakMemory(device) as memory:
        started = time.perf_counter()
        scores = list(scorer.score(ScoringInput(str(i), text) for i, text in enumerate(texts)))
        seconds = time.perf_counter() - started
    labels = scorer.classifier.labels
    return {
        "seconds": seconds,
        "peak_mib": memory.peak_mib,
        "mean_probs": np.array([[s.probabilities[label] for label in labels] for s in scores]),
        "bald": np.array([s.bald for s in scores]),
    }


def _child(method: str, model_dir: str, texts: list[str], samples: int, batch_size: int, device: str, queue):
    import torch

    torch.manual_seed(0)
    model_path = Path(model_dir)
    if method == "a_baal":
        result = _baal_reference(model_path, texts, samples, batch_size, device)
        from worker.scoring.uncertainty import uncertainty_scores

        result["mean_probs"] = result["mc_probs"].mean(axis=2)
        result["bald"] = uncertainty_scores(result.pop("mc_probs"))["bald"]
    elif method == "b_deterministic":
        result = _deterministic(model_path, texts, batch_size, device)
    elif method == "c_full_mc":
        result = _ours(model_path, texts, samples, batch_size, device, strategy="full")
    elif method.startswith("sweep_k"):
        result = _ours(model_path, texts, samples, batch_size, device, strategy="partial",
                       mc_layers=int(method.removeprefix("sweep_k")))
    else:
        layers = {"d_fast_k1": 1, "d_fast_auto": 4, "d_fast_k0": 0}[method]
        result = _ours(model_path, texts, samples, batch_size, device, strategy="partial", mc_layers=layers)
    queue.put(result)


def run_method(method: str, model_dir: Path, texts: list[str], args) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(method, str(model_dir), texts, args.samples, args.batch_size,
                                                   args.device, queue))
    process.start()
    while True:
        try:
            result = queue.get(timeout=5)
            break
        except Exception:  # queue.Empty: check the child is still alive
            if not process.is_alive():
                raise RuntimeError(f"{method} failed (exit code {process.exitcode}); see its traceback") from None
    process.join()
    logger.info("%s: %.1f s, %.0f records/s", METHODS.get(method, method), result["seconds"],
                len(texts) / result["seconds"])
    return result


def summarise(results: dict[str, dict], true_labels: np.ndarray, records: int) -> dict[str, dict]:
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score

    summary = {}
    for method, result in results.items():
        probs = result["mean_probs"]
        wrong = probs.argmax(axis=1) != true_labels
        bald = result.get("bald")
        summary[method] = {
            "name": METHODS[method],
            "records_per_s": records / result["seconds"],
            "seconds": result["seconds"],
            "peak_memory_mib": result["peak_mib"],
            "accuracy": float(1 - wrong.mean()),
            "ece": expected_calibration_error(probs, true_labels),
            "bald_auroc_misclassified": float(roc_auc_score(wrong, bald)) if bald is not None and wrong.any()
            and not wrong.all() else None,
        }
    for method in summary:
        summary[method]["speedup_vs_a"] = summary[method]["records_per_s"] / summary["a_baal"]["records_per_s"]
        summary[method]["cost_vs_b"] = summary["b_deterministic"]["records_per_s"] / summary[method]["records_per_s"]
    for method in ("d_fast_k1", "d_fast_auto", "d_fast_k0"):
        summary[method]["bald_spearman_vs_c"] = float(spearmanr(results[method]["bald"],
                                                                results["c_full_mc"]["bald"]).statistic)
        summary[method]["ece_diff_vs_c"] = abs(summary[method]["ece"] - summary["c_full_mc"]["ece"])
    return summary


def markdown_table(summary: dict[str, dict], meta: dict) -> str:
    def fmt(value, pattern="{:.3f}"):
        return "–" if value is None else pattern.format(value)

    lines = [
        (f"Scoring benchmark — {meta['records']} records, T = {meta['samples']}, batch {meta['batch_size']}, "
        f"device {meta['device']}, model {meta['model']}"),
        "",
        ("| method | records/s | × (a) | cost × (b) | peak MiB | accuracy | ECE | BALD AUROC (errors) "
        "| BALD ρ vs (c) | ΔECE vs (c) |"),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in summary.values():
        lines.append(
            f"| {row['name']} | {row['records_per_s']:.1f} | {row['speedup_vs_a']:.2f} | {row['cost_vs_b']:.2f} "
            f"| {row['peak_memory_mib']:.0f} | {row['accuracy']:.3f} | {row['ece']:.4f} "
            f"| {fmt(row['bald_auroc_misclassified'])} | {fmt(row.get('bald_spearman_vs_c'))} "
            f"| {fmt(row.get('ece_diff_vs_c'), '{:.4f}')} |"
        )
    return "\n".join(lines) + "\n"


def layer_sweep(model_dir: Path, texts: list[str], true_labels: np.ndarray, full: dict, args) -> list[dict]:
    """Fast MC for k = 0..L: speed and how well its BALD tracks full MC's."""
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score
    from transformers import AutoConfig

    layers = AutoConfig.from_pretrained(model_dir).num_hidden_layers
    rows = []
    for k in range(layers + 1):
        result = run_method(f"sweep_k{k}", model_dir, texts, args)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1000, help="records scored by each method")
    parser.add_argument("--train", type=int, default=4000, help="snippets used to fine-tune MiniLM")
    parser.add_argument("--samples", type=int, default=20, help="MC-dropout samples T")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--layer-sweep", action="store_true",
                        help="also run fast MC for every k and report BALD's agreement with full MC")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    configure_logging()

    train, test = movie_split(train=args.train, test=args.records)
    model_dir = finetuned_minilm(train)
    texts = [record.text for record in test]
    true_labels = np.array([SENTIMENT_LABELS.index(record.label) for record in test])
    results = {method: run_method(method, model_dir, texts, args) for method in METHODS}
    summary = summarise(results, true_labels, len(texts))
    sweep = layer_sweep(model_dir, texts, true_labels, results["c_full_mc"], args) if args.layer_sweep else None
    meta = {"records": len(texts), "samples": args.samples, "batch_size": args.batch_size, "device": args.device,
            "model": f"all-MiniLM-L6-v2 fine-tuned on {len(train)} movie snippets"}
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "scoring.json").write_text(json.dumps({"meta": meta, "results": summary, "layer_sweep": sweep},
                                                         indent=2))
    table = markdown_table(summary, meta) + (sweep_table(sweep) if sweep else "")
    (args.output / "scoring.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
