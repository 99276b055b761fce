"""Built-in plugin: the local-directory and Hugging Face Hub sinks, from the ``[publish]`` config."""

from __future__ import annotations

from worker.plugins import WorkerContext, hookimpl


@hookimpl
def register_publishers(context: WorkerContext):
    from worker.publish.sinks import HubSink, LocalDirectorySink

    settings = context.settings.publish
    sinks: list[LocalDirectorySink | HubSink] = []
    if settings.directory is not None:
        sinks.append(LocalDirectorySink(settings.directory))
    if settings.repo_id:
        sinks.append(HubSink(settings.repo_id, token=settings.token(), private=settings.private))
    return sinks
