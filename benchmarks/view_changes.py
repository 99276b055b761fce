"""After a real retrain: how many pushes "push what changes the view" saves, and what it costs the order.

Two MiniLM models on the offline movie snippets — the first fine-tuned on ``--first`` examples, the second
the first retrained on ``--second`` new ones (the worker's retrain from the current model) — score the same
``--records`` held-out snippets against their labels (MC dropout, the worker's default scorer settings). The first
model's values are what Argilla holds; its quantiles are those the last full run stored (``worker.view``). For each
tolerance and exact top, the retrained model's predictions go through ``ViewTolerance.keeps_view``: a kept record
shows its old values, the others the new ones. Reported against the exact view (every record pushed):

  * pushes saved (share of records kept);
  * the top 500 by loss (descending) — overlap with the exact top 500, and Kendall τ between the two orders
    over the exact top 500;
  * Kendall τ over the whole order by loss and by BALD.

    python benchmarks/view_changes.py      # 3,000 records; 4,000 examples, then 1,000 more
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import finetuned_minilm, movie_split, write_results
from worker.config import ScoringSettings
from worker.demo_data import SENTIMENT_LABELS
from worker.jobs import adaptive_sampling
from worker.logging_setup import configure_logging
from worker.offline_assets import cache_root
from worker.predictions import prediction_from_score
from worker.records import PulledRecord, SuggestionState
from worker.scoring import Scorer, ScoringInput, load_classifier
from worker.training.finetune import fine_tune
from worker.view import QuantileSketch, ViewTolerance, new_values

logger = logging.getLogger("benchmarks.view_changes")
TOP = 500


def _predictions(model_dir: Path, version: str, texts: list[str], labels: list[str]) -> list:
    settings = ScoringSettings()
    scorer = Scorer(load_classifier(model_dir, device="cpu", version=version), samples=settings.samples,
                    adaptive=adaptive_sampling(settings), progress=False)
    scores = scorer.score(ScoringInput(str(i), text, label) for i, (text, label) in enumerate(zip(texts, labels,
                                                                                                  strict=True)))
    return [prediction_from_score(score, version, policy="model") for score in scores]


def retrained(first_model: Path, more: list) -> Path:
    """The worker's retrain (``training.start_from = "current"``): the current model trained on new labels."""
    target = cache_root() / "benchmark-models" / f"{first_model.name}-then-n{len(more)}"
    if (target / "config.json").exists():
        return target
    return fine_tune(first_model, more, SENTIMENT_LABELS, target, epochs=1, max_length=64, batch_size=32,
                     learning_rate=5e-5, seed=0, device="auto")


def _stored(prediction) -> PulledRecord:
    return PulledRecord(f"s{prediction.record_id}", prediction.record_id, "", dict(prediction.metadata),
                        SuggestionState(prediction.label, prediction.agent, prediction.score), (), None)


def _compare(shown: np.ndarray, exact: np.ndarray) -> dict:
    """Order by ``shown`` vs by ``exact`` (both [N], descending): top-500 overlap, τ over the exact top, τ overall."""
    exact_top = np.argsort(-exact, kind="stable")[:TOP]
    shown_top = np.argsort(-shown, kind="stable")[:TOP]
    return {"top_overlap": len(set(exact_top) & set(shown_top)) / TOP,
            "top_tau": float(kendalltau(shown[exact_top], exact[exact_top]).statistic),
            "tau": float(kendalltau(shown, exact).statistic)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--first", type=int, default=4000, help="examples the first model was trained on")
    parser.add_argument("--second", type=int, default=1000, help="new examples the retrain adds")
    parser.add_argument("--tolerances", type=float, nargs="+", default=[0.01, 0.02, 0.05, 0.1])
    parser.add_argument("--exact-tops", type=int, nargs="+", default=[0, 500])
    args = parser.parse_args()
    configure_logging("INFO")

    train, held_out = movie_split(train=args.first + args.second, test=args.records, seed=0)
    first_model = finetuned_minilm(train[:args.first])
    second_model = retrained(first_model, train[args.first:])
    texts, labels = [r.text for r in held_out], [r.label for r in held_out]
    assert set(labels) <= set(SENTIMENT_LABELS)
    old = _predictions(first_model, "v1", texts, labels)
    new = _predictions(second_model, "v2", texts, labels)
    sketch = QuantileSketch()
    for prediction in old:
        sketch.add(new_values(prediction))
    quantiles = sketch.quantiles()
    stored = [_stored(p) for p in old]
    exact_loss = np.array([p.metadata["loss"] for p in new])
    exact_bald = np.array([p.metadata["bald"] for p in new])
    rows = []
    for exact_top in args.exact_tops:
        for tolerance in args.tolerances:
            rule = ViewTolerance(rank_tolerance=tolerance, exact_top=exact_top)
            reasons = [rule.push_reason(record, prediction, quantiles)
                       for record, prediction in zip(stored, new, strict=True)]
            kept = np.array([reason is None for reason in reasons])
            why = {reason: sum(str(r).startswith(reason) for r in reasons) / len(reasons)
                   for reason in ("label", "value", "top", "rank")}
            by_key = Counter(str(r).split()[1] for r in reasons if str(r).startswith("rank"))
            shown_loss = np.where(kept, [p.metadata["loss"] for p in old], exact_loss)
            shown_bald = np.where(kept, [p.metadata["bald"] for p in old], exact_bald)
            by_loss, by_bald = _compare(shown_loss, exact_loss), _compare(shown_bald, exact_bald)
            rows.append({"exact_top": exact_top, "tolerance": tolerance, "saved": float(kept.mean()),
                         **{f"pushed_for_{reason}": share for reason, share in why.items()},
                         "first_rank_key": {key: count / len(reasons) for key, count in by_key.most_common()},
                         **{f"loss_{k}": v for k, v in by_loss.items()}, "bald_tau": by_bald["tau"],
                         "bald_top_overlap": by_bald["top_overlap"]})
            logger.info("%s", rows[-1])
    changed_labels = float(np.mean([a.label != b.label for a, b in zip(old, new, strict=True)]))
    title = (f"Push what changes the view: {args.records} held-out movie snippets, MiniLM fine-tuned on {args.first} "
             f"examples then retrained on {args.second} more ({changed_labels:.1%} of suggested labels changed)")
    header = ("| exact top | rank tolerance | pushes saved | top-500 by loss: overlap | τ in top 500 | τ by loss | "
              "τ by BALD | top-500 by BALD: overlap | pushed for label / value / top / rank | rank: first key moved |")
    lines = [title, "", header, "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        reasons = " / ".join(f"{r[f'pushed_for_{reason}']:.0%}" for reason in ("label", "value", "top", "rank"))
        keys = ", ".join(f"{key} {share:.0%}" for key, share in list(r["first_rank_key"].items())[:3])
        lines.append(f"| {r['exact_top']} | {r['tolerance']:g} | {r['saved']:.1%} | {r['loss_top_overlap']:.3f} | "
                     f"{r['loss_top_tau']:.3f} | {r['loss_tau']:.3f} | {r['bald_tau']:.3f} | "
                     f"{r['bald_top_overlap']:.3f} | {reasons} | {keys} |")
    write_results("view_changes", {"rows": rows, "changed_labels": changed_labels}, lines)


if __name__ == "__main__":
    main()
