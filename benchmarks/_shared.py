"""Shared pieces of the benchmarks: the offline movie-review data and a briefly fine-tuned MiniLM."""

from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

from worker.demo_data import SENTIMENT_LABELS, LabelledText, load_movie_snippets
from worker.offline_assets import MINILM_MODEL, cache_root, fetch

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
    base = fetch(MINILM_MODEL)
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=len(SENTIMENT_LABELS), id2label=dict(enumerate(SENTIMENT_LABELS)),
        label2id={label: index for index, label in enumerate(SENTIMENT_LABELS)},
    )
    label_ids = {label: index for index, label in enumerate(SENTIMENT_LABELS)}
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    steps = epochs * ((len(train_records) + batch_size - 1) // batch_size)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.1 * steps), steps)
    started = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        order = random.Random(seed + epoch).sample(train_records, len(train_records))
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            inputs = tokenizer([r.text for r in batch], truncation=True, max_length=max_length, padding=True,
                               return_tensors="pt")
            labels = torch.tensor([label_ids[r.label] for r in batch])
            loss = model(**inputs, labels=labels).loss
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
    logger.info("fine-tuned MiniLM on %d snippets in %.0f s", len(train_records), time.perf_counter() - started)
    model.eval()
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    (target / "training.json").write_text(json.dumps({"records": len(train_records), "epochs": epochs,
                                                      "seconds": time.perf_counter() - started}))
    return target
