"""Shared pieces of the benchmarks: the offline movie-review data and a briefly fine-tuned MiniLM."""

from __future__ import annotations

import logging
import multiprocessing
import random
from collections.abc import Callable
from pathlib import Path

from worker.demo_data import SENTIMENT_LABELS, LabelledText, load_movie_snippets
from worker.offline_assets import MINILM_MODEL, cache_root, fetch
from worker.training.finetune import fine_tune

logger = logging.getLogger("benchmarks")


def movie_split(*, train: int, test: int, seed: int = 0) -> tuple[list[LabelledText], list[LabelledText]]:
    """Disjoint seeded train / test samples of the movie-review snippets."""
    snippets = load_movie_snippets()
    random.Random(seed).shuffle(snippets)
    if train + test > len(snippets):
        raise ValueError(f"asked for {train} + {test} snippets, only {len(snippets)} exist")
    return snippets[:train], snippets[train:train + test]


def finetuned_minilm(train_records: list[LabelledText], *, epochs: int = 1, max_length: int = 64,
                     batch_size: int = 32, learning_rate: float = 5e-5, seed: int = 0) -> Path:
    """The offline all-MiniLM-L6-v2 with a new sentiment head, fine-tuned once and cached on disk."""
    key = f"minilm-movies-n{len(train_records)}-e{epochs}-len{max_length}-s{seed}"
    target = cache_root() / "benchmark-models" / key
    if (target / "config.json").exists():
        return target
    return fine_tune(fetch(MINILM_MODEL), train_records, SENTIMENT_LABELS, target, epochs=epochs,
                     max_length=max_length, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                     device="auto")


RESULTS_DIR = Path(__file__).resolve().parent / "results"


def write_results(name: str, payload: dict, lines: list[str]) -> Path:
    """benchmarks/results/<name>.json and .md (the table ``lines``, also printed); returns the markdown path."""
    import json

    markdown = "\n".join(lines) + "\n"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(payload, indent=2, default=float))
    path = RESULTS_DIR / f"{name}.md"
    path.write_text(markdown)
    logger.info("wrote %s", path)
    print(markdown)  # the benchmark's report on stdout
    return path


def precision_at(ranking: list[str], positives: set[str], k: int) -> float:
    """Share of the first ``k`` ids of ``ranking`` that are in ``positives``."""
    top = ranking[:k]
    return sum(item in positives for item in top) / len(top) if top else 0.0


def in_fresh_process(measure: Callable[..., None], *args, timeout: float = 3600) -> dict:
    """``measure(*args, queue)`` run in a fresh (spawned) process — its memory high-water mark its own — and the
    row it puts on ``queue``."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=measure, args=(*args, queue))
    process.start()
    row = queue.get(timeout=timeout)
    process.join()
    return row


def held_out_metrics(classifier, test) -> tuple[float, float]:
    """(accuracy, macro-F1) of ``classifier``'s deterministic answer on labelled ``test`` examples: the truth a
    benchmark holds a figure against."""
    import numpy as np

    from worker.training.evaluate import classification_metrics, predict_probabilities

    probabilities = predict_probabilities(classifier, [e.text for e in test], samples=1).deterministic
    index = {label: position for position, label in enumerate(classifier.labels)}
    return classification_metrics(probabilities, np.asarray([index[str(e.label)] for e in test]),
                                  len(classifier.labels))
