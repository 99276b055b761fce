"""The sync watermark: up to which server time the worker has pulled each dataset (persisted)."""

from __future__ import annotations

import json
from datetime import datetime
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state, indent=2, sort_keys=True))
        temporary.replace(self.path)  # atomic: a crash leaves the old watermark

    def _read(self) -> dict[str, str]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
