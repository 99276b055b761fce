"""What the worker remembers about syncing each dataset (persisted): the watermark up to which it has
pulled, and the records whose push failed."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path


class SyncState:
    """A small JSON file: dataset key → ISO timestamp of the newest change already pulled."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def watermark(self, key: str) -> datetime | None:
        value = self._read().get(key)
        return datetime.fromisoformat(value) if value else None

    def set_watermark(self, key: str, value: datetime | None) -> None:
        if value is None:
            return
        state = self._read()
        state[key] = value.isoformat()
        _write_json(self.path, state)

    def _read(self) -> dict[str, str]:
        return _read_json(self.path)


class FailedPushes:
    """Records whose last push failed, per dataset, persisted until a push of theirs succeeds.

    A failed bulk upsert may still have committed to the server's database (its search index not
    updated): such a record then reads as up to date. Listed here, it is read again by id and pushed
    unconditionally on every run until it lands. One JSON file: dataset key → record id →
    ``{"server_id", "reason", "since", "attempts"}``; its size is the number of failing records.
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def of(self, key: str) -> dict[str, dict]:
        """record id → what is known about its failure."""
        return dict(self._read().get(key, {}))

    def update(self, key: str, *, failed: dict[str, tuple[str, str]], landed: Iterable[str]) -> None:
        """Add ``failed`` (record id → (server id, reason)) and forget the records that ``landed``."""
        state = self._read()
        records = state.setdefault(key, {})
        changed = False
        for record_id in landed:
            changed |= records.pop(record_id, None) is not None
        for record_id, (server_id, reason) in failed.items():
            previous = records.get(record_id, {})
            records[record_id] = {"server_id": server_id, "reason": reason,
                                  "since": previous.get("since", datetime.now(UTC).isoformat()),
                                  "attempts": previous.get("attempts", 0) + 1}
            changed = True
        if not records:
            state.pop(key, None)
        if changed:
            _write_json(self.path, state)

    def _read(self) -> dict[str, dict]:
        return _read_json(self.path)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def _write_json(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=2, sort_keys=True))
    temporary.replace(path)  # atomic: a crash leaves the previous state
