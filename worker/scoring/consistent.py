"""Consistent MC dropout: sample t uses the same dropout masks for every record, in every batch.

BaaL's MC dropout draws fresh masks for each record and each pass, so a record's T samples depend on
the batch it happened to be scored in. Here the T samples are T fixed sub-networks, the same for the
whole pool (consistent MC dropout, as BatchBALD uses, Kirsch et al. 2019; BaaL's
``ConsistentDropout`` keeps masks per input shape, which variable text lengths and re-packed batches
break). Sample t's mask of a dropout layer is a function of (seed, layer, t) alone, over positions ×
features: a record gets the same samples whichever records share its batch and however long the
batch is padded (right padding), so

- adaptive sampling (:mod:`worker.scoring.adaptive`) that stops a record after t samples has exactly
  the first t samples that fixed T would have drawn for it: stopping early truncates the estimate,
  it does not re-draw it;
- scores are reproducible per record for a given model and seed.

Each record's T samples are still independent draws of the dropout posterior (a different mask per
t), so its MC estimates are unbiased as before; only the pairing across records changes.

Masks are generated lazily on the CPU (one generator per layer and sample, so a longer text extends
the masks without changing the part already drawn) and kept on the device: memory O(T × longest
text × hidden) booleans per dropout layer.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.nn import functional as F

logger = logging.getLogger(__name__)

# Mask rows are grown to a multiple of this many positions (fewer regenerations as longer texts come).
GROWTH = 64


class SampleWindow:
    """Which MC samples the next forward pass computes: samples ``start … start + count − 1``, stacked on
    the batch dimension (sample-major, as :meth:`MCPredictor._mc_logits` repeats the inputs)."""

    def __init__(self):
        self.start = 0
        self.count = 1
        # rows of the enlarged batch (count × records); None: any. A dropout input with another first dimension
        # is not the batch (DeBERTa drops out its relative-position embeddings [positions, hidden])
        self.rows: int | None = None


class ConsistentDropout(nn.Module):
    """Dropout whose mask for MC sample t is shared by all records (see the module docstring).

    Inputs [count × n, positions, features] or [count × n, features]; inputs of more dimensions
    (attention-probability dropout with eager attention), or whose first dimension is not the window's
    batch (a layer's own embeddings: DeBERTa's relative positions), fall back to ordinary per-element dropout.
    """

    def __init__(self, p: float, window: SampleWindow, *, samples: int, seed: int, salt: int):
        super().__init__()
        self.p = p
        self.window = window
        self.samples = samples
        self.seed = seed
        self.salt = salt
        self._masks: torch.Tensor | None = None  # [T, positions, features] bool, or [T, features]
        self._warned = False

    def set_rate(self, p: float) -> None:
        """A new dropout rate (the masks are drawn again)."""
        self.p = p
        self._masks = None

    def extra_repr(self) -> str:
        return f"p={self.p}, samples={self.samples}, salt={self.salt}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0:
            return x
        if x.dim() not in (2, 3) or self.window.rows not in (None, x.shape[0]):
            if not self._warned:
                logger.info("consistent MC dropout: input %s of dropout layer %d is not a batch of samples: masked "
                            "per element", tuple(x.shape), self.salt)
                self._warned = True
            return F.dropout(x, self.p, training=True)
        start, count = self.window.start, self.window.count
        rows = x.shape[0] // count
        masks = self._masks_for(x)[start:start + count]  # [count, (positions,) features]
        if x.dim() == 3:
            masks = masks[:, : x.shape[1]]
        scaled = masks.unsqueeze(1).to(x.dtype).mul_(1.0 / (1.0 - self.p))  # [count, 1, …]: n× smaller than x
        return (x.reshape(count, rows, *x.shape[1:]) * scaled).reshape(x.shape)

    def _masks_for(self, x: torch.Tensor) -> torch.Tensor:
        features = x.shape[-1]
        positions = x.shape[1] if x.dim() == 3 else None
        masks = self._masks
        fits = (masks is not None and masks.device == x.device and masks.shape[-1] == features
                and (positions is None) == (masks.dim() == 2)
                and (positions is None or masks.shape[1] >= positions))
        if masks is not None and fits:
            return masks
        rows = None if positions is None else -(-positions // GROWTH) * GROWTH
        self._masks = masks = self._generate(rows, features).to(x.device)
        return masks

    def _generate(self, positions: int | None, features: int) -> torch.Tensor:
        """[T, positions, features] (or [T, features]) keep-masks, one seeded generator per sample."""
        shape = (features,) if positions is None else (positions, features)
        generator = torch.Generator()
        masks = []
        for sample in range(self.samples):
            generator.manual_seed(((self.seed * 1_000_003 + self.salt) * 10_007 + sample) % 2**63)
            masks.append(torch.rand(shape, generator=generator) >= self.p)
        return torch.stack(masks)


def patch_consistent(module: nn.Module, window: SampleWindow, *, samples: int, seed: int) -> nn.Module:
    """Replace every ``nn.Dropout`` of ``module`` (in place) by a :class:`ConsistentDropout` sharing ``window``;
    each layer gets its own masks (salted by its order in the module)."""
    replaced = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Dropout):
                setattr(parent, name, ConsistentDropout(child.p, window, samples=samples, seed=seed, salt=replaced))
                replaced += 1
    return module
