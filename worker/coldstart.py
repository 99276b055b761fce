"""Cold start: a representative first batch to annotate when no record carries a label.

TypiClust (Hacohen, Dekel & Weinshall, ICML 2022): with a tiny budget, annotate *typical* examples of
as many regions of the data as possible. The records are embedded with the base encoder (mean of the
last hidden states over real tokens), clustered with k-means, and each record's typicality is the
inverse of its mean distance to its nearest neighbours inside its cluster. The ranking takes the most
typical record of each cluster, largest clusters first, then the second most typical of each, and so
on; rank 1 is the first to annotate (metadata ``cold_start_rank``, sort ascending). The same embeddings give each
record's ``outlier_score``: its mean distance to its nearest neighbours in the whole pool, on unit-length vectors —
boilerplate, another language, scraping debris come first when sorted descending (benchmarks/outliers.py).

A dataset that already holds embeddings of its records (an Argilla vector field: the team's own embedding
model, the one their semantic search uses) can be ranked by those instead (``ColdStartSettings.vector``): no
encoder is loaded and no forward pass runs.

Cost: one forward pass per record (O(N) time; none with the dataset's vectors), embeddings of at most
``max_records`` records in memory (O(max_records × hidden)); a larger pool is sampled (seeded) and the rest get no
rank.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from worker.errors import ConfigError, DataError, Interrupted
from worker.scoring.batching import ScoringInput, windows
from worker.scoring.device import autocast, pick_device
from worker.scoring.model import ensure_padding, pretrained

logger = logging.getLogger(__name__)

RANK_PROPERTY = "cold_start_rank"
OUTLIER_PROPERTY = "outlier_score"  # mean distance to the nearest neighbours: high = unlike the rest


@dataclass(frozen=True)
class ColdStartSettings:
    clusters: int = 50  # about the size of the first batch to annotate
    neighbours: int = 20  # K of the typicality's nearest-neighbour distance (TypiClust uses 20)
    max_records: int = 50_000
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    trust_remote_code: bool = False  # registry.trust_remote_code: the encoder may run the code it ships
    vector: str = ""  # one of the dataset's vectors to rank by instead of embedding with the encoder ("": embed)


def embed(texts: Sequence[str], encoder: str, *, pairs: Sequence[str] | None = None, batch_size: int = 64,
          device: str = "auto", max_length: int = 256, trust_remote_code: bool = False,
          stop: threading.Event | None = None) -> np.ndarray:
    """Mean-pooled last hidden states [N, hidden] of ``encoder`` (a Hub id or directory), in input order.

    Raises:
        ConfigError: the encoder cannot be loaded (or ships code ``trust_remote_code`` does not allow).
        Interrupted: ``stop`` was set (checked after each batch).
    """
    from transformers import AutoModel, AutoTokenizer

    target = pick_device(device)
    load = functools.partial(pretrained, trust_remote_code=trust_remote_code, what="an encoder", error=ConfigError)
    tokenizer = load(AutoTokenizer, encoder)
    model = load(AutoModel, encoder).to(target).eval()
    ensure_padding(tokenizer, model, encoder)
    limit = min(max_length, int(tokenizer.model_max_length) if tokenizer.model_max_length < 100_000 else max_length)
    records = [ScoringInput(str(index), text, text_pair=pairs[index] if pairs else None)
               for index, text in enumerate(texts)]
    vectors = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    dtype = torch.bfloat16 if target.type == "cuda" else None
    embedded = 0
    for window in windows(records, tokenizer, batch_size=batch_size, max_length=limit):
        if window.skipped:
            position, reason = next(iter(window.skipped.items()))
            raise DataError(f"record #{window.records[position].record_id}: {reason}")
        for batch in window.batches:
            inputs = {key: value.to(target) for key, value in batch.inputs.items()}
            with torch.inference_mode(), autocast(target, dtype):
                hidden = model(**inputs).last_hidden_state.float()  # [B, L, H]
            mask = inputs["attention_mask"].unsqueeze(-1).float()  # [B, L, 1]
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)  # [B, H]
            rows = [int(record.record_id) for record in batch.records]
            vectors[rows] = pooled.cpu().numpy()
            embedded += len(rows)
            if stop is not None and stop.is_set():
                raise Interrupted(f"the cold start stopped on request while embedding the records ({embedded} of "
                                  f"{len(texts)}): nothing ranked")
    return vectors


def typicality(vectors: np.ndarray, neighbours: int) -> np.ndarray:
    """[N] = 1 / mean Euclidean distance to the ``neighbours`` nearest other points of ``vectors`` [N, H]."""
    if len(vectors) == 1:
        return np.ones(1)
    return 1.0 / (neighbour_distance(vectors, neighbours) + 1e-8)


def neighbour_distance(vectors: np.ndarray, neighbours: int) -> np.ndarray:
    """[N] mean Euclidean distance of each of ``vectors`` [N, H] to its ``neighbours`` nearest other points (0 for
    a single point). Brute force in scikit-learn's memory-bounded chunks: O(N² · H) time."""
    from sklearn.neighbors import NearestNeighbors

    if len(vectors) < 2:
        return np.zeros(len(vectors))
    k = min(neighbours, len(vectors) - 1)
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(vectors).kneighbors(vectors)
    return distances[:, 1:].mean(axis=1)  # column 0 is the point itself


def outlier_scores(vectors: np.ndarray, neighbours: int) -> np.ndarray:
    """[N] how unlike the others each of ``vectors`` [N, H] is: the mean distance to its ``neighbours`` nearest
    others after scaling every vector to length 1 (so the direction counts, not the norm: a long text's mean-pooled
    vector is short, and long texts of any topic would otherwise sit together near the origin). In [0, 2]."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)  # [N, 1]
    return neighbour_distance(vectors / np.maximum(norms, 1e-12), neighbours)


def typical_ranking(vectors: np.ndarray, *, clusters: int, neighbours: int = 20, seed: int = 0) -> np.ndarray:
    """Annotation order [N] (indices into ``vectors`` [N, H]): round-robin over clusters (largest first),
    each cluster's records from most to least typical."""
    from sklearn.cluster import KMeans

    count = len(vectors)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    k = max(1, min(clusters, count))
    assignment = KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(vectors)
    queues = []
    for cluster in range(k):
        members = np.flatnonzero(assignment == cluster)
        if len(members):
            order = np.argsort(-typicality(vectors[members], neighbours), kind="stable")
            queues.append(list(members[order]))
    queues.sort(key=len, reverse=True)
    ranking: list[int] = []
    for depth in range(max(len(queue) for queue in queues)):
        ranking.extend(queue[depth] for queue in queues if depth < len(queue))
    return np.asarray(ranking, dtype=np.int64)


def cold_start_ranks(ids: Sequence[str], texts: Sequence[str], encoder: str, settings: ColdStartSettings,
                     pairs: Sequence[str] | None = None, *,
                     stop: threading.Event | None = None) -> dict[str, dict[str, float]]:
    """{record id: {``cold_start_rank``: rank (1 = annotate first), ``outlier_score``: the record's mean distance to
    its ``settings.neighbours`` nearest others in the embedding space (high = unlike the rest of the pool)}} for at
    most ``settings.max_records`` records, in rank order. ``stop``: see :func:`embed`."""
    chosen = list(range(len(ids)))
    if len(chosen) > settings.max_records:
        chosen = sorted(random.Random(settings.seed).sample(chosen, settings.max_records))
        logger.info("cold start: ranking a seeded sample of %d of %d records", len(chosen), len(ids))
    vectors = embed([texts[i] for i in chosen], encoder, pairs=[pairs[i] for i in chosen] if pairs else None,
                    batch_size=settings.batch_size, device=settings.device,
                    trust_remote_code=settings.trust_remote_code, stop=stop)
    return vector_ranks([ids[i] for i in chosen], vectors, settings)


def vector_ranks(ids: Sequence[str], vectors: np.ndarray, settings: ColdStartSettings) -> dict[str, dict[str, float]]:
    """:func:`cold_start_ranks`' values for the records ``ids`` [N] from their vectors [N, D] (the encoder's, or
    vectors the dataset already holds). Time O(N² · D) (the nearest-neighbour distances), memory O(N · D)."""
    order = typical_ranking(vectors, clusters=settings.clusters, neighbours=settings.neighbours, seed=settings.seed)
    distance = outlier_scores(vectors, settings.neighbours)  # [N]
    return {ids[index]: {RANK_PROPERTY: float(rank), OUTLIER_PROPERTY: float(distance[index])}
            for rank, index in enumerate(order, start=1)}
