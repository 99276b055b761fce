"""A sentence encoder's own view in its first token, before a classifier is fine-tuned from it.

A sentence encoder (a sentence-transformers checkpoint such as all-MiniLM-L6-v2) was trained on the *mean* of its
token vectors; a transformers sequence classifier reads its *first* token instead (``[CLS]``, through BERT's pooler),
which such an encoder never trained. From the few hundred records a team reviews first, the classifier then starts
from the weaker view (benchmarks/pooling_alignment.py: a logistic regression on frozen movie-snippet features from 50
records reads 0.62 on the mean-pooled vectors, 0.54 on the pooler's output).

:func:`align_first_token` teaches the encoder, on texts of the dataset (no labels needed), to put the mean-pooled
vector the frozen encoder computes into its first token's last hidden state (mean squared error, every layer
trained), and sets BERT's pooler to pass that vector on (identity weights, then its tanh). The classifier is then
fine-tuned from the aligned encoder exactly as from the base one and stays a plain checkpoint of the same
architecture: MC dropout, fast MC, the registry and publishing see nothing new.

Cost: one inference pass over the texts (their targets: :func:`worker.coldstart.embed`, which loads the encoder once
more) and ``epochs`` training passes: O(texts) time; memory O(texts × hidden) for the targets (2,000 × 384 floats: 3
MB) and O(batch) activations. :func:`aligned_encoder` keeps the result under a key of the base model and the
alignment's settings, so that it is paid once per base model, not per training (the texts are those of the first
training: the alignment needs the dataset's kind of text, not its latest records).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import random
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from worker.coldstart import embed
from worker.errors import ConfigError, DataError, Interrupted
from worker.files import Scratch
from worker.scoring.device import model_failures, pick_device
from worker.scoring.model import context_limit, ensure_padding, pretrained

logger = logging.getLogger(__name__)

ALIGNED_FILE = "pooling_alignment.json"  # in an aligned encoder's directory: what it was aligned from, and how
POOLING_CONFIG = "config.json"  # a sentence-transformers Pooling module's settings, in the module's directory
Text = tuple[str, str | None]  # a record's text and its second text (a two-field binding), as the classifier reads them


def mean_pooled(source: str | Path) -> bool:
    """Whether ``source`` (a directory or a Hub id) is a sentence-transformers checkpoint whose embedding is the mean
    of its token vectors (``modules.json`` lists a Pooling module whose config says ``pooling_mode_mean_tokens``).
    False on anything unreadable: the training then starts from the model as it is."""
    try:
        modules = json.loads(_model_file(source, "modules.json").read_text(encoding="utf-8"))
        pooling = next(m for m in modules if str(m.get("type", "")).endswith("Pooling"))
        config = json.loads(_model_file(source, f"{pooling['path']}/{POOLING_CONFIG}").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, StopIteration, TypeError, AttributeError):
        return False
    return bool(config.get("pooling_mode_mean_tokens")) and not any(
        config.get(mode) for mode in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_lasttoken"))


def _model_file(source: str | Path, name: str) -> Path:
    """A file of a model directory or of a Hub model (downloaded to the Hub cache, or read from it offline).

    Raises:
        OSError: no such file.
    """
    directory = Path(source).expanduser()
    if directory.is_dir():
        return directory / name
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(str(source), name))
    except Exception as error:  # the Hub's errors (missing file, offline, no such repo) share no base but OSError's
        raise OSError(f"{source}: {name}: {error}") from error


def alignment_key(source: str | Path, **settings: Any) -> str:
    """A short name for the encoder :func:`align_first_token` makes from ``source`` with ``settings`` (the same name:
    the same base model and settings)."""
    path = Path(source).expanduser()
    named = str(path.resolve()) if path.is_dir() else str(source)
    return hashlib.sha256(json.dumps([named, sorted(settings.items())]).encode()).hexdigest()[:16]


def aligned_encoder(source: str | Path, texts: Callable[[], Sequence[Text]], root: Path, *, epochs: int,
                    learning_rate: float, max_length: int, seed: int, device: str = "auto",
                    trust_remote_code: bool = False, stop: threading.Event | None = None) -> Path:
    """The directory of ``source`` aligned (:func:`align_first_token`) on the ``texts()`` of the first training that
    asks for it, made once under ``root`` and reused by every later training from the same base model with the same
    settings (``texts`` is not called then); making one removes the one made before for another base model or other
    settings. A run stopped half-way, even killed, leaves nothing that is taken for a complete one (it is written in
    a :class:`~worker.files.Scratch` beside, then renamed).

    Raises:
        ConfigError, DataError, Interrupted: as :func:`align_first_token`.
    """
    target = root / alignment_key(source, epochs=epochs, learning_rate=learning_rate, max_length=max_length,
                                  seed=seed)
    if (target / ALIGNED_FILE).is_file():
        logger.info("training starts from %s with its first token aligned before (%s)", source, target)
        return target
    with Scratch(root, f".{target.name}-") as scratch:
        built = align_first_token(source, texts(), scratch.path / "encoder", epochs=epochs,
                                  learning_rate=learning_rate, max_length=max_length, seed=seed, device=device,
                                  trust_remote_code=trust_remote_code, stop=stop)
        shutil.rmtree(target, ignore_errors=True)
        built.rename(target)
    for before in root.iterdir():  # another base model's or settings' (one is kept: a model's size each)
        if before != target and not before.name.startswith("."):
            logger.info("removing %s, aligned for another base model or settings", before)
            shutil.rmtree(before, ignore_errors=True)
    return target


def align_first_token(source: str | Path, texts: Sequence[Text], output_dir: Path, *, epochs: int = 3,
                      learning_rate: float = 1e-4, max_length: int = 128, batch_size: int = 32, seed: int = 0,
                      device: str = "auto", trust_remote_code: bool = False,
                      stop: threading.Event | None = None) -> Path:
    """Save to ``output_dir`` the encoder of ``source`` trained so that its first token's last hidden state [H] is the
    mean of its token vectors [L, H] as ``source`` computes them, over ``texts`` ((text, second text or None) as the
    classifier will read them; ``epochs`` passes, AdamW at ``learning_rate``), with BERT's pooler set to the
    identity; and its tokenizer, and ``ALIGNED_FILE``.

    Raises:
        ConfigError: ``source`` cannot be loaded, or fails inside torch on the texts.
        DataError: no text to align on.
        Interrupted: ``stop`` was set (checked after each batch); nothing is saved.
    """
    from transformers import AutoModel, AutoTokenizer

    texts = [(text, pair) for text, pair in texts if text.strip() or (pair or "").strip()]
    if not texts:
        raise DataError("no text to align the encoder's first token on")
    started = time.perf_counter()
    target = pick_device(device)
    load = functools.partial(pretrained, trust_remote_code=trust_remote_code, what="an encoder to align",
                             error=ConfigError)
    tokenizer = load(AutoTokenizer, source)
    model = load(AutoModel, source).to(target)
    ensure_padding(tokenizer, model, source)
    limit = min(max_length, context_limit(tokenizer, model))
    batch = functools.partial(_tokenized, tokenizer, max_length=limit)
    torch.manual_seed(seed)
    with model_failures(lambda error: ConfigError(
            f"aligning the first token of {source} ({type(model).__name__}) fails on the dataset's texts: "
            f"{type(error).__name__}: {error}")):
        pairs = [pair or "" for _, pair in texts] if any(pair is not None for _, pair in texts) else None
        means = torch.from_numpy(embed([text for text, _ in texts], str(source), pairs=pairs, batch_size=batch_size,
                                       device=device, max_length=limit, trust_remote_code=trust_remote_code))
        losses = _train_first_token(model, texts, means, batch, target, batch_size=batch_size, epochs=epochs,
                                    learning_rate=learning_rate, seed=seed, stop=stop)
    identity = _pooler_as_identity(model)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    seconds = time.perf_counter() - started
    record = {"source": str(source), "texts": len(texts), "epochs": epochs, "learning_rate": learning_rate,
              "max_length": max_length, "seed": seed, "loss_by_epoch": losses, "pooler_identity": identity,
              "seconds": round(seconds, 1)}
    (output_dir / ALIGNED_FILE).write_text(json.dumps(record, indent=2), encoding="utf-8")
    logger.info("aligned the first token of %s with its mean-pooled vector on %d texts in %.0f s (mean squared "
                "error %s)", source, len(texts), seconds, " → ".join(f"{loss:.4f}" for loss in losses))
    return output_dir


def _tokenized(tokenizer: Any, texts: Sequence[Text], *, max_length: int) -> Any:
    """A padded batch of ``texts``, with their second texts where any has one (a missing one is empty)."""
    pairs = [pair or "" for _, pair in texts] if any(pair is not None for _, pair in texts) else None
    return tokenizer([text for text, _ in texts], text_pair=pairs, padding=True, truncation=True,
                     max_length=max_length, return_tensors="pt")


def _train_first_token(model: Any, texts: Sequence[Text], means: torch.Tensor, batch: Any, device: torch.device, *,
                       batch_size: int, epochs: int, learning_rate: float, seed: int,
                       stop: threading.Event | None) -> list[float]:
    """Train ``model`` (dropout on) so that its first token's last hidden state [B, H] meets ``means`` [N, H] (the
    texts' mean-pooled vectors by the frozen encoder: :func:`worker.coldstart.embed`); each epoch's mean squared
    error."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    order, shuffle, losses = list(range(len(texts))), random.Random(seed), []
    for _ in range(epochs):
        shuffle.shuffle(order)
        total = 0.0
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            inputs = batch([texts[row] for row in rows]).to(device)
            first = model(**inputs).last_hidden_state[:, 0].float()  # [B, H]
            loss = torch.nn.functional.mse_loss(first, means[rows].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
            if stop is not None and stop.is_set():
                raise Interrupted("training stopped on request while the base model's first token was being "
                                  "aligned; the current model is unchanged")
        losses.append(round(total / len(order), 6))
    model.eval()
    return losses


def _pooler_as_identity(model: Any) -> bool:
    """Set a BERT-style pooler (a square ``pooler.dense`` before its tanh) to pass the first token on; whether there
    was one (other architectures' heads read the first token directly, and learn their dense layer anew)."""
    dense = getattr(getattr(model, "pooler", None), "dense", None)
    if not isinstance(dense, torch.nn.Linear) or dense.in_features != dense.out_features:
        return False
    with torch.no_grad():
        dense.weight.copy_(torch.eye(dense.in_features))
        dense.bias.zero_()
    return True
