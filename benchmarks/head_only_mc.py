"""Head-only MC dropout (k = 0): pooling once vs repeating the hidden states (issue #16, CPU side).

The deterministic path's T head samples used to repeat the final hidden states [T·n, seq, hidden] and build an
attention mask nobody used; a BERT head now pools once and repeats the pooled vectors [T·n, hidden] (the same
samples: tests/unit/test_scoring_engine.py). A tiny 2-layer BERT (hidden 32) behind all-MiniLM-L6-v2's tokenizer
scores the 10,605 movie snippets (T = 20) with the whole scorer, both ways alternating, best of ``--repeats``, at
batch 32 (the CPU default) and 512 (GPU-sized): the model costs little, so the rate shows the pipeline's own bound.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/head_only_mc.py

Writes benchmarks/results/head_only_mc.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import write_results
from worker.demo_data import load_movie_snippets
from worker.offline_assets import MINILM_MODEL, fetch
from worker.scoring import Scorer, ScoringInput, load_classifier
from worker.scoring.mc import _StochasticSuffix

WAYS = {"repeat hidden states (before)": False, "pool once (now)": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

    tokenizer = AutoTokenizer.from_pretrained(str(fetch(MINILM_MODEL)))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=2, id2label={0: "negative", 1: "positive"},
                        label2id={"negative": 0, "positive": 1})
    records = [ScoringInput(str(index), snippet.text, ("negative", "positive")[index % 2])
               for index, snippet in enumerate(load_movie_snippets())]
    pools_once = _StochasticSuffix.pools_once
    rates: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as work:
        BertForSequenceClassification(config).save_pretrained(work)
        tokenizer.save_pretrained(work)
        for batch in (32, 512):
            for _ in range(args.repeats):
                for name, pooled in WAYS.items():
                    _StochasticSuffix.pools_once = pools_once if pooled else property(lambda self: False)
                    scorer = Scorer(load_classifier(work, device="cpu"), samples=20, strategy="partial",
                                    mc_layers=0, progress=False, batch_size=batch)
                    started = time.perf_counter()
                    scored = sum(1 for _ in scorer.score(records))
                    rate = scored / (time.perf_counter() - started)
                    rates.setdefault(batch, {})[name] = max(rates.get(batch, {}).get(name, 0.0), rate)
    _StochasticSuffix.pools_once = pools_once
    before, now = WAYS
    title = (f"Head-only MC (k = 0, T = 20), tiny BERT, {len(records):,} movie snippets, {os.cpu_count()} CPUs, "
             f"records/s (best of {args.repeats})")
    lines = [title, "",
             f"| batch | {before} | {now} | now / before |", "|---:|---:|---:|---:|",
             *(f"| {batch} | {row[before]:,.0f} | {row[now]:,.0f} | {row[now] / row[before]:.2f}× |"
               for batch, row in rates.items())]
    write_results("head_only_mc", {"args": vars(args), "rates": {str(k): v for k, v in rates.items()}}, lines)


if __name__ == "__main__":
    main()
