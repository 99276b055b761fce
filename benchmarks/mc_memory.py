"""Memory of MC dropout: the sampled copy of the model shares its weights, or holds a second set.

Full MC (a model fast MC cannot replay: GPT-2, ALBERT, a team's own code) and fast MC from the embeddings
(``mc_layers = "all"``) sample a copy of the model whose dropouts are patched. Until 2026-12-01 that copy was a
``copy.deepcopy``: a second set of weights beside the model's. Now (:func:`worker.scoring.mc.weight_sharing_copy`)
it copies the modules and shares the parameters and buffers. Each architecture is built at its published size
from its config defaults, random weights (memory does not depend on them), the offline MiniLM vocabulary; each
(architecture, copy) runs in a fresh process, side by side in one run:

  weights MB          the model's parameters and buffers (the floor: what any scorer holds)
  copy MB             bytes the sampled copy holds in tensors of its own (not the model's)
  predictor RSS MB    the process's resident memory added by building the MC predictor and scoring one batch
                      (``--device cuda``: the GPU memory allocated, its peak while scoring)

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/mc_memory.py [--architectures gpt2 deberta-v3] [--device cuda]

Writes benchmarks/results/mc_memory.{json,md}. About 4 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import multiprocessing
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import write_results

logger = logging.getLogger("benchmarks.mc_memory")

# name: (config class, model class, config arguments, MCPredictor options)
ARCHITECTURES: dict[str, tuple[str, str, dict, dict]] = {
    "gpt2": ("GPT2Config", "GPT2ForSequenceClassification", {}, {}),  # 124M: full MC (not replayed)
    "albert-base": ("AlbertConfig", "AlbertForSequenceClassification",  # shared layers: full MC
                    {"embedding_size": 128, "hidden_size": 768, "num_attention_heads": 12,
                     "intermediate_size": 3072}, {}),
    "deberta-v3": ("DebertaV2Config", "DebertaV2ForSequenceClassification",  # fast MC from the embeddings
                   {"relative_attention": True, "position_buckets": 256, "pos_att_type": ["p2c", "c2p"],
                    "position_biased_input": False, "norm_rel_ebd": "layer_norm", "max_relative_positions": -1,
                    "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                    "intermediate_size": 3072, "pooler_hidden_size": 768}, {"mc_layers": "all"}),
}
MODES = ("deepcopy", "shared")
BATCH = 16  # texts scored once (T = 20) after the predictor is built


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def _build(architecture: str, directory: Path) -> None:
    import torch
    import transformers
    from transformers import AutoTokenizer

    from worker.offline_assets import MINILM_MODEL, fetch

    config_name, model_name, own, _ = ARCHITECTURES[architecture]
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(fetch(MINILM_MODEL))
    special = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.cls_token_id,
               "eos_token_id": tokenizer.sep_token_id}
    config = getattr(transformers, config_name)(num_labels=2, vocab_size=len(tokenizer), **special, **own)
    getattr(transformers, model_name)(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def _allocated_mb(device: str, peak: bool = False) -> float:
    """The process's resident memory (CPU) or the GPU memory torch holds (its peak since the last reset)."""
    import torch

    if device == "cpu":
        return _rss_mb()
    return (torch.cuda.max_memory_allocated() if peak else torch.cuda.memory_allocated()) / 2**20


def _measure(architecture: str, mode: str, directory: str, texts: list[str], device: str, queue) -> None:
    """In a fresh process: load, build the predictor with ``mode``'s copy, score one batch; put the figures."""
    import gc

    import torch

    from worker.scoring import MCPredictor, load_classifier, mc

    if mode == "deepcopy":
        mc.weight_sharing_copy = copy.deepcopy  # what the predictor did before
    torch.set_num_threads(2)
    classifier = load_classifier(Path(directory), device=device, version=architecture)
    model = classifier.model
    tensors = {tensor.data_ptr(): tensor.numel() * tensor.element_size()
               for tensor in (*model.parameters(), *model.buffers())}
    gc.collect()
    if device != "cpu":
        torch.cuda.reset_peak_memory_stats()
    before = _allocated_mb(device)
    predictor = MCPredictor(classifier, samples=20, **ARCHITECTURES[architecture][3])
    sampled = predictor._stochastic if predictor._stochastic is not None else predictor._suffix_parts
    own = {tensor.data_ptr(): tensor.numel() * tensor.element_size()
           for tensor in (*sampled.parameters(), *sampled.buffers()) if tensor.data_ptr() not in tensors}
    built = _allocated_mb(device) - before
    inputs = {key: value.to(classifier.device) for key, value in
              classifier.tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt").items()}
    predictor.predict(inputs)
    gc.collect()
    queue.put({"architecture": architecture, "mode": mode, "strategy": predictor.strategy, "device": device,
               "weights_mb": sum(tensors.values()) / 2**20, "copy_mb": sum(own.values()) / 2**20,
               "built_mb": built, "predictor_rss_mb": _allocated_mb(device, peak=True) - before})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from worker.demo_data import load_movie_snippets

    texts = [record.text for record in load_movie_snippets()[:BATCH]]
    context = multiprocessing.get_context("spawn")
    rows = []
    for architecture in args.architectures:
        with tempfile.TemporaryDirectory() as work:
            _build(architecture, Path(work))
            for mode in MODES:
                queue = context.Queue()
                process = context.Process(target=_measure, args=(architecture, mode, work, texts, args.device,
                                                                 queue))
                process.start()
                rows.append(queue.get(timeout=1800))
                process.join()
                logger.info("%s", json.dumps(rows[-1]))
    added = "predictor RSS MB" if args.device == "cpu" else "predictor GPU MB: built / peak scoring"
    lines = [f"| architecture | MC | copy | weights MB | copy's own tensors MB | {added} |",
             "|---|---|---|---:|---:|---:|"]
    lines += [f"| {r['architecture']} | {r['strategy']} | {r['mode']} | {r['weights_mb']:.0f} | {r['copy_mb']:.0f} | "
              + (f"{r['predictor_rss_mb']:.0f} |" if args.device == "cpu"
                 else f"{r['built_mb']:.0f} / {r['predictor_rss_mb']:.0f} |") for r in rows]
    write_results("mc_memory" if args.device == "cpu" else f"mc_memory-{args.device}", {"rows": rows}, lines)


if __name__ == "__main__":
    main()
