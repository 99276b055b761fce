"""Fast MC on the architectures it newly replays: full MC vs fast MC (``mc_layers = "auto"``) on the CPU.

DistilBERT (``transformer.layer``, a first-token head), ELECTRA (embeddings projected to the hidden size),
DeBERTa-v3 (layers that take relative positions and embeddings, a pooler on the model), MPNet (a
relative-position bias) and ModernBERT (rotary positions, full and sliding-window layers, a final norm before its
head) ran full MC only before: T stochastic passes of the whole model. Each architecture here
is built at its published base size from its config defaults (DistilBERT: 6 layers × 768, 66M parameters;
ELECTRA: the small discriminator, 12 layers × 256; DeBERTa-v3-base: 12 × 768, 256 position buckets; MPNet-base:
12 × 768; ModernBERT-base: 22 × 768, its dropouts 0, so both strategies sample them at the fallback 0.1) with
random weights — speed does not depend on them — and the offline MiniLM WordPiece vocabulary;
both strategies score the same movie snippets (T = 20, adaptive off), interleaved, in one process.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/fast_mc_architectures.py [--architectures deberta-v3 mpnet]
        [--records 128] [--repeats 2]

Writes benchmarks/results/fast_mc_architectures.{json,md}. On 2 CPU cores: about 4 minutes for DistilBERT and
ELECTRA at the defaults; with ``--records 48 --repeats 1`` about 2 minutes each for MPNet, DeBERTa-v3 and
ModernBERT, 13 for ``deberta-xlarge``; ``qwen2-0.5b`` (a decoder: its fast MC is head-only) about 5.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import write_results

logger = logging.getLogger("benchmarks.fast_mc_architectures")

_DEBERTA_V3 = {"relative_attention": True, "position_buckets": 256, "pos_att_type": ["p2c", "c2p"],
               "position_biased_input": False, "norm_rel_ebd": "layer_norm", "max_relative_positions": -1}
# name: (config class, model class, arguments besides the config's defaults)
ARCHITECTURES: dict[str, tuple[str, str, dict]] = {
    "distilbert": ("DistilBertConfig", "DistilBertForSequenceClassification", {}),
    "electra": ("ElectraConfig", "ElectraForSequenceClassification", {}),
    "deberta-v3": ("DebertaV2Config", "DebertaV2ForSequenceClassification",  # microsoft/deberta-v3-base's config
                   {**_DEBERTA_V3, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                    "intermediate_size": 3072, "pooler_hidden_size": 768}),
    # DebertaV2Config's own defaults (24 layers × 1536: deberta-v2-xlarge's size, 0.9B parameters, without its
    # convolution) with DeBERTa-v3's attention
    "deberta-xlarge": ("DebertaV2Config", "DebertaV2ForSequenceClassification", _DEBERTA_V3),
    "mpnet": ("MPNetConfig", "MPNetForSequenceClassification", {}),
    "modernbert": ("ModernBertConfig", "ModernBertForSequenceClassification", {}),  # base: 22 × 768, dropout 0
    # a decoder classifier at Qwen2.5-0.5B's size (24 layers × 896, grouped-query attention): no dropout module at
    # all, so "fast" is head-only MC (worker.scoring.decoder_head: the model once, its head T times) and "full"
    # runs the whole model T times with a dropout before its head
    "qwen2-0.5b": ("Qwen2Config", "Qwen2ForSequenceClassification",
                   {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
                    "num_key_value_heads": 2, "max_position_embeddings": 512, "tie_word_embeddings": True}),
}


def _model(architecture: str, directory: Path) -> Path:
    import torch
    import transformers
    from transformers import AutoTokenizer

    from worker.offline_assets import MINILM_MODEL, fetch

    config_name, model_name, own = ARCHITECTURES[architecture]
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(fetch(MINILM_MODEL))
    special = {"pad_token_id": tokenizer.pad_token_id, "cls_token_id": tokenizer.cls_token_id,
               "sep_token_id": tokenizer.sep_token_id, "bos_token_id": tokenizer.cls_token_id,
               "eos_token_id": tokenizer.sep_token_id}
    config = getattr(transformers, config_name)(num_labels=2, vocab_size=len(tokenizer), **special, **own)
    getattr(transformers, model_name)(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    parser.add_argument("--records", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from worker.demo_data import load_movie_snippets
    from worker.scoring import Scorer, ScoringInput, load_classifier

    texts = [record.text for record in load_movie_snippets()[:args.records]]
    rows = []
    for architecture in args.architectures:
        with tempfile.TemporaryDirectory() as work:
            classifier = load_classifier(_model(architecture, Path(work)), device="cpu", version=architecture)
            seconds: dict[str, list[float]] = {"full": [], "partial": []}
            layers = None
            for _ in range(args.repeats):
                for strategy, timings in seconds.items():
                    scorer = Scorer(classifier, samples=20, strategy=strategy, batch_size="auto", progress=False)
                    started = time.perf_counter()
                    list(scorer.score(ScoringInput(str(index), text) for index, text in enumerate(texts)))
                    timings.append(time.perf_counter() - started)
                    if strategy == "partial":
                        layers = scorer.predictor.mc_layers
                        assert scorer.predictor.strategy == "partial", "fast MC fell back to full MC"
            full, fast = statistics.median(seconds["full"]), statistics.median(seconds["partial"])
            rows.append({"architecture": architecture, "records": len(texts), "full_s": full, "fast_s": fast,
                         "fast_layers": layers, "speedup": full / fast, "runs": seconds})
            logger.info("%s", rows[-1])
    lines = ["| architecture | records | full MC s | fast MC s (layers) | full ÷ fast |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['architecture']} | {r['records']} | {r['full_s']:.1f} | {r['fast_s']:.1f} ({r['fast_layers']}) | "
              f"{r['speedup']:.2f} |" for r in rows]
    name = "-".join(["fast_mc_architectures", *sorted(args.architectures)]) if len(args.architectures) < 3 \
        else "fast_mc_architectures"  # one or two: their own file, beside the run of several
    write_results(name, {"rows": rows}, lines)


if __name__ == "__main__":
    main()
