"""Records unlike the rest: does cold start's ``outlier_score`` put them first?

A pool of movie snippets (the dataset's real records) with strays mixed in, as a scraped or exported dataset has
them: posts from 20 Newsgroups (another topic and register), template debris (cookie banners, "page not found",
navigation text) and texts in other languages. Every record is embedded once with the offline MiniLM (cold start's
encoder, mean-pooled); compared on the same embeddings:

  outlier_score                the worker's: mean distance to the k nearest others, vectors scaled to length 1
  the same on raw vectors      without the scaling (tried first, not landed: long texts sit near the origin together)
  cleanlab OutOfDistribution   cleanlab.outlier.OutOfDistribution(features=…) (its own k and transform)
  text length                  |length − median| (the cheap heuristic: debris is short, posts are long)

AUROC and precision@50 for "this record is a stray", overall and per kind of stray.

    python benchmarks/outliers.py [--seed S]       # 1,000 snippets + 60 strays: ≈ 1 min on 2 cores

Writes benchmarks/results/outliers-s<seed>.{json,md}.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import movie_split, precision_at, write_results
from worker.coldstart import embed, neighbour_distance, outlier_scores
from worker.demo_data import load_newsgroups
from worker.offline_assets import MINILM_MODEL, fetch

DEBRIS = ("We use cookies to improve your experience. Accept all cookies", "404 - page not found",
          "Home | About us | Contact | Privacy policy", "Click here to subscribe to our newsletter",
          "Loading...", "Share on Facebook Share on Twitter", "Copyright 2024 All rights reserved",
          "JavaScript is disabled in your browser", "Sign in to continue", "Read more >>")
OTHER_LANGUAGES = ("Ein wunderbarer Film mit großartigen Schauspielern", "Una película aburrida y demasiado larga",
                   "Un film magnifique, je le recommande à tous", "Il peggior film che abbia mai visto",
                   "Een prachtige film over vriendschap", "Film ten był zupełnie nudny",
                   "とても面白い映画でした", "这部电影非常感人", "Очень скучный фильм", "Um filme lindo e emocionante")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snippets", type=int, default=1000)
    parser.add_argument("--posts", type=int, default=40)
    parser.add_argument("--neighbours", type=int, default=20, help="cold start's k (ColdStartSettings.neighbours)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    snippets, _ = movie_split(train=args.snippets, test=0, seed=args.seed)
    posts = random.Random(args.seed).sample(load_newsgroups("test"), args.posts)
    pool = ([(s.text, "snippet") for s in snippets] + [(p.text[:600], "newsgroup post") for p in posts]
            + [(text, "debris") for text in DEBRIS] + [(text, "other language") for text in OTHER_LANGUAGES])
    texts, kinds = [text for text, _ in pool], np.array([kind for _, kind in pool])
    vectors = embed(texts, str(fetch(MINILM_MODEL)), device="cpu")  # [N, 384]
    lengths = np.array([len(text) for text in texts], dtype=float)
    scores = {"outlier_score (worker: unit vectors)": outlier_scores(vectors, args.neighbours),
              "the same on the raw vectors (not landed)": neighbour_distance(vectors, args.neighbours),
              "cleanlab OutOfDistribution": _cleanlab(vectors),
              "text length, distance from the median": np.abs(lengths - np.median(lengths))}
    table = {name: _metrics(score, kinds) for name, score in scores.items()}
    strays = sorted(set(kinds) - {"snippet"})
    lines = [(f"Records unlike the rest — {args.snippets} movie snippets + {len(kinds) - args.snippets} strays "
             f"({', '.join(f'{(kinds == kind).sum()} {kind}' for kind in strays)}); offline MiniLM embeddings, "
             f"k = {args.neighbours}; {time.perf_counter() - started:.0f} s"), "",
             "| score | AUROC, all strays | precision@50 | " + " | ".join(f"AUROC, {kind}" for kind in strays) + " |",
             "|---|---:|---:|" + "---:|" * len(strays),
             *(f"| {name} | {cell['auroc']:.4f} | {cell['precision@50']:.3f} | "
               + " | ".join(f"{cell['by_kind'][kind]:.4f}" for kind in strays) + " |" for name, cell in table.items())]
    write_results(f"outliers-s{args.seed}", {"args": vars(args), "table": table}, lines)


def _cleanlab(vectors: np.ndarray) -> np.ndarray:
    from cleanlab.outlier import OutOfDistribution

    return -OutOfDistribution().fit_score(features=vectors)  # its score is high for typical records: negate


def _metrics(score: np.ndarray, kinds: np.ndarray) -> dict:
    stray = kinds != "snippet"
    ranking = [str(index) for index in np.argsort(-score, kind="stable")]
    by_kind = {kind: float(roc_auc_score(stray[(kinds == kind) | ~stray], score[(kinds == kind) | ~stray]))
               for kind in set(kinds) - {"snippet"}}
    return {"auroc": float(roc_auc_score(stray, score)),
            "precision@50": precision_at(ranking, {str(i) for i in np.flatnonzero(stray)}, 50), "by_kind": by_kind}


if __name__ == "__main__":
    main()
