"""The model registry: one directory per model version, an atomic ``current`` pointer, gated promotion.

Layout under ``root``::

    versions/v0001/   model.safetensors, config.json, tokenizer files, metrics.json, calibration/
    versions/v0002/
    current -> versions/v0002      (a symlink, switched with one atomic rename)
    state.json                     (the stack of promoted versions, for rollback)
    staging/                       (training output; moved into versions/ only when complete)

A training run writes into ``staging/``; a crash there leaves ``versions/`` and ``current`` untouched
(a staging directory whose process ended is removed the next time the registry opens or stages, by any process that
shares the directory: another container's included — see :class:`~worker.files.Scratch`). A version joins
``versions/`` with one rename, and becomes current with one more: readers never see a half state.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from worker.errors import ConfigError, RegistryError
from worker.files import Scratch, read_json, remove_abandoned, utc_now, write_json_atomic

logger = logging.getLogger(__name__)

CANDIDATE, CURRENT, REJECTED, RETIRED = "candidate", "current", "rejected", "retired"
STAGING_PREFIX = "train-"  # staging/<prefix>…: a training's (or a fold-scoring's) Scratch
LEGACY_STAGING = re.compile(r"\d+-[0-9a-f]{32}")  # staging/<pid>-<uuid>: before the lock file
LEFTOVER_LINK_AGE_S = 600  # a `.current-*` link older than this was left by a promotion that crashed
TAUGHT_IDS_FILE = "taught_ids.txt.gz"  # a version's taught record ids (see worker.training.compare)




@dataclass(frozen=True)
class GateDecision:
    """Whether a candidate may replace the current model, and why."""

    passed: bool
    reason: str
    candidate_macro_f1: float
    current_macro_f1: float | None
    tolerance: float


def gate(candidate_macro_f1: float, current_macro_f1: float | None, tolerance: float) -> GateDecision:
    """Pass when there is no current model, or the candidate's macro-F1 on the *same* records (see
    :func:`worker.training.compare.gate_records`) is not worse than the current model's by more than
    ``tolerance``."""
    if current_macro_f1 is None:
        return GateDecision(True, "no current model", candidate_macro_f1, None, tolerance)
    drop = current_macro_f1 - candidate_macro_f1
    if drop > tolerance:
        return GateDecision(False, f"macro-F1 {candidate_macro_f1:.4f} is {drop:.4f} below the current "
                                   f"model's {current_macro_f1:.4f} (tolerance {tolerance})",
                            candidate_macro_f1, current_macro_f1, tolerance)
    return GateDecision(True, f"macro-F1 {candidate_macro_f1:.4f} vs current {current_macro_f1:.4f} "
                              f"(tolerance {tolerance})", candidate_macro_f1, current_macro_f1, tolerance)


@dataclass(frozen=True)
class ModelVersion:
    version: str
    path: Path
    metrics: dict

    @property
    def status(self) -> str:
        return self.metrics.get("status", CANDIDATE)

    def summary(self) -> dict[str, Any]:
        """What ``argilla-worker status`` shows of the version: its validation figures, its figures on the test set
        (see :mod:`worker.test_set`; None before one is measured) and prediction stability."""
        validation = self.metrics.get("validation", {})
        stability = self.metrics.get("stability") or {}
        return {"version": self.version, "macro_f1": validation.get("macro_f1"),
                "validation_records": validation.get("records"),
                "ece_deterministic": validation.get("ece_deterministic"), "ece_mc": validation.get("ece_mc"),
                "stability_kappa": stability.get("kappa"), "stop_signal": bool(stability.get("stop_signal")),
                "test": self.metrics.get("test")}


def is_brought(model: ModelVersion) -> bool:
    """Whether a team brought ``model`` (``argilla-worker models register``) rather than the worker training it."""
    return "registered_from" in model.metrics


def check_writable(directory: Path, setting: str) -> None:
    """Create ``directory`` if needed and write a probe file in it, before any long job starts.

    Raises:
        ConfigError: it cannot be created or written (names the setting, the path and the reason).
    """
    directory = Path(directory).expanduser()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-check-"):
            pass
    except OSError as error:
        raise ConfigError(f"{setting} = {str(directory)!r} is not writable: {error.strerror or error}") from None


class ModelRegistry:
    """Model versions on disk. ``keep`` is how many versions are kept (current and rollback target always are)."""

    def __init__(self, root: Path, *, keep: int = 5):
        self.root = Path(root).expanduser()
        self.keep = keep
        self.versions_dir = self.root / "versions"
        self.staging_root = self.root / "staging"
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        self._taken = 0  # the highest version number found elsewhere (see avoid)
        self._clean_leftovers()

    def __repr__(self) -> str:
        return f"ModelRegistry({str(self.root)!r})"

    # -- reading ---------------------------------------------------------------------------------------
    def versions(self) -> list[ModelVersion]:
        """All versions, oldest first."""
        current = self.current_version()
        return [self._load(path, current) for path in sorted(self.versions_dir.iterdir()) if path.is_dir()]

    def get(self, version: str) -> ModelVersion:
        path = self._version_path(version)
        if path is None:
            known = [v.version for v in self.versions()]
            raise RegistryError(f"no model version {version!r} in {self.root} (known: {known or 'none'})")
        return self._load(path, self.current_version())

    def _version_path(self, version: str) -> Path | None:
        """``versions/<version>`` when ``version`` is a plain name (not empty, ``.``, ``..`` nor a path: a name a
        person typed or a record's metadata holds) of a directory there, else None."""
        if version in ("", ".", "..") or Path(version).name != version:
            return None
        path = self.versions_dir / version
        return path if path.is_dir() else None

    def taught(self, version: str) -> frozenset[str] | None:
        """The ids of the records ``version`` was taught (:data:`TAUGHT_IDS_FILE`): none for a model a team brought
        (it learnt none of the dataset's reviews) — but what a later version the worker fine-tuned from it keeps;
        None when unknown (no such version here any more, or one trained before the worker kept them). O(ids)."""
        path = self._version_path(version)
        if path is None:
            return None
        taught = read_taught_ids(path)
        if taught is None and is_brought(self._load(path, self.current_version())):
            return frozenset()
        return frozenset(taught) if taught is not None else None

    def current(self) -> ModelVersion | None:
        name = self.current_version()
        return self.get(name) if name is not None else None

    def brought_start(self, model: ModelVersion | None) -> ModelVersion | None:
        """The model a team brought (``models register``) that ``model`` is, or was fine-tuned from — following each
        version's ``training.start_version`` back —, while it is in the registry; else None. What
        ``training.start_from = "auto"`` fine-tunes: the team's classifier, not a generic base model. O(versions)."""
        seen: set[str] = set()
        while model is not None and model.version not in seen:
            if is_brought(model):
                return model
            seen.add(model.version)
            training = model.metrics.get("training") or {}
            start = training.get("start_version") or self._version_at(training.get("start_model"))
            model = self.get(start) if start and self._version_path(start) else None
        return None

    def _version_at(self, path: str | None) -> str | None:
        """The version whose directory ``path`` is (a training's ``start_model`` from before ``start_version`` was
        kept), else None."""
        return Path(path).name if path and Path(path).parent == self.versions_dir else None

    def current_version(self) -> str | None:
        """The current version's name from the ``current`` link alone (one readlink, no metadata read)."""
        link = self.root / "current"
        return Path(os.readlink(link)).name if link.is_symlink() else None

    def _load(self, path: Path, current: str | None) -> ModelVersion:
        """A version; its status is ``current`` exactly when the ``current`` symlink points to it (the link is
        switched first, the stored statuses after it: a crash between them must not show two or none)."""
        metrics = read_json(path / "metrics.json", {})
        if path.name == current:
            metrics["status"] = CURRENT
        elif metrics.get("status") == CURRENT:
            metrics["status"] = RETIRED
        return ModelVersion(path.name, path, metrics)

    # -- adding ----------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh, empty directory to train into, which :meth:`add` moves into ``versions/``; whatever is still
        there when the block ends (it raised, or nothing was added) is removed. It lies in a
        :class:`~worker.files.Scratch` (``staging/<STAGING_PREFIX>…/model``; the lock file beside it, not in the
        model), so the directory of a process killed mid-training is removed by the next registry to open or stage —
        never one whose process still runs, whichever process or container (its own pid numbers) looks."""
        scratch = Scratch(self.staging_root, STAGING_PREFIX)
        try:
            path = scratch.path / "model"
            path.mkdir()
            yield path
        finally:
            scratch.remove()

    def add(self, staged: Path, metrics: dict, *, version: str | None = None) -> ModelVersion:
        """Move a complete staged model into ``versions/`` (status: candidate) as ``version`` or the next one.

        Without ``version``, a number another process takes first (the service retraining while a `train` from
        the command line registers into the same registry) is skipped: the rename into ``versions/`` is what
        claims a number, and a taken one makes it fail, so the model is registered under the next.

        Raises:
            RegistryError: the ``version`` asked for exists already.
        """
        current = self.current()
        parent = metrics.get("parent", current.version if current else None)
        while True:
            name = version or self.next_version()
            if version is not None and (self.versions_dir / name).exists():
                raise RegistryError(f"model version {name} already exists in {self.root}")
            write_json_atomic(staged / "metrics.json", {**metrics, "version": name, "status": CANDIDATE,
                                                        "created_at": utc_now(), "parent": parent})
            try:
                os.rename(staged, self.versions_dir / name)  # fails onto a version that holds a model
            except OSError as error:
                if error.errno not in (errno.EEXIST, errno.ENOTEMPTY) or version is not None:
                    raise
                logger.info("model version %s was registered by another process meanwhile; trying the next", name)
                continue
            logger.info("registered model %s", name)
            return self.get(name)

    def next_version(self) -> str:
        numbers = [int(path.name[1:]) for path in self.versions_dir.iterdir() if path.name[1:].isdigit()]
        return f"v{max([*numbers, self._taken], default=0) + 1:04d}"

    def avoid(self, names: Iterable[str]) -> None:
        """Version names whose values a dataset already holds (``v0003``, ``v0003-oof5``): a new version numbers
        past them. A fresh registry (lost, moved, another machine's) would otherwise call its first model v0001,
        and the records another v0001 scored would count as up to date and never get the new model's values."""
        numbers = [int(match.group(1)) for name in names if (match := re.match(r"v(\d+)(?:$|-)", name))]
        self._taken = max([self._taken, *numbers])

    def update_metrics(self, version: str, **changes) -> ModelVersion:
        entry = self.get(version)
        write_json_atomic(entry.path / "metrics.json", {**entry.metrics, **changes})
        return self.get(version)

    # -- promotion -------------------------------------------------------------------------------------
    def promote(self, version: str, *, reason: str = "promoted") -> ModelVersion:
        """Make ``version`` current with one atomic symlink switch; the old current becomes ``retired``."""
        entry = self.get(version)
        previous = self.current()
        self._switch_current(version)
        if previous and previous.version != version:
            self.update_metrics(previous.version, status=RETIRED)
        stack = [v for v in self._state().get("stack", []) if v != version] + [version]
        write_json_atomic(self.root / "state.json", {"stack": stack})
        entry = self.update_metrics(version, status=CURRENT, promoted_at=utc_now(), promotion_reason=reason)
        logger.info("model %s is now current (%s)", version, reason)
        self.prune()
        return entry

    def reject(self, version: str, reason: str) -> ModelVersion:
        """Mark ``version`` rejected (the gate's word), then prune: a retraining the gate keeps rejecting (a schedule
        on data that stopped improving) would otherwise add a model to the disk each time until the next promotion."""
        logger.warning("model %s rejected: %s", version, reason)
        entry = self.update_metrics(version, status=REJECTED, rejection_reason=reason, rejected_at=utc_now())
        self.prune()
        return entry

    def rollback(self) -> ModelVersion:
        """Make the previously promoted version current again; the current one is marked retired."""
        current = self.current()
        if current is None:
            raise RegistryError("no current model to roll back from")
        stack = [v for v in self._state().get("stack", []) if (self.versions_dir / v).is_dir()]
        while stack and stack[-1] == current.version:
            stack.pop()
        if not stack:
            raise RegistryError(f"nothing to roll back to: {current.version} is the only promoted version left")
        target = stack[-1]
        self._switch_current(target)
        write_json_atomic(self.root / "state.json", {"stack": stack})
        self.update_metrics(current.version, status=RETIRED, rolled_back_at=utc_now())
        logger.info("rolled back from %s to %s", current.version, target)
        return self.update_metrics(target, status=CURRENT, promoted_at=utc_now(), promotion_reason="rollback")

    def _switch_current(self, version: str) -> None:
        temporary = self.root / f".current-{os.getpid()}-{uuid.uuid4().hex}"
        os.symlink(Path("versions") / version, temporary)
        try:
            os.replace(temporary, self.root / "current")
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def _state(self) -> dict:
        return read_json(self.root / "state.json", {})

    # -- housekeeping ----------------------------------------------------------------------------------
    def prune(self) -> list[str]:
        """Delete the oldest versions beyond ``keep``, never the current one, its rollback target, the model a team
        brought that the current one was fine-tuned from (:meth:`brought_start`: the next training starts there), or
        one a team registered that waits for their decision (``models promote``; a candidate the worker trained is
        decided by the gate at once). Runs on each promotion, rejection and registration."""
        current = self.current()
        stack = self._state().get("stack", [])
        protected = {current.version} if current else set()
        protected.update(stack[-2:])
        brought = self.brought_start(current)
        if brought is not None:
            protected.add(brought.version)
        every = self.versions()
        protected.update(v.version for v in every if v.status == CANDIDATE and is_brought(v))
        versions = [v.version for v in every]
        removable = [v for v in versions[:-self.keep] if v not in protected] if len(versions) > self.keep else []
        for version in removable:
            trash = self.root / f".trash-{version}-{uuid.uuid4().hex}"
            os.rename(self.versions_dir / version, trash)
            shutil.rmtree(trash, ignore_errors=True)
            logger.info("pruned model %s (keeping %d versions)", version, self.keep)
        return removable

    def _clean_leftovers(self) -> None:
        """Remove what an interrupted run left: staging dirs, temporary links, half-deleted versions. Nothing here
        reads a process id: the registry may be shared by processes in other containers, whose pids mean nothing
        here (a `docker compose run … train` beside the running worker)."""
        for path in self.root.glob(".current-*"):  # made and renamed in one step: an old one is a crash's
            with contextlib.suppress(FileNotFoundError):
                if time.time() - path.lstat().st_mtime > LEFTOVER_LINK_AGE_S:
                    path.unlink(missing_ok=True)
        for path in self.root.glob(".trash-*"):
            shutil.rmtree(path, ignore_errors=True)
        if self.staging_root.is_dir():
            remove_abandoned(self.staging_root, STAGING_PREFIX)
            for path in self.staging_root.iterdir():
                if LEGACY_STAGING.fullmatch(path.name) and not _legacy_owner_alive(path.name):
                    logger.warning("removing unfinished training output %s", path)
                    shutil.rmtree(path, ignore_errors=True)


def _legacy_owner_alive(name: str) -> bool:
    """Whether the process whose pid prefixes a staging directory named as before the lock file
    (``<pid>-<uuid>``) is still running here (not this one): only a worker of that age made one."""
    pid = int(name.split("-", 1)[0])
    return pid != os.getpid() and psutil.pid_exists(pid)


def write_taught_ids(directory: Path, ids: Sequence[str]) -> None:
    """One id per line, sorted, gzip-compressed (10^5 ids: about 1 MB)."""
    with gzip.open(directory / TAUGHT_IDS_FILE, "wt", encoding="utf-8") as handle:
        handle.writelines(f"{record_id}\n" for record_id in sorted(set(ids)))


def read_taught_ids(directory: Path) -> set[str] | None:
    """The ids a version was taught, or None when it does not say (a registered model, or one trained before the
    worker kept them). A damaged file (cut short, overwritten) reads as unknown too, with a warning naming it:
    what uses it treats an unknown as it did before the worker kept them."""
    path = directory / TAUGHT_IDS_FILE
    if not path.is_file():
        return None
    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            return {line.rstrip("\n") for line in handle if line.strip()}
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as error:
        logger.warning("%s cannot be read (%s): what this version was taught is unknown", path, error)
        return None
