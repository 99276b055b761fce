"""Every annotator's vote: weighted consensus and needs_another_label vs majority vote and cleanlab's CROWDLAB.

Movie snippets with their real per-rater ratings (15–29 people each, −4..4); the truth is the sign of the
mean rating. A pool of simulated annotators of different quality labels them: an annotator of quality q
answers, with probability q, like one of the snippet's real raters (a rating drawn at random; its sign —
so ambiguous snippets get real disagreement), otherwise at random; one more annotator is a spammer who always
answers "positive". Each snippet gets V annotators drawn at random from the pool. The model is the offline
MiniLM fine-tuned on 1,200 other snippets (the benchmark's shared model), its probabilities on the pool are
the model evidence; the worker sees only its predicted label and confidence (as stored on a record).

Compared, for V = 2 and V = 3 votes per record:

  majority vote            ties stay unresolved (as the worker does); accuracy counts a tie as a coin flip
  worker (weighted)        worker.crowd: annotator weights, weighted vote; ties stay ties (the default)
  worker, ties = resolve   the same, a tie decided by the posterior (annotator weights and the model)
  cleanlab CROWDLAB        cleanlab.multiannotator.get_label_quality_multiannotator (its consensus uses the
                           model's full probabilities and breaks ties)

and for finding the records whose consensus is wrong (where a further label is needed): the worker's
``needs_another_label``, cleanlab's ActiveLab score (``get_active_learning_scores``), and 1 − majority share;
precision@100 and AUROC, against two targets: the records whose *majority vote* is wrong (one target for all),
and the records whose *own* consensus is wrong — the label each method hands on (the worker's weighted
consensus, CROWDLAB's, the majority vote), which is what a further label would correct. A method whose consensus
already fixed a wrong majority is not asked to flag that record again. Annotator quality: Spearman correlation of
each method's estimated quality with the annotators' real accuracy.

    python benchmarks/multi_annotator.py            # 2,000 snippets, 3 seeds: ≈ 3 min on 2 CPU cores

Writes benchmarks/results/multi_annotator.{json,md}.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import finetuned_minilm, movie_split, precision_at, write_results
from worker.crowd import CrowdEstimator, needs_another_label, weighted_consensus
from worker.demo_data import SENTIMENT_LABELS, load_movie_ratings
from worker.logging_setup import configure_logging
from worker.records import PulledRecord, ResponseState, consensus
from worker.scoring import load_classifier
from worker.training.evaluate import predict_probabilities

logger = logging.getLogger("benchmarks.multi_annotator")

QUALITIES = (0.95, 0.9, 0.9, 0.8, 0.7, 0.6, 0.5, 0.3)  # the chance of answering like a real rater
SPAMMER = "spammer"  # always "positive"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--votes", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    configure_logging("INFO")
    started = time.perf_counter()
    train, pool = movie_split(train=1200, test=args.records, seed=0)
    classifier = load_classifier(finetuned_minilm(train), device=args.device, version="minilm-1200")
    probabilities = predict_probabilities(classifier, [r.text for r in pool], samples=1).deterministic  # [N, 2]
    truth = np.array([SENTIMENT_LABELS.index(r.label) for r in pool])  # [N]
    ratings = load_movie_ratings()
    model_accuracy = float((probabilities.argmax(1) == truth).mean())
    cells = {}
    for votes in args.votes:
        for seed in args.seeds:
            annotations = simulate(pool, ratings, votes=votes, seed=seed)
            cells[(votes, seed)] = compare(annotations, probabilities, truth, [r.id for r in pool])
            logger.info("V=%d seed %d: %s", votes, seed, cells[(votes, seed)]["accuracy"])
    lines = _report(cells, args, model_accuracy, time.perf_counter() - started)
    write_results("multi_annotator", {"args": vars(args), "model_accuracy": model_accuracy,
                                      "cells": {f"V{v}-s{s}": c for (v, s), c in cells.items()}}, lines)


def simulate(pool, ratings, *, votes: int, seed: int) -> dict[str, dict[str, int]]:
    """record id → {annotator: label index}: ``votes`` annotators per record drawn from the pool."""
    rng = random.Random(seed)
    annotators = [f"q{quality:.2f}-{index}" for index, quality in enumerate(QUALITIES)] + [SPAMMER]
    qualities = dict(zip(annotators, (*QUALITIES, None), strict=True))
    annotations: dict[str, dict[str, int]] = {}
    for record in pool:
        labels = {}
        for annotator in rng.sample(annotators, votes):
            quality = qualities[annotator]
            if quality is None:
                labels[annotator] = 1
            elif rng.random() < quality:
                rating = rng.choice(ratings[record.id])
                labels[annotator] = int(rating > 0) if rating != 0 else rng.randrange(2)
            else:
                labels[annotator] = rng.randrange(2)
        annotations[record.id] = labels
    return annotations


def compare(annotations: dict[str, dict[str, int]], probabilities: np.ndarray, truth: np.ndarray,
            ids: list[str]) -> dict:
    """Consensus accuracy, annotator-quality correlation and needs-another-label ranking of each method."""
    records = [_pulled(record_id, annotations[record_id], probabilities[index]) for index, record_id in enumerate(ids)]
    estimator = CrowdEstimator(SENTIMENT_LABELS)
    for record in records:
        estimator.add(record)
    crowd = estimator.estimate()
    rng = random.Random(0)
    resolving = replace(crowd, resolve_ties=True)
    majority, worker, resolved, need, share = [], [], [], [], []
    for record, probs in zip(records, probabilities, strict=True):
        plain, weighted = consensus(record), weighted_consensus(record, crowd, probs.tolist())
        majority.append(_label_or_coin(plain, rng))
        worker.append(_label_or_coin(weighted, rng))
        resolved.append(_label_or_coin(weighted_consensus(record, resolving, probs.tolist()), rng))
        need.append(needs_another_label(record, crowd, probs.tolist()))
        share.append(1 - plain.agreement if plain.label is not None else 1.0)
    crowdlab = _cleanlab(annotations, probabilities, ids)
    majority_wrong = np.array(majority) != truth  # [N]: where another label would have been needed
    own_wrong = {"worker needs_another_label": np.array(worker) != truth,  # [N] each: the method's own label
                 "cleanlab ActiveLab": crowdlab["consensus"] != truth, "1 − majority share": majority_wrong}
    scores_ = (("worker needs_another_label", need), ("cleanlab ActiveLab", -crowdlab["active_learning"]),
               ("1 − majority share", share))
    annotators = sorted({a for labels in annotations.values() for a in labels})
    real_accuracy = {a: np.mean([labels[a] == truth[i] for i, labels in enumerate(annotations[r] for r in ids)
                                 if a in labels]) for a in annotators}
    worker_quality = {a: crowd.annotators[a].quality for a in annotators}
    return {
        "accuracy": {"majority vote": float((np.array(majority) == truth).mean()),
                     "worker (weighted)": float((np.array(worker) == truth).mean()),
                     "worker (weighted, ties = resolve)": float((np.array(resolved) == truth).mean()),
                     "cleanlab CROWDLAB": float((crowdlab["consensus"] == truth).mean())},
        "ties": int(sum(consensus(r).label is None for r in records)),
        "quality_spearman": {
            "worker": float(spearmanr([worker_quality[a] for a in annotators],
                                      [real_accuracy[a] for a in annotators]).statistic),
            "cleanlab CROWDLAB": float(spearmanr([crowdlab["quality"][a] for a in annotators],
                                                 [real_accuracy[a] for a in annotators]).statistic)},
        "needs_another_label": {name: _ranking(np.array(scores), majority_wrong) for name, scores in scores_},
        "needs_another_label_own": {name: _ranking(np.array(scores), own_wrong[name]) for name, scores in scores_},
        "wrong": {"majority": int(majority_wrong.sum()), "worker": int(own_wrong["worker needs_another_label"].sum()),
                  "cleanlab CROWDLAB": int(own_wrong["cleanlab ActiveLab"].sum())},
        "weights": {a: crowd.weight(a) for a in annotators},
        "model_weight": crowd.model_weight,
        "model_temperature": crowd.model_temperature,
    }


def _pulled(record_id: str, labels: dict[str, int], probs: np.ndarray) -> PulledRecord:
    predicted = int(probs.argmax())
    return PulledRecord(record_id, record_id, "", {"predicted_label": SENTIMENT_LABELS[predicted],
                                                    "confidence": float(probs[predicted])}, None,
                        tuple(ResponseState(a, SENTIMENT_LABELS[v], "submitted") for a, v in labels.items()), None)


def _label_or_coin(verdict, rng: random.Random) -> int:
    """The verdict's label index; a tie is scored as a coin flip between the tied labels."""
    label = verdict.label if verdict.label is not None else rng.choice(verdict.tied_labels)
    return SENTIMENT_LABELS.index(label)


def _cleanlab(annotations: dict[str, dict[str, int]], probabilities: np.ndarray, ids: list[str]) -> dict:
    import pandas as pd
    from cleanlab.multiannotator import get_active_learning_scores, get_label_quality_multiannotator

    table = pd.DataFrame([annotations[r] for r in ids]).astype("float")  # [N, M], NaN: did not label
    result = get_label_quality_multiannotator(table, probabilities, verbose=False)
    active, _ = get_active_learning_scores(table, probabilities)
    quality = result["annotator_stats"]["annotator_quality"]
    return {"consensus": result["label_quality"]["consensus_label"].to_numpy(), "active_learning": active,
            "quality": {a: float(quality[a]) for a in table.columns}}


def _ranking(scores: np.ndarray, wrong: np.ndarray) -> dict:
    ranking = list(np.argsort(-scores, kind="stable"))
    return {"precision@100": precision_at(ranking, set(np.flatnonzero(wrong).tolist()), 100),
            "auroc": float(roc_auc_score(wrong, scores))}


def _report(cells: dict, args, model_accuracy: float, seconds: float) -> list[str]:
    def mean(get, digits: int = 4) -> str:
        values = [get(c) for c in by_votes]
        return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"

    lines = [(f"Multi-annotator consensus — movie snippets, {args.records} records, annotators of quality "
             f"{', '.join(map(str, QUALITIES))} + a spammer; model: MiniLM fine-tuned on 1,200 other snippets "
             f"(accuracy {model_accuracy:.3f}); seeds {args.seeds}; mean ± sd over seeds; {seconds:.0f} s"), ""]
    for votes in args.votes:
        by_votes = [c for (v, _), c in cells.items() if v == votes]
        lines += [(f"V = {votes} votes per record (ties of the majority: "
                  f"{np.mean([c['ties'] for c in by_votes]):.0f} records)"), "",
                  "| consensus | accuracy vs truth |", "|---|---:|",
                  *(f"| {name} | {mean(lambda c, n=name: c['accuracy'][n])} |" for name in by_votes[0]["accuracy"]),
                  "", "| annotator quality | Spearman ρ with real accuracy |", "|---|---:|",
                  *(f"| {name} | {mean(lambda c, n=name: c['quality_spearman'][n])} |"
                    for name in by_votes[0]["quality_spearman"]),
                  "", "| finding wrong majority labels | precision@100 | AUROC |", "|---|---:|---:|",
                  *(f"| {name} | {mean(lambda c, n=name: c['needs_another_label'][n]['precision@100'])} | "
                    f"{mean(lambda c, n=name: c['needs_another_label'][n]['auroc'])} |"
                    for name in by_votes[0]["needs_another_label"]), "",
                  "| finding each method's own wrong labels | wrong labels | precision@100 | AUROC |",
                  "|---|---:|---:|---:|",
                  *(f"| {name} | {mean(lambda c, w=wrong: c['wrong'][w], 0)} | "
                    f"{mean(lambda c, n=name: c['needs_another_label_own'][n]['precision@100'])} | "
                    f"{mean(lambda c, n=name: c['needs_another_label_own'][n]['auroc'])} |"
                    for name, wrong in (("worker needs_another_label", "worker"),
                                        ("cleanlab ActiveLab", "cleanlab CROWDLAB"),
                                        ("1 − majority share", "majority"))), ""]
    return lines


if __name__ == "__main__":
    main()
