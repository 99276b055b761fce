"""Head-only MC dropout for classifiers without any dropout module: Llama-style decoders (Llama, Qwen2, Mistral …).

Such a model's MC samples are all equal (nothing to sample), and full MC would run its whole trunk T times for
nothing. Here the trunk runs once per batch (the deterministic pass, without a KV cache); the hidden state of the
token the model pools — the last one that is not padding — then goes T times through a dropout and the model's own
head: the MC samples cost T tiny head products, and no copy of the model is made (its head is shared, untouched).

The pooling is the model's (transformers ≥ 4.48 ``...ForSequenceClassification``: the last position whose token is
not ``config.pad_token_id``, else the last position); before it is used, :meth:`DecoderHead.replay_mismatch` checks
that trunk → pooled state → head reproduces the model's own logits on a probe batch, else the model gets full MC.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

HEAD_NAME = "score"  # where transformers' decoder classifiers keep their head


def without_dropout(model: nn.Module) -> bool:
    """Whether ``model`` has no dropout module anywhere (its MC samples would all be equal)."""
    return not any(isinstance(module, nn.Dropout) for module in model.modules())


def fits(model: nn.Module) -> bool:
    """A model this applies to: no dropout module anywhere, a linear ``score`` head and its trunk under
    ``base_model_prefix``."""
    trunk = getattr(model, str(getattr(model, "base_model_prefix", "")), None)
    return (isinstance(getattr(model, HEAD_NAME, None), nn.Linear) and isinstance(trunk, nn.Module)
            and without_dropout(model))


class DecoderHead(nn.Module):
    """The model's trunk and head, and ``sampled``: a dropout at ``rate`` followed by that same head (the module
    MC dropout patches; :meth:`sample_logits` runs it)."""

    def __init__(self, model: nn.Module, rate: float):
        super().__init__()
        self.trunk = getattr(model, str(model.base_model_prefix))
        self.sampled = nn.Sequential(nn.Dropout(rate), getattr(model, HEAD_NAME))
        self.pad_token_id = getattr(model.config, "pad_token_id", None)
        self._run_trunk: Callable[..., Any] = self.trunk

    def compile_trunk(self) -> None:
        """``torch.compile`` the trunk's pass (dynamic shapes): ``scoring.compile`` on CUDA."""
        self._run_trunk = torch.compile(self.trunk, dynamic=True)

    @property
    def head(self) -> nn.Module:
        return self.sampled[1]

    def deterministic(self, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits [n, C] of the model for tokenizer ``inputs`` [n, seq], and the pooled hidden states [n, hidden]
        the MC samples start from."""
        hidden = self._run_trunk(input_ids=inputs["input_ids"], attention_mask=inputs.get("attention_mask"),
                                 use_cache=False)[0]  # [n, seq, hidden]
        pooled = self.pool(hidden, inputs["input_ids"])
        return self.head(pooled), pooled

    def pool(self, hidden: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """The hidden state [n, hidden] of each row's last non-padding token, from ``hidden`` [n, seq, hidden]."""
        rows, length = input_ids.shape
        if self.pad_token_id is None:
            positions = torch.full((rows,), length - 1, device=input_ids.device)
        else:
            not_pad = (input_ids != self.pad_token_id).to(torch.int64)
            positions = (torch.arange(length, device=input_ids.device) * not_pad).argmax(-1)
        return hidden[torch.arange(rows, device=hidden.device), positions]

    def sample_logits(self, pooled: torch.Tensor, count: int) -> torch.Tensor:
        """Logits [count · n, C] of ``count`` samples stacked sample-major, from the pooled states [n, hidden]."""
        return self.sampled(pooled.repeat(count, 1))

    def replay_mismatch(self, model: nn.Module, inputs: dict[str, torch.Tensor], tolerance: float) -> str | None:
        """Why trunk → pooled state → head does not give ``model``'s own logits on ``inputs`` (two texts of
        different lengths) within ``tolerance`` of their largest magnitude; None when it does."""
        try:
            with torch.inference_mode():
                expected = model(**inputs).logits.float()
                replayed = self.deterministic(inputs)[0].float()
        except (TypeError, RuntimeError, AttributeError, IndexError, KeyError, ValueError) as error:
            return f"{type(error).__name__}: {error}"
        if replayed.shape != expected.shape:
            return f"logits of shape {tuple(replayed.shape)} instead of {tuple(expected.shape)}"
        gap = (replayed - expected).abs().max().item()
        scale = max(expected.abs().max().item(), 1e-6)
        return f"its logits differ by up to {gap:.3g} (of {scale:.3g})" if gap > tolerance * scale else None
