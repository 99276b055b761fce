"""The worker's small state files: JSON written atomically, read with a default, and their UTC timestamps."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to a temporary file beside ``path`` (folders created), fsync it, then rename it
    over ``path``: a crash at any point leaves either the previous file or the new one, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("w") as handle:
            json.dump(value, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON value stored at ``path``, or ``default`` when there is no such file."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


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

