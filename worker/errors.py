"""The worker's one exception tree.

Every error the worker raises on purpose derives from :class:`WorkerError`, so the CLI can
print a clean message (no traceback) for anything the user can fix, and callers can catch
one family at a time. Messages name the record / field / value that caused them.
"""

from __future__ import annotations


class WorkerError(Exception):
    """Base class of every error raised on purpose by the worker."""


class ConfigError(WorkerError):
    """A configuration key has a bad value (the message names the key and the value)."""


class DirectoryInUse(ConfigError):
    """Another running worker service holds ``state_dir`` or ``registry.path`` (see worker.files.ServiceLock)."""


class LocalArgillaError(WorkerError):
    """The local Argilla stack could not be set up, started, or reached."""


class PortInUseError(LocalArgillaError):
    """A port the local stack needs is already taken by a process it did not start."""


class ComponentStartError(LocalArgillaError):
    """A component of the local stack exited or never became healthy (message has its log tail)."""


class ArgillaGatewayError(WorkerError):
    """Talking to the Argilla server failed, or it holds data the worker cannot use.

    ``status`` is the HTTP status the server answered with (None: no answer, or not an HTTP problem);
    ``detail`` the server's own words for it (its JSON ``detail``), when it gave any.
    """

    def __init__(self, message: str, *, status: int | None = None, detail: str | None = None):
        super().__init__(message)
        self.status = status
        self.detail = detail


class ArgillaUnavailableError(ArgillaGatewayError):
    """Argilla could not be reached or answered 5xx: retrying later can help (the runner backs off)."""


class DatasetReplacedError(ArgillaUnavailableError):
    """The dataset the worker was bound to is no longer on the server (deleted, or deleted and created again
    under its name): the gateway has forgotten it, so the next attempt binds to the dataset of that name anew.
    ``dataset_id``: the id that is gone; ``dataset_key``: what the worker's state about it is kept under."""

    def __init__(self, message: str, *, dataset_id: str, dataset_key: str, status: int | None = None,
                 detail: str | None = None):
        super().__init__(message, status=status, detail=detail)
        self.dataset_id, self.dataset_key = dataset_id, dataset_key


class ArgillaRefusedError(ArgillaGatewayError):
    """Argilla refused the request (4xx: a schema, label-set or permission problem): retrying cannot help,
    the message tells the user what to change."""


class LabelSetMismatchError(ArgillaGatewayError):
    """The labels of a dataset's question differ from the model's or the config's labels."""


class DataError(WorkerError):
    """Input data (a file, a dataset, a record) is malformed; the message names where."""


class Interrupted(WorkerError):
    """A stop was requested (SIGTERM); the job stopped at a safe point and nothing half-done was kept."""


class ScoringError(WorkerError):
    """The scoring engine cannot score the given input with the given model."""


class NothingNewError(WorkerError):
    """A training would repeat the newest model version: same training set, same settings, same current model
    (``version``: that version). Not a fault: there is nothing new to learn yet."""

    def __init__(self, message: str, version: str):
        super().__init__(message)
        self.version = version


class NoModelError(WorkerError):
    """There is no current model to score with (train one first, or register one)."""


class RegistryError(WorkerError):
    """The model registry cannot do what was asked (unknown version, nothing to roll back to …)."""


class PublishError(WorkerError):
    """A publication could not be written to its sink."""
