"""Near copies of one text: which records do the worker's MinHash groups find, and which does cleanlab?

Movie snippets (real, distinct texts) and, for a seeded share of them, one copy with one edit that keeps the
meaning, as templated, re-posted or re-typed records differ (:func:`benchmarks.duplicates.edited`: a word
replaced or dropped, two letters swapped, a ticket number before it, a signature after it). Compared:

  worker s             worker.duplicates.copy_keys at copies.similarity s (5-character pieces, MinHash + LSH)
  exact copies         the text key alone (copies.similarity = 1: case, spacing and Unicode forms aside)
  cleanlab             Datalab's near_duplicate issue on the offline MiniLM's mean-pooled embeddings (cold start's
                       encoder), its default threshold

Per method: the share of (snippet, its edited copy) pairs found (grouped / listed as near duplicates), per kind
of edit; precision and recall of "this record has a near copy" over all records; distinct snippets wrongly put
with another distinct snippet; seconds.

    python benchmarks/near_copies.py [--seed S]     # 3,000 snippets + 600 copies: ≈ 2 min on 2 cores

Writes benchmarks/results/near_copies-s<seed>.{json,md}.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import movie_split, write_results
from benchmarks.duplicates import EDITS, edited
from worker.coldstart import embed
from worker.duplicates import copy_keys
from worker.offline_assets import MINILM_MODEL, fetch

SIMILARITIES = (0.5, 0.6, 0.7, 0.8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snippets", type=int, default=3000)
    parser.add_argument("--copied", type=float, default=0.2, help="the share of snippets given one edited copy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-cleanlab", action="store_true", help="skip the embeddings and cleanlab")
    args = parser.parse_args()
    snippets, _ = movie_split(train=args.snippets, test=0, seed=args.seed)
    rng = random.Random(args.seed)
    texts = [snippet.text for snippet in snippets]
    chosen = rng.sample(range(len(texts)), round(len(texts) * args.copied))
    pairs = []  # (position of the snippet, position of its copy, kind of edit)
    for number, original in enumerate(chosen):
        kind = EDITS[number % len(EDITS)]
        pairs.append((original, len(texts), kind))
        texts.append(edited(texts[original], rng, kind))
    results = {}
    for similarity in (*SIMILARITIES, 1.0):
        started = time.perf_counter()
        keys = copy_keys([(text, None) for text in texts], similarity)
        groups = defaultdict(set)
        for position, key in enumerate(keys):
            groups[key].add(position)
        name = "exact copies" if similarity == 1.0 else f"worker {similarity:g}"
        results[name] = judge([groups[key] - {position} for position, key in enumerate(keys)], pairs,
                              args.snippets, time.perf_counter() - started)
    if not args.no_cleanlab:
        results.update(cleanlab_near_duplicates(texts, pairs, args.snippets))
    lines = report(results, args, len(texts))
    write_results(f"near_copies-s{args.seed}", {"args": vars(args), "records": len(texts), "results": results},
                  lines)


CLEANLAB_THRESHOLDS = (0.13, 0.3, 0.5)  # Datalab's default, and two looser ones (a radius × the median distance)


def cleanlab_near_duplicates(texts: list[str], pairs, snippets: int) -> dict:
    """Datalab's near_duplicate sets on mean-pooled MiniLM embeddings at each of :data:`CLEANLAB_THRESHOLDS` (the
    embedding pass is counted in the seconds of each)."""
    from cleanlab import Datalab

    started = time.perf_counter()
    vectors = embed(texts, str(fetch(MINILM_MODEL)), batch_size=64, device="auto", max_length=128)  # [N, 384]
    embedded = time.perf_counter() - started
    results = {}
    for threshold in CLEANLAB_THRESHOLDS:
        started = time.perf_counter()
        lab = Datalab(data={"text": texts}, verbosity=0)
        lab.find_issues(features=vectors, issue_types={"near_duplicate": {"threshold": threshold}})
        sets = lab.get_info("near_duplicate")["near_duplicate_sets"]
        name = f"cleanlab (MiniLM), threshold {threshold:g}" + (" (default)" if threshold == 0.13 else "")
        results[name] = judge([set(map(int, members)) for members in sets], pairs, snippets,
                              embedded + time.perf_counter() - started)
    return results


def judge(near: list[set[int]], pairs, snippets: int, seconds: float) -> dict:
    """``near`` [N]: the positions each record is put with. Pair recall per kind of edit, record-level precision /
    recall of "has a near copy", distinct snippets put with another distinct snippet."""
    truth = {position for original, copy, _ in pairs for position in (original, copy)}
    flagged = {position for position, others in enumerate(near) if others}
    found = defaultdict(list)
    for original, copy, kind in pairs:
        found[kind].append(copy in near[original] or original in near[copy])
    merged = sum(any(other < snippets for other in near[position]) for position in range(snippets))
    return {"pairs_found": {kind: float(np.mean(hits)) for kind, hits in found.items()},
            "pairs_found_all": float(np.mean([hit for hits in found.values() for hit in hits])),
            "precision": len(flagged & truth) / len(flagged) if flagged else float("nan"),
            "recall": len(flagged & truth) / len(truth), "distinct_merged": merged, "seconds": seconds}


def report(results: dict, args, records: int) -> list[str]:
    lines = [(f"Near copies — {args.snippets:,} movie snippets + {records - args.snippets:,} copies with one edit "
              f"({records:,} records), seed {args.seed}"), "",
             ("| method | pairs found | " + " | ".join(EDITS) + " | precision | recall | distinct snippets merged | "
              "s |"), "|---|" + "---:|" * (len(EDITS) + 5)]
    for name, figure in results.items():
        cells = " | ".join(f"{figure['pairs_found'][kind]:.3f}" for kind in EDITS)
        lines.append(f"| {name} | {figure['pairs_found_all']:.3f} | {cells} | {figure['precision']:.3f} | "
                     f"{figure['recall']:.3f} | {figure['distinct_merged']} | {figure['seconds']:.1f} |")
    return lines


if __name__ == "__main__":
    main()
