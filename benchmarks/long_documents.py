"""Long documents on a CPU: records per batch alone vs records and a padded-token budget.

Scoring batches on a CPU used to hold 32 records whatever their length: 32 news articles at the model's 512-token
limit make an MC pass of 32 × T sequences of 512 tokens. ``scoring.batch_size = "auto"`` (the default) now also caps
a batch at ``CPU_BATCH_TOKENS`` padded tokens, and the calibration / validation passes (``predict_probabilities``)
too. Each row runs in its own process (peak RSS is the process's), on the same records, with the offline
all-MiniLM-L6-v2 and a new 5-label head (speed and memory do not depend on the head's training):

  scoring       Scorer, T = 20, adaptive off (every record gets T samples: the worst case)
  calibration   predict_probabilities, T = 50 (the calibration report's draw)

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/long_documents.py [--articles 64] [--snippets 512]

Writes benchmarks/results/long_documents.{json,md}. CPU: about 8 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import write_results

logger = logging.getLogger("benchmarks.long_documents")

BATCHINGS = {  # name -> (Scorer batch_size, predict_probabilities batch_tokens)
    "32 records a batch (before)": (32, None),
    "auto: ≤ 32 records and ≤ 2,048 tokens (now)": ("auto", "default"),
}


def _texts(kind: str, count: int) -> list[str]:
    from worker.demo_data import load_bbc_news, load_movie_snippets

    records = load_bbc_news() if kind == "articles" else load_movie_snippets()
    return [record.text for record in records[::max(1, len(records) // count)][:count]]


def _child(path: str, kind: str, count: int, batching: str, job: str) -> dict:
    from worker.scoring import Scorer, ScoringInput, load_classifier
    from worker.training.evaluate import predict_probabilities

    classifier = load_classifier(path, device="cpu", version="minilm")
    texts = _texts(kind, count)
    tokens = [len(ids) for ids in classifier.tokenizer(texts, truncation=True, max_length=classifier.max_length)[
        "input_ids"]]
    batch_size, batch_tokens = BATCHINGS[batching]
    started = time.perf_counter()
    if job == "scoring":
        scorer = Scorer(classifier, samples=20, batch_size=batch_size, progress=False)
        list(scorer.score(ScoringInput(str(index), text) for index, text in enumerate(texts)))
    else:
        options = {} if batch_tokens == "default" else {"batch_tokens": batch_tokens}
        predict_probabilities(classifier, texts, samples=50, **options)
    seconds = time.perf_counter() - started
    return {"records": len(texts), "mean_tokens": sum(tokens) / len(tokens), "seconds": seconds,
            "records_per_s": len(texts) / seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _model_dir(work: Path) -> Path:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from worker.offline_assets import MINILM_MODEL, fetch

    source = fetch(MINILM_MODEL)
    AutoModelForSequenceClassification.from_pretrained(source, num_labels=5).save_pretrained(work)
    AutoTokenizer.from_pretrained(source).save_pretrained(work)
    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=64)
    parser.add_argument("--snippets", type=int, default=512)
    parser.add_argument("--jobs", nargs="+", default=["scoring", "calibration"], choices=["scoring", "calibration"])
    parser.add_argument("--texts", nargs="+", default=["articles", "snippets"], choices=["articles", "snippets"])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each row (the table shows each)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        path, kind, count, batching, job = args.child
        print(json.dumps(_child(path, kind, int(count), batching, job)))
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        model = _model_dir(Path(work))
        for job in args.jobs:
            for kind, count in ((kind, args.articles if kind == "articles" else args.snippets) for kind in args.texts):
                for batching in [name for _ in range(args.repeat) for name in BATCHINGS]:
                    child = subprocess.run([sys.executable, __file__, "--child", str(model), kind, str(count), batching,
                                            job], capture_output=True, text=True, check=True)
                    row = {"job": job, "texts": kind, "batching": batching,
                           **json.loads(child.stdout.strip().splitlines()[-1])}
                    logger.info("%s", row)
                    rows.append(row)
    lines = ["| job | texts (mean tokens) | batching | records/s | peak RSS MB |", "|---|---|---|---:|---:|"]
    lines += [f"| {r['job']} | {r['records']} {r['texts']} ({r['mean_tokens']:.0f}) | {r['batching']} | "
              f"{r['records_per_s']:.2f} | {r['peak_rss_mb']:.0f} |" for r in rows]
    write_results("long_documents" if args.repeat == 1 and len(rows) == 8 else "long_documents_partial",
                  {"rows": rows}, lines)


if __name__ == "__main__":
    main()
