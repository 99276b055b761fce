"""Cold start from the vectors a dataset already holds vs embedding its records with the encoder.

On the local Argilla stack (default ports): a dataset made with the plain SDK holds N movie snippets and, in a
vector field, their embeddings — here all-MiniLM-L6-v2's mean-pooled vectors, computed once with the worker's own
``embed`` (a team's own embedding model in real use). ``cold_start_job`` then ranks the pool twice, side by side:

  * ``encoder``: ``training.base_model`` = the same MiniLM, every record embedded on this machine's CPU;
  * ``vector``: ``--vector their_embedding``, the vectors read with the records (no model loaded).

The vectors are the same numbers either way, so the ranks and outlier scores must agree (the benchmark reports how
many records got the same rank); what differs is the time: a forward pass per record vs reading 384 floats.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/coldstart_vectors.py [--records 5000] [--clusters 50]

Writes benchmarks/results/coldstart_vectors.{json,md}. Needs `argilla-worker local-argilla up`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argilla as rg
import httpx
import numpy as np

from benchmarks._shared import write_results
from worker.coldstart import OUTLIER_PROPERTY, RANK_PROPERTY, ColdStartSettings, embed
from worker.config import load_settings
from worker.demo_data import SENTIMENT_LABELS, load_movie_snippets
from worker.jobs import Services, cold_start_job
from worker.local_argilla.settings import LocalArgillaSettings
from worker.logging_setup import configure_logging
from worker.offline_assets import MINILM_MODEL, fetch

logger = logging.getLogger("benchmarks.coldstart_vectors")
VECTOR = "their_embedding"


def make_dataset(local: LocalArgillaSettings, name: str, texts: list[str], vectors: np.ndarray) -> None:
    """An SDK dataset of ``texts`` with their ``vectors`` [N, D] (replaced if it exists)."""
    client = rg.Argilla(api_url=local.api_url, api_key=local.api_key.get_secret_value())
    old = client.datasets(name=name, workspace=local.workspace)
    if old is not None:
        old.delete()
    dataset = rg.Dataset(name=name, workspace=local.workspace, client=client, settings=rg.Settings(
        fields=[rg.TextField(name="text")], questions=[rg.LabelQuestion(name="label", labels=list(SENTIMENT_LABELS))],
        vectors=[rg.VectorField(name=VECTOR, dimensions=vectors.shape[1])]))
    dataset.create()
    dataset.records.log([rg.Record(id=f"s{index}", fields={"text": text}, vectors={VECTOR: vectors[index].tolist()})
                         for index, text in enumerate(texts)])


def stored_values(local: LocalArgillaSettings, name: str) -> dict[str, tuple[float, float]]:
    """{record id: (cold_start_rank, outlier_score)} as the server holds them."""
    client = rg.Argilla(api_url=local.api_url, api_key=local.api_key.get_secret_value())
    dataset = client.datasets(name=name, workspace=local.workspace)
    values: dict[str, tuple[float, float]] = {}
    offset = 0
    while True:
        page = httpx.get(f"{local.api_url}/api/v1/datasets/{dataset.id}/records",
                         headers={"X-Argilla-Api-Key": local.api_key.get_secret_value()},
                         params={"offset": offset, "limit": 1000}, timeout=60).json()["items"]
        for item in page:
            metadata = item.get("metadata") or {}
            if RANK_PROPERTY in metadata:
                values[item["external_id"]] = (metadata[RANK_PROPERTY], metadata[OUTLIER_PROPERTY])
        if len(page) < 1000:
            return values
        offset += 1000


def rank(local: LocalArgillaSettings, name: str, work: Path, *, encoder: str, vector: str, clusters: int) -> float:
    """Seconds of one ``cold_start_job`` (pull, embed or read vectors, rank, push)."""
    settings = load_settings(
        argilla={"api_url": local.api_url, "dataset": name, "workspace": local.workspace},
        training={"base_model": encoder}, scoring={"device": "cpu"}, state_dir=str(work / "state"),
        registry={"path": str(work / "registry")})
    services = Services(settings)
    started = time.perf_counter()
    cold_start_job(services, ColdStartSettings(clusters=clusters, device="cpu", vector=vector))
    return time.perf_counter() - started


def phases(local: LocalArgillaSettings, name: str, work: Path, encoder: str, texts: list[str],
           clusters: int) -> dict[str, float]:
    """Seconds of each part of a cold start, measured apart: the pull without and with the vectors, the embedding
    of the texts, the ranking (k-means, typicality, outlier scores). The push is the rest of the job's time."""
    from worker.coldstart import vector_ranks

    settings = load_settings(argilla={"api_url": local.api_url, "dataset": name, "workspace": local.workspace},
                             state_dir=str(work / "state"), registry={"path": str(work / "registry")})
    gateway = Services(settings).gateway
    gateway.prepare()
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    count = sum(1 for _ in gateway.pull())
    seconds["pull"] = time.perf_counter() - started
    started = time.perf_counter()
    held = [record.vector for record in gateway.pull(vector=VECTOR) if record.vector is not None]
    seconds["pull with vectors"] = time.perf_counter() - started
    assert count == len(held) == len(texts), (count, len(held))
    started = time.perf_counter()
    embed(texts, encoder, device="cpu")
    seconds["embed"] = time.perf_counter() - started
    started = time.perf_counter()
    vector_ranks([str(index) for index in range(len(held))], np.stack(held), ColdStartSettings(clusters=clusters))
    seconds["rank"] = time.perf_counter() - started
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--clusters", type=int, default=50)
    args = parser.parse_args()
    configure_logging("INFO")
    local = LocalArgillaSettings()
    os.environ["ARGILLA_API_KEY"] = local.api_key.get_secret_value()
    encoder = str(fetch(MINILM_MODEL))
    texts = [snippet.text for snippet in load_movie_snippets()[:args.records]]
    vectors = embed(texts, encoder, device="cpu")  # [N, 384]: "their" embeddings
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as work:
        for path, vector in (("encoder", ""), ("vector", VECTOR)):
            name = f"bench-coldstart-{path}-{args.records}"  # one dataset each: the second run must not find ranks
            make_dataset(local, name, texts, vectors)
            seconds = rank(local, name, Path(work) / path, encoder=encoder, vector=vector, clusters=args.clusters)
            results[path] = {"seconds": seconds, "values": stored_values(local, name)}
            logger.info("%s: %.1f s", path, seconds)
        parts = phases(local, name, Path(work) / "phases", encoder, texts, args.clusters)
    by_encoder, by_vector = results["encoder"]["values"], results["vector"]["values"]
    same_rank = sum(by_encoder[key][0] == by_vector.get(key, (None,))[0] for key in by_encoder) / len(by_encoder)
    outlier_gap = max(abs(by_encoder[key][1] - by_vector[key][1]) for key in by_encoder)
    speedup = results["encoder"]["seconds"] / results["vector"]["seconds"]
    payload = {"records": args.records, "clusters": args.clusters, "seconds_encoder": results["encoder"]["seconds"],
               "seconds_vector": results["vector"]["seconds"], "speedup": speedup, "same_rank": same_rank,
               "max_outlier_difference": outlier_gap, "phases_seconds": parts}
    lines = ["| path | seconds | records/s |", "|---|---:|---:|",
             *(f"| {path} | {results[path]['seconds']:.1f} | {args.records / results[path]['seconds']:.0f} |"
               for path in ("encoder", "vector")),
             "", (f"{args.records} records, {args.clusters} clusters: the dataset's vectors {speedup:.1f}× faster; "
             f"{same_rank:.3f} of the records got the same rank, outlier scores differ by at most {outlier_gap:.2g}"),
             "", "Its parts, measured apart (the push of the ranks is the rest of each job's time):", "",
             "| part | seconds |", "|---|---:|", *(f"| {part} | {value:.1f} |" for part, value in parts.items())]
    path = write_results("coldstart_vectors", payload, lines)
    print("\n".join(lines))
    print(f"written to {path}")
    if np.isnan(outlier_gap):
        raise SystemExit("outlier scores missing")


if __name__ == "__main__":
    main()
