"""The worker's small state files: JSON written atomically, read with a default, and their UTC timestamps; a
service's claim on its directories; a job's scratch directory, which a later job removes if its process died."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Self

from worker.errors import DataError, DirectoryInUse

logger = logging.getLogger(__name__)

LOCK_PATIENCE_S = 0.5  # how long a lock held for an instant (a status probe) is waited out
# what a state file the worker cannot read says to do
STATE_ADVICE = ("it is the worker's own state — restore it from a backup, or move it aside and the worker starts that "
                "state afresh")


def write_json_atomic(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` atomically (see :func:`write_bytes_atomic`)."""
    write_bytes_atomic(path, json.dumps(value, indent=2, sort_keys=True).encode())


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` (folders created), fsync it, then rename it over
    ``path``: a crash at any point leaves either the previous file or the new one, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON value stored at ``path``, or ``default`` when there is no such file. A ``default`` that is a dict
    or a list also says what the file holds: a JSON object or array (``null`` reads as the default).

    Raises:
        DataError: the file is not JSON (cut short by a full disk, edited by hand), or holds another kind of value
            than ``default``'s: names it and what is wrong.
    """
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path} is not valid JSON ({error}): {STATE_ADVICE}") from None
    if isinstance(default, dict | list) and not isinstance(value, type(default)):
        if value is None:
            return default
        raise DataError(f"{path} holds a JSON {_json_kind(value)} where the worker keeps a JSON "
                        f"{_json_kind(default)}: {STATE_ADVICE}")
    return value


def _json_kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value), "number")


def utc_now() -> str:
    """Now, UTC, ISO 8601 to the second: the timestamps of status.json and the registry's metrics."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class KeyedJsonFile:
    """A small JSON file of entries by key (a dataset key): each ``put`` rewrites it atomically."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def get(self, key: str) -> Any:
        """The entry stored under ``key``, or None."""
        return (read_json(self.path, {}) or {}).get(key)

    def put(self, key: str, value: Any) -> None:
        write_json_atomic(self.path, {**(read_json(self.path, {}) or {}), key: value})

    def delete(self, key: str) -> None:
        """Drop the entry under ``key`` (nothing is written when there is none)."""
        entries = read_json(self.path, {}) or {}
        if entries.pop(key, None) is not None:
            write_json_atomic(self.path, entries)


class ServiceLock:
    """A running service's claim on a directory of its own (``state_dir``, ``registry.path``): an exclusive
    ``flock`` on ``worker.lock`` there, held for the service's lifetime. Two services on one state directory would
    overwrite each other's status, counters and view quantiles; on one registry, each would promote its models
    over the other's. The second is refused, naming the first. The kernel drops the lock when its process ends (a
    kill -9 too), so a stale file never blocks a restart. Jobs run by hand (``train``, ``score``) take no lock:
    beside a running service they are expected."""

    FILE = "worker.lock"

    def __init__(self, directory: Path, owner: str, setting: str = "state_dir"):
        self.path = Path(directory) / self.FILE
        self.owner = owner  # what the holder serves: said to a second worker
        self.setting = setting  # the config key naming the directory
        self._handle: Any = None

    def acquire(self) -> None:
        """Take the lock, or refuse.

        Raises:
            DirectoryInUse: another process holds it (its pid, what it serves and since when are named).
        """
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        try:
            _flock_soon(handle, fcntl.LOCK_EX)
        except BlockingIOError:
            handle.seek(0)
            holder = _holder(handle.read())
            handle.close()
            raise DirectoryInUse(f"{self.setting} {self.path.parent} is in use by another running worker ({holder}): "
                                 f"give each worker its own state_dir and registry.path (and http.port), or stop "
                                 f"that one") from None
        handle.seek(0)
        handle.truncate()
        json.dump({"pid": os.getpid(), "serves": self.owner, "since": utc_now()}, handle)
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file drops the lock
            self._handle = None

    @classmethod
    def held(cls, directory: Path) -> bool:
        """Whether a running service holds ``directory``'s lock — whichever process, in whichever container
        sharing the directory (its pid in the file may mean nothing here, or name another process now). Writes
        nothing; takes a shared lock for an instant (one try: a held lock is the answer), which a service starting
        then waits out (:func:`_flock_soon`)."""
        import fcntl

        try:
            handle = (Path(directory) / cls.FILE).open("r")
        except FileNotFoundError:
            return False
        with handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            return False  # closing the file drops the probe's lock


def _flock_soon(handle: IO[str], operation: int) -> None:
    """``flock`` ``handle`` without blocking, trying again for up to :data:`LOCK_PATIENCE_S` while another process
    holds it for an instant (a `status` probe); raises BlockingIOError when it is still held then."""
    import fcntl

    deadline = time.monotonic() + LOCK_PATIENCE_S
    while True:
        try:
            fcntl.flock(handle.fileno(), operation | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def _holder(text: str) -> str:
    try:
        holder = json.loads(text)
        return f"pid {holder['pid']}, serving {holder['serves']}, since {holder['since']}"
    except (ValueError, KeyError, TypeError):
        return "its description unreadable"


class Scratch:
    """A job's directory of temporary files (a publication's Arrow shards, the copies index: as large as the dataset),
    removed by :meth:`remove` — and, when the job's process died before it could (killed by the OOM killer, a
    ``kill -9``, a power cut), by the next job that makes one of the same kind in the same place; nothing else
    would ever remove it.

    The directory ``parent/<prefix><random>`` holds ``IN_USE``, on which its process keeps an exclusive ``flock``:
    the kernel drops it when the process ends, however it ends, so a directory whose lock can be taken is
    abandoned — whatever its process id has become since (a container's restarted worker often gets the same one),
    and while another job of the same process still runs in its own. A directory is made as ``.new-<prefix>…``,
    locked, and only then renamed to its name: a sweep never meets one of its kind whose lock is not held yet.
    Directories without the file (not the worker's) are left alone. Making one costs O(directories of that kind
    under ``parent``).
    """

    IN_USE = ".in-use"
    MAKING = ".new-"  # the name's start while the directory is being made (not yet locked)

    def __init__(self, parent: Path, prefix: str):
        import fcntl

        parent.mkdir(parents=True, exist_ok=True)
        remove_abandoned(parent, prefix)
        making = Path(tempfile.mkdtemp(prefix=self.MAKING + prefix, dir=parent))
        self._lock: IO[str] | None = (making / self.IN_USE).open("w")
        fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX)
        self.path = parent / making.name.removeprefix(self.MAKING)
        os.rename(making, self.path)  # the lock is the file's: it moves with it

    def remove(self) -> None:
        if self._lock is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self._lock.close()
            self._lock = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def remove_abandoned(parent: Path, prefix: str) -> list[Path]:
    """Remove the :class:`Scratch` directories ``parent/<prefix>*`` whose process has ended (their lock can be taken);
    the ones removed."""
    import fcntl

    removed = []
    for path in sorted(parent.glob(f"{prefix}*")):
        try:
            with (path / Scratch.IN_USE).open("r") as lock:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                size = sum(item.stat().st_size for item in path.rglob("*") if item.is_file())
                shutil.rmtree(path, ignore_errors=True)
        except (BlockingIOError, FileNotFoundError, NotADirectoryError):
            continue  # in use, not a scratch directory, or removed by another job meanwhile
        logger.warning("removed %s (%.1f MB): what a job left when its process ended before it finished", path,
                       size / 1e6)
        removed.append(path)
    return removed
