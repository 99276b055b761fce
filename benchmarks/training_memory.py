"""Training memory: the whole batch at once, micro-batches, recomputed activations — peak memory and time.

``training.micro_batch_size`` accumulates a batch's gradients over smaller forward / backward passes (the same
optimizer steps), ``training.gradient_checkpointing`` recomputes the layers' activations in the backward pass;
on CUDA a batch that runs out of memory is split by itself. This measures what each costs and saves on a real
model: the offline MiniLM (22.7M parameters) fine-tuned on long texts (movie snippets joined to ``--tokens``
tokens), ``--batch`` examples a step, ``--steps`` steps. Each variant runs in a fresh process, side by side in
one run:

  peak MB       the process's resident memory at its highest during training, above what it held before (CPU;
                sampled every 5 ms), or torch's peak GPU allocation: weights, optimizer state and activations
                (``--device cuda``)
  s / step      wall time per optimizer step

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/training_memory.py [--device cuda] [--batch 32 --tokens 256]

Writes benchmarks/results/training_memory[-cuda].{json,md}. About 5 minutes on 2 CPU cores at the defaults.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import write_results

logger = logging.getLogger("benchmarks.training_memory")

VARIANTS: dict[str, dict] = {
    "whole batch": {},
    "micro-batches of 8": {"micro_batch_size": 8},
    "gradient checkpointing": {"gradient_checkpointing": True},
    "both": {"micro_batch_size": 8, "gradient_checkpointing": True},
}


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


class _PeakRss:
    """The highest resident memory seen while the block runs, sampled every 5 ms on a thread."""

    def __enter__(self):
        self.peak, self._done = _rss_mb(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._done.wait(0.005):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()


def _texts(count: int, tokens: int) -> list[str]:
    """``count`` texts of about ``tokens`` tokens: movie snippets joined (a snippet is ~25 words)."""
    from worker.demo_data import load_movie_snippets

    snippets = [record.text for record in load_movie_snippets()]
    per_text = max(1, tokens // 25)
    return [" ".join(snippets[(index * per_text + k) % len(snippets)] for k in range(per_text))
            for index in range(count)]


def _measure(name: str, options: dict, args: dict, queue) -> None:
    """In a fresh process: train ``args['steps']`` steps with ``options``; put the peak memory and time."""
    import torch

    from worker.offline_assets import MINILM_MODEL, fetch
    from worker.training.data import ORIGINAL, Example
    from worker.training.trainer import TrainingSettings, train_classifier

    if args["device"] == "cpu":
        torch.set_num_threads(2)
    texts = _texts(args["batch"] * args["steps"], args["tokens"])
    examples = [Example(str(index), text, ("negative", "positive")[index % 2], 1.0, ORIGINAL)
                for index, text in enumerate(texts)]
    settings = TrainingSettings(epochs=1, min_steps=0, batch_size=args["batch"], max_length=args["tokens"],
                                device=args["device"], mixed_precision=False, select_min_validation=0, **options)
    base = fetch(MINILM_MODEL)
    with tempfile.TemporaryDirectory() as work:
        if args["device"] == "cuda":
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        with _PeakRss() as rss:
            before = rss.peak
            train_classifier(base, examples, [], ("negative", "positive"), Path(work) / "model", settings)
        seconds = time.perf_counter() - started
    peak = (torch.cuda.max_memory_allocated() / 2**20 if args["device"] == "cuda" else rss.peak - before)
    queue.put({"variant": name, "options": options, "peak_mb": peak, "seconds_per_step": seconds / args["steps"]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    context = multiprocessing.get_context("spawn")
    rows = []
    for name, options in VARIANTS.items():
        queue = context.Queue()
        process = context.Process(target=_measure, args=(name, options, vars(args), queue))
        process.start()
        rows.append(queue.get(timeout=3600))
        process.join()
        logger.info("%s", json.dumps(rows[-1]))
    whole = rows[0]
    lines = [f"MiniLM, batch {args.batch} × {args.tokens} tokens, {args.steps} steps, {args.device}, fp32",
             "", "| variant | peak MB | × whole batch | s / step | × whole batch |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['variant']} | {r['peak_mb']:.0f} | {r['peak_mb'] / whole['peak_mb']:.2f} | "
              f"{r['seconds_per_step']:.2f} | {r['seconds_per_step'] / whole['seconds_per_step']:.2f} |" for r in rows]
    write_results("training_memory" if args.device == "cpu" else f"training_memory-{args.device}",
                  {"args": vars(args), "rows": rows}, lines)


if __name__ == "__main__":
    main()
