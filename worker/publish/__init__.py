"""Publishing the cleaned dataset: rows from Argilla, a dataset card, local-directory and Hub sinks."""

from worker.publish.build import Publication, PublishOptions, build_publication

__all__ = ["Publication", "PublishOptions", "build_publication"]
