"""Head-only MC dropout (k = 0): pooling once vs repeating the hidden states (issue #16, CPU side).

The deterministic path's T head samples used to repeat the final hidden states [T·n, seq, hidden] and build an
attention mask nobody used; a BERT head now pools once and repeats the pooled vectors [T·n, hidden] (the same
samples: tests/unit/test_scoring_engine.py). A tiny 2-layer BERT (hidden 32) behind all-MiniLM-L6-v2's tokenizer
scores the 10,605 movie snippets (T = 20) with the whole scorer, both ways alternating, best of 3, at batch 32
(the CPU default) and 512 (GPU-sized): the model costs little, so the rate shows the pipeline's own bound.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/head_only_mc.py
"""

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["TOKENIZERS_PARALLELISM"] = "true"
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification
from worker.offline_assets import MINILM_MODEL, fetch
from worker.demo_data import load_movie_snippets
from worker.scoring import Scorer, ScoringInput, load_classifier
from worker.scoring.mc import _StochasticSuffix
tok = AutoTokenizer.from_pretrained(str(fetch(MINILM_MODEL)))
config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
texts = [s.text for s in load_movie_snippets()]
records = [ScoringInput(str(i), t, ("negative", "positive")[i % 2]) for i, t in enumerate(texts)]
work = tempfile.mkdtemp()
BertForSequenceClassification(config).save_pretrained(work); tok.save_pretrained(work)
orig = _StochasticSuffix.pools_once
res = {}
for batch in (32, 512):
    for _ in range(3):
        for name, flag in (("repeat hidden states (before)", False), ("pool once (now)", True)):
            _StochasticSuffix.pools_once = orig if flag else property(lambda self: False)
            scorer = Scorer(load_classifier(work, device="cpu"), samples=20, strategy="partial", mc_layers=0, progress=False, batch_size=batch)
            t = time.perf_counter(); n = sum(1 for _ in scorer.score(records)); rate = n / (time.perf_counter() - t)
            res[(batch, name)] = max(res.get((batch, name), 0), rate)
for (batch, name), rate in res.items():
    print(f"batch {batch}: {name}: {rate:,.0f} records/s")
