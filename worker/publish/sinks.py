"""Where a publication goes: a local directory (atomic swap) or a Hugging Face Hub dataset repo (one commit).

Both sinks skip publishing when the content hash equals the last publication's: no new directory
version, no new Hub commit. The Hub token is passed to huggingface_hub and never logged.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import requests

from worker.config import check_hub_repo_id
from worker.errors import ConfigError, PublishError
from worker.publish.build import Publication
from worker.publish.card import data_file, render_card, write_plots

logger = logging.getLogger(__name__)

MANIFEST = "publication.json"
HASH_MARK = "content-hash: "
# what a publication writes, for a manifest from before manifests listed their files
PUBLISHED_PATTERNS = ("README.md", "data/*.parquet", "images/*.png")
PUBLISHED_DATA = re.compile(r"data/[^/]+-[0-9a-f]{12}-\d{5}-of-\d{5}\.parquet")  # card.data_file's names
FOREIGN_SHOWN = 5  # files the worker did not publish named in the refusal (the walk stops after one more)


def check_sink(sink: object) -> None:
    """A sink's own check, run before a publication is built (a plugin's sink may have none: ``check()``).

    Raises:
        WorkerError: what the sink refuses (see :meth:`LocalDirectorySink.check`, :meth:`HubSink.check`).
    """
    check = getattr(sink, "check", None)
    if callable(check):
        check()


@dataclass(frozen=True)
class PublishResult:
    sink: str
    location: str
    published: bool  # False: unchanged since the last publication
    content_hash: str
    commit: str | None = None


@dataclass(frozen=True)
class CardInfo:
    license: str = "other"
    pretty_name: str = "Cleaned text-classification dataset"
    source: str = "https://argilla.io"
    model_metrics: dict | None = None


def write_publication(publication: Publication, directory: Path, card: CardInfo) -> None:
    """Parquet per split (``data/<split>-<content hash>-00000-of-00001.parquet``, see
    :func:`~worker.publish.card.data_file`), README.md, plots, and the manifest."""
    (directory / "data").mkdir(parents=True, exist_ok=True)
    for name, split in publication.splits.items():
        split.to_parquet(str(directory / data_file(publication, name)))
    (directory / "README.md").write_text(render_card(publication, license=card.license, pretty_name=card.pretty_name,
                                                     source=card.source, model_metrics=card.model_metrics))
    write_plots(publication, directory)
    files = sorted(path.relative_to(directory).as_posix() for path in directory.rglob("*") if path.is_file())
    manifest = {"content_hash": publication.content_hash(), "model_version": publication.model_version,
                "counts": publication.counts(), "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "files": files}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2))


class LocalDirectorySink:
    """A directory loadable with ``datasets.load_dataset(path)``, replaced atomically.

    The new publication is written beside the old one, then swapped in with two renames; a failure
    while writing leaves the old directory untouched (and the half-written one is removed). Since the swap
    replaces the directory whole, a directory holding anything but the worker's last publication is refused
    (:meth:`check`), before anything is built or moved.
    """

    def __init__(self, path: Path):
        self.path = Path(path).expanduser().resolve()

    def check(self) -> None:
        """Refuse a directory the swap would destroy: a file, or a directory with files the worker did not
        publish (none yet: every entry; else those its manifest does not list). Time O(files in the directory),
        stopping after the first few foreign ones.

        Raises:
            ConfigError: naming the directory and the first files that are not the worker's.
        """
        blocking = self._file_in_the_way()
        if blocking is not None:
            raise ConfigError(f"publish.directory {self.path}: {blocking} is a file, not a directory: give a directory "
                              f"where each publication replaces the last")
        self._recover()
        if not self.path.exists():
            return
        if not self.path.is_dir():
            raise ConfigError(f"publish.directory {self.path} is a file: give a new or empty directory, where each "
                              f"publication replaces the last")
        foreign = self._foreign_files()
        if foreign:
            shown = ", ".join(foreign[:FOREIGN_SHOWN]) + (" …" if len(foreign) > FOREIGN_SHOWN else "")
            raise ConfigError(f"publish.directory {self.path} holds files the worker did not publish ({shown}): each "
                              f"publication replaces the directory whole, so it would delete them; give a new or "
                              f"empty directory (e.g. {self.path / 'cleaned'}), or move those files out")

    def _foreign_files(self) -> list[str]:
        """Up to ``FOREIGN_SHOWN + 1`` paths under the directory (relative) that are not the last publication's."""
        manifest = self.path / MANIFEST
        published = manifest.is_file()
        listed: set[str] | None = None
        if published:
            try:
                listed = set(json.loads(manifest.read_text()).get("files") or ()) or None
            except (ValueError, AttributeError):
                return [MANIFEST]  # not the worker's manifest
        foreign: list[str] = []
        for root, directories, files in os.walk(self.path):
            directories.sort()
            for name in sorted(files):
                relative = (Path(root) / name).relative_to(self.path).as_posix()
                if not published or not self._published(relative, listed):
                    foreign.append(relative)
                if len(foreign) > FOREIGN_SHOWN:
                    return foreign
        return foreign

    @staticmethod
    def _published(relative: str, listed: set[str] | None) -> bool:
        if relative == MANIFEST:
            return True
        if listed is not None:
            return relative in listed
        return any(fnmatch.fnmatchcase(relative, pattern) for pattern in PUBLISHED_PATTERNS)

    def last_hash(self) -> str | None:
        self._recover()
        manifest = self.path / MANIFEST
        return json.loads(manifest.read_text())["content_hash"] if manifest.exists() else None

    def publish(self, publication: Publication, card: CardInfo) -> PublishResult:
        self.check()
        content_hash = publication.content_hash()
        if self.last_hash() == content_hash:
            logger.info("publication unchanged since the last one in %s: nothing written", self.path)
            return PublishResult("directory", str(self.path), False, content_hash)
        try:
            self._write(publication, card)
        except OSError as error:  # not writable, no such place (/proc), a full disk …: the old one stays whole
            raise PublishError(f"publish.directory {self.path}: the publication could not be written there "
                               f"({self._reason(error)}); the last publication there, if any, is unchanged"
                               ) from error
        logger.info("published %d records to %s", publication.num_rows, self.path)
        return PublishResult("directory", str(self.path), True, content_hash)

    def _reason(self, error: OSError) -> str:
        """The OS's reason, or which of the directory's parents is a file (the OS says 'File exists' there)."""
        blocking = self._file_in_the_way()
        return f"{blocking} is a file, not a directory" if blocking else error.strerror or str(error)

    def _file_in_the_way(self) -> Path | None:
        """The directory's nearest existing parent when that is a file (nothing can be made under it), else None."""
        nearest = next((parent for parent in self.path.parents if parent.exists()), None)
        return nearest if nearest is not None and not nearest.is_dir() else None

    def _write(self, publication: Publication, card: CardInfo) -> None:
        """Build the publication beside the directory, then swap it in (a failure removes the half-written one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.new-", dir=self.path.parent))
        try:
            write_publication(publication, staging, card)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._swap_in(staging)

    def _swap_in(self, staging: Path) -> None:
        old = self.path.parent / f".{self.path.name}.old-{uuid.uuid4().hex}"
        if self.path.exists():
            os.rename(self.path, old)
        os.rename(staging, self.path)
        shutil.rmtree(old, ignore_errors=True)

    def _recover(self) -> None:
        """After a crash between the two renames: put the old publication back; drop stale staging dirs."""
        parent = self.path.parent
        if not parent.exists():
            return
        olds = sorted(parent.glob(f".{self.path.name}.old-*"))
        if not self.path.exists() and olds:
            os.rename(olds[-1], self.path)
            olds = olds[:-1]
        for stale in [*olds, *parent.glob(f".{self.path.name}.new-*")]:
            shutil.rmtree(stale, ignore_errors=True)


class HubSink:
    """A dataset repo on the Hugging Face Hub (or any endpoint set with ``HF_ENDPOINT``).

    Everything — parquet files, README.md, plots, manifest — goes in one commit whose description
    carries the content hash; the last commit's hash decides whether anything changed.
    """

    def __init__(self, repo_id: str, *, token: str | None = None, private: bool = True, endpoint: str | None = None):
        from huggingface_hub import HfApi

        try:
            check_hub_repo_id(repo_id)
        except ValueError as error:
            raise ConfigError(f"Hub dataset repo {repo_id!r}: {error}") from None
        self.repo_id = repo_id
        self.private = private
        self.api = HfApi(token=token, endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None)

    def last_hash(self) -> str | None:
        from huggingface_hub.utils import RepositoryNotFoundError, RevisionNotFoundError

        try:
            commits = self.api.list_repo_commits(self.repo_id, repo_type="dataset")
        except (RepositoryNotFoundError, RevisionNotFoundError):
            return None
        for commit in commits:  # newest first
            for line in (commit.message or "").splitlines():
                if line.startswith(HASH_MARK):
                    return line.removeprefix(HASH_MARK).strip()
        return None

    def check(self) -> None:
        """Refuse a repo the worker never published to that holds files already (a team's card, their data):
        a publication replaces README.md and the data/ folder. Two requests (its commits, its files, stopping after
        the first few); a repo that does not exist yet, or holds only ``.gitattributes``, is taken.

        Raises:
            ConfigError: naming the repo and its first files.
            PublishError: the Hub could not be asked.
        """
        with self._hub_errors():
            self._previous_hash()

    def _previous_hash(self) -> str | None:
        """The last publication's content hash; when there is none, the repo is refused if it holds files."""
        previous = self.last_hash()
        if previous is not None:
            return previous
        foreign = self._files(limit=FOREIGN_SHOWN + 1)
        if foreign:
            shown = ", ".join(foreign[:FOREIGN_SHOWN]) + (" …" if len(foreign) > FOREIGN_SHOWN else "")
            raise ConfigError(f"Hub dataset {self.repo_id} holds files the worker did not publish ({shown}): a "
                              f"publication replaces its README.md card and its data/ folder; give publish.repo_id a "
                              f"new repo (the worker creates it), or remove those files from this one")
        return None

    def _files(self, limit: int) -> list[str]:
        from huggingface_hub.utils import RepositoryNotFoundError, RevisionNotFoundError

        found: list[str] = []
        try:
            for entry in self.api.list_repo_tree(self.repo_id, repo_type="dataset", recursive=True):
                if getattr(entry, "size", None) is not None and entry.path != ".gitattributes":
                    found.append(entry.path)
                    if len(found) >= limit:
                        break
        except (RepositoryNotFoundError, RevisionNotFoundError):
            return []
        return found

    def _published_data(self) -> list[str]:
        """The repo's data files a publication wrote (``data/<split>-<hash>-NNNNN-of-NNNNN.parquet``): those the next
        one replaces. Other files under data/ (a team's) stay."""
        from huggingface_hub.utils import EntryNotFoundError

        try:
            entries = self.api.list_repo_tree(self.repo_id, path_in_repo="data", repo_type="dataset", recursive=True)
            return [entry.path for entry in entries if PUBLISHED_DATA.fullmatch(entry.path)]
        except EntryNotFoundError:
            return []

    @contextlib.contextmanager
    def _hub_errors(self) -> Iterator[None]:
        """The Hub's errors as one PublishError line each."""
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

        try:
            yield
        except OfflineModeIsEnabled:
            raise PublishError(f"cannot publish to the Hub dataset {self.repo_id!r}: HF_HUB_OFFLINE is set") from None
        except (requests.ConnectionError, httpx.TransportError) as error:
            raise PublishError(f"cannot reach the Hub to publish {self.repo_id!r}: {error}") from None
        except HfHubHTTPError as error:
            raise PublishError(f"publishing to the Hub dataset {self.repo_id!r} failed: {error}") from error

    def publish(self, publication: Publication, card: CardInfo) -> PublishResult:
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        content_hash = publication.content_hash()
        with self._hub_errors():
            self.api.create_repo(self.repo_id, repo_type="dataset", private=self.private, exist_ok=True)
            previous = self._previous_hash()  # (creating a repo that exists changes nothing in it)
            if previous == content_hash:
                logger.info("publication unchanged since the last commit to %s: no new commit", self.repo_id)
                return PublishResult("hub", self.repo_id, False, content_hash)
            with tempfile.TemporaryDirectory() as work:
                write_publication(publication, Path(work), card)
                added = [path.relative_to(work).as_posix() for path in sorted(Path(work).rglob("*")) if path.is_file()]
                operations: list[CommitOperationAdd | CommitOperationDelete] = [
                    CommitOperationDelete(stale) for stale in (self._published_data() if previous else ())
                    if stale not in added]
                operations += [CommitOperationAdd(name, str(Path(work) / name)) for name in added]
                counts = publication.counts()
                info = self.api.create_commit(
                    self.repo_id, operations, repo_type="dataset",
                    commit_message=(f"Publish {counts['records']} records ({counts['corrected']} corrected) "
                                    f"ranked by model {publication.model_version or 'unknown'}"),
                    commit_description=f"{HASH_MARK}{content_hash}",
                )
        logger.info("published %d records to the Hub dataset %s (commit %s)", publication.num_rows, self.repo_id,
                    info.oid)
        return PublishResult("hub", self.repo_id, True, content_hash, commit=info.oid)
