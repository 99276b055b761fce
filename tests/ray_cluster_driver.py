"""A worker process on a joined Ray cluster, driven line by line over stdin by tests/unit/test_ray_cluster.py.

    python -m tests.ray_cluster_driver '<load_settings keyword arguments as JSON>'

Each line is one command; each answer one JSON line on stdout, with ``joined`` (whether the process is connected
to Ray afterwards):

- ``score``: one score run of 24 records on the Ray engine, as a score job holds it (``record_scorer``, then
  ``Services.ray_run_ended``) → ``{"scored": n}``;
- ``idle``: what the runner does between jobs (``Services.release_idle_ray``) → ``{}``;
- ``check``: ``config check``'s Ray line → ``{"check": line}``;
- ``gcs``: the address of the Ray this process is connected to → ``{"gcs": "host:port"}``.

A worker error is ``{"error": message}``. The process ends when stdin closes.
"""

from __future__ import annotations

import json
import sys

import ray

from tests.training_data import sentiment_examples
from worker.config import load_settings
from worker.errors import WorkerError
from worker.jobs import Services, record_scorer
from worker.scoring import ScoringInput
from worker.scoring.distributed import check_cluster


def answer(services: Services, command: str, inputs: list[ScoringInput]) -> dict:
    if command == "score":
        scorer = record_scorer(services, {})
        try:
            return {"scored": sum(1 for _ in scorer.score(inputs))}
        finally:
            services.ray_run_ended()
    if command == "idle":
        services.release_idle_ray()
        return {}
    if command == "check":
        return {"check": check_cluster(services.settings.ray)}
    if command == "gcs":
        return {"gcs": ray.get_runtime_context().gcs_address}
    raise ValueError(f"unknown command {command!r}")


def main() -> None:
    services = Services(load_settings(**json.loads(sys.argv[1])))
    inputs = [ScoringInput(e.id, e.text, e.label) for e in sentiment_examples(24)]
    for line in sys.stdin:
        try:
            reply = answer(services, line.strip(), inputs)
        except WorkerError as error:
            reply = {"error": str(error)}
        print(json.dumps({**reply, "joined": ray.is_initialized()}), flush=True)


if __name__ == "__main__":
    main()
