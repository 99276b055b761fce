"""The embedded default: local Argilla + offline demo data, no configuration needed."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from worker.demo_data import SENTIMENT_LABELS, flip_labels, load_movie_snippets
from worker.gateway import ArgillaGateway
from worker.local_argilla.settings import LocalArgillaSettings
from worker.local_argilla.stack import LocalArgilla

logger = logging.getLogger(__name__)

DEMO_DATASET = "movie-reviews-demo"


@dataclass(frozen=True)
class DemoSummary:
    url: str
    dataset: str
    records: int
    flipped: int


def run_demo(
    stack_settings: LocalArgillaSettings,
    *,
    records: int = 2000,
    flip_fraction: float = 0.1,
    seed: int = 0,
    dataset_name: str = DEMO_DATASET,
) -> DemoSummary:
    """Start the local stack, then log ``records`` movie snippets with a seeded fraction of labels flipped."""
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
    return DemoSummary(url=stack_settings.api_url, dataset=dataset_name, records=len(noisy),
                       flipped=len(flipped_ids))
