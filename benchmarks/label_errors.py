"""Finding label errors by sorting on loss (the seed's "clean labels with your model's loss" experiment).

A sample of a real labelled set with a seeded fraction of its labels flipped to another class at random
(``--dataset newsgroups``: 20 Newsgroups, 20 classes; ``reuters8``: Reuters R8, 8 unbalanced topics;
``movies``: the movie snippets, 2 classes), or with **real** annotator noise (``movies-raters``: snippets
whose raters split between positive and negative, each given the sentiment of one of its own 15–29 raters,
drawn at random among those who did not rate 0; a label error is a rater who disagrees with the sign of
the mean rating). Rankings compared, all scored with the offline all-MiniLM-L6-v2 fine-tuned on the noisy
labels:

  in-sample deterministic loss    one model trained on everything scores its own training labels
  in-sample MC expected loss      the same model, MC dropout (T = 20)
  out-of-fold MC expected loss    K models, each scores only the fold it did not train on
  cleanlab self-confidence        cleanlab.rank.get_label_quality_scores on the same OOF probabilities
  cleanlab normalized margin      idem, method="normalized_margin"
  cleanlab find_label_issues      cleanlab.filter.find_label_issues (its flagged set, ranked by self-confidence)
  AUM, in-sample / K − 1 folds    area under the margin (Pleiss et al. 2020), recorded while training
  label_issue                     worker.label_issues: 1 − √(p̄_OOF(y) · σ(AUM over the fold models))

Metrics: precision@50, precision@200, precision@500 (the share of flipped labels among the top of the ranking) and
AUROC of the score for "this label was flipped".

    python benchmarks/label_errors.py            # 1,000 posts, K = 4, 4 epochs: ≈ 40 min on 2 CPU cores
    python benchmarks/label_errors.py --quick    # 600 posts, K = 3, 3 epochs: ≈ 14 min
    python benchmarks/label_errors.py --quick --dataset reuters8 --flip 0.2 --seed 1

Writes benchmarks/results/label_errors-<dataset>-<flip>-s<seed>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import RESULTS_DIR, precision_at, write_results
from worker.demo_data import (
    SENTIMENT_LABELS,
    flip_labels,
    load_movie_ratings,
    load_movie_snippets,
    load_newsgroups,
    load_reuters8,
)
from worker.label_issues import label_issue_scores
from worker.logging_setup import configure_logging
from worker.offline_assets import MINILM_MODEL, fetch
from worker.scoring import Scorer, ScoringInput, load_classifier
from worker.training.data import Example
from worker.training.kfold import out_of_fold_scores
from worker.training.trainer import TrainingSettings, train_classifier

logger = logging.getLogger("benchmarks.label_errors")

DATASETS = {"newsgroups": "20 Newsgroups", "reuters8": "Reuters R8", "movies": "movie snippets",
            "movies-raters": "movie snippets whose raters split, one real rater's label each"}
LABEL_ISSUE = "label_issue (OOF p̄ × fold AUM)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=96)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="newsgroups")
    parser.add_argument("--flip", type=float, default=0.1, help="the share of flipped labels (not movies-raters)")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--mc-layers", default="2")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--head-learning-rate", default="auto", help='training.head_learning_rate of the fold models '
                        '("auto", "same" or a number); not "auto": written as label_errors_head-<rate>-…')
    parser.add_argument("--quick", action="store_true", help="600 posts, K = 3, 3 epochs")
    parser.add_argument("--summary", action="store_true",
                        help="only print the table of every cell already in benchmarks/results (no training)")
    args = parser.parse_args()
    if args.summary:
        print("\n".join(summary_lines(sorted(RESULTS_DIR.glob("label_errors-*.json")))))
        return
    configure_logging("INFO")
    if args.quick:
        args.records, args.folds, args.epochs = 600, 3, 3
    mc_layers = args.mc_layers if args.mc_layers in ("auto", "all") else int(args.mc_layers)
    started = time.perf_counter()

    posts, noisy, flipped, labels = _noisy_sample(args.dataset, args.records, args.flip, args.seed)
    examples = [Example(p.id, p.text, p.label) for p in noisy]
    settings = TrainingSettings(epochs=args.epochs, max_length=args.max_length, learning_rate=args.learning_rate,
                                batch_size=16, seed=args.seed, device=args.device,
                                head_learning_rate=args.head_learning_rate)
    base = fetch(MINILM_MODEL)
    rankings: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as work:
        work_dir = Path(work)
        in_sample_training = train_classifier(base, examples, [], labels, work_dir / "in-sample", settings)
        scorer = Scorer(load_classifier(work_dir / "in-sample", device=args.device), samples=args.samples,
                        mc_layers=mc_layers, seed=args.seed)
        in_sample = {s.record_id: s for s in scorer.score(ScoringInput(e.id, e.text, e.label) for e in examples)}
        rankings["in-sample deterministic loss"] = {i: s.loss for i, s in in_sample.items()}
        rankings["in-sample MC expected loss"] = {i: s.expected_loss for i, s in in_sample.items()}
        oof = out_of_fold_scores(examples, labels, base, settings, work_dir / "oof", k=args.folds,
                                 samples=args.samples, mc_layers=mc_layers)
    rankings["out-of-fold MC expected loss"] = {i: s.expected_loss for i, s in oof.scores.items()}
    ids = [e.id for e in examples]
    oof_probs = np.array([[oof.scores[i].probabilities[label] for label in labels] for i in ids])  # [N, C]
    given = np.array([labels.index(e.label) for e in examples])  # [N]
    rankings.update(_cleanlab_rankings(ids, oof_probs, given))
    rankings["AUM, in-sample model (Pleiss et al.)"] = {
        i: -float(m) for i, m in zip(ids, in_sample_training.margins, strict=True)}
    rankings["AUM, K − 1 fold models"] = {i: -oof.margins[i] for i in ids}
    issue = label_issue_scores(oof_probs[np.arange(len(ids)), given], np.array([oof.margins[i] for i in ids]))
    rankings[LABEL_ISSUE] = dict(zip(ids, issue.tolist(), strict=True))
    accuracy_oof = float((oof_probs.argmax(1) == np.array([labels.index(p.label) for p in posts])).mean())

    table = {name: _metrics(scores, flipped) for name, scores in rankings.items()}
    cleanlab_best = {metric: max(v[metric] for name, v in table.items() if name.startswith("cleanlab"))
                     for metric in ("auroc", "precision@50")}
    lines = [
        (f"Label-error detection — {DATASETS[args.dataset]}, {len(posts)} records, {len(flipped)} wrong labels "
         f"({len(flipped) / len(posts):.0%}, seed {args.seed}); all-MiniLM-L6-v2, {args.epochs} epochs, "
         f"max {args.max_length} tokens, K = {args.folds}, T = {args.samples}, MC layers {mc_layers}; "
         f"OOF accuracy vs true labels {accuracy_oof:.3f}; {time.perf_counter() - started:.0f} s"),
        "",
        "| ranking | precision@50 | precision@200 | precision@500 | AUROC | flagged |",
        "|---|---:|---:|---:|---:|---:|",
        *(f"| {name} | {v['precision@50']:.3f} | {v['precision@200']:.3f} | {v['precision@500']:.3f} | "
          f"{v['auroc']:.4f} | {v.get('flagged', '–')} |" for name, v in table.items()),
        "",
        *(f"Target label_issue {metric} > cleanlab's best ({best:.4f}): "
          f"{'met' if table[LABEL_ISSUE][metric] > best else 'MISSED'} ({table[LABEL_ISSUE][metric]:.4f})"
          for metric, best in cleanlab_best.items()),
    ]
    prefix = "label_errors" if args.head_learning_rate == "auto" else f"label_errors_head-{args.head_learning_rate}"
    write_results(f"{prefix}-{args.dataset}-{args.flip:g}-s{args.seed}",
                  {"args": vars(args), "table": table, "flipped": len(flipped),
                   "oof_accuracy_true_labels": accuracy_oof,
                   "targets": {m: table[LABEL_ISSUE][m] > best for m, best in cleanlab_best.items()},
                   # per record, in `ids` order: what a new ranking formula can be tried on without training
                   # again (try it on one seed, judge it on the others)
                   "records": {"flipped": [i in flipped for i in ids],
                               "given_label": given.tolist(),
                               "oof_label_probability": oof_probs[np.arange(len(ids)), given].round(6).tolist(),
                               "oof_bald": [round(oof.scores[i].bald, 6) for i in ids],
                               "oof_variance": [round(oof.scores[i].variance or 0.0, 8) for i in ids],
                               "oof_expected_loss": [round(oof.scores[i].expected_loss, 6) for i in ids],
                               "fold_aum": [round(float(oof.margins[i]), 6) for i in ids],
                               "in_sample_aum": [round(float(m), 6) for m in in_sample_training.margins]}},
                  lines)


def summary_lines(paths: list[Path]) -> list[str]:
    """One row per benchmark cell: label_issue vs cleanlab's best (AUROC, precision@50), and the tallies."""
    lines = [("| set | noise | seed | records | label_issue AUROC | cleanlab best AUROC | label_issue P@50 | "
             "cleanlab best P@50 |"), "|---|---:|---:|---:|---:|---:|---:|---:|"]
    wins = {"auroc": [0, 0, 0], "precision@50": [0, 0, 0]}  # above, tied, below
    for path in paths:
        cell = json.loads(path.read_text())
        table, args = cell["table"], cell["args"]
        ours = table[LABEL_ISSUE]
        best = {m: max(v[m] for name, v in table.items() if name.startswith("cleanlab")) for m in wins}
        for metric, tally in wins.items():
            tally[0 if ours[metric] > best[metric] else 1 if ours[metric] == best[metric] else 2] += 1
        noise = "real" if args["dataset"] == "movies-raters" else f"{args['flip']:.0%}"
        lines.append(f"| {args['dataset']} | {noise} | {args['seed']} | {args['records']} | {ours['auroc']:.4f} | "
                     f"{best['auroc']:.4f} | {ours['precision@50']:.3f} | {best['precision@50']:.3f} |")
    lines += ["", *(f"label_issue {metric} vs cleanlab's best: above in {a}, tied in {t}, below in {b} of "
                    f"{a + t + b} cells" for metric, (a, t, b) in wins.items())]
    return lines


def _noisy_sample(dataset: str, records: int, flip: float, seed: int):
    """(true records, noisy records, ids of the wrong labels, labels) for one benchmark cell."""
    rng = random.Random(seed)
    if dataset == "movies-raters":
        ratings = load_movie_ratings()
        split = [p for p in load_movie_snippets() if len({r > 0 for r in ratings[p.id] if r != 0}) == 2]
        posts = rng.sample(split, records)
        noisy = []
        for post in posts:
            rater = rng.choice([r for r in ratings[post.id] if r != 0] or [1])
            noisy.append(replace(post, label=SENTIMENT_LABELS[int(rater > 0)]))
        wrong = {n.id for n, p in zip(noisy, posts, strict=True) if n.label != p.label}
        return posts, noisy, wrong, SENTIMENT_LABELS
    loaders = {"newsgroups": load_newsgroups, "reuters8": load_reuters8, "movies": lambda _: load_movie_snippets()}
    posts = rng.sample(loaders[dataset]("train"), records)
    labels = tuple(sorted({p.label for p in posts}))
    noisy, flipped = flip_labels(posts, fraction=flip, labels=labels, seed=seed)
    return posts, noisy, flipped, labels


def _cleanlab_rankings(ids: list[str], probs: np.ndarray, given: np.ndarray) -> dict[str, dict[str, float]]:
    """Scores where larger = more likely mislabelled (cleanlab's quality scores are inverted)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    rankings = {}
    for method, name in (("self_confidence", "cleanlab self-confidence"),
                         ("normalized_margin", "cleanlab normalized margin")):
        quality = get_label_quality_scores(given, probs, method=method)
        rankings[name] = {i: float(-q) for i, q in zip(ids, quality, strict=True)}
    issues = find_label_issues(given, probs, return_indices_ranked_by="self_confidence")
    flagged_rank = {ids[index]: float(len(issues) - position) for position, index in enumerate(issues)}
    rankings["cleanlab find_label_issues"] = {i: flagged_rank.get(i, -1.0) for i in ids}
    rankings["cleanlab find_label_issues"]["__flagged__"] = float(len(issues))
    return rankings


def _metrics(scores: dict[str, float], flipped: set[str]) -> dict:
    flagged = scores.pop("__flagged__", None)
    ranking = sorted(scores, key=lambda i: scores[i], reverse=True)
    result = {**{f"precision@{k}": precision_at(ranking, flipped, k) for k in (50, 200, 500)},
              "auroc": float(roc_auc_score([i in flipped for i in scores], list(scores.values())))}
    if flagged is not None:
        result["flagged"] = int(flagged)
    return result


if __name__ == "__main__":
    main()
