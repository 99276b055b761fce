"""Adaptive MC dropout: draw samples in rounds and stop sampling a record once its estimates have settled.

Most records of a real pool are confident: their MC samples agree after a few passes and further
samples change nothing that is ranked or shown. :func:`sequential_samples` draws ``round_size``
samples of every record still sampling, checks each record, and keeps only the unsettled ones for the
next round, up to ``samples`` in all.

The stopping rule (:meth:`AdaptiveSampling.settled`) bounds the standard error of the two estimates
the worker ranks records by, from the samples drawn so far (``t`` of them):

- the **expected loss** is a plain mean of per-sample losses ℓ_s = −log p_s(y), so its standard
  error is std_s(ℓ_s) / √t (only for records with a reference label);
- **BALD**, the mutual information, is exactly the mean over samples of KL(p_s ‖ p̄) where p̄ is the
  mean distribution; with p̄ held fixed (the first-order, delta-method approximation) its standard
  error is std_s(KL(p_s ‖ p̄)) / √t.

A record settles when BALD's standard error is at most ``bald_rse`` times its BALD estimate (a
*relative* bound: BALD spans orders of magnitude, and the ranks among the many small values count as
much for a ranking as those at the top) and the expected loss's at most ``loss_se`` nats (an
absolute bound: the loss is already on a log scale). This is sound in the usual sequential-estimation
sense: what is left of a record's estimate after it stops is sampling noise of that size, small beside
the gaps between records that matter for the ranking (the tolerances are chosen by measurement:
``benchmarks/scoring.py --adaptive-sweep``). A split record (samples that disagree) has a large spread
and runs to ``samples``; a confident one whose samples agree (spread ~0) stops at the first check.
The rule needs ≥ 2 samples per check (a spread), so ``round_size`` ≥ 2.

Label sets (a multi-label model, per-label probabilities): the record's BALD is its most doubtful label's
(the max over labels of each label's Bernoulli BALD, :mod:`worker.scoring.multilabel`), and its standard
error is bounded by the largest of the labels' (each label's BALD is again a mean divergence from the mean,
KL between Bernoullis, so its standard error is computed as above; the max over labels cannot move by more
than the most uncertain label lets it); the expected loss is the mean over samples of the least plausible
label decision's loss, max_l BCE(p_l^t, y_l), a plain mean again. An alternative rule — stop
once the remaining samples could not overturn the predicted label — was not taken: it protects the
argmax, not the BALD and loss ranks the UI sorts by.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from worker.constants import LOG_FLOOR, PROBABILITY_FLOOR

# Nats of BALD's standard error below which a record counts as settled whatever its BALD (float32 noise).
BALD_FLOOR = 1e-6


@dataclass(frozen=True)
class AdaptiveSampling:
    """When a record stops sampling (see the module docstring).

    Args:
        round_size: samples drawn per round, before each check (≥ 2).
        bald_rse: settle once the standard error of BALD is at most this fraction of BALD …
        loss_se: … and that of the expected loss at most this (nats; records with a reference label).

    The defaults live in the config (``[scoring] adaptive_*``), chosen by measurement.
    """

    round_size: int
    bald_rse: float
    loss_se: float

    def __post_init__(self):
        if self.round_size < 2:
            raise ValueError(f"round_size must be >= 2 (a standard error needs two samples), got {self.round_size}")
        if self.bald_rse < 0 or self.loss_se < 0:
            raise ValueError(f"tolerances must be >= 0, got bald_rse={self.bald_rse}, loss_se={self.loss_se}")

    def settled(self, log_probs: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """log_probs: [t, n, C] log-probabilities of the samples so far; reference: [n] class index, −1 for none
        → [n] bool. Label sets: log_probs [t, n, L] per-label log-sigmoids; reference [n, L] 0/1 membership of
        each label in the set under review, a row of −1 for none."""
        if reference.dim() == 2:
            bald, bald_se, loss_se = label_set_standard_errors(log_probs, reference)
            judged = reference[:, 0] >= 0
        else:
            bald, bald_se, loss_se = standard_errors(log_probs, reference)
            judged = reference >= 0
        return (bald_se <= self.bald_rse * bald + BALD_FLOOR) & (~judged.to(bald.device) | (loss_se <= self.loss_se))


def standard_errors(log_probs: torch.Tensor, reference: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BALD, and the standard errors of BALD and of the expected loss, from t samples (see the module docstring).

    Args:
        log_probs: [t, n, C] log-probabilities of t ≥ 2 MC samples.
        reference: [n] class index of the label under review, −1 where there is none.

    Returns:
        three [n] tensors, float32: BALD, its standard error, the expected loss's (0 where ``reference`` is −1).
    """
    samples = log_probs.shape[0]
    log_p = log_probs.float().clamp_min(LOG_FLOOR)
    p = log_p.exp()
    log_mean = p.mean(dim=0).clamp_min(PROBABILITY_FLOOR).log()  # [n, C]
    kl = (p * (log_p - log_mean)).sum(dim=-1)  # [t, n]: BALD = kl.mean(0)
    bald_se = kl.std(dim=0) / math.sqrt(samples)
    index = reference.clamp_min(0).view(1, -1, 1).expand(samples, -1, 1).to(log_p.device)
    losses = -log_p.gather(2, index).squeeze(-1)  # [t, n]
    loss_se = torch.where(reference.to(log_p.device) >= 0, losses.std(dim=0) / math.sqrt(samples), 0.0)
    return kl.mean(dim=0), bald_se, loss_se


def label_set_standard_errors(log_probs: torch.Tensor, reference: torch.Tensor
                              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`standard_errors` for label sets (see the module docstring).

    Args:
        log_probs: [t, n, L] per-label log-probabilities (log-sigmoids) of t ≥ 2 MC samples.
        reference: [n, L] (L ≥ 1) 1 where the label is in the set under review, else 0; a row of −1 where there
            is none.

    Returns:
        three [n] tensors, float32: the most doubtful label's BALD, the largest of the labels' BALD standard
        errors, the expected loss's standard error (0 where there is no reference set).
    """
    samples = log_probs.shape[0]
    log_p = log_probs.double().clamp(LOG_FLOOR, 0.0)  # float64: p and 1 − p both near 0 must stay apart
    log_q = torch.log(-torch.expm1(log_p)).clamp_min(LOG_FLOOR)  # log(1 − p), precise where p is near 1
    p, q = log_p.exp(), log_q.exp()
    log_mean = p.mean(dim=0).clamp_min(PROBABILITY_FLOOR).log()
    log_mean_q = q.mean(dim=0).clamp_min(PROBABILITY_FLOOR).log()
    kl = p * (log_p - log_mean) + q * (log_q - log_mean_q)  # [t, n, L]: each label's BALD = kl.mean(0)
    bald = kl.mean(dim=0).amax(dim=-1)
    bald_se = (kl.std(dim=0) / math.sqrt(samples)).amax(dim=-1)
    reference = reference.to(log_p.device)
    losses = -torch.where(reference > 0, log_p, log_q).amin(dim=-1)  # [t, n]: the least plausible decision's
    loss_se = torch.where(reference[:, 0] >= 0, losses.std(dim=0) / math.sqrt(samples), 0.0)
    return bald.float(), bald_se.float(), loss_se.float()


# draw(rows, start, count) → log-probabilities [count, len(rows), C] of samples start … start + count − 1
SampleSource = Callable[[torch.Tensor, int, int], torch.Tensor]


def sequential_samples(draw: SampleSource, rows: int, samples: int, rule: AdaptiveSampling,
                       reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw up to ``samples`` MC samples per row, in rounds, dropping the rows that settled after each round.

    Args:
        draw: gives samples ``start … start + count − 1`` of the given rows (row indices [n], int64, ascending).
        rows: how many rows (records) the batch has.
        samples: T, the most samples a row gets.
        rule: the round size and the stopping rule.
        reference: [rows] class index of each row's label under review, −1 for none.

    Returns:
        ``log_probs`` [rows, C, samples], NaN past each row's last sample, and ``used`` [rows] int64, the
        samples each row got (a multiple of ``rule.round_size``, or ``samples``).

    Cost: O(Σ rows still sampling × round_size) forward samples; memory O(rows × samples × C).
    """
    active = torch.arange(rows)
    used = torch.zeros(rows, dtype=torch.int64)
    drawn: list[tuple[torch.Tensor, torch.Tensor]] = []  # (rows, [count, n, C]) per round
    taken = 0
    stack: torch.Tensor | None = None  # [taken, active, C] samples of the rows still sampling
    while taken < samples and active.numel():
        count = min(rule.round_size, samples - taken)
        new = draw(active, taken, count)
        drawn.append((active, new))
        taken += count
        used[active] = taken
        stack = new if stack is None else torch.cat([stack, new], dim=0)
        if taken >= samples:
            break
        keep = ~rule.settled(stack, reference[active].to(new.device)).cpu()
        active, stack = active[keep], stack[:, keep.to(stack.device)]
    first = drawn[0][1]  # samples >= 1: at least one round ran
    out = torch.full((samples, rows, first.shape[-1]), float("nan"), dtype=torch.float32, device=first.device)
    start = 0
    for round_rows, new in drawn:
        out[start:start + new.shape[0], round_rows.to(out.device)] = new.float()
        start += new.shape[0]
    return out.permute(1, 2, 0).contiguous(), used
