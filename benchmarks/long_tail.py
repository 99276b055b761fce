"""A first model on a long tail of labels: the classification head's learning rate, and class-balanced weights.

A team's dataset with 52 labels, two of them 68 % of the records and 17 with under 10 (Reuters R52, its training
articles), labelled by a weak labeller with a seeded share of wrong labels (``--noise frequency``: a wrong label is
drawn in proportion to how common each label is — labellers confuse towards the common topics; ``uniform``: any
other label alike). The worker trains its first model from those labels (its own ``train_classifier``, the
stratified 20 % validation split, the offline all-MiniLM-L6-v2), each variant from the same records and seed:

  today                   every parameter at training.learning_rate (5e-5): the new 52-way head barely moves
                          (training.head_learning_rate = "same"; the default until 2026-12-02)
  auto                    the default since: 1e-2 for a new head of 8 or more labels, the rest as today
  head 1e-3, head 1e-2    training.head_learning_rate = 1e-3 or 1e-2 (the rest at 5e-5)
  balanced weights        each example's loss weight ∝ 1/√(its label's count), mean 1 (no worker setting: Example
                          weights, to see whether a setting is worth adding)
  head … + balanced       both

Reported: on R52's own test articles (natural distribution) accuracy, macro-F1, labels predicted out of those
present and the deterministic ECE; on the training records, how well the model's per-example loss against their
(noisy) labels finds the wrong ones — precision at the number of wrong labels, and AUROC — which is what
annotators sorting by ``loss`` get.

    HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.long_tail [--records 1500] [--epochs 2] [--seeds 1]

Writes benchmarks/results/long_tail-<dataset>.{json,md}. CPU: about 3 minutes a variant on 2 cores with the defaults.
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks._shared import write_results
from worker.calibration import expected_calibration_error
from worker.config import TrainingSettings
from worker.demo_data import (
    load_bbc_news,
    load_movie_snippets,
    load_newsgroups,
    load_reuters8,
    load_reuters52,
    load_sms_spam,
)
from worker.offline_assets import MINILM_MODEL, fetch
from worker.records import LabelledText, label_index
from worker.scoring import load_classifier
from worker.training.data import Example, stratified_split
from worker.training.evaluate import classification_metrics, predict_probabilities
from worker.training.trainer import train_classifier

logger = logging.getLogger("benchmarks.long_tail")

VARIANTS = {  # name -> (TrainingSettings that differ, class-balanced weights)
    "today": ({"head_learning_rate": "same"}, False),  # the default before "auto" (2026-12-02): one rate for all
    "auto": ({"head_learning_rate": "auto"}, False),
    "head 1e-3": ({"head_learning_rate": 1e-3}, False),
    "head 1e-2": ({"head_learning_rate": 1e-2}, False),
    "balanced weights": ({}, True),
    "head 1e-3 + balanced": ({"head_learning_rate": 1e-3}, True),
    "head 1e-2 + balanced": ({"head_learning_rate": 1e-2}, True),
}



def _split(records: list[LabelledText]) -> tuple[list[LabelledText], list[LabelledText]]:
    """A set without its own test split: its first 70 % (in a seeded order) to draw from, the rest to test on."""
    shuffled = random.Random(0).sample(records, len(records))
    cut = int(0.7 * len(shuffled))
    return shuffled[:cut], shuffled[cut:]


NEWSGROUPS_SIX = ("comp.graphics", "misc.forsale", "rec.autos", "sci.med", "soc.religion.christian",
                  "talk.politics.guns")  # six groups of six different hierarchies: 6 balanced labels
R8_TOP_SIX = ("acq", "crude", "earn", "interest", "money-fx", "trade")  # R8 without its two smallest: 6 skewed labels
R8_TOP_FOUR = ("acq", "crude", "earn", "trade")  # 4 skewed labels: earn 58 %, acq 32 %, crude and trade 5 % each
R8_SKEWED_TWO = ("crude", "earn")  # 2 labels, one of them 8 %


NEWSGROUPS_SKEW = (0.45, 0.25, 0.12, 0.08, 0.06, 0.04)  # NEWSGROUPS_SIX's shares in newsgroups6-skewed, in order
NEWSGROUPS_SKEW_FIVE = (0.45, 0.25, 0.15, 0.10, 0.05)  # the first five of them in newsgroups5-skewed: rarest 0.25


def _only(labels: tuple[str, ...], records: list[LabelledText]) -> list[LabelledText]:
    return [record for record in records if record.label in labels]


def _skewed(labels: tuple[str, ...], shares: tuple[float, ...], records: list[LabelledText]) -> list[LabelledText]:
    """The records of ``labels`` cut (a seeded choice) to the given ``shares`` of the result: as many as the first
    label's records allow (the first share is the largest)."""
    by_label = {label: [r for r in records if r.label == label] for label in labels}
    total = min(len(by_label[label]) / share for label, share in zip(labels, shares, strict=True))
    kept: list[LabelledText] = []
    for label, share in zip(labels, shares, strict=True):
        kept += random.Random(0).sample(by_label[label], round(total * share))
    return kept


DATASETS = {  # name -> () -> (records to draw the training sample from, test records)
    "r52": lambda: (load_reuters52("train"), load_reuters52("test")),
    "r8": lambda: (load_reuters8("train"), load_reuters8("test")),
    "r8-top6": lambda: (_only(R8_TOP_SIX, load_reuters8("train")), _only(R8_TOP_SIX, load_reuters8("test"))),
    "r8-top4": lambda: (_only(R8_TOP_FOUR, load_reuters8("train")), _only(R8_TOP_FOUR, load_reuters8("test"))),
    "r8-skewed2": lambda: (_only(R8_SKEWED_TWO, load_reuters8("train")), _only(R8_SKEWED_TWO, load_reuters8("test"))),
    "newsgroups": lambda: (load_newsgroups("train"), load_newsgroups("test")),
    "newsgroups6": lambda: (_only(NEWSGROUPS_SIX, load_newsgroups("train")),
                            _only(NEWSGROUPS_SIX, load_newsgroups("test"))),
    "newsgroups6-skewed": lambda: (_skewed(NEWSGROUPS_SIX, NEWSGROUPS_SKEW, load_newsgroups("train")),
                                   _skewed(NEWSGROUPS_SIX, NEWSGROUPS_SKEW, load_newsgroups("test"))),
    "newsgroups5-skewed": lambda: (_skewed(NEWSGROUPS_SIX[:5], NEWSGROUPS_SKEW_FIVE, load_newsgroups("train")),
                                   _skewed(NEWSGROUPS_SIX[:5], NEWSGROUPS_SKEW_FIVE, load_newsgroups("test"))),
    "sms-spam": lambda: _split(load_sms_spam()),
    "movies": lambda: _split(load_movie_snippets()),
    "bbc": lambda: _split(load_bbc_news()),
}


def noisy_labels(records: list[LabelledText], share: float, noise: str, seed: int) -> dict[str, str]:
    """record id -> the weak labeller's label: ``share`` of them replaced by another label (``noise``: drawn in
    proportion to the labels' counts, or uniformly)."""
    rng = random.Random(seed)
    counts = Counter(r.label for r in records)
    labels = sorted(counts)
    flipped = set(rng.sample(range(len(records)), round(share * len(records))))
    given = {}
    for index, record in enumerate(records):
        if index not in flipped:
            given[record.id] = record.label
            continue
        others = [label for label in labels if label != record.label]
        weights = [counts[label] if noise == "frequency" else 1 for label in others]
        given[record.id] = rng.choices(others, weights=weights)[0]
    return given


def balanced_weights(labels: list[str]) -> list[float]:
    """[N] 1/√(count of each example's label), scaled to mean 1."""
    counts = Counter(labels)
    raw = [1 / math.sqrt(counts[label]) for label in labels]
    mean = statistics.fmean(raw)
    return [weight / mean for weight in raw]


def precision_and_auroc(losses: np.ndarray, wrong: np.ndarray) -> tuple[float, float]:
    """Precision among the ``wrong.sum()`` highest ``losses`` [N], and the AUROC of the loss for ``wrong`` [N]."""
    count = int(wrong.sum())
    top = np.argsort(-losses, kind="stable")[:count]
    ranks = np.argsort(np.argsort(losses, kind="stable"), kind="stable") + 1  # 1 = lowest loss
    auroc = (ranks[wrong].sum() - count * (count + 1) / 2) / (count * (len(losses) - count))
    return float(wrong[top].mean()), float(auroc)


def run_variant(records: list[LabelledText], given: dict[str, str], test: list[LabelledText], labels: list[str],
                changes: dict, balanced: bool, args: argparse.Namespace, seed: int, work: Path) -> dict:
    """One training from ``records`` with their ``given`` labels, every one of R52's ``labels`` in the head (the
    question's labels: some have no training article in a sample), scored on ``test`` and on ``records``."""
    weights = balanced_weights([given[r.id] for r in records]) if balanced else [1.0] * len(records)
    examples = [Example(r.id, r.text, given[r.id], weight=w) for r, w in zip(records, weights, strict=True)]
    train, validation = stratified_split(examples, 0.2, seed=seed)
    settings = TrainingSettings(base_model=str(fetch(MINILM_MODEL)), device="auto", seed=seed, epochs=args.epochs,
                                min_steps=0, max_length=args.max_length, **changes)
    started = time.perf_counter()
    train_classifier(settings.base_model, train, validation, labels, work, settings)
    seconds = time.perf_counter() - started
    classifier = load_classifier(work, device="auto")
    index = label_index(classifier.labels)
    held_out = predict_probabilities(classifier, [r.text for r in test], samples=1).deterministic  # [N_test, C]
    targets = np.array([index[r.label] for r in test])
    accuracy, macro_f1 = classification_metrics(held_out, targets, len(classifier.labels))
    scored = predict_probabilities(classifier, [r.text for r in records], samples=1).deterministic  # [N, C]
    given_ids = np.array([index[given[r.id]] for r in records])
    losses = -np.log(np.clip(scored[np.arange(len(records)), given_ids], 1e-12, None))
    wrong = np.array([given[r.id] != r.label for r in records])
    precision, auroc = precision_and_auroc(losses, wrong)
    return {"accuracy": accuracy, "macro_f1": macro_f1, "ece": expected_calibration_error(held_out, targets),
            "labels_predicted": len(set(held_out.argmax(axis=1).tolist())), "labels_present": len(set(targets)),
            "precision_at_wrong": precision, "auroc": auroc, "wrong": int(wrong.sum()), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="r52",
                        help="r52; or, to check a setting does not hurt where there is no long tail, movies (2 "
                             "labels) or bbc (5 balanced sections)")
    parser.add_argument("--records", type=int, default=1500, help="training articles the weak labeller labels")
    parser.add_argument("--test", type=int, default=800, help="R52 test articles scored")
    parser.add_argument("--share", type=float, default=0.1, help="share of wrong labels")
    parser.add_argument("--noise", choices=("frequency", "uniform"), default="frequency")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run: first-seed … first-seed + seeds − 1")
    parser.add_argument("--variants", nargs="*", default=None, help="variant names to run (default: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    pool, test_pool = DATASETS[args.dataset]()
    labels = sorted({r.label for r in pool} | {r.label for r in test_pool})
    runs: list[dict] = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        records = random.Random(seed).sample(pool, args.records)
        test = random.Random(seed + 1000).sample(test_pool, args.test)
        given = noisy_labels(records, args.share, args.noise, seed)
        for name, (changes, balanced) in VARIANTS.items():
            if args.variants and name not in args.variants:
                continue
            with tempfile.TemporaryDirectory() as work:
                outcome = run_variant(records, given, test, labels, changes, balanced, args, seed,
                                      Path(work) / "model")
            runs.append({"variant": name, "seed": seed, **outcome})
            logger.warning("seed %d %s: macro-F1 %.3f, %d/%d labels predicted, precision %.3f (%.0f s)", seed, name,
                           outcome["macro_f1"], outcome["labels_predicted"], outcome["labels_present"],
                           outcome["precision_at_wrong"], outcome["seconds"])
    title = (f"{args.dataset}, {args.records} training records ({args.share:.0%} wrong labels, {args.noise} noise), "
             f"{args.epochs} epochs at {args.max_length} tokens, {args.seeds} seed(s); test: {args.test} records")
    header = ("| variant | accuracy | macro-F1 | labels predicted | ECE | loss finds wrong labels: precision | AUROC | "
              "training s |")
    lines = [title, "", header, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in dict.fromkeys(r["variant"] for r in runs):
        group = [r for r in runs if r["variant"] == name]

        def mean(key: str, group: list[dict] = group) -> float:
            return statistics.fmean(r[key] for r in group)
        lines.append(f"| {name} | {mean('accuracy'):.3f} | {mean('macro_f1'):.3f} | "
                     f"{mean('labels_predicted'):.0f} of {mean('labels_present'):.0f} | {mean('ece'):.3f} | "
                     f"{mean('precision_at_wrong'):.3f} | {mean('auroc'):.3f} | {mean('seconds'):.0f} |")
    write_results(f"long_tail-{args.dataset}", {"runs": runs, "args": vars(args)}, lines)


if __name__ == "__main__":
    main()
