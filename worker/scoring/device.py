"""Where the model runs and in which precision."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

import torch

from worker.config import check_device_name
from worker.errors import ConfigError

logger = logging.getLogger(__name__)


def pick_device(requested: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; anything else must be available or it is an error.

    Raises:
        ConfigError: the device asked for is not on this machine (no CUDA, no MPS, a GPU index past the last).
    """
    check_device_name(requested)
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    advice = "set scoring.device / training.device to 'auto' (the best this machine has) or 'cpu'"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {requested!r} is set but CUDA is not available on this machine (torch "
                          f"{torch.__version__}): {advice}")
    index = requested.removeprefix("cuda:")
    if requested.startswith("cuda:") and int(index) >= torch.cuda.device_count():
        raise ConfigError(f"device {requested!r} is set but this machine has {torch.cuda.device_count()} CUDA "
                          f"device(s), cuda:0 … cuda:{torch.cuda.device_count() - 1}: {advice}")
    if requested == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device 'mps' is set but MPS is not available on this machine: {advice}")
    return torch.device(requested)


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """Mixed precision on CUDA: bf16 where the GPU supports it, else fp16; none elsewhere."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    """An autocast context for ``dtype`` on ``device``, or a no-op when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def model_failures(error: Callable[[Exception], Exception]) -> Iterator[None]:
    """Inside the block, what torch raises when a model cannot run an input (a tokenizer from another checkpoint,
    a layer that wants more than it is given) becomes ``error(raised)``: one line naming the model instead of a
    traceback. CUDA out-of-memory passes through (its callers shrink the batch or say so)."""
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        raise
    except (RuntimeError, ValueError, TypeError, IndexError) as raised:
        raise error(raised) from raised
