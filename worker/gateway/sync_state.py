"""What the worker remembers about syncing each dataset (persisted): the watermark up to which it has
pulled, and the records whose push failed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from worker.files import read_json, write_json_atomic

RECONCILED = "reconciled"  # the entry holding, per dataset, when the annotated records were last re-read
SCORED_WITH = "scored_with"  # the entry holding, per dataset, the model version of the last complete full score run
SCORED_BY = "scored_by"  # the entry holding, per dataset, the [scoring] options the records are scored with


class SyncState:
    """A small JSON file: dataset key → ISO timestamp (server clock) of the newest change already pulled;
    under ``"reconciled"``, per dataset, the watermark of the last reconciliation (see
    :meth:`ArgillaGateway.pull`) and when it ran (this machine's clock); under ``"scored_with"``, per dataset, the
    model version its last complete full run scored with; under ``"scored_by"``, per dataset, the ``[scoring]``
    options that decide a record's values and, while records scored with other options may be left, the server time
    before which they were written (:class:`ScoredBy`)."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def watermark(self, key: str) -> datetime | None:
        value = self._read().get(key)
        return datetime.fromisoformat(value) if isinstance(value, str) and value else None

    def reconciled(self, key: str) -> tuple[datetime | None, datetime | None]:
        """(the watermark the last reconciliation covered, when it ran); (None, None) if it never ran."""
        entry = self._read().get(RECONCILED, {}).get(key) or {}
        mark, ran = entry.get("mark"), entry.get("ran")
        return (datetime.fromisoformat(mark) if mark else None, datetime.fromisoformat(ran) if ran else None)

    def reconcile_due(self, key: str, every_minutes: float) -> bool:
        _, ran = self.reconciled(key)
        return ran is None or (datetime.now(UTC) - ran).total_seconds() >= every_minutes * 60

    def set_reconciled(self, key: str, mark: datetime | None) -> None:
        """Record a complete reconciliation that covered every response changed up to ``mark``."""
        state = self._read()
        state.setdefault(RECONCILED, {})[key] = {"mark": mark.isoformat() if mark else None,
                                                 "ran": datetime.now(UTC).isoformat()}
        write_json_atomic(self.path, state)

    def scored_with(self, key: str) -> str | None:
        """The model version the last complete run over every record scored with (None: none yet, or one before the
        worker kept it)."""
        return self._read().get(SCORED_WITH, {}).get(key)

    def set_scored_with(self, key: str, version: str) -> None:
        state = self._read()
        if state.get(SCORED_WITH, {}).get(key) != version:
            state.setdefault(SCORED_WITH, {})[key] = version
            write_json_atomic(self.path, state)

    def scored_by(self, key: str) -> ScoredBy | None:
        """The ``[scoring]`` options the dataset's records are scored with (None: none kept yet)."""
        entry = self._read().get(SCORED_BY, {}).get(key)
        if not isinstance(entry, dict) or not isinstance(entry.get("options"), dict):
            return None
        stale = entry.get("stale_before")
        return ScoredBy(entry["options"], datetime.fromisoformat(stale) if isinstance(stale, str) and stale else None)

    def set_scored_by(self, key: str, scored: ScoredBy) -> None:
        state = self._read()
        state.setdefault(SCORED_BY, {})[key] = {
            "options": scored.options,
            "stale_before": scored.stale_before.isoformat() if scored.stale_before else None}
        write_json_atomic(self.path, state)

    def set_watermark(self, key: str, value: datetime | None) -> None:
        if value is None:
            return
        state = self._read()
        state[key] = value.isoformat()
        write_json_atomic(self.path, state)

    def forget(self, key: str) -> None:
        """Drop the watermark and the reconciliation of ``key`` (its dataset is gone): the next pull reads it all."""
        state = self._read()
        had = state.pop(key, None) is not None
        had |= state.get(RECONCILED, {}).pop(key, None) is not None
        had |= state.get(SCORED_WITH, {}).pop(key, None) is not None
        had |= state.get(SCORED_BY, {}).pop(key, None) is not None
        if had:
            write_json_atomic(self.path, state)

    def _read(self) -> dict:
        return read_json(self.path, {})


@dataclass(frozen=True)
class ScoredBy:
    """The ``[scoring]`` options a dataset's records are scored with (JSON values: samples, layers, dropout rate,
    the stopping rule, the temperature …), and ``stale_before``: while set, a record of the current model whose
    suggestion was written (``updated_at``, server clock) no later than it was scored with other options, and is
    scored again (see :func:`worker.jobs.is_up_to_date`)."""

    options: dict[str, Any]
    stale_before: datetime | None = None

    def changes(self, options: Mapping[str, Any]) -> list[str]:
        """What ``options`` change, one "name old → new" each (empty: nothing)."""
        return [f"{name} {self.options.get(name)!r} → {value!r}" for name, value in options.items()
                if self.options.get(name) != value]


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
            write_json_atomic(self.path, state)

    def forget(self, key: str) -> None:
        """Drop the failed records of ``key`` (its dataset is gone: their ids name records that no longer exist)."""
        state = self._read()
        if state.pop(key, None) is not None:
            write_json_atomic(self.path, state)

    def _read(self) -> dict[str, dict]:
        return read_json(self.path, {})
