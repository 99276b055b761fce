"""A first model from a sentence encoder: fine-tuned from it as it is, or from it with its first token aligned.

all-MiniLM-L6-v2 (the offline base model) was trained on the mean of its token vectors; a sequence classifier reads
its first token. `training.align_first_token` (worker/training/pooling.py) first teaches that token the mean-pooled
vector, on texts of the dataset, without labels. Here, per seed, `--reviewed` records drawn at random (every label at
least twice) train a first model with the worker's own `train_classifier` at its defaults (its stratified 20 %
validation split), once from the plain encoder and once from the aligned one, on the same records; both are read on
`--test` records neither saw (deterministic pass). The alignment's texts are the reviewed records' and `--texts` more
of the pool (disjoint from the test records), as the worker takes the training set's and then the dataset's first
records. Beside them, logistic regressions on the frozen encoder's features of the same reviewed records: the
mean-pooled vector and the first token through BERT's pooler (what the two views hold before any fine-tuning).

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.pooling_alignment --dataset movies --reviewed 50,200 --seeds 3

Writes benchmarks/results/pooling_alignment-<dataset>.{json,md}. CPU, 2 cores: about 3 minutes an alignment of 2,000
snippets, 2-5 minutes a training.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from transformers import AutoModel, AutoTokenizer

from benchmarks._shared import write_results
from benchmarks.first_model import reviewed_sample
from worker.constants import ALIGN_EPOCHS, ALIGN_LEARNING_RATE
from worker.demo_data import load_bbc_news, load_movie_snippets
from worker.logging_setup import configure_logging
from worker.offline_assets import MINILM_MODEL, fetch
from worker.records import LabelledText
from worker.scoring import load_classifier
from worker.training.data import Example, stratified_split
from worker.training.evaluate import evaluate_classifier
from worker.training.pooling import align_first_token
from worker.training.trainer import TrainingSettings, train_classifier

logger = logging.getLogger("benchmarks.pooling_alignment")

DATASETS = {"movies": load_movie_snippets, "bbc": load_bbc_news}
ARMS = ("plain encoder", "aligned encoder")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="movies")
    parser.add_argument("--reviewed", default="50,200", help="records a first model trains on (comma-separated)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--test", type=int, default=1000, help="unseen records each model is read on")
    parser.add_argument("--texts", type=int, default=2000, help="pool texts the first token is aligned on, besides "
                        "the reviewed records' (training.align_texts)")
    args = parser.parse_args()
    configure_logging("INFO")
    pool = DATASETS[args.dataset]()
    labels = sorted({record.label for record in pool})
    runs = []
    for count in (int(part) for part in args.reviewed.split(",")):
        for seed in range(args.seeds):
            runs.append(run_one(pool, labels, count, seed, args))
            logger.info("%s", runs[-1])
    write_results(f"pooling_alignment-{args.dataset}", {"args": vars(args), "runs": runs}, table(runs, args))


def run_one(pool: list[LabelledText], labels: list[str], count: int, seed: int, args: argparse.Namespace) -> dict:
    reviewed = reviewed_sample(pool, count, seed)
    taken = {record.id for record in reviewed}
    rest = [record for record in pool if record.id not in taken]
    random.Random(seed + 1000).shuffle(rest)
    test, unlabelled = rest[:args.test], rest[args.test:args.test + args.texts]
    base = fetch(MINILM_MODEL)
    settings = TrainingSettings(base_model=str(base), device="auto", seed=seed)
    examples = [Example(record.id, record.text, record.label) for record in reviewed]
    train, validation = stratified_split(examples, 0.2, seed=seed)
    texts, truth = [record.text for record in test], [record.label for record in test]
    row: dict = {"reviewed": count, "seed": seed, **probes(base, reviewed, test)}
    with tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        aligned = align_first_token(base, [(r.text, None) for r in [*reviewed, *unlabelled]], Path(work) / "aligned",
                                    epochs=ALIGN_EPOCHS, learning_rate=ALIGN_LEARNING_RATE,
                                    max_length=settings.max_length, seed=seed)
        row["alignment seconds"] = round(time.perf_counter() - started, 1)
        for arm, start in zip(ARMS, (base, aligned), strict=True):
            output = Path(work) / arm.replace(" ", "-")
            started = time.perf_counter()
            train_classifier(start, train, validation, labels, output, settings)
            row[f"{arm} training seconds"] = round(time.perf_counter() - started, 1)
            metrics = evaluate_classifier(load_classifier(output), texts, truth, samples=1)
            row[f"{arm} accuracy"], row[f"{arm} macro-F1"] = metrics.accuracy, metrics.macro_f1
    return row


def probes(base: Path, reviewed: list[LabelledText], test: list[LabelledText]) -> dict:
    """Test accuracy of a logistic regression on the frozen encoder's features of the reviewed records: the
    mean-pooled vector and the pooler's output (the first token)."""
    tokenizer, model = AutoTokenizer.from_pretrained(base), AutoModel.from_pretrained(base).eval()

    def features(records: list[LabelledText]) -> tuple[np.ndarray, np.ndarray]:
        means, pooled = [], []
        for start in range(0, len(records), 64):
            inputs = tokenizer([r.text for r in records[start:start + 64]], padding=True, truncation=True,
                               max_length=128, return_tensors="pt")
            with torch.inference_mode():
                output = model(**inputs)
            mask = inputs["attention_mask"].unsqueeze(-1).float()
            means.append(((output.last_hidden_state * mask).sum(1) / mask.sum(1)).numpy())
            pooled.append(output.pooler_output.numpy())
        return np.concatenate(means), np.concatenate(pooled)

    train_features, test_features = features(reviewed), features(test)
    scores = {}
    for index, view in enumerate(("mean-pooled probe", "first-token probe")):
        train_x, test_x = train_features[index], test_features[index]
        centre, scale = train_x.mean(0), train_x.std(0) + 1e-6
        probe = LogisticRegression(max_iter=2000).fit((train_x - centre) / scale, [r.label for r in reviewed])
        scores[view] = float(probe.score((test_x - centre) / scale, [r.label for r in test]))
    return scores


def table(runs: list[dict], args: argparse.Namespace) -> list[str]:
    columns = ["mean-pooled probe", "first-token probe", *(f"{arm} accuracy" for arm in ARMS),
               *(f"{arm} macro-F1" for arm in ARMS)]
    title = (f"First model from {args.dataset} ({args.seeds} seeds, {args.test} unseen records, alignment on the "
             f"reviewed records + {args.texts} pool texts)")
    lines = [title, "",
             "| reviewed | " + " | ".join(columns) + " | aligned better (seeds) | alignment s |",
             "|---:|" + "---:|" * (len(columns) + 2)]
    for count in dict.fromkeys(run["reviewed"] for run in runs):
        group = [run for run in runs if run["reviewed"] == count]
        cells = [_mean_sd([run[column] for run in group]) for column in columns]
        better = sum(run["aligned encoder accuracy"] > run["plain encoder accuracy"] for run in group)
        seconds = statistics.mean(run["alignment seconds"] for run in group)
        lines.append(f"| {count} | " + " | ".join(cells) + f" | {better} of {len(group)} | {seconds:.0f} |")
    return lines


def _mean_sd(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"


if __name__ == "__main__":
    main()
