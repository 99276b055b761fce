"""Built-in plugin: extra uncertainty scores beyond BALD / entropy / margin.

Registered through the same entry-point group as third-party plugins. Config (``[plugins.heuristics]``):
``enabled = ["variation_ratio"]`` picks which scores are written (default: all below; a multi-label question
gets those of ``LABEL_SET_SCORERS``).
"""

from __future__ import annotations

import numpy as np

from worker.errors import ConfigError
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
    """The scores ``enabled`` names that ``scorers`` (one question kind's) has.

    Raises:
        ConfigError: ``enabled`` is not a list of names, or names a score neither kind has (a typo would
            otherwise write nothing, in silence).
    """
    enabled = context.plugin_config("heuristics").get("enabled", list(scorers))
    known = sorted({*SCORERS, *LABEL_SET_SCORERS})
    if not isinstance(enabled, list) or not all(isinstance(name, str) for name in enabled):
        raise ConfigError(f"plugins.heuristics.enabled = {enabled!r}: give a list of score names, e.g. "
                          f"[\"variation_ratio\"] (known: {', '.join(known)})")
    unknown = [name for name in enabled if name not in known]
    if unknown:
        raise ConfigError(f"plugins.heuristics.enabled names no score {', '.join(map(repr, unknown))} "
                          f"(known: {', '.join(known)})")
    return {name: scorers[name] for name in enabled if name in scorers}
