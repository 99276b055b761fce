"""Built-in plugin: extra uncertainty scores beyond BALD / entropy / margin.

Registered through the same entry-point group as third-party plugins. Config (``[plugins.heuristics]``):
``enabled = ["variation_ratio"]`` picks which scores are written (default: all below; a multi-label question
gets those of ``LABEL_SET_SCORERS``).
"""

from __future__ import annotations

import numpy as np

from worker.plugins import WorkerContext, hookimpl
from worker.scoring.uncertainty import variation_ratio

SCORERS = {
    # 1 − share of MC samples voting for the modal class: [N, C, T] → [N]
    "variation_ratio": variation_ratio,
    # mean over classes of the variance over samples: [N, C, T] → [N]
    "mc_variance": lambda mc_probs: np.asarray(mc_probs).var(axis=2).mean(axis=1),
}


LABEL_SET_SCORERS = {
    # mean over labels of the variance over samples of each label's probability: [N, L, T] → [N]
    "mc_variance": lambda mc_probs: np.asarray(mc_probs).var(axis=2).mean(axis=1),
}


@hookimpl
def register_scorers(context: WorkerContext):
    return _enabled(context, SCORERS)


@hookimpl
def register_label_set_scorers(context: WorkerContext):
    return _enabled(context, LABEL_SET_SCORERS)


def _enabled(context: WorkerContext, scorers: dict) -> dict:
    enabled = context.plugin_config("heuristics").get("enabled", list(scorers))
    return {name: scorers[name] for name in enabled if name in scorers}
