"""The embedded default: local Argilla + offline demo data + the offline MiniLM, no configuration needed.

Starts the stack, ingests movie-review snippets with a seeded fraction of labels flipped,
fine-tunes MiniLM briefly on the (noisy) labels, scores every record with MC dropout, pushes
suggestions and metadata, and reports how many flipped labels the loss ranking puts on top.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from worker.demo_data import SENTIMENT_LABELS, flip_labels, load_movie_snippets
from worker.gateway import ArgillaGateway
from worker.local_argilla.settings import LocalArgillaSettings
from worker.local_argilla.stack import LocalArgilla
from worker.offline_assets import MINILM_MODEL, cache_root, fetch
from worker.predictions import prediction_from_score
from worker.scoring import Scorer, ScoringInput, load_classifier
from worker.training import fine_tune

logger = logging.getLogger(__name__)

DEMO_DATASET = "movie-reviews-demo"
TOP_K = 50


@dataclass(frozen=True)
class DemoSummary:
    url: str
    dataset: str
    records: int
    flipped: int
    model_version: str | None = None
    pushed: int = 0
    flipped_in_top: int | None = None
    top_k: int = TOP_K


def run_demo(
    stack_settings: LocalArgillaSettings,
    *,
    records: int = 2000,
    flip_fraction: float = 0.1,
    seed: int = 0,
    dataset_name: str = DEMO_DATASET,
    score: bool = True,
    epochs: int = 2,
    learning_rate: float = 1e-4,
    mc_samples: int = 20,
    mc_layers: int | str = 1,
) -> DemoSummary:
    """Run the demo; with ``score=False`` stop after logging the records."""
    LocalArgilla(stack_settings).up()
    snippets = load_movie_snippets()
    sample = random.Random(seed).sample(snippets, min(records, len(snippets)))
    noisy, flipped_ids = flip_labels(sample, fraction=flip_fraction, labels=SENTIMENT_LABELS, seed=seed)
    gateway = ArgillaGateway(
        api_url=stack_settings.api_url,
        api_key=stack_settings.api_key.get_secret_value(),
        dataset_name=dataset_name,
        workspace=stack_settings.workspace,
    )
    gateway.ensure_dataset(SENTIMENT_LABELS)
    gateway.log_labelled_texts(noisy)
    logger.info("demo dataset %s: %d records, %d labels flipped (seed %d)", dataset_name, len(noisy),
                len(flipped_ids), seed)
    summary = DemoSummary(url=stack_settings.api_url, dataset=dataset_name, records=len(noisy),
                          flipped=len(flipped_ids))
    if not score:
        return summary

    model_key = f"minilm-{dataset_name}-n{len(noisy)}-f{flip_fraction}-s{seed}-e{epochs}-lr{learning_rate:g}"
    model_dir = cache_root() / "demo-models" / model_key
    if not (model_dir / "config.json").exists():
        fine_tune(fetch(MINILM_MODEL), noisy, SENTIMENT_LABELS, model_dir, epochs=epochs, seed=seed,
                  learning_rate=learning_rate)
    version = f"demo-minilm-e{epochs}-s{seed}"
    scorer = Scorer(load_classifier(model_dir, version=version), samples=mc_samples, mc_layers=mc_layers, seed=seed)
    current = {record.record_id: record for record in gateway.pull()}
    scores = scorer.score(ScoringInput(r.record_id, r.text, r.metadata.get("original_label"))
                          for r in current.values())
    predictions = [prediction_from_score(s, version) for s in scores if not s.skipped]
    report = gateway.push(predictions, current=current)
    ranked = sorted((p for p in predictions if "loss" in p.metadata), key=lambda p: p.metadata["loss"], reverse=True)
    in_top = sum(prediction.record_id in flipped_ids for prediction in ranked[:TOP_K])
    logger.info("flipped labels among the top %d by loss: %d (%.0f%% of all labels were flipped)", TOP_K, in_top,
                100 * flip_fraction)
    return DemoSummary(url=summary.url, dataset=dataset_name, records=len(noisy), flipped=len(flipped_ids),
                       model_version=version, pushed=report.sent + report.unchanged, flipped_in_top=in_top)
