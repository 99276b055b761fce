"""A plugin that raises from every hook it implements: the worker must log it and go on."""

from __future__ import annotations

from worker.plugins import hookimpl


@hookimpl
def startup(context):
    raise RuntimeError("broken plugin: startup")


@hookimpl
def register_scorers(context):
    raise RuntimeError("broken plugin: register_scorers")


@hookimpl
def on_records_scored(model_version, scores):
    raise RuntimeError("broken plugin: on_records_scored")


@hookimpl
def on_model_promoted(version, metrics):
    raise RuntimeError("broken plugin: on_model_promoted")
