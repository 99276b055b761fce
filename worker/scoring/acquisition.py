"""Batch-aware acquisition: a sort key whose top k is a *diverse* batch, not k near-duplicates.

Sorting by BALD and annotating the top k picks records the model is unsure about for the same reason
(near-duplicates). Stochastic power sampling (Kirsch et al., "Stochastic Batch Acquisition", 2021/2023)
draws the batch instead: record i is picked with probability ∝ BALDᵢ^β, without replacement. With the
Gumbel-top-k trick that draw is a plain sort key, independent per record — so it streams like every other
score (O(1) per record, no pass over the dataset):

    bald_power = β · log(BALD) + G,    G ~ Gumbel(0, 1)

Sorting by ``bald_power`` descending and taking the top k is exactly a draw of k records without
replacement with probabilities ∝ BALD^β. The noise is seeded by (record id, acquisition round): stable
while the model stays the same, redrawn when a new model scores (a new round).
"""

from __future__ import annotations

import hashlib
import math

from worker.constants import PROBABILITY_FLOOR


def gumbel_noise(record_id: str, round_key: str) -> float:
    """A standard Gumbel draw, deterministic in (``record_id``, ``round_key``)."""
    digest = hashlib.blake2b(f"{round_key}\x00{record_id}".encode(), digest_size=8).digest()
    uniform = (int.from_bytes(digest, "big") + 0.5) / 2.0**64  # in (0, 1)
    return -math.log(-math.log(uniform))


def power_key(score: float, record_id: str, round_key: str, *, beta: float = 1.0) -> float:
    """The power-sampling sort key of one record: β·log(score) + Gumbel noise (higher = pick first).

    Raises:
        ValueError: ``beta`` is negative or ``score`` is negative or not finite.
    """
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if not math.isfinite(score) or score < 0:
        raise ValueError(f"record {record_id!r}: score {score!r} must be a finite number >= 0")
    return beta * math.log(max(score, PROBABILITY_FLOOR)) + gumbel_noise(record_id, round_key)
