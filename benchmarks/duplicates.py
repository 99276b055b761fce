"""Copies of one text on both sides of a split: what grouping the worker's splits by text changes.

Movie snippets (real texts, real labels). A seeded share of the snippets is copied once or twice — the copy
differs in letter case and spacing, as re-scraped pages, templated tickets or a file ingested twice do. Each
measurement runs twice, with the split grouped by text (copies always on one side) and by record
(:func:`stratified_split` / :func:`stratified_folds` on the record ids alone):

1. **The promotion gate's figure**: a model trained on the train side of the validation split, its accuracy on
   the validation side vs on snippets it never saw (clean labels; the gap is how far the gate's figure is from
   what the model does on new records). The worker's validation split (and publishing's test split) is grouped.
2. **Out-of-fold label errors** (``score --oof``): a share of the distinct texts gets a wrong label — half of them
   on every copy (one rule labelled them all), half on one copy only (a conflicting copy) — and K fold models score
   the records they held out; AUROC and precision@50 of the held-out model's expected loss for "this label is
   wrong", overall and per kind of record, for three fold assignments: by record (the worker's), every copy of a
   text in one fold, copies with one label in one fold. Grouping was measured here and not adopted.

    python benchmarks/duplicates.py                 # 500 snippets + copies, K = 3, seed 0: ≈ 15 min on 2 cores
    python benchmarks/duplicates.py --seed 1 --only label-errors

Writes benchmarks/results/duplicates-s<seed>[-<only>].{json,md}.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import movie_split, precision_at, write_results
from worker.demo_data import SENTIMENT_LABELS
from worker.iterables import shuffled_label_clusters
from worker.logging_setup import configure_logging
from worker.offline_assets import MINILM_MODEL, fetch
from worker.scoring import load_classifier
from worker.training.data import Example, example_keys, strata, stratified_folds, stratified_split
from worker.training.evaluate import predict_probabilities
from worker.training.kfold import stream_out_of_fold_scores
from worker.training.trainer import TrainingSettings, train_classifier

logger = logging.getLogger("benchmarks.duplicates")

SPLITS = ("grouped by near copies", "grouped by text", "by record")  # copies.similarity 0.6, 1, none
# K-fold assignments: every record on its own (the worker's), all copies of a text together, copies with one label
# together (a copy labelled otherwise may sit in another fold)
FOLD_VARIANTS = ("by record", "grouped by text", "by text and label")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snippets", type=int, default=500, help="distinct texts before copying")
    parser.add_argument("--unseen", type=int, default=500, help="snippets for the accuracy on new records")
    parser.add_argument("--copied", type=float, default=0.4, help="the share of snippets copied (1 or 2 copies)")
    parser.add_argument("--wrong", type=float, default=0.12, help="the share of distinct texts with a wrong label")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("gate", "label-errors"), help="run one of the two measurements")
    parser.add_argument("--similarity", type=float, default=0.6, help="copies.similarity of the near-copy split")
    parser.add_argument("--copy-kind", choices=("exact", "near"), default="exact",
                        help="exact: copies in other case and spacing; near: copies with one edit (a word replaced "
                             "or dropped, two letters swapped, a ticket number before it, a signature after it)")
    parser.add_argument("--fold-variants", nargs="+", choices=FOLD_VARIANTS, default=list(FOLD_VARIANTS),
                        help="the K-fold assignments compared for the label errors")
    args = parser.parse_args()
    configure_logging("INFO")
    started = time.perf_counter()
    snippets, unseen = movie_split(train=args.snippets, test=args.unseen, seed=args.seed)
    rng = random.Random(args.seed)
    clean = with_copies([Example(s.id, s.text, s.label) for s in snippets], args.copied, rng, kind=args.copy_kind)
    noisy, wrong = with_wrong_labels(clean, args.wrong, rng)
    settings = TrainingSettings(epochs=args.epochs, max_length=64, batch_size=16, learning_rate=1e-4,
                                seed=args.seed, device=args.device)
    base = fetch(MINILM_MODEL)
    gate, errors = {}, {}
    with tempfile.TemporaryDirectory() as work:
        for position, name in enumerate(SPLITS if args.only != "label-errors" else ()):
            gate[name] = gate_figure(clean, unseen, base, settings, Path(work) / f"gate-{position}", split=name,
                                     similarity=args.similarity)
        for position, name in enumerate(args.fold_variants if args.only != "gate" else ()):
            errors[name] = out_of_fold_errors(noisy, wrong, base, settings, Path(work) / f"oof-{position}",
                                              k=args.folds, samples=args.samples, variant=name)
    copied = sum(example.id.count("~") > 0 for example in clean)
    lines = report(gate, errors, args, len(clean), copied, len(wrong), time.perf_counter() - started)
    name = (f"duplicates-s{args.seed}" + (f"-{args.only}" if args.only else "")
            + (f"-{args.copy_kind}" if args.copy_kind != "exact" else ""))
    write_results(name, {"args": vars(args), "records": len(clean), "copies": copied, "wrong": len(wrong),
                         "gate": gate, "label_errors": errors}, lines)


def with_copies(examples: list[Example], share: float, rng: random.Random, *, kind: str = "exact") -> list[Example]:
    """``examples`` and, for ``share`` of them, one or two copies (id ``<id>~<n>``): in other case and spacing
    (``kind`` exact) or with one edit (near: :func:`edited`)."""
    copies = []
    for example in rng.sample(examples, round(len(examples) * share)):
        for number in range(1, rng.choice((1, 2)) + 1):
            if kind == "near":
                text = edited(example.text, rng)
            else:
                text = example.text.upper() if number == 1 else "  ".join(example.text.split()) + " "
            copies.append(replace(example, id=f"{example.id}~{number}", text=text))
    return examples + copies


NEUTRAL_WORDS = ("the", "film", "movie", "story", "this", "really", "just", "it")
SIGNATURES = ("Sent from my phone", "-- posted via the mobile site", "(edited)", "Read more")


EDITS = ("replace", "drop", "swap", "number", "signature")


def edited(text: str, rng: random.Random, edit: str | None = None) -> str:
    """``text`` with one edit that keeps its meaning, as templated, re-posted or re-typed records differ (``edit``
    of :data:`EDITS`, else a random one): a word replaced by a neutral word or dropped, two neighbouring letters
    swapped, a ticket number before it or a signature after it."""
    words = text.split()
    edit = edit or rng.choice(EDITS)
    if edit == "replace":
        words[rng.randrange(len(words))] = rng.choice(NEUTRAL_WORDS)
    elif edit == "drop" and len(words) > 2:
        del words[rng.randrange(len(words))]
    elif edit == "swap" and len(text) > 2:
        at = rng.randrange(len(text) - 1)
        return text[:at] + text[at + 1] + text[at] + text[at + 2:]
    elif edit == "number":
        return f"Ticket #{rng.randrange(10_000, 100_000)}: {text}"
    else:
        return f"{text} {rng.choice(SIGNATURES)}"
    return " ".join(words)


def with_wrong_labels(examples: list[Example], share: float, rng: random.Random) -> tuple[list[Example], set[str]]:
    """(examples with wrong labels, the ids whose label is wrong): ``share`` of the distinct texts get the other
    label — on every copy for half of them, on one record of the text for the other half."""
    by_text: dict[str, list[Example]] = {}
    for example in examples:
        by_text.setdefault(example.id.split("~")[0], []).append(example)
    chosen = rng.sample(sorted(by_text), round(len(by_text) * share))
    wrong: set[str] = set()
    for position, text in enumerate(chosen):
        group = by_text[text]
        wrong.update(e.id for e in (group if position % 2 == 0 else [rng.choice(group)]))
    other = {label: next(o for o in SENTIMENT_LABELS if o != label) for label in SENTIMENT_LABELS}
    return [replace(e, label=other[e.label]) if e.id in wrong else e for e in examples], wrong


def by_record(examples: list[Example]) -> list[Example]:
    """The examples with their ids as their texts: the worker's splits then see every record as distinct (as
    they did before they grouped copies)."""
    return [replace(example, text=example.id, text_pair=None) for example in examples]


def gate_figure(examples: list[Example], unseen, base: Path, settings: TrainingSettings, work: Path, *,
                split: str, similarity: float) -> dict:
    """Validation accuracy (the gate's figure) vs accuracy on unseen snippets of one model, with the validation
    split of :data:`SPLITS` named ``split``."""
    if split == "by record":
        sides = stratified_split(by_record(examples), 0.2, seed=settings.seed)
    else:
        keys = example_keys(examples, similarity if split == SPLITS[0] else 1.0)
        sides = stratified_split(examples, 0.2, seed=settings.seed, keys=keys)
    by_id = {example.id: example for example in examples}
    train, validation = ([by_id[e.id] for e in side] for side in sides)
    train_classifier(base, train, [], SENTIMENT_LABELS, work, settings)
    classifier = load_classifier(work, device=settings.device)

    def accuracy(texts: list[str], labels: list[str]) -> float:
        predicted = predict_probabilities(classifier, texts, samples=1).deterministic.argmax(1)  # [n]
        return float(np.mean([SENTIMENT_LABELS[index] == label for index, label in zip(predicted, labels,
                                                                                         strict=True)]))

    copied_texts = {e.id.split("~")[0] for e in validation} & {e.id.split("~")[0] for e in train}
    return {"validation_records": len(validation), "validation_with_a_copy_in_train": sum(
                e.id.split("~")[0] in copied_texts for e in validation),
            "validation_accuracy": accuracy([e.text for e in validation], [e.label for e in validation]),
            "unseen_accuracy": accuracy([s.text for s in unseen], [s.label for s in unseen])}


def grouped_folds(examples: list[Example], k: int, *, seed: int, by_label: bool = False) -> list[int]:
    """Folds [N] that keep every copy of a text (``by_label``: with one label) together — measured here, not the
    worker's: per stratum, each cluster to the fold with the fewest examples so far."""
    folds, sizes, cursor = [0] * len(examples), [0] * k, 0
    copy_key = example_keys(examples)
    keys = [(copy_key[example.id], example.label if by_label else "") for example in examples]
    for clusters in shuffled_label_clusters(strata(examples), keys, random.Random(seed)):
        for cluster in clusters:
            smallest = min(sizes)
            fold = min((f for f in range(k) if sizes[f] == smallest), key=lambda f: (f - cursor) % k)
            for index in cluster:
                folds[index] = fold
            sizes[fold] += len(cluster)
            cursor = (fold + 1) % k
    return folds


def out_of_fold_errors(examples: list[Example], wrong: set[str], base: Path, settings: TrainingSettings,
                       work: Path, *, k: int, samples: int, variant: str) -> dict:
    """AUROC / precision@50 of the held-out models' expected loss for the wrong labels, overall and per kind of
    record, with the ``variant`` of :data:`FOLD_VARIANTS`."""
    folds = (stratified_folds(examples, k, seed=settings.seed) if variant == "by record"
             else grouped_folds(examples, k, seed=settings.seed, by_label=variant == "by text and label"))
    losses = {score.record_id: score.expected_loss for score in stream_out_of_fold_scores(
        examples, SENTIMENT_LABELS, base, settings, work, k=k, samples=samples, mc_layers=2, folds=folds)}
    text_of = {e.id: e.id.split("~")[0] for e in examples}
    labels_of: dict[str, set[str]] = {}
    for example in examples:
        labels_of.setdefault(text_of[example.id], set()).add(example.label)
    sizes = Counter(text_of.values())
    parts = {"all": [e.id for e in examples],
             "with copies": [e.id for e in examples if sizes[text_of[e.id]] > 1],
             "copies labelled alike": [e.id for e in examples
                                       if sizes[text_of[e.id]] > 1 and len(labels_of[text_of[e.id]]) == 1],
             "copies labelled differently": [e.id for e in examples if len(labels_of[text_of[e.id]]) > 1],
             "without copies": [e.id for e in examples if sizes[text_of[e.id]] == 1]}
    result = {}
    for part, ids in parts.items():
        truth = [record_id in wrong for record_id in ids]
        scores = [losses[record_id] for record_id in ids]
        ranking = [ids[index] for index in np.argsort(-np.asarray(scores), kind="stable")]
        result[part] = {"records": len(ids), "wrong": sum(truth),
                        "auroc": float(roc_auc_score(truth, scores)) if 0 < sum(truth) < len(ids) else float("nan"),
                        "precision@50": precision_at(ranking, wrong, 50)}
    return result


def report(gate: dict, errors: dict, args, records: int, copies: int, wrong: int, seconds: float) -> list[str]:
    lines = [(f"Copies of one text across splits — movie snippets: {args.snippets} distinct texts + {copies} copies "
             f"({records} records; {args.copied:.0%} of the texts copied 1–2 times), seed {args.seed}; MiniLM, "
             f"{args.epochs} epochs; {seconds:.0f} s"), "",
             ("| splits | validation records with a copy in training | validation accuracy (the gate's figure) | "
             "accuracy on unseen snippets | gap |"), "|---|---:|---:|---:|---:|"]
    for name, figure in gate.items():
        gap = figure["validation_accuracy"] - figure["unseen_accuracy"]
        lines.append(f"| {name} | {figure['validation_with_a_copy_in_train']} of {figure['validation_records']} | "
                     f"{figure['validation_accuracy']:.4f} | {figure['unseen_accuracy']:.4f} | {gap:+.4f} |")
    lines += ["", (f"Out-of-fold label errors ({wrong} wrong labels, K = {args.folds}, T = {args.samples}; expected "
              "loss of the held-out model):"), "",
              "| folds | records | wrong | AUROC | precision@50 |", "|---|---|---:|---:|---:|"]
    for name, figure in errors.items():
        for part, cell in figure.items():
            lines.append(f"| {name} | {part} ({cell['records']}) | {cell['wrong']} | {cell['auroc']:.4f} | "
                         f"{cell['precision@50']:.3f} |")
    return lines


if __name__ == "__main__":
    main()
