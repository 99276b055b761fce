"""Appends every scored record id to a file (a test checks nothing is scored twice per model version),
and can slow each batch down (so a test can signal the worker mid-run).

Also records promotions and publications to ``events_file``, and each start (whether it is `config check`'s) to
``startup_file``. Config: ``[plugins."tests.worker_plugins.recorder"] record_file = "...", events_file = "...",
startup_file = "...", sleep_per_batch = 0.5``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from worker.plugins import hookimpl

_config: dict = {}


@hookimpl
def startup(context):
    _config.update(context.plugin_config(__name__))
    if "startup_file" in _config:  # what a plugin that announces itself would see: checking under `config check`
        with Path(_config["startup_file"]).open("a") as handle:
            handle.write(json.dumps({"checking": context.checking}) + "\n")


@hookimpl
def on_records_scored(model_version, scores):
    if "record_file" in _config:
        with Path(_config["record_file"]).open("a") as handle:
            handle.writelines(json.dumps([model_version, score.record_id]) + "\n" for score in scores)
    time.sleep(float(_config.get("sleep_per_batch", 0)))


@hookimpl
def on_model_promoted(version, metrics):
    _event("promoted", version, metrics["validation"]["macro_f1"])


@hookimpl
def on_published(results):
    _event("published", [result.location for result in results])


def _event(*values) -> None:
    if "events_file" in _config:
        with Path(_config["events_file"]).open("a") as handle:
            handle.write(json.dumps(values) + "\n")
