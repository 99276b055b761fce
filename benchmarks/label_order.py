"""How many labelled records `models register DIR --label-map auto` needs to read a nameless model's map right.

A model trained without label names (LABEL_0 …) has its outputs in an order the worker cannot know; `--label-map
auto` reads it from the records that carry a label (worker/training/label_order.py). Here a MiniLM is fine-tuned on
real labelled text (20 Newsgroups: 20 labels; movie snippets: 2), predicts a pool of other records once, and each
trial shuffles its outputs (as a head saved in another order would be), draws a sample of the pool, gives the sample
labels with a share of them wrong (a random other label: an LLM labeller's, a first pass's), and reads the map from
the permuted predictions. A trial ends in one of three ways: the exact map, a refusal (one line: the worker asks for
the map by hand), or a wrong map — the outcome that must not happen. The model is trained once and cached.

Label sets (a multi-label model, its outputs read at its thresholds): ``--dataset movie-raters`` (each movie snippet
with every sentiment ≥ 20 % of its own raters gave: 3 labels, 13 % of the records with two or three) and
``--dataset friends`` (windows of 6 transcript lines with the main characters who speak in them: 6 labels that come
together), both from benchmarks/multilabel.py; a wrong set has one label dropped or one added.

    python -m benchmarks.label_order --dataset newsgroups --train 600 --pool 2000 --epochs 3
    python -m benchmarks.label_order --dataset movies --train 600 --pool 2000 --epochs 1
    python -m benchmarks.label_order --dataset friends --train 1500 --pool 4000 --epochs 3
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from pathlib import Path

import numpy as np

from benchmarks._shared import write_results
from worker.demo_data import SENTIMENT_LABELS, load_movie_snippets, load_newsgroups
from worker.errors import DataError
from worker.logging_setup import configure_logging
from worker.offline_assets import MINILM_MODEL, cache_root, fetch
from worker.training import label_order
from worker.training.data import Example
from worker.training.label_order import LabelledInput, map_from_label_sets, map_from_predictions
from worker.training.trainer import TrainingSettings, train_classifier

logger = logging.getLogger("benchmarks.label_order")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=("newsgroups", "movies", *LABEL_SET_DATASETS), default="newsgroups")
    parser.add_argument("--train", type=int, default=600, help="records the model is fine-tuned on (true labels)")
    parser.add_argument("--pool", type=int, default=2000, help="other records it predicts once")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--samples", default="20,40,100,250,500", help="labelled records read, per trial")
    parser.add_argument("--wrong", default="0,0.15,0.3,0.5", help="shares of the sample's labels that are wrong")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-agreement", type=float, default=None, help="read with another agreement floor than "
                        "the worker's (label_order.MIN_AGREEMENT, label sets: MIN_SET_AGREEMENT): what the other "
                        "checks alone let through")
    args = parser.parse_args()
    configure_logging("INFO")
    if args.min_agreement is not None:
        label_order.MIN_AGREEMENT = label_order.MIN_SET_AGREEMENT = args.min_agreement

    rng = random.Random(args.seed)
    records, labels = _records(args.dataset)
    rng.shuffle(records)
    train, pool = records[:args.train], records[args.train:args.train + args.pool]
    model_dir = _trained(train, labels, args)
    started = time.perf_counter()
    predicted = _predict(model_dir, pool, labels, args.max_length)  # [pool] output indices (sets), the model's order
    predict_s = time.perf_counter() - started
    truth = [_label_indices(r.label, labels) for r in pool]
    accuracy = _accuracy(predicted, truth, len(labels))
    logger.info("model accuracy on the pool: %.3f (%d records, predicted in %.0f s)", accuracy, len(pool), predict_s)

    cells = []
    for size in (int(value) for value in args.samples.split(",")):
        for wrong in (float(value) for value in args.wrong.split(",")):
            cells.append(_cell(predicted, truth, labels, size, wrong, args.trials, rng))
    lines = _table(args, accuracy, len(labels), cells, predict_s / len(pool))
    floor = "" if args.min_agreement is None else f"_floor{args.min_agreement:g}"
    write_results(f"label_order_{args.dataset}{floor}", {"args": vars(args), "pool_accuracy": accuracy, "cells": cells},
                  lines)


LABEL_SET_DATASETS = ("movie-raters", "friends")


def _records(dataset: str) -> tuple[list[Example], tuple[str, ...]]:
    """The dataset's records (a label set: a tuple) and its labels."""
    if dataset in LABEL_SET_DATASETS:
        from benchmarks.multilabel import CHARACTERS, SENTIMENTS, friends_windows, rated_snippets

        labels, rows = (CHARACTERS, friends_windows(6)) if dataset == "friends" else (SENTIMENTS, rated_snippets(0.2))
        return [Example(row_id, text, tuple(label for label in labels if label in chosen))
                for row_id, text, chosen in rows], labels
    if dataset == "newsgroups":
        records = [Example(r.id, r.text, r.label) for r in load_newsgroups("train")]
        return records, tuple(sorted({r.label for r in records}))
    return [Example(r.id, r.text, r.label) for r in load_movie_snippets()], SENTIMENT_LABELS


def _label_indices(label, labels: tuple[str, ...]):
    """A label's index, or a label set's indices (a tuple)."""
    return tuple(labels.index(one) for one in label) if isinstance(label, tuple) else labels.index(label)


def _accuracy(predicted: list, truth: list, label_count: int) -> float:
    """The share of right predictions: of records (one label), or of record × label decisions (label sets)."""
    if truth and isinstance(truth[0], tuple):
        return float(np.mean([(output in chosen) == (output in carried) for chosen, carried in
                              zip(predicted, truth, strict=True) for output in range(label_count)]))
    return float(np.mean(np.asarray(predicted) == np.asarray(truth)))


def _trained(train, labels, args) -> Path:
    """The fine-tuned MiniLM (cached): true labels, the worker's own trainer."""
    target = cache_root() / "benchmark-models" / (f"label-order-{args.dataset}-n{len(train)}-e{args.epochs}-"
                                                  f"len{args.max_length}-s{args.seed}")
    if (target / "config.json").exists():
        return target
    settings = TrainingSettings(epochs=args.epochs, max_length=args.max_length, batch_size=16, seed=args.seed,
                                device="auto")
    train_classifier(fetch(MINILM_MODEL), train, [], labels, target, settings)
    return target


def _predict(model_dir: Path, pool, labels: tuple[str, ...], max_length: int) -> list:
    """The model's predicted output (a label-set model: outputs, at its thresholds) for each pool record
    (deterministic), as `--label-map auto` predicts them."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from worker.scoring.model import thresholds_of
    from worker.training.label_order import predicted_output_sets, predicted_outputs

    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    sample = [LabelledInput(r.id, r.text, None, r.label) for r in pool]
    if isinstance(pool[0].label, tuple):
        return predicted_output_sets(model, tokenizer, sample, max_length, thresholds_of(model_dir, labels))
    return predicted_outputs(model, tokenizer, sample, max_length)


def _cell(predicted: list, truth: list, labels: tuple[str, ...], size: int, wrong: float, trials: int,
          rng: random.Random) -> dict:
    """``trials`` readings from ``size`` records with a share ``wrong`` of wrong labels (label sets: one label dropped
    or added), each with the model's outputs shuffled anew: how many read the exact map, were refused, or read a
    wrong one."""
    outcome = {"exact": 0, "refused": 0, "wrong": 0}
    agreements = []
    model_labels = [f"LABEL_{index}" for index in range(len(labels))]
    for _ in range(trials):
        order = list(range(len(labels)))
        rng.shuffle(order)  # output j of the saved model is class order[j]
        output_of = {label_index: output for output, label_index in enumerate(order)}
        chosen = rng.sample(range(len(predicted)), min(size, len(predicted)))
        given = [_mislabel(truth[position], len(labels), rng) if rng.random() < wrong else truth[position]
                 for position in chosen]
        try:
            if isinstance(truth[0], tuple):
                reading = map_from_label_sets([tuple(output_of[one] for one in predicted[position])
                                               for position in chosen],
                                              [tuple(labels[one] for one in label) for label in given],
                                              model_labels, list(labels))
            else:
                reading = map_from_predictions([output_of[predicted[position]] for position in chosen],
                                               [labels[label] for label in given], model_labels, list(labels))
        except DataError:
            outcome["refused"] += 1
            continue
        right = {f"LABEL_{output}": labels[order[output]] for output in range(len(labels))}
        outcome["exact" if reading.mapping == right else "wrong"] += 1
        agreements.append(reading.agreement)
    return {"size": size, "wrong_labels": wrong, "trials": trials, **outcome,
            "mean_agreement": float(np.mean(agreements)) if agreements else None}


def _mislabel(label, label_count: int, rng: random.Random):
    """A wrong label: a random other one; a label set with one label dropped or one added (a tuple)."""
    if isinstance(label, tuple):
        changed = set(label) ^ {rng.randrange(label_count)}
        return tuple(sorted(changed))
    return rng.choice([other for other in range(label_count) if other != label])


def _table(args, accuracy: float, label_count: int, cells: list[dict], predict_s_per_record: float) -> list[str]:
    sets = args.dataset in LABEL_SET_DATASETS
    kind = "per-label decision accuracy" if sets else "accuracy"
    floor = f"; agreement floor {args.min_agreement} (--min-agreement)" if args.min_agreement is not None else ""
    about = (f"MiniLM fine-tuned on {args.train} records ({args.epochs} epochs, {args.max_length} tokens): {kind} "
             f"{accuracy:.3f} on a pool of {args.pool} other records, predicted once ({predict_s_per_record * 1000:.0f}"
             f" ms a record on this machine); each trial shuffles the model's outputs and reads the map from a sample "
             f"of the pool whose labels are wrong at the given share ({args.trials} trials a cell, seed {args.seed}"
             f"{floor}).")
    lines = [f"## `--label-map auto` on {args.dataset} ({label_count} labels), CPU",
             "",
             about,
             "",
             (f"| labelled records read | wrong {'label sets' if sets else 'labels'} | exact map | refused | wrong map "
              f"| agreement (mean{', F1' if sets else ''}) |"),
             "|---:|---:|---:|---:|---:|---:|"]
    for cell in cells:
        agreement = "-" if cell["mean_agreement"] is None else f"{cell['mean_agreement']:.2f}"
        lines.append(f"| {cell['size']} | {cell['wrong_labels']:.0%} | {cell['exact']} | {cell['refused']} | "
                     f"{cell['wrong']} | {agreement} |")
    return lines


if __name__ == "__main__":
    main()
